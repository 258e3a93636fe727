"""Privilege credentials (`geni_sfa`): the XML structure, signing, delegation and parsing.

This module builds and reads credentials; it makes no trust decision. Every credential a
service relies on goes through `sfa.trust.verify` first.
"""

from __future__ import annotations

import copy
import functools
import uuid as uuidlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Literal

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sfa.errors import BadArgs, CredentialInvalid, Forbidden, TooBig
from sfa.safexml import parse_xml
from sfa.timeutil import as_utc, format_rfc3339, parse_rfc3339
from sfa.trust.gid import GID
from sfa.trust.keys import public_keys_equal
from sfa.trust.rights import default_rights, expand_privileges
from sfa.trust.xmldsig import XML_ID, BoundedCache, sign_element, signed_text
from sfa.xrn import same_name

XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
CREDENTIAL_SCHEMA = "http://www.geni.net/resources/credential/2/credential.xsd"
MAX_CREDENTIAL_BYTES = 1_000_000
# A delegation chain of depth d nests 3 elements per level; leave room for the bound (8).
MAX_XML_DEPTH = 96

_FIELDS = ("type", "serial", "owner_gid", "owner_urn", "target_gid", "target_urn", "uuid",
           "expires")
_GID_CACHE: BoundedCache[str, GID] = BoundedCache()


@dataclass(frozen=True)
class Privilege:
    """One right named in a credential, and whether its owner may delegate it."""

    name: str
    can_delegate: bool = False


@dataclass(frozen=True)
class Credential:
    """A parsed credential: `owner` holds `privileges` over `target` until `expires`."""

    type: str
    serial: str
    owner_gid: GID
    owner_urn: str
    target_gid: GID
    target_urn: str
    uuid: str
    expires: datetime
    privileges: tuple[Privilege, ...]
    parent: Credential | None
    xml_id: str
    xml: str = field(repr=False)

    @property
    def target_type(self) -> str:
        return self.target_gid.type

    @cached_property
    def rights(self) -> frozenset[str]:
        """Right names granted, `*` expanded to the target type's default rights."""
        return expand_privileges((p.name for p in self.privileges), self.target_type)

    @cached_property
    def _delegatable(self) -> frozenset[str]:
        names = (p.name for p in self.privileges if p.can_delegate)
        return expand_privileges(names, self.target_type)

    def delegatable(self, name: str) -> bool:
        """True when the owner may pass right `name` on."""
        return name in self._delegatable

    @property
    def depth(self) -> int:
        """0 for a credential issued by an authority, +1 per delegation."""
        return 0 if self.parent is None else self.parent.depth + 1

    @property
    def chain(self) -> tuple[Credential, ...]:
        """This credential and its parents, outermost first."""
        return (self,) if self.parent is None else (self, *self.parent.chain)


# --- creating ---------------------------------------------------------------------------------


def create_credential(
    *,
    owner: GID,
    target: GID,
    privileges: Iterable[str | Privilege] | Literal["*"],
    expires: datetime,
    signer_key: rsa.RSAPrivateKey,
    signer: GID,
    delegatable: bool = False,
    algorithm: str = "rsa-sha256",
) -> Credential:
    """Issue and sign a credential as an authority (or as the issuer of `target`)."""
    if not public_keys_equal(signer_key.public_key(), signer.public_key):
        raise BadArgs(f"the signing key does not belong to {signer.urn}")
    return _assemble_credential(
        owner=owner,
        target=target,
        privileges=_privileges(privileges, target.type, delegatable),
        expires=expires,
        signer_key=signer_key,
        signer=signer,
        algorithm=algorithm,
    )


