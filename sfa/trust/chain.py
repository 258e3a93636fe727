"""GID chain verification: every rule of `spec/trust.md` "Chain verification", cached.

A GID is trusted when every certificate is within its validity window, each signature really
verifies with its issuer's public key, every issuer is a CA with an authority URN (ours are
`+authority+sa`; other software's `+authority+ca` and the like are read too), each issuer is
authority (by HRN, component-wise) for its child, the chain ends at a trusted root (same subject
AND public key) that is authority for the leaf, and the chain is at most `max_depth` long.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import SignatureAlgorithmOID

from sfa.errors import (
    CredentialExpired,
    CredentialInvalid,
    CredentialSignerUntrusted,
    SfaError,
)
from sfa.timeutil import as_utc, utcnow
from sfa.trust.gid import GID
from sfa.trust.roots import TrustedRoots
from sfa.xrn import is_authority_type

MAX_DEPTH = 8
MIN_KEY_BITS = 1024
STRICT_MIN_KEY_BITS = 2048
CACHE_SIZE = 4096
_WEAK_HASHES = (hashes.MD5, hashes.SHA1)
_RSA_PKCS1_OIDS = frozenset(
    {SignatureAlgorithmOID.RSA_WITH_MD5, SignatureAlgorithmOID.RSA_WITH_SHA1}
)


@dataclass(frozen=True)
class _Verified:
    root: GID
    valid_from: datetime
    valid_until: datetime


_CacheKey = tuple[tuple[str, ...], int, bool, int]
_caches: weakref.WeakKeyDictionary[TrustedRoots, OrderedDict[_CacheKey, _Verified]] = (
    weakref.WeakKeyDictionary()
)
_cache_lock = threading.Lock()


def _name(gid: GID) -> str:
    return gid.urn or gid.subject_cn or "(unnamed certificate)"


def _check_validity(gid: GID, at: datetime) -> None:
    if at < gid.not_before:
        raise CredentialExpired(
            f"certificate {_name(gid)} is not valid before {gid.not_before.isoformat()}"
        )
    if at > gid.not_after:
        raise CredentialExpired(f"certificate {_name(gid)} expired {gid.not_after.isoformat()}")


def _check_key(gid: GID, strict_crypto: bool) -> rsa.RSAPublicKey:
    key = gid.public_key
    minimum = STRICT_MIN_KEY_BITS if strict_crypto else MIN_KEY_BITS
    if key.key_size < minimum:
        raise CredentialInvalid(
            f"certificate {_name(gid)} has an RSA-{key.key_size} key; at least {minimum} bits "
            "are required" + (" (strict_crypto)" if strict_crypto else "")
        )
    return key


def verify_certificate_signature(
    cert: x509.Certificate, issuer_key: rsa.RSAPublicKey, *, strict_crypto: bool = False
) -> None:
    """Check `cert`'s signature with the issuer's public key directly (MD5/SHA-1 accepted
    unless `strict_crypto`); CredentialInvalid when it does not verify."""
    try:
        algorithm = cert.signature_hash_algorithm
        params = cert.signature_algorithm_parameters
    except UnsupportedAlgorithm as exc:
        raise CredentialInvalid(f"unsupported certificate signature algorithm: {exc}") from None
    if algorithm is None:
        raise CredentialInvalid("certificate signature algorithm carries no hash")
    if strict_crypto and isinstance(algorithm, _WEAK_HASHES):
        raise CredentialInvalid(
            f"certificate signed with {algorithm.name.upper()}, refused by strict_crypto"
        )
    if params is None and cert.signature_algorithm_oid in _RSA_PKCS1_OIDS:
        params = padding.PKCS1v15()  # what `cryptography` reports for MD5 / SHA-1
    if not isinstance(params, padding.PKCS1v15 | padding.PSS):
        raise CredentialInvalid("certificate is not signed with RSA")
    try:
        issuer_key.verify(cert.signature, cert.tbs_certificate_bytes, params, algorithm)
    except InvalidSignature:
        raise CredentialInvalid("certificate signature does not verify") from None


def _check_issuer(child: GID, issuer: GID, strict_crypto: bool) -> None:
    """Rules 2-4 for one link of the chain."""
    if child.certificate.issuer != issuer.certificate.subject:
        raise CredentialInvalid(
            f"broken chain: {_name(child)} names issuer {child.issuer_cn!r}, "
            f"but the next certificate is {issuer.subject_cn!r}"
        )
    try:
        verify_certificate_signature(
            child.certificate, _check_key(issuer, strict_crypto), strict_crypto=strict_crypto
        )
    except CredentialInvalid as exc:
        raise CredentialInvalid(f"{_name(child)} (issued by {_name(issuer)}): {exc}") from None
    if not issuer.is_ca:
        raise CredentialSignerUntrusted(
            f"{_name(issuer)} is not a CA (basicConstraints CA:FALSE) and cannot issue "
            f"{_name(child)}"
        )
    if not is_authority_type(issuer.type):
        raise CredentialSignerUntrusted(
            f"issuer {_name(issuer)} is not an authority (+authority+<name>) URN"
        )
    if not issuer.is_authority_for(child):
        raise CredentialSignerUntrusted(
            f"authority {issuer.hrn} cannot vouch for {child.hrn}: outside its subtree"
        )


def _omitted_root(last: GID, roots: TrustedRoots) -> GID | None:
    """The trusted root that issued `last` when a chain stops short of its root: the one whose
    key verifies `last` among those with its issuer's name (or the first such, to report)."""
    named = [r for r in roots.roots if r.certificate.subject == last.certificate.issuer]
    for root in named:
        try:
            verify_certificate_signature(last.certificate, root.public_key)
        except SfaError:
            continue
        return root
    return named[0] if named else None


