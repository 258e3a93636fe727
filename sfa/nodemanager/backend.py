"""The sliver backend seam: five operations a testbed implements for accounts, containers or VMs.

The node manager owns tickets, leases, admission and authorization; a backend only makes a
sliver real. Every operation is idempotent: `create` on an existing sliver refreshes its
identity files and keys (that is how keys are updated), `start` on a running one does nothing,
`stop` and `destroy` on an absent one do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from sfa.nodemanager.resources import Resources


@dataclass(frozen=True)
class UserKeys:
    """One slice user and their SSH public keys."""

    urn: str
    keys: tuple[str, ...]


@dataclass(frozen=True)
class SliverSpec:
    """Everything a backend needs to make one sliver; built by the node manager from a ticket."""

    login: str
    slice_urn: str
    sliver_urn: str
    node_urn: str
    expires: datetime
    resources: Resources
    slice_gid_pem: str
    node_gid_pem: str
    users: tuple[UserKeys, ...] = ()
    slice_public_key: str | None = None  # `ssh-rsa ...`
    slice_private_key_pem: bytes | None = field(default=None, repr=False)
    initscript: str = ""
    uid: int | None = None  # the sliver's own uid when the node manager runs as root

    @property
    def authorized_keys(self) -> tuple[str, ...]:
        """The users' keys plus the slice key pair's public half, in order, without repeats."""
        keys = [key for user in self.users for key in user.keys]
        if self.slice_public_key:
            keys.append(self.slice_public_key)
        return tuple(dict.fromkeys(key.strip() for key in keys if key.strip()))


@dataclass(frozen=True)
class BackendStatus:
    """What a backend can tell about one sliver right now."""

    exists: bool
    running: bool = False
    processes: int = 0
    disk_used_bytes: int = 0
    pid: int | None = None
    exit_code: int | None = None
    usage: dict[str, int] = field(default_factory=dict)  # what an enforcing backend measured


@runtime_checkable
class Backend(Protocol):
    """The five operations of a sliver backend."""

    def create(self, spec: SliverSpec) -> None:
        """Make (or refresh) the sliver: identity files, keys, home."""

    def start(self, spec: SliverSpec) -> None:
        """Run the sliver's init script under its resource limits (no-op when running)."""

    def stop(self, login: str) -> None:
        """Stop every process of the sliver."""

    def destroy(self, login: str) -> None:
        """Stop the sliver and remove everything it had."""

    def status(self, login: str) -> BackendStatus:
        """Whether the sliver exists and runs, and what it uses."""
