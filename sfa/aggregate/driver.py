"""The seam between the aggregate and a testbed: what the AM asks of a resource backend.

Every method takes a batch of slivers (one per node) and answers one `SliverResult` per sliver,
in order, so that a driver can fan out to its nodes concurrently and still report per node.
Methods are `async`; a driver must not raise for one node's failure but report it in `error`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from .slivers import Action, OperationalState, Sliver, UserKeys


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


class Driver(Protocol):
    """A resource backend. The in-memory driver and the node-manager driver implement it."""

    async def allocate(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """Reserve resources for new slivers (they are not running yet)."""

    async def provision(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        """Instantiate allocated slivers with these users' keys; result state usually notready."""

    async def perform_action(
        self, slivers: Sequence[Sliver], action: Action, users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        """Start, restart, stop slivers or push new users to them."""

    async def status(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """The current operational state of each sliver as the backend sees it."""

    async def renew(self, slivers: Sequence[Sliver], expires: datetime) -> list[SliverResult]:
        """Extend the slivers' leases to `expires`."""

    async def delete(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        """Tear slivers down and free their resources (idempotent)."""

    async def update_users(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        """Replace the users and keys allowed into the slivers."""
