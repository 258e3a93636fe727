"""Session-wide trust fixtures: real keys, real authorities on disk, real trusted roots.

Authorities: `plc` (root), `princeton` (plc.princeton, under plc), `ple` (second root),
`evil` (a root nobody trusts). Principals (`.gid`, `.key`): `alice` (plc.princeton.alice),
`bob` (plc.princeton.bob), `exp1_slice` (slice plc.princeton.exp1), `mallory` (evil.mallory).
`trusted_roots` trusts plc and ple from a directory. `resign` / `forge_gid` re-sign a
certificate with any key and digest (MD5/SHA-1 included) for forgery and old-peer tests.
Everything is session-scoped: do not mutate these objects; build your own
TrustedRoots(gids=...) to change roots.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from OpenSSL import crypto

from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority, AuthorityStore
from sfa.trust.roots import TrustedRoots


@dataclass(frozen=True)
class Principal:
    """A GID and its private key."""

    gid: GID
    key: rsa.RSAPrivateKey


def _issue(authority: Authority, hrn: str, type: str, email: str | None = None) -> Principal:
    gid, key = authority.issue_gid(hrn, type, email=email)
    assert key is not None
    return Principal(gid=gid, key=key)


@pytest.fixture(scope="session")
def trust_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("authorities")


@pytest.fixture(scope="session")
def authority_store(trust_base: Path) -> AuthorityStore:
    return AuthorityStore(trust_base)


@pytest.fixture(scope="session")
def plc(authority_store: AuthorityStore) -> Authority:
    return authority_store.create_root("plc")


@pytest.fixture(scope="session")
def princeton(authority_store: AuthorityStore, plc: Authority) -> Authority:
    return authority_store.create_sub("plc.princeton")


@pytest.fixture(scope="session")
def ple(authority_store: AuthorityStore) -> Authority:
    return authority_store.create_root("ple")


@pytest.fixture(scope="session")
def evil(tmp_path_factory: pytest.TempPathFactory) -> Authority:
    return Authority.create_root(tmp_path_factory.mktemp("evil") / "evil", "evil")


@pytest.fixture(scope="session")
def alice(princeton: Authority) -> Principal:
    return _issue(princeton, "plc.princeton.alice", "user", email="alice@princeton.example")


@pytest.fixture(scope="session")
def alice_gid(alice: Principal) -> GID:
    return alice.gid


@pytest.fixture(scope="session")
def alice_key(alice: Principal) -> rsa.RSAPrivateKey:
    return alice.key


@pytest.fixture(scope="session")
def bob(princeton: Authority) -> Principal:
    return _issue(princeton, "plc.princeton.bob", "user")


@pytest.fixture(scope="session")
def exp1_slice(princeton: Authority) -> Principal:
    return _issue(princeton, "plc.princeton.exp1", "slice")


@pytest.fixture(scope="session")
def mallory(evil: Authority) -> Principal:
    return _issue(evil, "evil.mallory", "user")


@pytest.fixture(scope="session")
def roots_dir(tmp_path_factory: pytest.TempPathFactory, plc: Authority, ple: Authority) -> Path:
    directory = tmp_path_factory.mktemp("trusted_roots")
    (directory / "plc.gid").write_text(plc.gid.to_pem())
    (directory / "ple.gid").write_text(ple.gid.to_pem())
    return directory


@pytest.fixture(scope="session")
def trusted_roots(roots_dir: Path) -> TrustedRoots:
    return TrustedRoots(roots_dir)


def resign(
    cert: x509.Certificate,
    issuer_key: rsa.RSAPrivateKey,
    digest: str = "sha256",
    mutate: Callable[[crypto.X509], None] | None = None,
) -> x509.Certificate:
    """Re-sign a certificate (optionally edited first) with any key and digest, including the
    MD5/SHA-1 that `cryptography` refuses to produce: for forging and old-peer tests."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        editable = crypto.X509.from_cryptography(cert)
        if mutate is not None:
            mutate(editable)
        editable.sign(crypto.PKey.from_cryptography_key(issuer_key), digest)
        return editable.to_cryptography()


def forge_gid(gid: GID, issuer_key: rsa.RSAPrivateKey, digest: str = "sha256",
              mutate: Callable[[crypto.X509], None] | None = None) -> GID:
    """The same GID (same chain), its certificate re-signed as `resign` does."""
    return GID(certificate=resign(gid.certificate, issuer_key, digest, mutate), chain=gid.chain)
