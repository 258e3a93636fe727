"""A driver for the tests of the await rule: every method awaits `asyncio.sleep` and asks for
the running asyncio loop (both fail outside an asyncio task), and writes what was called to
DIR/driver/calls. Its nodes come from the driver; `check_health` adds the node named in
DIR/driver/add-node, if any, through the inventory it was given at start."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sfa.aggregate import (
    Action,
    DriverContext,
    HealthReport,
    MemoryDriver,
    Node,
    ReconcileReport,
    Sliver,
    SliverResult,
    UserKeys,
    node_urn,
)
from sfa.aggregate.driver import Inventory


@dataclass
class SleepyDriver(MemoryDriver):
    """The in-memory driver behind real asyncio awaits, journalled to a file."""

    state_dir: Path = Path()
    authority_hrn: str = "plc"
    pause: float = 0.02
    added: set[str] = field(default_factory=set)

    async def _note(self, name: str) -> None:
        await asyncio.sleep(self.pause)
        asyncio.get_running_loop()  # RuntimeError unless this runs as an asyncio task
        with (self.state_dir / "calls").open("a") as journal:
            journal.write(name + "\n")

    def _node(self, name: str) -> Node:
        return Node(urn=node_urn(self.authority_hrn, name), hostname=name, site="sleepy")

    async def start(self, inventory: Inventory) -> None:
        await self._note("start")
        await super().start(inventory)

    async def stop(self) -> None:
        await self._note("stop")

    async def nodes(self) -> list[Node]:
        await self._note("nodes")
        return [self._node("sleepy1"), self._node("sleepy2")]

    async def check_health(self) -> HealthReport:
        await self._note("check_health")
        wanted = self.state_dir / "add-node"
        if wanted.is_file() and self.inventory is not None:
            name = wanted.read_text().strip()
            if name not in self.added:
                self.inventory.update([self._node(name)])
                self.added.add(name)
        return HealthReport()

    async def reconcile(self) -> ReconcileReport:
        await self._note("reconcile")
        return ReconcileReport()

    async def allocate(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        await self._note("allocate")
        return await super().allocate(slivers)

    async def provision(self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
                        ) -> list[SliverResult]:
        await self._note("provision")
        return await super().provision(slivers, users)

    async def perform_action(self, slivers: Sequence[Sliver], action: Action,
                             users: Sequence[UserKeys]) -> list[SliverResult]:
        await self._note(f"perform_action {action.value}")
        return await super().perform_action(slivers, action, users)

    async def update_users(self, slivers: Sequence[Sliver], users: Sequence[UserKeys]
                           ) -> list[SliverResult]:
        await self._note("update_users " + ",".join(k for u in users for k in u.keys))
        return await super().update_users(slivers, users)

    async def status(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        await self._note("status")
        return await super().status(slivers)

    async def renew(self, slivers: Sequence[Sliver], expires: datetime) -> list[SliverResult]:
        await self._note("renew")
        return await super().renew(slivers, expires)

    async def delete(self, slivers: Sequence[Sliver]) -> list[SliverResult]:
        await self._note("delete")
        return await super().delete(slivers)


def sleepy_driver(context: DriverContext) -> SleepyDriver:
    pause = context.options.get("pause", 0.02)
    return SleepyDriver(state_dir=context.state_dir, authority_hrn=context.authority_hrn,
                        pause=float(pause))


def failing_start(context: DriverContext) -> SleepyDriver:
    """A driver whose start fails (its testbed is unreachable, say)."""
    driver = sleepy_driver(context)

    async def start(inventory: Inventory) -> None:
        await asyncio.sleep(0)
        raise ConnectionRefusedError("the testbed controller at 127.0.0.1:9 refused")

    driver.start = start  # type: ignore[method-assign]
    return driver
