"""The seam between the aggregate and a testbed: what the AM asks of a resource backend.

A driver is chosen by configuration (`[aggregate] driver` in sfa.toml: a name registered in the
`sfa.drivers` entry-point group, or `package.module:factory`); its factory gets a
`DriverContext` and returns a `Driver`. See docs/writing-a-driver.md.

The await rule: every driver method is an **asyncio** coroutine. The aggregate runs it as an
asyncio task on the event loop of the server (Twisted's asyncio reactor under `sfa serve`, the
same in the tests), so a driver may await any asyncio awaitable and must not block that loop
(run blocking work with `asyncio.to_thread`).

Sliver methods take a batch of slivers (one per node) and answer one `SliverResult` per sliver,
in order, so that a driver can fan out to its nodes concurrently and still report per node;
a driver must not raise for one node's failure but report it in `error`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from sfa.trust.gid import GID

from .inventory import Node
from .slivers import Action, OperationalState, Sliver, UserKeys
from .store import AggregateStore


@dataclass(frozen=True)
class SliverResult:
    """What the backend did to one sliver; `error` empty means success."""

    sliver_urn: str
    operational: OperationalState | None = None
    error: str = ""
    login_user: str = ""
    login_port: int | None = None
    usage: dict[str, int] | None = None  # what the node measured (cpu, memory, disk, traffic)

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass(frozen=True)
class HealthReport:
    """One health check: which nodes answered, and how many changed between up and down."""

    up: tuple[str, ...] = ()
    down: tuple[str, ...] = ()
    changed: int = 0


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconciliation did, by sliver URN (node URNs for `skipped_nodes`)."""

    adopted: tuple[str, ...] = ()  # held by their node, recorded as provisioned now
    redeemed: tuple[str, ...] = ()  # redeemed again from their stored ticket
    failed: tuple[str, ...] = ()  # lost at their node for good: geni_failed + geni_error
    orphans_deleted: tuple[str, ...] = ()  # held by a node without a record here
    revoked: tuple[str, ...] = ()  # ticket serials whose revocation a node acknowledged now
    synced: tuple[str, ...] = ()  # operational state taken from the node
    skipped_nodes: tuple[str, ...] = ()  # did not answer

    @property
    def changed(self) -> bool:
        """Whether anything was out of agreement (and acted on)."""
        return bool(self.adopted or self.redeemed or self.failed or self.orphans_deleted
                    or self.synced or self.revoked)

    def summary(self) -> str:
        return (f"{len(self.adopted)} adopted, {len(self.redeemed)} redeemed again, "
                f"{len(self.failed)} failed, {len(self.orphans_deleted)} orphans deleted, "
                f"{len(self.synced)} states synced, {len(self.skipped_nodes)} nodes skipped, "
                f"{len(self.revoked)} revocations delivered")


class Inventory(Protocol):
    """The aggregate's inventory as a driver may change it (the ad cache follows)."""

    def update(self, nodes: Sequence[Node]) -> None:
        """Add these nodes or replace their description (liveness and load included)."""

    def remove(self, node_urns: Sequence[str]) -> None:
        """Stop offering these nodes (those still holding slivers are kept, marked down)."""


@dataclass(frozen=True)
class DriverContext:
    """What a driver factory gets: who the aggregate is, where it keeps state, its identity,
    its inventory, the driver's own `[driver]` settings and a logger. No Twisted in it."""

    name: str
    authority_hrn: str
    am_urn: str
    store: AggregateStore
    state_dir: Path  # a directory for the driver's own files (created for it)
    gid: GID
    key: RSAPrivateKey = field(repr=False)
    trusted_roots: tuple[GID, ...] = ()
    nodes: tuple[Node, ...] = ()  # the inventory when the aggregate starts
    options: Mapping[str, Any] = field(default_factory=dict)  # the [driver] section
    parallelism: int = 32  # [aggregate] parallelism: calls in flight at once
    timeout_seconds: float = 15.0  # [aggregate] node_timeout_seconds
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("sfa.driver"))


class Driver(Protocol):
    """A resource backend. Every method is an asyncio coroutine (see the module docstring)."""

    # --- lifecycle and inventory --------------------------------------------------------------

    async def start(self, inventory: Inventory) -> None:
        """Called once before the aggregate serves; keep `inventory` to report node changes."""

    async def stop(self) -> None:
        """Called once when the aggregate stops: close connections, stop background work."""

    async def nodes(self) -> Sequence[Node]:
        """The nodes this driver offers; the aggregate adds them to its inventory at start."""

    async def check_health(self) -> HealthReport:
        """Look at the nodes (the aggregate calls it every health interval)."""

    async def reconcile(self) -> ReconcileReport:
        """Bring the aggregate's records and the testbed back into agreement (at start)."""

    # --- slivers ------------------------------------------------------------------------------

    async def allocate(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """Reserve resources for new slivers (they are not running yet)."""

    async def provision(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        """Instantiate allocated slivers with these users' keys; result state usually notready."""

    async def perform_action(
        self, slivers: Sequence[Sliver], action: Action, users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        """Start, restart or stop slivers (geni_update_users goes to `update_users`)."""

    async def status(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """The current operational state of each sliver as the backend sees it."""

    async def renew(self, slivers: Sequence[Sliver], expires: datetime) -> list[SliverResult]:
        """Extend the slivers' leases to `expires`."""

    async def delete(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """Tear slivers down and free their resources (idempotent)."""

    async def update_users(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        """Replace the users and keys allowed into the slivers (geni_update_users)."""


DriverFactory = Callable[[DriverContext], Driver]
