"""Federation peers: DIR/peers.toml, written by `sfa admin DIR peer ...`, read by running services.

The file is machine-written (one table per peer HRN with its registry and aggregate URLs).
Services hold a `Peers` object and read it per call; it re-reads the file when its modification
time or size changes, so `peer add` / `peer remove` take effect without a restart. Peers listed
in sfa.toml's [peers] stay as a fixed base that the file may override but not remove.
"""

from __future__ import annotations

import os
import threading
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sfa.deploy.config import PeerConfig
from sfa.deploy.layout import Deployment
from sfa.errors import BadArgs, SearchFailed
from sfa.xrn import hrn_split, validate_hrn

PEERS_FILE = "peers.toml"


@dataclass(frozen=True)
class Peer:
    """A peer authority: its top-level HRN and the URLs of its services ("" = none)."""

    hrn: str
    registry: str = ""
    aggregate: str = ""


def check_peer(peer: Peer) -> Peer:
    """BadArgs unless the HRN is valid and every URL given is https://host:port/..."""
    validate_hrn(peer.hrn)
    for what, url in (("registry", peer.registry), ("aggregate", peer.aggregate)):
        if url:
            parts = urlsplit(url)
            if parts.scheme != "https" or not parts.hostname:
                raise BadArgs(f"the {what} URL of {peer.hrn} must be https://HOST:PORT/, "
                              f"got {url[:120]!r}")
    if not (peer.registry or peer.aggregate):
        raise BadArgs(f"peer {peer.hrn} needs --registry URL, --aggregate URL or both")
    return peer


def read_peers_file(path: Path) -> dict[str, Peer]:
    """The peers in `path` ({} when the file does not exist); BadArgs when it is damaged."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadArgs(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadArgs(f"{path} is not valid TOML ({exc}); fix or remove it") from None
    table = data.get("peer", {})
    if not isinstance(table, dict):
        raise BadArgs(f"{path}: [peer] must hold one table per peer HRN")
    peers = {}
    for hrn, entry in table.items():
        if not isinstance(entry, dict) or set(entry) - {"registry", "aggregate"}:
            raise BadArgs(f"{path}: peer {hrn!r} must have only registry and aggregate URLs")
        peers[hrn] = check_peer(Peer(hrn, str(entry.get("registry", "")),
                                     str(entry.get("aggregate", ""))))
    return peers


def write_peers_file(path: Path, peers: Mapping[str, Peer]) -> None:
    """Replace `path` atomically (a reader sees the old file or the new one, never half)."""
    lines = ["# federation peers, written by `sfa admin DIR peer ...`; do not edit by hand", ""]
    for hrn in sorted(peers):
        peer = peers[hrn]
        lines += [f"[peer.{_quote(hrn)}]", f"registry = {_quote(peer.registry)}",
                  f"aggregate = {_quote(peer.aggregate)}", ""]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text("\n".join(lines), encoding="utf-8")
    os.replace(temporary, path)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class Peers:
    """The live peer list: sfa.toml's [peers] overlaid with DIR/peers.toml (thread-safe)."""

    def __init__(self, path: Path, configured: Mapping[str, PeerConfig] | None = None) -> None:
        self.path = path
        self._base = {hrn: Peer(hrn, p.registry, p.aggregate)
                      for hrn, p in (configured or {}).items()}
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._peers: dict[str, Peer] = dict(self._base)
        self._version = 0
        self.reload_if_changed()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            status = self.path.stat()
        except FileNotFoundError:
            return None
        return (status.st_ino, status.st_mtime_ns, status.st_size)

    def reload_if_changed(self) -> bool:
        """Re-read the file when it changed since the last read (one stat otherwise)."""
        stamp = self._file_stamp()
        with self._lock:
            if stamp == self._stamp and self._version:
                return False
            self._peers = {**self._base, **read_peers_file(self.path)}
            self._stamp = stamp
            self._version += 1
            return True

    @property
    def version(self) -> int:
        """Bumps on every change seen."""
        self.reload_if_changed()
        return self._version

    def all(self) -> dict[str, Peer]:
        """Every peer by HRN, as of now."""
        self.reload_if_changed()
        with self._lock:
            return dict(self._peers)

    def registries(self) -> dict[str, str]:
        """{peer HRN: registry URL} for the peers that have a registry."""
        return {hrn: p.registry for hrn, p in self.all().items() if p.registry}

    def aggregates(self) -> dict[str, str]:
        """{peer HRN: aggregate URL} for the peers that have an aggregate."""
        return {hrn: p.aggregate for hrn, p in self.all().items() if p.aggregate}

    def is_configured(self, hrn: str) -> bool:
        """True when sfa.toml (not peers.toml) declares the peer."""
        return hrn in self._base


class RegistryPeerMap(Mapping[str, str]):
    """{peer HRN: registry URL}, re-read on every access: what the registry's referral logic
    reads per call (RegistryConfig.peers), so `peer add` refers without a restart."""

    def __init__(self, peers: Peers) -> None:
        self.peers = peers

    def __getitem__(self, hrn: str) -> str:
        return self.peers.registries()[hrn]

    def __iter__(self) -> Iterator[str]:
        return iter(self.peers.registries())

    def __len__(self) -> int:
        return len(self.peers.registries())


def peers_path(deployment: Deployment) -> Path:
    """DIR/peers.toml of a deployment."""
    return deployment.directory / PEERS_FILE


def deployment_peers(deployment: Deployment) -> Peers:
    """The live peers of a deployment (sfa.toml [peers] + DIR/peers.toml)."""
    return Peers(peers_path(deployment), deployment.config.peers)


def add_peer(path: Path, peer: Peer, *, own_hrn: str) -> Peer:
    """Record (or replace) `peer` in peers.toml."""
    check_peer(peer)
    if len(hrn_split(peer.hrn)) != 1:
        raise BadArgs(f"a peer is a top-level authority, not {peer.hrn!r}")
    if peer.hrn == own_hrn:
        raise BadArgs(f"{peer.hrn} is this deployment's own authority, not a peer")
    peers = read_peers_file(path)
    peers[peer.hrn] = peer
    write_peers_file(path, peers)
    return peer


def remove_peer(path: Path, hrn: str, configured: Mapping[str, PeerConfig]) -> Peer:
    """Drop `hrn` from peers.toml; SearchFailed when it is not there."""
    peers = read_peers_file(path)
    removed = peers.pop(hrn, None)
    if removed is None:
        where = (" it is declared in sfa.toml [peers]; edit that file"
                 if hrn in configured else " see `sfa admin DIR peer list`")
        raise SearchFailed(f"no peer {hrn} in {path};{where}")
    write_peers_file(path, peers)
    return removed