def _links(gid: GID, roots: TrustedRoots, max_depth: int) -> tuple[list[GID], GID]:
    """The certificates from the leaf to the trusted anchor (inclusive), and the root."""
    path: list[GID] = []
    current: GID | None = gid
    while current is not None:
        path.append(current)
        if len(path) > max_depth:
            raise CredentialInvalid(f"certificate chain longer than {max_depth}: {_name(gid)}")
        root = roots.find_root_for(current.certificate)
        if root is not None:
            return path, root
        current = current.parent
    root = None if path[-1].is_self_signed else _omitted_root(path[-1], roots)
    if root is not None:
        path.append(root)
        return path, root
    raise CredentialSignerUntrusted(
        f"{_name(gid)} does not chain to a trusted root (chain ends at {_name(path[-1])!r})"
    )


def _check_not_revoked(path: list[GID], roots: TrustedRoots) -> None:
    for cert in path:
        if roots.is_revoked(cert.certificate):
            raise CredentialInvalid(
                f"the key of {_name(cert)} was revoked (its record was removed from the "
                "registry): certificates for it are refused"
            )


def _verify_uncached(
    gid: GID, roots: TrustedRoots, at: datetime, strict_crypto: bool, max_depth: int
) -> _Verified:
    try:
        if not gid.urn:
            raise CredentialInvalid(f"certificate {gid.subject_cn!r} carries no URN")
        path, root = _links(gid, roots, max_depth)
        _check_not_revoked(path, roots)
        _check_key(gid, strict_crypto)
        for cert in path:
            _check_validity(cert, at)
        for child, issuer in pairwise(path):
            _check_issuer(child, issuer, strict_crypto)
        if not root.is_authority_for(gid):
            raise CredentialSignerUntrusted(
                f"trusted root {root.hrn} is not authority for {gid.hrn}"
            )
    except SfaError as exc:
        if isinstance(exc, CredentialExpired | CredentialInvalid | CredentialSignerUntrusted):
            raise
        raise CredentialInvalid(f"malformed certificate in chain: {exc}") from None
    return _Verified(
        root=root,
        valid_from=max(cert.not_before for cert in path),
        valid_until=min(cert.not_after for cert in path),
    )


def verify_gid_chain(
    gid: GID,
    roots: TrustedRoots,
    *,
    at: datetime | None = None,
    strict_crypto: bool = False,
    max_depth: int = MAX_DEPTH,
) -> GID:
    """Verify `gid` and its chain against the trusted roots; return the root it chains to.

    Errors: CredentialExpired (a certificate outside its validity window), CredentialInvalid
    (bad signature, malformed, too deep, weak crypto under strict_crypto),
    CredentialSignerUntrusted (no trusted root, non-CA issuer, authority overreach).
    """
    roots.reload_if_changed()
    when = as_utc(at) if at is not None else utcnow()
    key: _CacheKey = (gid.chain_fingerprints, roots.version, strict_crypto, max_depth)
    with _cache_lock:
        cache = _caches.setdefault(roots, OrderedDict())
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
    if hit is not None and hit.valid_from <= when <= hit.valid_until:
        return hit.root
    verified = _verify_uncached(gid, roots, when, strict_crypto, max_depth)
    with _cache_lock:
        cache[key] = verified
        while len(cache) > CACHE_SIZE:
            cache.popitem(last=False)
    return verified.root


def clear_chain_cache() -> None:
    """Forget every verified chain (tests and operators; roots changes do this implicitly)."""
    with _cache_lock:
        _caches.clear()
