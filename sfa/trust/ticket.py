"""Tickets and leases: what an aggregate promises a node manager, and the node's receipt.

Same signing machinery as credentials (`spec/trust.md`, "Tickets and leases"). A ticket is
signed by an aggregate that chains to a trusted root and is authority over the node by HRN (or
is pinned in `trusted_issuers`); a lease is signed by the node itself. Replay detection belongs
to the node manager: the ticket carries the `serial` it needs.
"""

from __future__ import annotations

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
    read_signatures,
    sign_document,
    signer_gid,
    verify_signed_element,
    verify_with_gid,
)
from sfa.xrn import is_authority_for, same_name, urn_to_hrn

if TYPE_CHECKING:
    from sfa.trust.verify import TrustPolicy

MAX_TICKET_BYTES = 1_000_000
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
    root, element = _new_document("signed-ticket", "ticket")
    _add(element, "serial", serial or str(uuidlib.uuid4()))
    _add(element, "issuer_urn", signer.urn)
    _add(element, "slice_urn", slice_gid.urn)
    _add(element, "slice_gid", slice_gid.to_pem())
    _add(element, "node_urn", node_urn)
    _add(element, "sliver_urn", sliver_urn)
    _add(element, "valid_from", format_rfc3339(valid_from or utcnow()))
    _add(element, "expires", format_rfc3339(expires))
    container = etree.SubElement(element, "resources")
    for name in RESOURCE_FIELDS:
        _add(container, name, str(getattr(resources, name)))
    users_node = etree.SubElement(element, "users")
    for user in users:
        user_node = etree.SubElement(users_node, "user", urn=user.urn)
        for key in user.keys:
            _add(user_node, "key", key)
    _add(element, "slice_keypair_public", slice_keypair_public)
    _add(element, "initscript", initscript)
    return sign_document(root, element, key=signer_key, signer=signer, algorithm=algorithm)


def parse_ticket(xml: str | bytes) -> Ticket:
    """Read a ticket's fields (no trust decision); `signer` is the unverified X509Data GID."""
    root, element = _read_document(xml, "signed-ticket", "ticket")
    info = _signature_for(root, element)
    return _ticket_from_element(element, signer_gid(info), _text(xml))


def verify_ticket(
    xml: str | bytes,
    policy: TrustPolicy,
    *,
    node_urn: str,
    at: datetime | None = None,
    trusted_issuers: Iterable[GID] = (),
) -> Ticket:
    """Verify a ticket for the node `node_urn`: signature, issuer trust, node, validity."""
    when = as_utc(at) if at else utcnow()
    root, element = _read_document(xml, "signed-ticket", "ticket")
    info = _signature_for(root, element)
    pinned = _pinned(signer_gid(info), trusted_issuers)
    if pinned is not None:
        verify_with_gid(element, info, pinned)
        signer = pinned
    else:
        signer = verify_signed_element(
            root, element, info, policy.roots, at=when, strict_crypto=policy.strict_crypto
        )
    ticket = _ticket_from_element(element, signer, _text(xml))
    if not same_name(ticket.issuer_urn, signer.urn):
        raise CredentialInvalid(f"ticket names issuer {ticket.issuer_urn} but {signer.urn} signed")
    if pinned is None:
        _check_authority_over(signer, ticket.node_urn)
    if not same_name(ticket.node_urn, node_urn):
        raise CredentialMismatch(f"the ticket is for node {ticket.node_urn}, not {node_urn}")
    _check_window(ticket.valid_from, ticket.expires, when, "ticket")
    return ticket


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


def _ticket_from_element(element: etree._Element, signer: GID, xml: str) -> Ticket:
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


def _read_document(
    xml: str | bytes, root_tag: str, element_tag: str
) -> tuple[etree._Element, etree._Element]:
    try:
        root = parse_xml(xml, what=element_tag, max_bytes=MAX_TICKET_BYTES)
    except (BadArgs, TooBig) as exc:
        raise CredentialInvalid(str(exc)) from None
    tags = [c.tag for c in root if isinstance(c.tag, str)]
    if root.tag != root_tag or tags != [element_tag, "signatures"]:
        raise CredentialInvalid(
            f"expected <{root_tag}> holding <{element_tag}> and <signatures>, found "
            f"<{root.tag}> holding {tags}"
        )
    check_unique_ids(root)
    element = root.find(element_tag)
    assert element is not None
    return root, element


def _signature_for(root: etree._Element, element: etree._Element) -> SignatureInfo:
    signatures = read_signatures(root.find("signatures"))
    info = signatures.get(element.get(XML_ID) or "")
    if info is None or len(signatures) != 1:
        raise CredentialInvalid(f"<{element.tag}> must carry exactly one signature covering it")
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
