"""The one door: every service decides who is calling and what they may do here, and nowhere else.

`authorize` takes the credentials exactly as they came off the wire, the TLS caller's GID, the
operation and the targets, and returns a `VerifiedCall` or raises the GENI error of
`spec/trust.md`: CREDENTIAL_INVALID 20, CREDENTIAL_EXPIRED 21, CREDENTIAL_MISMATCH 22,
CREDENTIAL_SIGNER_UNTRUSTED 23, FORBIDDEN 3.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal

from lxml import etree

from sfa.errors import (
    CredentialExpired,
    CredentialInvalid,
    CredentialMismatch,
    CredentialSignerUntrusted,
    Forbidden,
    SfaError,
)
from sfa.timeutil import as_utc, format_rfc3339, utcnow
from sfa.trust.chain import verify_certificate_signature, verify_gid_chain
from sfa.trust.credential import (
    Credential,
    parse_credential_document,
    read_credential_chain,
)
from sfa.trust.gid import GID
from sfa.trust.keys import public_keys_equal
from sfa.trust.rights import allows
from sfa.trust.roots import TrustedRoots
from sfa.trust.speaksfor import verify_speaksfor
from sfa.trust.verified_cache import VerifiedCredentials, VerifiedEntry
from sfa.trust.wire_credentials import WireCredential, decode_credential, decode_credential_list
from sfa.trust.xmldsig import (
    check_unique_ids,
    read_signatures,
    signed_field,
    verify_signed_element,
)
from sfa.xrn import is_authority_for, is_authority_type, same_name, urn_to_hrn

TargetMatch = Literal["exact", "subtree", "any"]


@dataclass(frozen=True)
class TrustPolicy:
    """What this service trusts and how strictly."""

    roots: TrustedRoots
    strict_crypto: bool = False
    max_delegation_depth: int = 8
    max_credential_bytes: int = 1_000_000
    # Servers may keep fully verified documents (time checks still run on every hit).
    verified_cache: VerifiedCredentials | None = field(default=None, compare=False)


@dataclass(frozen=True)
class VerifiedCall:
    """The outcome of the door: who is calling, with which credentials, allowed what, until when."""

    caller: GID
    caller_urn: str
    tls_caller: GID
    credentials: tuple[Credential, ...]
    expires: datetime | None
    rights: frozenset[str]
    speaking_for: str | None = None

    def allows(self, operation: str) -> bool:
        """True when the verified credentials grant `operation`."""
        return allows(self.rights, operation)


@dataclass(frozen=True)
class _Parsed:
    kind: str
    xml: str
    root: etree._Element | None  # None when `cached` holds it, verified before
    cached: VerifiedEntry | None = None


# --- one credential ---------------------------------------------------------------------------


def verify_caller(
    peer: GID, policy: TrustPolicy, *, at: datetime | None = None, allow_self_signed: bool = False
) -> GID:
    """The TLS caller's GID, once its chain verified (or, with `allow_self_signed`, a lone
    self-signed certificate whose own signature and dates check out: registry bootstrap)."""
    _verify_peer(peer, policy, as_utc(at) if at else utcnow(), allow_self_signed)
    return peer


def _verify_peer(peer: GID, policy: TrustPolicy, at: datetime, allow_self_signed: bool) -> bool:
    """Verify the TLS caller; True when it was accepted only as a lone self-signed one (its
    key is then all it proves: SFA's sfi bootstraps on a certificate with only `CN=<hrn>`)."""
    lone_self_signed = allow_self_signed and peer.is_self_signed and not peer.chain
    if not peer.urn:
        if not lone_self_signed:
            raise CredentialInvalid(
                f"certificate {peer.subject_cn[:64]!r} carries no URN: a certificate with only "
                "a CN serves the registry bootstrap (GetSelfCredential, then Resolve of your "
                "own record); connect with the GID your registry issued you"
            )
        _check_self_signed(peer, policy, at)
        return True
    try:
        verify_gid_chain(peer, policy.roots, at=at, strict_crypto=policy.strict_crypto)
    except CredentialSignerUntrusted:
        if not lone_self_signed:
            raise
        _check_self_signed(peer, policy, at)
        return True
    return False


def _check_self_signed(peer: GID, policy: TrustPolicy, at: datetime) -> None:
    if not peer.not_before <= at <= peer.not_after:
        raise CredentialExpired(f"the caller's certificate is not valid at {format_rfc3339(at)}")
    verify_certificate_signature(
        peer.certificate, peer.public_key, strict_crypto=policy.strict_crypto
    )


def verify_credential(
    cred: str | bytes | Mapping[str, Any], policy: TrustPolicy, *, at: datetime | None = None
) -> Credential:
    """Verify one privilege credential completely (signatures, signer chains, delegation
    rules, expiry) as of `at`; who presents it and for what is `authorize`'s business."""
    (parsed,) = _classify([decode_credential(cred)], policy)
    if parsed.kind != "geni_sfa":
        raise CredentialInvalid("a geni_abac credential is not a privilege credential")
    return _verified(parsed, policy, as_utc(at) if at else utcnow())


def _cache_key(xml: str, policy: TrustPolicy) -> Hashable:
    policy.roots.reload_if_changed()
    knobs = (id(policy.roots), policy.strict_crypto, policy.max_delegation_depth,
             policy.max_credential_bytes)
    return VerifiedCredentials.key(xml, policy.roots.version, knobs)


def _cached_entry(xml: str, policy: TrustPolicy) -> VerifiedEntry | None:
    if policy.verified_cache is None:
        return None
    return policy.verified_cache.get(_cache_key(xml, policy))


def _verify_sfa(root: etree._Element, xml: str, policy: TrustPolicy, at: datetime) -> Credential:
    """Every check on a parsed privilege credential (the cold path)."""
    check_unique_ids(root)
    credential, elements = read_credential_chain(root, xml)
    if len(elements) - 1 > policy.max_delegation_depth:
        raise CredentialInvalid(
            f"delegated {len(elements) - 1} times; the limit is {policy.max_delegation_depth}"
        )
    signers = _verify_signatures(root, elements, credential, policy, at)
    _check_root_issuer(credential.chain[-1], signers[-1], policy, at)
    for (child, parent), child_signer in zip(pairwise(credential.chain), signers, strict=False):
        _check_delegation(child, parent, child_signer)
    # Signer chains and the target's were verified as of `at` above; the owners' remain.
    _check_times(credential, signers, policy, at,
                 checked=(*signers, credential.chain[-1].target_gid))
    if policy.verified_cache is not None:
        entry = VerifiedEntry(credential, tuple(signers))
        policy.verified_cache.put(_cache_key(xml, policy), entry)
    return credential


def _check_times(
    credential: Credential,
    signers: Sequence[GID],
    policy: TrustPolicy,
    at: datetime,
    checked: Sequence[GID] = (),
) -> None:
    """Everything that depends on `at`: each certificate chain's window (once per distinct
    chain; those in `checked` were verified as of `at` already), each link's expiry."""
    # Every link's target: a delegation that narrows an authority credential to a
    # sub-authority names a target of its own, which must chain to a trusted root too.
    targets = (link.target_gid for link in credential.chain)
    done = {gid.chain_fingerprints for gid in checked}
    for gid in (*signers, *targets, *(link.owner_gid for link in credential.chain)):
        if gid.chain_fingerprints not in done:
            done.add(gid.chain_fingerprints)
            verify_gid_chain(gid, policy.roots, at=at, strict_crypto=policy.strict_crypto)
    for link in credential.chain:
        if at > link.expires:
            raise CredentialExpired(
                f"the credential for {link.target_urn} expired {format_rfc3339(link.expires)}"
            )


def _verify_signatures(
    root: etree._Element,
    elements: list[etree._Element],
    credential: Credential,
    policy: TrustPolicy,
    at: datetime,
) -> list[GID]:
    signatures = read_signatures(root.find("signatures"))
    chain_ids = {link.xml_id for link in credential.chain}
    stray = set(signatures) - chain_ids
    if stray:
        raise CredentialInvalid(f"signatures cover {sorted(stray)}, which are not credentials here")
    signers = []
    for element, link in zip(elements, credential.chain, strict=True):
        info = signatures.get(link.xml_id)
        if info is None:
            raise CredentialInvalid(f"credential {link.xml_id!r} ({link.target_urn}) is unsigned")
        signers.append(
            verify_signed_element(
                root, element, info, policy.roots, at=at, strict_crypto=policy.strict_crypto
            )
        )
    return signers


def _check_root_issuer(
    credential: Credential, signer: GID, policy: TrustPolicy, at: datetime
) -> None:
    """The first issuer is an authority over the target, or the target GID's own issuer."""
    target = credential.target_gid
    verify_gid_chain(target, policy.roots, at=at, strict_crypto=policy.strict_crypto)
    if signer.is_ca and is_authority_type(signer.type) and signer.is_authority_for(target):
        return
    issuer = target.parent
    if issuer is not None and public_keys_equal(issuer.public_key, signer.public_key):
        return
    raise CredentialSignerUntrusted(
        f"{signer.urn or signer.subject_cn} is not an authority over {credential.target_urn} "
        "and did not issue its GID, so it cannot grant privileges on it"
    )


def _check_delegation(child: Credential, parent: Credential, child_signer: GID) -> None:
    """A delegated credential narrows its parent and is signed by the parent's owner."""
    if not same_name(child_signer.urn, parent.owner_urn) or not public_keys_equal(
        child_signer.public_key, parent.owner_gid.public_key
    ):
        raise CredentialSignerUntrusted(
            f"the credential delegated to {child.owner_urn} is signed by {child_signer.urn}, "
            f"but only the parent's owner {parent.owner_urn} may delegate it"
        )
    escalated = sorted(name for name in child.rights if not parent.delegatable(name))
    if escalated:
        raise CredentialInvalid(
            f"delegation to {child.owner_urn} grants {escalated}, which {parent.owner_urn} "
            "does not hold or may not delegate"
        )
    if child.expires > parent.expires:
        raise CredentialInvalid(
            f"delegated credential expires {format_rfc3339(child.expires)}, after its parent "
            f"({format_rfc3339(parent.expires)})"
        )
    if not same_name(child.target_urn, parent.target_urn) and not _narrows_authority(
            child, parent):
        raise CredentialInvalid(
            f"delegation changed the target from {parent.target_urn} to {child.target_urn}"
        )


def _narrows_authority(child: Credential, parent: Credential) -> bool:
    return (
        parent.target_type == "authority"
        and "authority" in parent.rights
        and parent.target_gid.is_authority_for(child.target_gid)
    )


# --- the call ---------------------------------------------------------------------------------


def check_credential_grants(
    credential: Credential,
    *,
    operation: str | None,
    targets: Sequence[str] = (),
    target_match: TargetMatch = "exact",
) -> None:
    """The target and operation rules for one verified credential (CredentialMismatch,
    Forbidden)."""
    if target_match != "any" and targets and not any(
        covers(credential, target, target_match) for target in targets
    ):
        raise CredentialMismatch(
            f"the credential is for {credential.target_urn}, not for {', '.join(targets)}"
        )
    if operation and not allows(credential.rights, operation):
        raise Forbidden(
            f"the credential for {credential.target_urn} grants {sorted(credential.rights)}, "
            f"which do not allow {operation!r}"
        )


def covers(credential: Credential, target: str, target_match: TargetMatch = "exact") -> bool:
    """True when `credential` is for `target` (or, for "subtree", an authority above it)."""
    if target_match == "any":
        return True
    if same_name(credential.target_urn, target):
        return True
    if target_match != "subtree" or credential.target_type != "authority":
        return False
    try:
        target_hrn, _ = urn_to_hrn(target)
    except SfaError:
        return False
    return is_authority_for(credential.target_gid.hrn, target_hrn)


def authorize(
    credentials: Sequence[Any],
    peer: GID,
    policy: TrustPolicy,
    *,
    operation: str | None,
    targets: Sequence[str] = (),
    target_match: TargetMatch = "exact",
    options: Mapping[str, Any] | None = None,
    at: datetime | None = None,
    allow_empty: bool = False,
    allow_self_signed_caller: bool = False,
) -> VerifiedCall:
    """Verify the caller and its credentials for `operation` on `targets`: the one door.

    `allow_self_signed_caller` is for the registry's bootstrap calls only (`registry-api.md`):
    the TLS certificate may then be a lone self-signed one; TLS proved its key, every credential
    must be owned by a GID with that key, and that (chain-verified) owner GID is the caller."""
    when = as_utc(at) if at else utcnow()
    bootstrap = _verify_peer(peer, policy, when, allow_self_signed_caller)
    tls_caller = peer
    wires = _classify(decode_credential_list(credentials), policy)
    privilege = [w for w in wires if w.kind == "geni_sfa"]
    abac = [w for w in wires if w.kind == "geni_abac"]
    caller, speaking_for = _effective_caller(tls_caller, abac, options, policy, when)
    if bootstrap and not privilege:
        raise Forbidden("a caller on a self-signed certificate must present a credential "
                        "owned by its key")
    if not privilege:
        if allow_empty:
            return VerifiedCall(caller, caller.urn, tls_caller, (), None, frozenset(), speaking_for)
        raise Forbidden(
            f"this call needs a credential granting {operation or 'access'}; none was given"
            if not wires else "none of the credentials given is a privilege credential"
        )
    if bootstrap:
        _check_claims_own_key(privilege, peer)
    usable = _usable_credentials(privilege, caller, policy, when, operation, targets, target_match)
    _check_coverage(usable, targets, target_match)
    if bootstrap:
        caller = usable[0].owner_gid  # its chain verified; its key is the TLS caller's
    rights = frozenset().union(*(c.rights for c in usable))
    return VerifiedCall(
        caller=caller,
        caller_urn=caller.urn,
        tls_caller=tls_caller,
        credentials=tuple(usable),
        expires=min(c.expires for c in usable),
        rights=rights,
        speaking_for=speaking_for,
    )


def _check_claims_own_key(wires: list[_Parsed], peer: GID) -> None:
    """A self-signed caller is vouched for only by a credential whose owner has its key."""
    for wire in wires:
        try:
            credential = wire.cached.credential if wire.cached else (
                read_credential_chain(wire.root, wire.xml)[0] if wire.root is not None else None
            )
        except SfaError:
            continue
        if credential and public_keys_equal(credential.owner_gid.public_key, peer.public_key):
            return
    raise CredentialSignerUntrusted(
        "a self-signed certificate is accepted only with a credential owned by its key; "
        "none of the credentials given is"
    )


def _classify(wires: list[WireCredential], policy: TrustPolicy) -> list[_Parsed]:
    """Parse each credential once; route by the declared type and by the content (version 2
    clients send speaks-for credentials as plain strings, like privilege ones)."""
    parsed = []
    for wire in wires:
        cached = _cached_entry(wire.xml, policy) if wire.kind == "geni_sfa" else None
        if cached is not None:
            parsed.append(_Parsed("geni_sfa", wire.xml, None, cached))
            continue
        root = parse_credential_document(wire.xml, policy.max_credential_bytes)
        content_type = signed_field(root, "credential/type")
        # An unknown label (omni's `geni_unknown`) leaves it to the document, as for v2 strings.
        kind = "geni_abac" if wire.kind == "geni_abac" or content_type == "abac" else "geni_sfa"
        parsed.append(_Parsed(kind, wire.xml, root))
    return parsed


def _effective_caller(
    tls_caller: GID,
    abac: list[_Parsed],
    options: Mapping[str, Any] | None,
    policy: TrustPolicy,
    at: datetime,
) -> tuple[GID, str | None]:
    user_urn = (options or {}).get("geni_speaking_for")
    if user_urn is None:
        return tls_caller, None
    if not isinstance(user_urn, str) or not user_urn:
        raise CredentialInvalid("option geni_speaking_for must be a user URN")
    if not abac:
        raise Forbidden(
            f"geni_speaking_for {user_urn} needs a geni_abac speaks-for credential signed by "
            "that user; none was given"
        )
    first_error: SfaError | None = None
    for wire in abac:
        try:
            return verify_speaksfor(wire.xml, tls_caller, user_urn, policy, at=at), user_urn
        except SfaError as exc:
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


# How far a refused credential got: the most advanced refusal is the one reported.
_STAGE = {CredentialMismatch: 1, Forbidden: 2}


def _usable_credentials(  # noqa: PLR0917
    wires: list[_Parsed],
    caller: GID,
    policy: TrustPolicy,
    at: datetime,
    operation: str | None,
    targets: Sequence[str],
    target_match: TargetMatch,
) -> list[Credential]:
    usable: list[Credential] = []
    refusals: list[SfaError] = []
    for wire in wires:
        try:
            credential = _verified(wire, policy, at)
            _check_owner(credential, caller)
            check_credential_grants(
                credential, operation=operation, targets=targets, target_match=target_match
            )
        except SfaError as exc:
            refusals.append(exc)
            continue
        usable.append(credential)
    if not usable:
        raise max(refusals, key=lambda exc: _STAGE.get(type(exc), 0))
    return usable


def _verified(wire: _Parsed, policy: TrustPolicy, at: datetime) -> Credential:
    if wire.cached is not None:
        _check_times(wire.cached.credential, wire.cached.signers, policy, at)
        return wire.cached.credential
    assert wire.root is not None
    return _verify_sfa(wire.root, wire.xml, policy, at)


def _check_owner(credential: Credential, caller: GID) -> None:
    if not public_keys_equal(credential.owner_gid.public_key, caller.public_key):
        raise CredentialMismatch(
            f"the credential belongs to {credential.owner_urn}, not to the caller "
            f"{caller.urn or caller.subject_cn}"
        )


def _check_coverage(
    usable: list[Credential], targets: Sequence[str], target_match: TargetMatch
) -> None:
    if target_match == "any":
        return
    missing = [t for t in targets if not any(covers(c, t, target_match) for c in usable)]
    if missing:
        raise CredentialMismatch(f"no valid credential for {', '.join(missing)}")
