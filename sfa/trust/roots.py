"""Trusted roots: the authority GIDs this service trusts, loaded from a directory.

Every `*.gid`, `*.pem`, `*.crt` file in the directory is a root (its first certificate).
Federation is adding a peer's root GID there; the set reloads when the directory changes.
The directory's `revoked_keys` file (`sfa.trust.revoked`) lists keys whose certificates are
refused whatever their chain; it reloads the same way.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from sfa.errors import BadArgs, SfaError
from sfa.trust.gid import GID
from sfa.trust.revoked import REVOKED_FILE, key_id, read_revoked, revoke_key

log = logging.getLogger(__name__)

ROOT_SUFFIXES = (".gid", ".pem", ".crt")
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")

_Signature = tuple[tuple[str, int, int, int], ...]
_Key = tuple[bytes, bytes]


def _anchor_key(cert: x509.Certificate) -> _Key:
    """Subject and public key, the two things a chain's last certificate must match."""
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return cert.subject.public_bytes(), spki


class TrustedRoots:
    """A thread-safe set of trusted root GIDs, from a directory and/or given GIDs."""

    def __init__(self, directory: Path | str | None = None, gids: Iterable[GID] = ()) -> None:
        self._lock = threading.RLock()
        self._directory = Path(directory) if directory is not None else None
        self._added: list[GID] = list(gids)
        self._loaded: list[GID] = []
        self._signature: _Signature | None = None
        self._version = 0
        self._index: dict[_Key, GID] = {}
        self._roots: tuple[GID, ...] = ()
        self._revoked: frozenset[str] = frozenset()
        with self._lock:
            if self._directory is not None:
                self._load_directory()
            self._rebuild()

    @property
    def directory(self) -> Path | None:
        return self._directory

    @property
    def roots(self) -> tuple[GID, ...]:
        return self._roots

    @property
    def version(self) -> int:
        """A counter that changes whenever the set of roots changes (for caches)."""
        return self._version

    def _scan(self) -> _Signature:
        assert self._directory is not None
        entries = []
        try:
            with os.scandir(self._directory) as listing:
                for entry in listing:
                    if (entry.name.endswith(ROOT_SUFFIXES) or entry.name == REVOKED_FILE) \
                            and entry.is_file():
                        st = entry.stat()
                        entries.append((entry.name, st.st_mtime_ns, st.st_size, st.st_ino))
        except FileNotFoundError:
            return ()
        return tuple(sorted(entries))

    def _load_directory(self) -> None:
        signature = self._scan()
        loaded = []
        assert self._directory is not None
        for name, *_ in signature:
            path = self._directory / name
            if name == REVOKED_FILE:
                continue
            try:
                loaded.append(GID.from_pem(path.read_bytes()))
            except (OSError, SfaError) as exc:
                log.warning("ignoring trusted root %s: %s", path, exc)
        self._loaded = loaded
        self._revoked = read_revoked(self._directory / REVOKED_FILE)
        self._signature = signature

    def _rebuild(self) -> None:
        roots: list[GID] = []
        index: dict[_Key, GID] = {}
        for gid in (*self._loaded, *self._added):
            key = _anchor_key(gid.certificate)
            if key not in index:
                index[key] = gid
                roots.append(gid)
        self._index = index
        self._roots = tuple(roots)
        self._version += 1

    def reload_if_changed(self) -> bool:
        """Re-read the directory if any root file was added, removed or changed."""
        if self._directory is None:
            return False
        signature = self._scan()
        if signature == self._signature:
            return False
        with self._lock:
            if self._scan() == self._signature:
                return False
            self._load_directory()
            self._rebuild()
        return True

    def add(self, gid: GID) -> None:
        """Trust a root in memory (not written to the directory)."""
        with self._lock:
            self._added.append(gid)
            self._rebuild()

    def write(self, gid: GID, name: str) -> Path:
        """Write a root into the directory as NAME(.gid) and trust it."""
        if self._directory is None:
            raise BadArgs("these trusted roots have no directory to write to")
        if not _FILE_NAME_RE.match(name) or ".." in name:
            raise BadArgs(f"invalid trusted root file name {name[:64]!r}: use [A-Za-z0-9_.-]")
        if not name.endswith(ROOT_SUFFIXES):
            name += ".gid"
        with self._lock:
            self._directory.mkdir(parents=True, exist_ok=True)
            path = self._directory / name
            tmp = path.with_name(f".{name}.tmp")
            tmp.write_text(gid.to_pem())
            tmp.replace(path)
            self._load_directory()
            self._rebuild()
        return path

    def remove(self, hrn: str) -> int:
        """Stop trusting every root named `hrn` (deleting its files); returns how many."""
        with self._lock:
            before = len(self._roots)
            self._added = [gid for gid in self._added if gid.hrn != hrn]
            if self._directory is not None:
                for name, *_ in self._scan():
                    path = self._directory / name
                    try:
                        if GID.from_pem(path.read_bytes()).hrn == hrn:
                            path.unlink()
                    except (OSError, SfaError):
                        continue
                self._load_directory()
            self._rebuild()
            return before - len(self._roots)

    def is_revoked(self, cert: x509.Certificate) -> bool:
        """True when the certificate's key was revoked (its record removed)."""
        return bool(self._revoked) and key_id(cert.public_key()) in self._revoked

    def revoke(self, gid: GID) -> None:
        """Revoke `gid`'s key for every service reading this directory."""
        if self._directory is None:
            raise BadArgs("these trusted roots have no directory to record a revocation in")
        with self._lock:
            revoke_key(self._directory / REVOKED_FILE, gid.public_key, gid.hrn)
            self._load_directory()
            self._rebuild()

    def find_root_for(self, cert: x509.Certificate) -> GID | None:
        """The trusted root whose subject AND public key equal the certificate's, if any."""
        return self._index.get(_anchor_key(cert))

    def __len__(self) -> int:
        return len(self._roots)

    def __repr__(self) -> str:
        return f"TrustedRoots({[gid.hrn for gid in self._roots]!r}, version={self._version})"
