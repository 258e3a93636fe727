"""Revoked keys: certificates no service of a deployment accepts any more, whoever issued them.

When the registry removes a user or an authority, its GID's key is revoked: every certificate
for that key (the GID, any copy CreateGid made, any certificate chained through it) is refused
by the trust door, so a removed PI keeps no credential-minting power. The list is one file in
the trusted roots directory, which every service of the deployment already watches:
`trusted_roots/revoked_keys`, one line per key: `<sha256 of the SubjectPublicKeyInfo, hex>
<hrn> <when>` (`#` starts a comment). An operator lifts a revocation by deleting its line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sfa.timeutil import format_rfc3339, utcnow

REVOKED_FILE = "revoked_keys"


def key_id(public_key: PublicKeyTypes) -> str:
    """The SHA-256 (hex) of a public key's SubjectPublicKeyInfo: what a revocation names."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


def read_revoked(path: Path) -> frozenset[str]:
    """The key ids listed in `path` (none when the file does not exist)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    ids = (line.split("#", 1)[0].split() for line in text.splitlines())
    return frozenset(words[0].lower() for words in ids if words)


def revoke_key(path: Path, public_key: PublicKeyTypes, hrn: str) -> None:
    """Add `public_key` (of record `hrn`) to the list at `path`, atomically; idempotent."""
    wanted = key_id(public_key)
    with _locked(path):
        if wanted in read_revoked(path):
            return
        try:
            current = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = "# keys revoked by the registry: sha256(SubjectPublicKeyInfo) hrn when\n"
        line = f"{wanted} {hrn} {format_rfc3339(utcnow())}\n"
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(current + line, encoding="utf-8")
        os.replace(temporary, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One writer at a time across processes (registry workers, `sfa admin`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
