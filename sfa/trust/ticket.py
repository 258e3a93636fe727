"""Tickets and leases: what an aggregate promises a node manager, and the node's receipt.

Same signing machinery as credentials (`spec/trust.md`, "Tickets and leases"). A ticket is
signed by an aggregate that chains to a trusted root and is authority over the node by HRN (or
is pinned in `trusted_issuers`); a lease is signed by the node itself. Replay detection belongs
to the node manager: the ticket carries the `serial` it needs.

A ticket is signed alone (`create_ticket`: the signature covers its `<ticket>`) or in a batch
(`create_tickets`: one signature covers a `<ticket-batch>` listing the SHA-256 digest of every
ticket of the batch, and each ticket's document carries that signed batch; see
docs/internals.md, "Tickets: signed alone or in a batch"). `verify_ticket` reads both.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import re
import uuid as uuidlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sfa.errors import (
    BadArgs,
    CredentialExpired,
    CredentialInvalid,
    CredentialMismatch,
    CredentialSignerUntrusted,
    SfaError,
    TooBig,
)
from sfa.safexml import parse_xml
from sfa.timeutil import as_utc, format_rfc3339, parse_rfc3339, utcnow
from sfa.trust.gid import GID
from sfa.trust.keys import public_keys_equal
from sfa.trust.xmldsig import (
    XML_ID,
    SignatureInfo,
    check_unique_ids,
    document_text,
    read_signatures,
    sign_document,
    sign_element,
    signer_gid,
    verify_signed_element,
    verify_with_gid,
)
from sfa.xrn import is_authority_for, same_name, urn_to_hrn

if TYPE_CHECKING:
    from sfa.trust.verify import TrustPolicy

MAX_TICKET_BYTES = 1_000_000
MAX_BATCH = 4096  # tickets under one signature (64 digests are ~3 KB in each document)
BATCH_TAG = "ticket-batch"
DIGEST_TAG = "ticket-digest"
# 32 bytes in canonical base64: 42 characters, one whose last 2 bits are 0, then one '='
_SHA256_BASE64 = re.compile(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=")
RESOURCE_FIELDS = ("cpu_share", "memory_mb", "disk_mb", "tasks", "bandwidth_kbps")


@dataclass(frozen=True)
class TicketResources:
    """The share of a node a sliver may use."""

    cpu_share: int = 1
    memory_mb: int = 0
    disk_mb: int = 0
    tasks: int = 0
    bandwidth_kbps: int = 0


@dataclass(frozen=True)
class TicketUser:
    """A user who may log into the sliver, with their SSH public keys."""

    urn: str
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ticket:
    """A signed promise: this slice may have these resources on this node until `expires`."""

    serial: str
    issuer_urn: str
    slice_urn: str
    slice_gid: GID
    node_urn: str
    sliver_urn: str
    valid_from: datetime
    expires: datetime
    resources: TicketResources
    users: tuple[TicketUser, ...]
    slice_keypair_public: str
    initscript: str
    signer: GID
    xml: str = field(repr=False)
    batch_size: int = 0  # tickets signed together with this one; 0: signed alone


@dataclass(frozen=True)
class TicketSpec:
    """What one ticket promises, before it is signed (the input of `create_tickets`)."""

    slice_gid: GID
    node_urn: str
    sliver_urn: str
    expires: datetime
    resources: TicketResources = TicketResources()
    users: Sequence[TicketUser] = ()
    slice_keypair_public: str = ""
    initscript: str = ""
    valid_from: datetime | None = None
    serial: str | None = None


@dataclass(frozen=True)
class Lease:
    """The node's signed receipt for a redeemed ticket."""

    ticket_serial: str
    sliver_urn: str
    node_urn: str
    issued: datetime
    expires: datetime
    signer: GID
    xml: str = field(repr=False)


# --- tickets ----------------------------------------------------------------------------------