def delegate_credential(
    parent: Credential,
    *,
    to: GID,
    signer_key: rsa.RSAPrivateKey,
    signer: GID,
    privileges: Iterable[str | Privilege] | Literal["*"] | None = None,
    expires: datetime | None = None,
    delegatable: bool = False,
    algorithm: str = "rsa-sha256",
) -> Credential:
    """Delegate `parent` (which the signer owns) to `to`: privileges narrowed to those the
    parent lets its owner delegate (all of them by default), expiry capped at the parent's."""
    if not public_keys_equal(signer_key.public_key(), parent.owner_gid.public_key):
        raise Forbidden(f"only the owner of a credential ({parent.owner_urn}) may delegate it")
    if privileges is None or privileges == "*":
        wanted = sorted(name for name in parent.rights if parent.delegatable(name))
        if not wanted:
            raise Forbidden("the credential grants no privilege its owner may delegate")
    else:
        wanted = [p.name if isinstance(p, Privilege) else p for p in privileges]
        wanted = sorted(expand_privileges(wanted, parent.target_type))
        refused = [name for name in wanted if not parent.delegatable(name)]
        if refused:
            raise Forbidden(f"the credential does not let its owner delegate {refused}")
    capped = min(as_utc(expires), parent.expires) if expires else parent.expires
    return _assemble_credential(
        owner=to,
        target=parent.target_gid,
        privileges=tuple(Privilege(name, delegatable) for name in wanted),
        expires=capped,
        signer_key=signer_key,
        signer=signer,
        parent=parent,
        algorithm=algorithm,
    )


