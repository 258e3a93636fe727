"""Speaks-for: an ABAC (`geni_abac` version 1) credential in which a user lets a tool act for them.

The user signs `USER.speaks_for_USER <- TOOL` (keyids are subjectKeyIdentifiers). A call that
carries it with option `geni_speaking_for = <user urn>` is then treated as the user's own call;
every other check of the door still runs against the user.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from sfa.errors import BadArgs, CredentialExpired, CredentialInvalid, CredentialMismatch
from sfa.timeutil import as_utc, format_rfc3339, parse_rfc3339, utcnow
from sfa.trust.chain import verify_gid_chain
from sfa.trust.credential import CREDENTIAL_SCHEMA, XSI_NS, parse_credential_document
from sfa.trust.gid import GID
from sfa.trust.keys import public_keys_equal
from sfa.trust.xmldsig import (
    XML_ID,
    check_unique_ids,
    read_signatures,
    sign_document,
    signed_field,
    verify_signed_element,
)
from sfa.xrn import same_name

if TYPE_CHECKING:
    from sfa.trust.verify import TrustPolicy

ABAC_VERSION = "1.1"
ROLE_PREFIX = "speaks_for_"


def create_speaksfor(
    user_key: rsa.RSAPrivateKey,
    user_gid: GID,
    tool_gid: GID,
    expires: datetime,
    *,
    algorithm: str = "rsa-sha256",
) -> str:
    """A speaks-for credential, signed by the user, letting `tool_gid` act for them."""
    if not public_keys_equal(user_key.public_key(), user_gid.public_key):
        raise BadArgs(f"the signing key does not belong to {user_gid.urn}")
    root = etree.Element("signed-credential", nsmap={"xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}noNamespaceSchemaLocation", CREDENTIAL_SCHEMA)
    credential = etree.SubElement(root, "credential")
    credential.set(XML_ID, "ref0")
    for tag, text in (
        ("type", "abac"), ("serial", ""), ("owner_gid", ""), ("owner_urn", ""),
        ("target_gid", ""), ("target_urn", ""), ("uuid", ""),
        ("expires", format_rfc3339(expires)),
    ):
        etree.SubElement(credential, tag).text = text
    rt0 = etree.SubElement(etree.SubElement(credential, "abac"), "rt0")
    etree.SubElement(rt0, "version").text = ABAC_VERSION
    head = etree.SubElement(rt0, "head")
    _principal(head, user_gid)
    etree.SubElement(head, "role").text = ROLE_PREFIX + user_gid.ski
    _principal(etree.SubElement(rt0, "tail"), tool_gid)
    return sign_document(root, credential, key=user_key, signer=user_gid, algorithm=algorithm)


def _principal(parent: etree._Element, gid: GID) -> None:
    principal = etree.SubElement(parent, "ABACprincipal")
    etree.SubElement(principal, "keyid").text = gid.ski
    etree.SubElement(principal, "mnemonic").text = gid.urn


def verify_speaksfor(
    xml: str | bytes,
    tool: GID,
    user_urn: str,
    policy: TrustPolicy,
    *,
    at: datetime | None = None,
) -> GID:
    """Verify that `user_urn` lets `tool` (the TLS caller, already verified) speak for them;
    return the user's verified GID."""
    when = as_utc(at) if at else utcnow()
    root = parse_credential_document(xml, policy.max_credential_bytes)
    check_unique_ids(root)
    credential = root.find("credential")
    assert credential is not None
    if signed_field(credential, "type") != "abac":
        raise CredentialInvalid("a speaks-for credential must have <type>abac</type>")
    if credential.find("parent") is not None:
        raise CredentialInvalid("a speaks-for credential cannot be delegated")
    info = read_signatures(root.find("signatures")).get(credential.get(XML_ID) or "")
    if info is None:
        raise CredentialInvalid("the speaks-for credential is not signed")
    user = verify_signed_element(
        root, credential, info, policy.roots, at=when, strict_crypto=policy.strict_crypto
    )
    _check_statement(credential, user, tool, user_urn)
    _check_expiry(credential, when)
    verify_gid_chain(tool, policy.roots, at=when, strict_crypto=policy.strict_crypto)
    return user


def _check_statement(credential: etree._Element, user: GID, tool: GID, user_urn: str) -> None:
    rt0 = credential.find("abac/rt0")
    if rt0 is None:
        raise CredentialInvalid("the speaks-for credential has no <abac><rt0> statement")
    if not same_name(user.urn, user_urn):
        raise CredentialMismatch(
            f"the speaks-for credential is signed by {user.urn}, not by {user_urn}"
        )
    head_keyid = _keyid(signed_field(rt0, "head/ABACprincipal/keyid"))
    role = signed_field(rt0, "head/role")
    if head_keyid != user.ski or role != ROLE_PREFIX + user.ski:
        raise CredentialMismatch(
            f"the speaks-for statement does not name its signer {user.urn} as the principal"
        )
    tails = rt0.findall("tail")
    if len(tails) != 1:
        raise CredentialInvalid(f"a speaks-for statement needs exactly one tail, has {len(tails)}")
    if _keyid(signed_field(tails[0], "ABACprincipal/keyid")) != tool.ski:
        raise CredentialMismatch(
            f"{user.urn} lets another tool speak for them, not the caller {tool.urn}"
        )


def _keyid(text: str) -> str:
    return text.lower().replace(":", "")


def _check_expiry(credential: etree._Element, at: datetime) -> None:
    try:
        expires = parse_rfc3339(signed_field(credential, "expires"))
    except BadArgs as exc:
        raise CredentialInvalid(f"speaks-for credential expires: {exc}") from None
    if at > expires:
        raise CredentialExpired(f"the speaks-for credential expired {format_rfc3339(expires)}")