def create_ticket(
    *,
    slice_gid: GID,
    node_urn: str,
    sliver_urn: str,
    expires: datetime,
    signer_key: rsa.RSAPrivateKey,
    signer: GID,
    resources: TicketResources = TicketResources(),
    users: Sequence[TicketUser] = (),
    slice_keypair_public: str = "",
    initscript: str = "",
    valid_from: datetime | None = None,
    serial: str | None = None,
    algorithm: str = "rsa-sha256",
) -> str:
    """Write and sign a ticket as the aggregate `signer`; returns the signed XML."""
    _check_signing_key(signer_key, signer)
    spec = TicketSpec(slice_gid=slice_gid, node_urn=node_urn, sliver_urn=sliver_urn,
                      expires=expires, resources=resources, users=users,
                      slice_keypair_public=slice_keypair_public, initscript=initscript,
                      valid_from=valid_from, serial=serial)
    root, element = _new_document("signed-ticket", "ticket")
    _write_ticket(element, spec, signer.urn, slice_gid.to_pem())
    return sign_document(root, element, key=signer_key, signer=signer, algorithm=algorithm)


def create_tickets(
    specs: Sequence[TicketSpec],
    *,
    signer_key: rsa.RSAPrivateKey,
    signer: GID,
    algorithm: str = "rsa-sha256",
) -> list[str]:
    """Sign `specs` as one batch (one signature) as the aggregate `signer`; one signed,
    self-contained document per spec, in order."""
    _check_signing_key(signer_key, signer)
    if len(specs) > MAX_BATCH:
        raise BadArgs(f"{len(specs)} tickets in one batch; at most {MAX_BATCH}")
    if not specs:
        return []
    tickets = []
    pems: dict[int, str] = {}  # a slice's GID, written once per batch rather than per ticket
    for spec in specs:
        element = etree.Element("ticket")
        element.set(XML_ID, "ref0")
        if id(spec.slice_gid) not in pems:
            pems[id(spec.slice_gid)] = spec.slice_gid.to_pem()
        _write_ticket(element, spec, signer.urn, pems[id(spec.slice_gid)])
        tickets.append(element)
    holder = etree.Element("signed-ticket")
    batch = etree.SubElement(holder, BATCH_TAG)
    batch.set(XML_ID, "batch0")
    for element in tickets:
        _add(batch, DIGEST_TAG, ticket_digest(element))
    signatures = etree.SubElement(holder, "signatures")
    sign_element(batch, signatures, key=signer_key,
                 certificates=(signer.certificate, *signer.chain), algorithm=algorithm)
    documents = []
    for element in tickets:
        root = etree.Element("signed-ticket")
        root.extend((element, copy.deepcopy(batch), copy.deepcopy(signatures)))
        documents.append(document_text(root))
    return documents


def ticket_digest(element: etree._Element) -> str:
    """What a batch lists for one ticket: base64 SHA-256 of the `<ticket>` element in
    exclusive C14N 1.0 with comments."""
    try:
        canonical = etree.tostring(element, method="c14n", exclusive=True, with_comments=True)
    except etree.C14NError:
        raise CredentialInvalid("the <ticket> cannot be canonicalized") from None
    return base64.b64encode(hashlib.sha256(canonical).digest()).decode("ascii")


def _write_ticket(element: etree._Element, spec: TicketSpec, issuer_urn: str,
                  slice_gid_pem: str) -> None:
    _add(element, "serial", spec.serial or str(uuidlib.uuid4()))
    _add(element, "issuer_urn", issuer_urn)
    _add(element, "slice_urn", spec.slice_gid.urn)
    _add(element, "slice_gid", slice_gid_pem)
    _add(element, "node_urn", spec.node_urn)
    _add(element, "sliver_urn", spec.sliver_urn)
    _add(element, "valid_from", format_rfc3339(spec.valid_from or utcnow()))
    _add(element, "expires", format_rfc3339(spec.expires))
    container = etree.SubElement(element, "resources")
    for name in RESOURCE_FIELDS:
        _add(container, name, str(getattr(spec.resources, name)))
    users_node = etree.SubElement(element, "users")
    for user in spec.users:
        user_node = etree.SubElement(users_node, "user", urn=user.urn)
        for key in user.keys:
            _add(user_node, "key", key)
    _add(element, "slice_keypair_public", spec.slice_keypair_public)
    _add(element, "initscript", spec.initscript)


