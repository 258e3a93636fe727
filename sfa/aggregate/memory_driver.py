"""An in-memory Driver: slivers are dictionary entries, nothing runs. For tests and benchmarks
(`driver = "memory"`); `failing` makes chosen nodes report an error."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .driver import DriverContext, HealthReport, Inventory, ReconcileReport, SliverResult
from .inventory import Node
from .slivers import ACTION_TRANSITIONS, Action, OperationalState, Sliver, UserKeys


@dataclass
class MemorySliver:
    """What the in-memory backend keeps for one sliver."""

    node_urn: str
    state: OperationalState
    users: tuple[UserKeys, ...] = ()
    expires: datetime | None = None


@dataclass
class MemoryDriver:
    """Every operation succeeds at once, except on nodes listed in `failing` (node -> reason)."""

    failing: dict[str, str] = field(default_factory=dict)
    slivers: dict[str, MemorySliver] = field(default_factory=dict)
    calls: list[tuple[str, int]] = field(default_factory=list)
    offered: list[Node] = field(default_factory=list)  # what `nodes()` answers
    inventory: Inventory | None = None

    async def start(self, inventory: Inventory) -> None:
        self.inventory = inventory

    async def stop(self) -> None:
        self.inventory = None

    async def nodes(self) -> list[Node]:
        return list(self.offered)

    async def check_health(self) -> HealthReport:
        return HealthReport(up=tuple(n.urn for n in self.offered))

    async def reconcile(self) -> ReconcileReport:
        return ReconcileReport()

    def _each(self, name: str, slivers: Sequence[Sliver]) -> list[tuple[Sliver, str]]:
        self.calls.append((name, len(slivers)))
        return [(s, self.failing.get(s.node_urn, "")) for s in slivers]

    async def allocate(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        results = []
        for sliver, error in self._each("allocate", slivers):
            if not error:
                self.slivers[sliver.urn] = MemorySliver(
                    sliver.node_urn, OperationalState.PENDING_ALLOCATION, expires=sliver.expires)
            results.append(SliverResult(sliver.urn, OperationalState.PENDING_ALLOCATION, error))
        return results

    async def provision(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        results = []
        for sliver, error in self._each("provision", slivers):
            if not error:
                self.slivers[sliver.urn] = MemorySliver(
                    sliver.node_urn, OperationalState.NOTREADY, tuple(users), sliver.expires)
            results.append(SliverResult(sliver.urn, OperationalState.NOTREADY, error))
        return results

    async def perform_action(
        self, slivers: Sequence[Sliver], action: Action, users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        if action is Action.UPDATE_USERS:
            return await self.update_users(slivers, users)
        final = ACTION_TRANSITIONS[action][2]
        results = []
        for sliver, failure in self._each(action.value, slivers):
            entry = self.slivers.get(sliver.urn)
            error = failure or ("" if entry else "the backend has no such sliver")
            if entry is not None and not error:
                entry.state = final
            results.append(SliverResult(sliver.urn, final if not error else None, error))
        return results

    async def status(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        results = []
        for sliver, error in self._each("status", slivers):
            entry = self.slivers.get(sliver.urn)
            state = entry.state if entry else None
            results.append(SliverResult(sliver.urn, state, error))
        return results

    async def renew(self, slivers: Sequence[Sliver], expires: datetime) -> list[SliverResult]:
        results = []
        for sliver, error in self._each("renew", slivers):
            entry = self.slivers.get(sliver.urn)
            if entry is not None and not error:
                entry.expires = expires
            results.append(SliverResult(sliver.urn, None, error))
        return results

    async def delete(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        results = []
        for sliver, _ in self._each("delete", slivers):
            self.slivers.pop(sliver.urn, None)
            results.append(SliverResult(sliver.urn))
        return results

    async def update_users(
        self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
    ) -> list[SliverResult]:
        final = ACTION_TRANSITIONS[Action.UPDATE_USERS][2]
        results = []
        for sliver, failure in self._each("update_users", slivers):
            entry = self.slivers.get(sliver.urn)
            error = failure or ("" if entry else "the backend has no such sliver")
            if entry is not None and not error:
                entry.users = tuple(users)
                entry.state = final
            results.append(SliverResult(sliver.urn, final if not error else None, error))
        return results


def memory_driver(context: DriverContext) -> MemoryDriver:
    """The `memory` driver's factory: it offers no nodes of its own (the inventory's serve)."""
    return MemoryDriver()
