"""The aggregate's nodes: persistent URNs, types, location, capacity and liveness."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sfa.xrn import hrn_to_urn

DEFAULT_HARDWARE_TYPE = "pc"
SHARED_SLIVER_TYPE = "sfa-container"
EXCLUSIVE_SLIVER_TYPE = "raw-pc"


@dataclass(frozen=True)
class NodeResources:
    """What one node offers in total (the resource attributes of our RSpec extension)."""

    cpu_share: int = 100
    memory_mb: int = 4096
    disk_mb: int = 65536
    tasks: int = 512
    bandwidth_kbps: int = 1_000_000


@dataclass(frozen=True)
class Node:
    """One node of this aggregate. `capacity` is how many shared slivers it holds at once."""

    urn: str
    hostname: str
    site: str
    hardware_types: tuple[str, ...] = (DEFAULT_HARDWARE_TYPE,)
    sliver_types: tuple[str, ...] = (SHARED_SLIVER_TYPE, EXCLUSIVE_SLIVER_TYPE)
    exclusive_allowed: bool = True
    capacity: int = 10
    country: str = "US"
    latitude: float = 0.0
    longitude: float = 0.0
    resources: NodeResources = NodeResources()
    up: bool = True
    last_seen: datetime | None = None
    load: float = 0.0
    login_port: int = 22
    enforced: tuple[str, ...] | None = None  # knobs its node manager enforces (None: unknown)

    @property
    def name(self) -> str:
        """The node's component name (the last part of its URN)."""
        return self.urn.rsplit("+", 1)[-1]

    def with_liveness(self, *, up: bool, load: float, last_seen: datetime) -> Node:
        """A copy reporting a new liveness observation."""
        return replace(self, up=up, load=load, last_seen=last_seen)


@dataclass(frozen=True)
class AdmissionPolicy:
    """When a node may take a new sliver: up, seen recently, and not too loaded."""

    max_load: float = 0.9
    stale_after: timedelta | None = None

    def admits(self, node: Node, now: datetime) -> bool:
        """True when `node` may take new slivers at `now`."""
        if not node.up or node.load > self.max_load:
            return False
        if self.stale_after is not None and node.last_seen is not None:
            return now - node.last_seen <= self.stale_after
        return True


def node_urn(authority_hrn: str, name: str) -> str:
    """The persistent URN of node `name` in `authority_hrn`."""
    return hrn_to_urn(f"{authority_hrn}.{name}", "node")


def generate_nodes(
    authority_hrn: str, count: int, *, sites: int = 4, domain: str = "nodes.sfa.test",
    capacity: int = 10,
) -> Iterator[Node]:
    """`count` nodes named node1..nodeN spread over `sites` sites (demo and test inventories)."""
    for index in range(1, count + 1):
        site = f"site{(index - 1) % max(sites, 1) + 1}"
        yield Node(
            urn=node_urn(authority_hrn, f"node{index}"),
            hostname=f"node{index}.{site}.{domain}",
            site=site,
            capacity=capacity,
            latitude=round(40.0 + (index % 97) / 10.0, 4),
            longitude=round(-75.0 - (index % 89) / 10.0, 4),
        )