def parse_ticket(xml: str | bytes) -> Ticket:
    """Read a ticket's fields (no trust decision); `signer` is the unverified X509Data GID."""
    root, element, batch = _read_ticket(xml)
    info = _signature_for(root, element if batch is None else batch)
    size = 0 if batch is None else len(_batch_digests(batch))
    return _ticket_from_element(element, signer_gid(info), _text(xml), size)


def verify_ticket(
    xml: str | bytes,
    policy: TrustPolicy,
    *,
    node_urn: str,
    at: datetime | None = None,
    trusted_issuers: Iterable[GID] = (),
) -> Ticket:
    """Verify a ticket for the node `node_urn`: signature (over the ticket, or over a batch
    that lists the ticket's digest), issuer trust, node, validity."""
    when = as_utc(at) if at else utcnow()
    root, element, batch = _read_ticket(xml)
    signed = element if batch is None else batch
    info = _signature_for(root, signed)
    size = 0
    if batch is not None:
        digests = _batch_digests(batch)
        if ticket_digest(element) not in digests:
            raise CredentialInvalid("the ticket's digest is not among its batch's: the ticket "
                                    "was altered after signing or belongs to another batch")
        size = len(digests)
    pinned = _pinned(signer_gid(info), trusted_issuers)
    if pinned is not None:
        verify_with_gid(signed, info, pinned)
        signer = pinned
    else:
        signer = verify_signed_element(
            root, signed, info, policy.roots, at=when, strict_crypto=policy.strict_crypto
        )
    ticket = _ticket_from_element(element, signer, _text(xml), size)
    if not same_name(ticket.issuer_urn, signer.urn):
        raise CredentialInvalid(f"ticket names issuer {ticket.issuer_urn} but {signer.urn} signed")
    if pinned is None:
        _check_authority_over(signer, ticket.node_urn)
    if not same_name(ticket.node_urn, node_urn):
        raise CredentialMismatch(f"the ticket is for node {ticket.node_urn}, not {node_urn}")
    _check_window(ticket.valid_from, ticket.expires, when, "ticket")
    return ticket


def _read_ticket(xml: str | bytes
                 ) -> tuple[etree._Element, etree._Element, etree._Element | None]:
    """The document, its `<ticket>` and its `<ticket-batch>` (None in the single form)."""
    root, element = _read_document(xml, "signed-ticket", "ticket", batch_tag=BATCH_TAG)
    return root, element, root.find(BATCH_TAG)


def _batch_digests(batch: etree._Element) -> frozenset[str]:
    """The digests a `<ticket-batch>` lists: 1 to MAX_BATCH distinct SHA-256 values, each in
    canonical base64 (as `ticket_digest` writes them)."""
    if (batch.text or "").strip() or set(batch.attrib) != {XML_ID} or batch.nsmap:
        raise CredentialInvalid("a <ticket-batch> holds only <ticket-digest> elements and an "
                                "xml:id")
    digests: set[str] = set()
    for count, child in enumerate(batch, 1):
        if count > MAX_BATCH:
            raise CredentialInvalid(f"a <ticket-batch> lists at most {MAX_BATCH} digests")
        if child.tag != DIGEST_TAG or len(child) or child.attrib or (child.tail or "").strip():
            raise CredentialInvalid(f"a <ticket-batch> holds only <{DIGEST_TAG}> elements, "
                                    "each one base64 SHA-256 digest")
        text = child.text or ""
        if not _SHA256_BASE64.fullmatch(text):
            raise CredentialInvalid(f"<{DIGEST_TAG}> {text[:60]!r} is not the base64 of a "
                                    "SHA-256 digest (44 characters)")
        if text in digests:
            raise CredentialInvalid("a <ticket-batch> lists the same digest twice")
        digests.add(text)
    if not digests:
        raise CredentialInvalid("a <ticket-batch> lists no digest")
    return frozenset(digests)


def _pinned(signer: GID, trusted_issuers: Iterable[GID]) -> GID | None:
    for issuer in trusted_issuers:
        if same_name(issuer.urn, signer.urn) and public_keys_equal(issuer.public_key,
                                                                    signer.public_key):
            return issuer
    return None


