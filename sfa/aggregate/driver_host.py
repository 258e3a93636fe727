"""Hosting a driver: its start (inventory first), its inventory changes, and its stop.

Plain asyncio: the server awaits `start` before it listens and `stop` after it stops.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from .driver import Driver
from .inventory import Node
from .store import AggregateStore

log = logging.getLogger("sfa.aggregate")


@dataclass
class StoreInventory:
    """The `Inventory` a driver gets: changes go to the aggregate's store, whose revision
    invalidates the advertisement cache and the mapper's view."""

    store: AggregateStore

    def update(self, nodes: Sequence[Node]) -> None:
        if nodes:
            self.store.upsert_nodes(nodes)

    def remove(self, node_urns: Sequence[str]) -> None:
        removed = self.store.remove_nodes(node_urns)
        kept = len(set(node_urns)) - len(removed)
        if kept:
            log.info("%d removed nodes still hold slivers; marked down until they are gone",
                     kept)


async def start_driver(driver: Driver, store: AggregateStore) -> int:
    """Start `driver` and add the nodes it offers to the inventory; how many it offered."""
    inventory = StoreInventory(store)
    await driver.start(inventory)
    offered = list(await driver.nodes())
    inventory.update(offered)
    return len(offered)
