"""Server test fixtures: one reactor thread per session, keys and GIDs made once, TLS clients."""

from __future__ import annotations

import ssl
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from twisted.internet.defer import Deferred
from twisted.internet.threads import blockingCallFromThread

from sfa.trust.gid import GID, create_gid
from sfa.trust.keys import generate_private_key, private_key_to_pem


@dataclass(frozen=True)
class Identity:
    """A GID with its private key, and the PEM files a TLS client loads."""

    gid: GID
    key: RSAPrivateKey
    cert_file: Path
    key_file: Path


def write_identity(directory: Path, name: str, gid: GID, key: RSAPrivateKey) -> Identity:
    directory.mkdir(parents=True, exist_ok=True)
    cert_file = directory / f"{name}.gid"
    key_file = directory / f"{name}.pkey"
    cert_file.write_text(gid.to_pem(include_chain=True))
    key_file.write_bytes(private_key_to_pem(key))
    return Identity(gid, key, cert_file, key_file)


@pytest.fixture(scope="session")
def keys() -> list[RSAPrivateKey]:
    """A few RSA keys made once per session; tests take them by index."""
    return [generate_private_key() for _ in range(4)]


@pytest.fixture(scope="session")
def test_pki(tmp_path_factory: pytest.TempPathFactory, keys: list[RSAPrivateKey]) -> dict:
    """A root authority `srvtest`, its registry service GID on 127.0.0.1, a user, a stranger."""
    directory = tmp_path_factory.mktemp("pki")
    root_key, site_key, user_key, stranger_key = keys
    root = create_gid(
        urn="urn:publicid:IDN+srvtest+authority+sa", public_key=root_key.public_key(),
        issuer_key=root_key, is_ca=True,
    )
    # A sub-authority in between, so that a peer verifies only if the whole chain is sent.
    site = create_gid(
        urn="urn:publicid:IDN+srvtest:site+authority+sa", public_key=site_key.public_key(),
        issuer_key=root_key, issuer=root, is_ca=True,
    )
    service = create_gid(
        urn="urn:publicid:IDN+srvtest:site+authority+sa", public_key=stranger_key.public_key(),
        issuer_key=site_key, issuer=site, cn="srvtest.site.sa",
        dns_names=("localhost",), ip_addresses=("127.0.0.1",),
    )
    user = create_gid(
        urn="urn:publicid:IDN+srvtest:site+user+alice", public_key=user_key.public_key(),
        issuer_key=site_key, issuer=site,
    )
    stranger = create_gid(
        urn="urn:publicid:IDN+elsewhere+user+mallory", public_key=stranger_key.public_key(),
        issuer_key=stranger_key,
    )
    return {
        "root": write_identity(directory, "root", root, root_key),
        "service": write_identity(directory, "service", service, stranger_key),
        "user": write_identity(directory, "user", user, user_key),
        "stranger": write_identity(directory, "stranger", stranger, stranger_key),
    }


def client_context(root_file: Path, identity: Identity | None = None) -> ssl.SSLContext:
    """A stock Python TLS client: trusts only the root, checks host names, may present a GID."""
    context = ssl.create_default_context(cafile=str(root_file))
    context.check_hostname = True
    if identity is not None:
        context.load_cert_chain(str(identity.cert_file), str(identity.key_file))
    return context


def proxy(url: str, root_file: Path, identity: Identity | None = None) -> Any:
    """A ServerProxy; `Any` because the tests index into the untyped replies."""
    return xmlrpc.client.ServerProxy(
        url, context=client_context(root_file, identity), allow_none=True
    )


T = TypeVar("T")


def wait_deferred(reactor: Any, make: Callable[[], Deferred[T]]) -> T:
    """Call `make` in the reactor thread and wait for its Deferred's result (mypy cannot infer
    blockingCallFromThread's result for a Deferred-returning callable)."""
    call: Callable[[], Any] = make
    return cast(T, blockingCallFromThread(reactor, call))