def _check_authority_over(signer: GID, node_urn: str) -> None:
    try:
        node_hrn, _ = urn_to_hrn(node_urn)
    except SfaError as exc:
        raise CredentialInvalid(f"ticket node_urn {node_urn!r}: {exc}") from None
    if not signer.type.startswith("authority") or not is_authority_for(signer.hrn, node_hrn):
        raise CredentialSignerUntrusted(
            f"{signer.urn} is not an authority over {node_urn}; it cannot issue tickets for it"
        )


def _ticket_from_element(element: etree._Element, signer: GID, xml: str,
                         batch_size: int = 0) -> Ticket:
    try:
        slice_gid = GID.from_pem(_field(element, "slice_gid"))
        resources = TicketResources(
            **{name: int(_field(element, f"resources/{name}")) for name in RESOURCE_FIELDS}
        )
        return Ticket(
            serial=_field(element, "serial"),
            issuer_urn=_field(element, "issuer_urn"),
            slice_urn=_field(element, "slice_urn"),
            slice_gid=slice_gid,
            node_urn=_field(element, "node_urn"),
            sliver_urn=_field(element, "sliver_urn"),
            valid_from=parse_rfc3339(_field(element, "valid_from")),
            expires=parse_rfc3339(_field(element, "expires")),
            resources=resources,
            users=tuple(_users(element)),
            slice_keypair_public=_field(element, "slice_keypair_public", required=False),
            initscript=_field(element, "initscript", required=False),
            signer=signer,
            xml=xml,
            batch_size=batch_size,
        )
    except (BadArgs, ValueError) as exc:
        raise CredentialInvalid(f"malformed ticket: {exc}") from None


def _users(element: etree._Element) -> Iterable[TicketUser]:
    for node in element.iterfind("users/user"):
        keys = tuple((k.text or "").strip() for k in node.iterfind("key") if (k.text or "").strip())
        yield TicketUser(urn=node.get("urn", ""), keys=keys)


# --- leases -----------------------------------------------------------------------------------


def create_lease(
    *,
    ticket_serial: str,
    sliver_urn: str,
    expires: datetime,
    signer_key: rsa.RSAPrivateKey,
    signer: GID,
    issued: datetime | None = None,
    algorithm: str = "rsa-sha256",
) -> str:
    """Write and sign a lease as the node `signer` for a redeemed ticket."""
    _check_signing_key(signer_key, signer)
    root, element = _new_document("signed-lease", "lease")
    _add(element, "ticket_serial", ticket_serial)
    _add(element, "sliver_urn", sliver_urn)
    _add(element, "node_urn", signer.urn)
    _add(element, "issued", format_rfc3339(issued or utcnow()))
    _add(element, "expires", format_rfc3339(expires))
    return sign_document(root, element, key=signer_key, signer=signer, algorithm=algorithm)


def parse_lease(xml: str | bytes) -> Lease:
    """Read a lease's fields (no trust decision)."""
    root, element = _read_document(xml, "signed-lease", "lease")
    return _lease_from_element(element, signer_gid(_signature_for(root, element)), _text(xml))


def verify_lease(
    xml: str | bytes,
    policy: TrustPolicy,
    *,
    node_urn: str | None = None,
    at: datetime | None = None,
) -> Lease:
    """Verify a lease: signed by the node it names (chained to a trusted root), not expired."""
    when = as_utc(at) if at else utcnow()
    root, element = _read_document(xml, "signed-lease", "lease")
    info = _signature_for(root, element)
    signer = verify_signed_element(
        root, element, info, policy.roots, at=when, strict_crypto=policy.strict_crypto
    )
    lease = _lease_from_element(element, signer, _text(xml))
    if not same_name(lease.node_urn, signer.urn):
        raise CredentialSignerUntrusted(f"lease for {lease.node_urn} signed by {signer.urn}")
    if node_urn is not None and not same_name(lease.node_urn, node_urn):
        raise CredentialMismatch(f"the lease is from {lease.node_urn}, not {node_urn}")
    _check_window(lease.issued, lease.expires, when, "lease")
    return lease


