"""Node manager fixtures: real authorities, node / AM / slice / user GIDs, one slice key pair.

Everything with a key is session-scoped (RSA key generation is the slow part). Directories that
slivers running as their own uid must walk through are made world-searchable (o+x).
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from sfa.trust.gid import GID
from sfa.trust.hierarchy import Authority, AuthorityStore
from sfa.trust.keys import generate_private_key, public_key_to_openssh


@dataclass(frozen=True)
class Principal:
    gid: GID
    key: rsa.RSAPrivateKey


@pytest.fixture(scope="session")
def nm_authorities(tmp_path_factory: pytest.TempPathFactory) -> AuthorityStore:
    return AuthorityStore(tmp_path_factory.mktemp("nm-authorities"))


@pytest.fixture(scope="session")
def plc(nm_authorities: AuthorityStore) -> Authority:
    return nm_authorities.create_root("plc")


@pytest.fixture(scope="session")
def princeton(nm_authorities: AuthorityStore, plc: Authority) -> Authority:
    return nm_authorities.create_sub("plc.princeton")


def _issue(authority: Authority, hrn: str, type: str) -> Principal:
    gid, key = authority.issue_gid(hrn, type)
    assert key is not None
    return Principal(gid, key)


@pytest.fixture(scope="session")
def node1(plc: Authority) -> Principal:
    return _issue(plc, "plc.node1", "node")


@pytest.fixture(scope="session")
def node2(plc: Authority) -> Principal:
    return _issue(plc, "plc.node2", "node")


@pytest.fixture(scope="session")
def am(plc: Authority) -> Principal:
    gid, key = plc.issue_service_gid("am", "127.0.0.1")
    assert key is not None
    return Principal(gid, key)


@pytest.fixture(scope="session")
def exp1(princeton: Authority) -> Principal:
    return _issue(princeton, "plc.princeton.exp1", "slice")


@pytest.fixture(scope="session")
def exp2(princeton: Authority) -> Principal:
    return _issue(princeton, "plc.princeton.exp2", "slice")


@pytest.fixture(scope="session")
def alice(princeton: Authority) -> Principal:
    return _issue(princeton, "plc.princeton.alice", "user")


@pytest.fixture(scope="session")
def bob(princeton: Authority) -> Principal:
    return _issue(princeton, "plc.princeton.bob", "user")


@pytest.fixture(scope="session")
def slice_key() -> rsa.RSAPrivateKey:
    return generate_private_key()


@pytest.fixture(scope="session")
def alice_ssh(alice: Principal) -> str:
    return f"{public_key_to_openssh(alice.key)} alice@example"


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh directory others may walk through (pytest's own tmp dirs are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="sfa-nm-"))
    path.chmod(0o711)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def wait_for_fifo(path: Path, timeout: float = 10.0) -> str:
    """Block until a process writes a line into the FIFO at `path` (an event, not a sleep)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        deadline = time.monotonic() + timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"nothing was written to {path} within {timeout}s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data += os.read(fd, 4096)
        return data.decode()
    finally:
        os.close(fd)


def make_fifo(directory: Path, name: str = "done") -> Path:
    path = directory / name
    os.mkfifo(path, 0o666)
    path.chmod(0o666)
    return path