def _assemble_credential(
    *,
    owner: GID,
    target: GID,
    privileges: Iterable[Privilege],
    expires: datetime,
    signer_key: rsa.RSAPrivateKey,
    signer: GID,
    parent: Credential | None = None,
    algorithm: str = "rsa-sha256",
    serial: str | None = None,
    uuid: str | None = None,
) -> Credential:
    """Write and sign a credential exactly as given: the mechanics without the rules. Public
    only as `sfa.trust.hazmat.assemble_credential` (tests build refused credentials with it)."""
    parent_root = _parent_document(parent) if parent else None
    nsmap = dict(parent_root.nsmap) if parent_root is not None else {}
    root = etree.Element("signed-credential", nsmap={**nsmap, "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}noNamespaceSchemaLocation", CREDENTIAL_SCHEMA)
    taken = {e.get(XML_ID) for e in parent_root.iter()} if parent_root is not None else set()
    xml_id = next(f"ref{n}" for n in range(len(taken) + 1) if f"ref{n}" not in taken)
    element = etree.SubElement(root, "credential")
    element.set(XML_ID, xml_id)
    _write_fields(element, owner, target, privileges, expires, serial, uuid)
    signatures = etree.Element("signatures")
    if parent_root is not None and parent is not None:
        _copy_parent(parent_root, parent.xml_id, element, signatures)
    root.append(signatures)
    sign_element(
        element,
        signatures,
        key=signer_key,
        certificates=(signer.certificate, *signer.chain),
        algorithm=algorithm,
    )
    _put_newest_first(signatures, parent is not None)
    xml = etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()
    return parse_credential(xml)


def _privileges(
    privileges: Iterable[str | Privilege] | Literal["*"], target_type: str, delegatable: bool
) -> tuple[Privilege, ...]:
    if privileges == "*":
        names: Iterable[str | Privilege] = default_rights(target_type)
    else:
        names = privileges
    result = []
    for item in names:
        result.append(item if isinstance(item, Privilege) else Privilege(item, delegatable))
    if not result:
        raise BadArgs("a credential needs at least one privilege")
    return tuple(result)


def _text(parent: etree._Element, tag: str, value: str) -> None:
    etree.SubElement(parent, tag).text = value


def _write_fields(  # noqa: PLR0917
    element: etree._Element,
    owner: GID,
    target: GID,
    privileges: Iterable[Privilege],
    expires: datetime,
    serial: str | None,
    uuid: str | None,
) -> None:
    _text(element, "type", "privilege")
    _text(element, "serial", serial or str(uuidlib.uuid4().int % 10**12))
    _text(element, "owner_gid", owner.to_pem())
    _text(element, "owner_urn", owner.urn)
    _text(element, "target_gid", target.to_pem())
    _text(element, "target_urn", target.urn)
    _text(element, "uuid", uuid or str(uuidlib.uuid4()))
    _text(element, "expires", format_rfc3339(expires))
    container = etree.SubElement(element, "privileges")
    for privilege in privileges:
        node = etree.SubElement(container, "privilege")
        _text(node, "name", privilege.name)
        _text(node, "can_delegate", "true" if privilege.can_delegate else "false")


def _parent_document(parent: Credential) -> etree._Element:
    # The parent's signatures cover its canonical form, which includes the namespaces in scope
    # in its document: the new document declares the same ones on its root.
    parent_root = parse_credential_document(parent.xml)
    if None in parent_root.nsmap:
        raise BadArgs("the parent credential uses a default namespace; it cannot be delegated")
    return parent_root


def _copy_parent(
    parent_root: etree._Element,
    parent_id: str,
    element: etree._Element,
    signatures: etree._Element,
) -> None:
    source = next(
        (e for e in parent_root.iter("credential") if e.get(XML_ID) == parent_id), None
    )
    if source is None:
        raise BadArgs(f"the parent credential {parent_id!r} is not in its own document")
    covered = {e.get(XML_ID) for e in source.iter("credential")}
    etree.SubElement(element, "parent").append(copy.deepcopy(source))
    for signature in parent_root.iterfind("signatures/*"):
        reference = signature.find(".//{*}Reference")
        if reference is not None and reference.get("URI", "")[1:] in covered:
            signatures.append(copy.deepcopy(signature))


def _put_newest_first(signatures: etree._Element, delegated: bool) -> None:
    if delegated and len(signatures) > 1:
        newest = signatures[-1]
        signatures.remove(newest)
        signatures.insert(0, newest)


# --- parsing ----------------------------------------------------------------------------------


def parse_credential(xml: str | bytes) -> Credential:
    """Read a signed credential's structure (no signature or trust check)."""
    root = parse_credential_document(xml)
    return credential_from_tree(root, _as_text(xml))


def parse_credential_document(xml: str | bytes, max_bytes: int = MAX_CREDENTIAL_BYTES
                              ) -> etree._Element:
    """Parse with the hardened parser and check the envelope: `<signed-credential>` holding
    one `<credential>` and at most one `<signatures>`, nothing else."""
    try:
        root = parse_xml(xml, what="credential", max_bytes=max_bytes, max_depth=MAX_XML_DEPTH)
    except (BadArgs, TooBig) as exc:
        raise CredentialInvalid(str(exc)) from None
    if root.tag != "signed-credential":
        raise CredentialInvalid(f"expected <signed-credential>, found <{root.tag}>")
    children = [c for c in root if isinstance(c.tag, str)]
    tags = [c.tag for c in children]
    if tags.count("credential") != 1 or tags.count("signatures") > 1 or (
        set(tags) - {"credential", "signatures"}
    ):
        raise CredentialInvalid(
            f"<signed-credential> must hold one <credential> and one <signatures>, found {tags}"
        )
    return root


def credential_elements(root: etree._Element) -> list[etree._Element]:
    """The `<credential>` elements of the delegation chain, outermost first."""
    return [element for element, _ in _chain_parts(root)]


def credential_from_tree(root: etree._Element, xml: str) -> Credential:
    """Build the `Credential` for a parsed, envelope-checked document."""
    return read_credential_chain(root, xml)[0]


def read_credential_chain(
    root: etree._Element, xml: str
) -> tuple[Credential, list[etree._Element]]:
    """The `Credential` and its `<credential>` elements (outermost first), in one walk."""
    chain = _chain_parts(root)
    parent: Credential | None = None
    for element, parts in reversed(chain):
        parent = _credential_from_parts(element, parts, parent, xml)
    if parent is None:
        raise CredentialInvalid("the document holds no <credential>")
    return parent, [element for element, _ in chain]


_CREDENTIAL_CHILDREN = frozenset((*_FIELDS, "privileges", "parent"))
_PRIVILEGE_CHILDREN = frozenset(("name", "can_delegate"))
_OPTIONAL_FIELDS = frozenset(("serial", "uuid"))


def _chain_parts(root: etree._Element) -> list[tuple[etree._Element, dict[str, etree._Element]]]:
    found = []
    element: etree._Element | None = root.find("credential")
    while element is not None:
        parts = _children(element, _CREDENTIAL_CHILDREN)
        found.append((element, parts))
        holder = parts.get("parent")
        if holder is None:
            break
        inner = [c for c in holder if isinstance(c.tag, str)]
        if len(inner) != 1 or inner[0].tag != "credential":
            raise CredentialInvalid("<parent> must hold exactly one <credential>")
        element = inner[0]
    return found


def _children(element: etree._Element, wanted: frozenset[str]) -> dict[str, etree._Element]:
    """The `wanted` children of `element` by tag, in one pass; a repeated one is refused."""
    found: dict[str, etree._Element] = {}
    for child in element:
        tag = child.tag
        if tag in wanted:
            if tag in found:
                raise CredentialInvalid(
                    f"<{element.tag}> has more than one <{tag}>; one allowed"
                )
            found[tag] = child
    return found


def _text_of(parts: dict[str, etree._Element], tag: str, where: str) -> str:
    node = parts.get(tag)
    if node is None:
        if tag in _OPTIONAL_FIELDS:
            return ""
        raise CredentialInvalid(f"<{where}> has no <{tag}>")
    return signed_text(node)


def _credential_from_parts(
    element: etree._Element,
    parts: dict[str, etree._Element],
    parent: Credential | None,
    xml: str,
) -> Credential:
    xml_id = element.get(XML_ID)
    if not xml_id:
        raise CredentialInvalid("a <credential> has no xml:id, so no signature can cover it")
    values = {name: _text_of(parts, name, "credential") for name in _FIELDS}
    if values["type"] != "privilege":
        raise CredentialInvalid(
            f"credential type {values['type']!r} is not 'privilege' (ABAC speaks-for "
            "credentials go with the geni_speaking_for option)"
        )
    owner_gid = _gid(values["owner_gid"], "owner_gid")
    target_gid = _gid(values["target_gid"], "target_gid")
    _check_urn(owner_gid, values["owner_urn"], "owner")
    _check_urn(target_gid, values["target_urn"], "target")
    privileges = parts.get("privileges")
    if privileges is None:
        raise CredentialInvalid("<credential> has no <privileges>")
    return Credential(
        type=values["type"],
        serial=values["serial"],
        owner_gid=owner_gid,
        owner_urn=values["owner_urn"],
        target_gid=target_gid,
        target_urn=values["target_urn"],
        uuid=values["uuid"],
        expires=_expires(values["expires"]),
        privileges=_read_privileges(privileges),
        parent=parent,
        xml_id=xml_id,
        xml=xml,
    )


@functools.lru_cache(maxsize=1024)
def _expires(text: str) -> datetime:
    try:
        return parse_rfc3339(text)
    except BadArgs as exc:
        raise CredentialInvalid(f"credential expires: {exc}") from None


def _gid(text: str, what: str) -> GID:
    if not text:
        raise CredentialInvalid(f"the credential's <{what}> is empty")
    return _GID_CACHE.get_or_make(text, lambda: GID.from_pem(text))


def _check_urn(gid: GID, urn: str, what: str) -> None:
    if not urn or not same_name(gid.urn, urn):
        raise CredentialInvalid(
            f"the credential's {what}_urn {urn!r} differs from its {what}_gid ({gid.urn!r})"
        )


_FLAGS = {"true": True, "1": True, "false": False, "0": False}


def _read_privileges(container: etree._Element) -> tuple[Privilege, ...]:
    result = []
    for node in container.iterchildren("privilege"):
        # One pass over <name> and <can_delegate> (a repeated one is refused).
        texts: dict[str, str] = {}
        for child in node:
            tag = child.tag
            if tag in _PRIVILEGE_CHILDREN:
                if tag in texts:
                    raise CredentialInvalid(f"<privilege> has more than one <{tag}>; one allowed")
                texts[tag] = signed_text(child)
        name = texts.get("name")
        if name is None:
            raise CredentialInvalid("<privilege> has no <name>")
        raw_flag = texts.get("can_delegate")
        if raw_flag is None:
            raise CredentialInvalid("<privilege> has no <can_delegate>")
        flag = _FLAGS.get(raw_flag.lower())
        if not name or flag is None:
            raise CredentialInvalid(
                f"malformed <privilege>: name {name!r}, can_delegate {raw_flag!r}"
            )
        result.append(_privilege(name, flag))
    return tuple(result)


@functools.lru_cache(maxsize=512)
def _privilege(name: str, can_delegate: bool) -> Privilege:
    return Privilege(name, can_delegate)


def _as_text(xml: str | bytes) -> str:
    return xml if isinstance(xml, str) else xml.decode("utf-8", errors="replace")