def _lease_from_element(element: etree._Element, signer: GID, xml: str) -> Lease:
    try:
        return Lease(
            ticket_serial=_field(element, "ticket_serial"),
            sliver_urn=_field(element, "sliver_urn"),
            node_urn=_field(element, "node_urn"),
            issued=parse_rfc3339(_field(element, "issued")),
            expires=parse_rfc3339(_field(element, "expires")),
            signer=signer,
            xml=xml,
        )
    except BadArgs as exc:
        raise CredentialInvalid(f"malformed lease: {exc}") from None


# --- shared document mechanics ----------------------------------------------------------------


def _check_signing_key(key: rsa.RSAPrivateKey, signer: GID) -> None:
    if not public_keys_equal(key.public_key(), signer.public_key):
        raise BadArgs(f"the signing key does not belong to {signer.urn}")


def _new_document(root_tag: str, element_tag: str) -> tuple[etree._Element, etree._Element]:
    root = etree.Element(root_tag)
    element = etree.SubElement(root, element_tag)
    element.set(XML_ID, "ref0")
    return root, element


def _add(parent: etree._Element, tag: str, value: str) -> None:
    etree.SubElement(parent, tag).text = value


_HIDDEN_MARKUP = etree.XPath("//comment() | //processing-instruction()")


def _read_document(
    xml: str | bytes, root_tag: str, element_tag: str, *, batch_tag: str | None = None
) -> tuple[etree._Element, etree._Element]:
    """Parse a signed ticket or lease: `<root_tag>` holding exactly `<element_tag>`, then
    `<batch_tag>` when given and present, then `<signatures>`; no namespace on what is read,
    no comment or processing instruction anywhere (the signature's canonical form drops
    comments, and a comment cuts an element's text short where it is read)."""
    try:
        root = parse_xml(xml, what=element_tag, max_bytes=MAX_TICKET_BYTES)
    except (BadArgs, TooBig) as exc:
        raise CredentialInvalid(str(exc)) from None
    tags = [c.tag for c in root if isinstance(c.tag, str)]
    allowed = [[element_tag, "signatures"]]
    if batch_tag:
        allowed.append([element_tag, batch_tag, "signatures"])
    if root.tag != root_tag or tags not in allowed:
        shapes = " or ".join("<" + "> <".join(shape) + ">" for shape in allowed)
        raise CredentialInvalid(
            f"expected <{root_tag}> holding {shapes}, found <{root.tag}> holding {tags}"
        )
    if _HIDDEN_MARKUP(root):
        raise CredentialInvalid(f"a <{root_tag}> may not carry comments or processing "
                                "instructions")
    check_unique_ids(root)
    element = root.find(element_tag)
    assert element is not None
    if element.nsmap:
        raise CredentialInvalid(f"a <{element_tag}> is in no XML namespace and declares none")
    return root, element


def _signature_for(root: etree._Element, element: etree._Element) -> SignatureInfo:
    """The one signature of the document, which must cover `element` (the ticket, the
    batch or the lease)."""
    signatures = read_signatures(root.find("signatures"))
    info = signatures.get(element.get(XML_ID) or "")
    if info is None or len(signatures) != 1:
        raise CredentialInvalid(f"the document must carry exactly one signature, covering "
                                f"its <{element.tag}>")
    return info


def _field(element: etree._Element, path: str, *, required: bool = True) -> str:
    nodes = element.findall(path)
    if len(nodes) > 1:
        raise CredentialInvalid(f"<{element.tag}> has {len(nodes)} <{path}> elements")
    if not nodes:
        if required:
            raise CredentialInvalid(f"<{element.tag}> has no <{path}>")
        return ""
    return (nodes[0].text or "").strip()


def _check_window(start: datetime, end: datetime, at: datetime, what: str) -> None:
    if at < start:
        raise CredentialExpired(f"the {what} is not valid before {format_rfc3339(start)}")
    if at > end:
        raise CredentialExpired(f"the {what} expired {format_rfc3339(end)}")


def _text(xml: str | bytes) -> str:
    return xml if isinstance(xml, str) else xml.decode("utf-8", errors="replace")
