"""The advertisement RSpec, generated from the inventory and cached until anything changes."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sfa.rspecs import model as rs
from sfa.rspecs.builder import advertisement as build_advertisement
from sfa.rspecs.compress import compress
from sfa.rspecs.writer import write_rspec
from sfa.timeutil import utcnow

from .inventory import AdmissionPolicy, Node
from .store import AggregateStore, NodeUsage


def available(node: Node, usage: NodeUsage, admission: AdmissionPolicy, now: datetime) -> bool:
    """True when the node can take at least one more sliver now."""
    return (admission.admits(node, now) and not usage.exclusive
            and usage.used < node.capacity)


def advertisement(
    nodes: Sequence[Node], usage: Mapping[str, NodeUsage], *, am_urn: str,
    admission: AdmissionPolicy, available_only: bool = False, now: datetime | None = None,
) -> rs.RSpec:
    """The advertisement of `nodes` as an RSpec model."""
    now = now or utcnow()
    ad_nodes = []
    sliver_types: set[str] = set()
    for node in nodes:
        used = usage.get(node.urn, NodeUsage())
        is_available = available(node, used, admission, now)
        if available_only and not is_available:
            continue
        sliver_types.update(node.sliver_types)
        ad_nodes.append(_ad_node(node, used, am_urn, is_available))
    return build_advertisement(ad_nodes, aggregate_manager_id=am_urn,
                               sliver_types=sorted(sliver_types))


def _ad_node(node: Node, used: NodeUsage, am_urn: str, is_available: bool) -> rs.Node:
    capacity = node.resources
    free_share = 0 if used.exclusive else (node.capacity - used.used) / node.capacity
    amounts = rs.ResourceAmounts(capacity.cpu_share, capacity.memory_mb, capacity.disk_mb,
                                 capacity.tasks, capacity.bandwidth_kbps)
    free = rs.ResourceAmounts(*(int(v * free_share) for v in (
        capacity.cpu_share, capacity.memory_mb, capacity.disk_mb, capacity.tasks,
        capacity.bandwidth_kbps)))
    return rs.Node(
        component_id=node.urn, component_manager_id=am_urn, component_name=node.name,
        exclusive=node.exclusive_allowed,
        hardware_types=[rs.HardwareType(name) for name in node.hardware_types],
        sliver_types=[rs.SliverType(name) for name in node.sliver_types],
        location=rs.Location(node.country, str(node.latitude), str(node.longitude)),
        available=is_available,
        resources=rs.NodeResources(amounts, free, node.load, node.enforced),
    )


@dataclass(frozen=True)
class _Entry:
    revision: int
    text: str
    compressed: str


class AdvertisementCache:
    """The ad text (plain and compressed) per `geni_available`, rebuilt on a store change."""

    def __init__(self, store: AggregateStore, *, am_urn: str, admission: AdmissionPolicy):
        self.store = store
        self.am_urn = am_urn
        self.admission = admission
        self._entries: dict[bool, _Entry] = {}
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, *, available_only: bool = False, compressed: bool = False) -> str:
        """The advertisement text, from the cache when the inventory has not changed."""
        revision = self.store.revision
        entry = self._entries.get(available_only)
        if entry is None or entry.revision != revision:
            with self._lock:
                entry = self._entries.get(available_only)
                if entry is None or entry.revision != revision:
                    entry = self._build(revision, available_only)
                    self._entries[available_only] = entry
        return entry.compressed if compressed else entry.text

    def _build(self, revision: int, available_only: bool) -> _Entry:
        self.builds += 1
        rspec = advertisement(self.store.nodes(), self.store.usage(), am_urn=self.am_urn,
                              admission=self.admission, available_only=available_only)
        text = write_rspec(rspec)
        return _Entry(revision, text, compress(text))
