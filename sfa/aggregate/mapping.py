"""Placing a request on the inventory: bound nodes exactly, unbound ones spread and balanced."""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sfa.errors import BadArgs, InsufficientNodes

from .inventory import EXCLUSIVE_SLIVER_TYPE, SHARED_SLIVER_TYPE, AdmissionPolicy, Node
from .store import NodeUsage


@dataclass(frozen=True)
class NodeRequest:
    """One node of a request RSpec, as far as placement is concerned."""

    client_id: str
    component_id: str = ""
    component_manager_id: str = ""
    hardware_type: str = ""
    sliver_type: str = ""
    exclusive: bool | None = None

    @property
    def bound(self) -> bool:
        return bool(self.component_id)

    @property
    def wants_exclusive(self) -> bool:
        if self.exclusive is not None:
            return self.exclusive
        return self.sliver_type == EXCLUSIVE_SLIVER_TYPE


@dataclass(frozen=True)
class Placement:
    """A request node and the node chosen for it."""

    request: NodeRequest
    node: Node
    sliver_type: str
    exclusive: bool


@dataclass
class _Room:
    """Working view of one node's free capacity while a request is mapped."""

    node: Node
    used: int
    exclusive: bool
    placed: int = 0

    def fits(self, exclusive: bool) -> bool:
        if self.exclusive:
            return False
        if exclusive:
            return self.used == 0 and self.node.exclusive_allowed
        return self.used < self.node.capacity


@dataclass
class Mapper:
    """Maps requests for one aggregate; `own_managers` are the URNs naming this aggregate."""

    own_managers: frozenset[str]
    admission: AdmissionPolicy = field(default_factory=AdmissionPolicy)

    def ours(self, requests: Iterable[NodeRequest], inventory: Mapping[str, Node]
             ) -> list[NodeRequest]:
        """The request nodes this aggregate should serve (others belong to other aggregates)."""
        mine = []
        for request in requests:
            manager = request.component_manager_id
            if manager and manager not in self.own_managers:
                continue
            if not manager and request.bound and request.component_id not in inventory:
                continue
            mine.append(request)
        return mine

    def place(self, requests: Sequence[NodeRequest], nodes: Sequence[Node],
              usage: Mapping[str, NodeUsage], now: datetime) -> list[Placement]:
        """Choose a node for every request node, or INSUFFICIENT_NODES naming what is missing."""
        _check_client_ids(requests)
        rooms = {
            n.urn: _Room(n, usage.get(n.urn, NodeUsage()).used,
                         usage.get(n.urn, NodeUsage()).exclusive)
            for n in nodes
        }
        placements: dict[str, Placement] = {}
        missing: list[str] = []
        sites: Counter[str] = Counter()
        for request in (r for r in requests if r.bound):
            problem = self._bind(request, rooms, now)
            if problem:
                missing.append(problem)
            else:
                room = rooms[request.component_id]
                placements[request.client_id] = self._take(request, room)
                sites[room.node.site] += 1
        for criteria, group in _groups(r for r in requests if not r.bound).items():
            candidates = self._candidates(criteria, rooms.values(), now)
            for request in group:
                best = candidates.best(sites, request.wants_exclusive)
                if best is None:
                    missing.append(f"{request.client_id!r}: no free {_describe(criteria)} node")
                    continue
                placements[request.client_id] = self._take(request, best)
                sites[best.node.site] += 1
                candidates.put_back(best)
        if missing:
            raise InsufficientNodes("cannot place " + "; ".join(missing))
        return [placements[r.client_id] for r in requests]

    def _bind(self, request: NodeRequest, rooms: Mapping[str, _Room], now: datetime) -> str:
        room = rooms.get(request.component_id)
        name = f"{request.client_id!r} on {request.component_id}"
        if room is None:
            return f"{name}: no such node here"
        if not self.admission.admits(room.node, now):
            return f"{name}: the node is down or overloaded"
        if not _types_match(room.node, request):
            return f"{name}: the node offers no {request.hardware_type or request.sliver_type}"
        if not room.fits(request.wants_exclusive):
            kind = "exclusively " if request.wants_exclusive else ""
            return f"{name}: the node is not free {kind}(in use or full)"
        return ""

    def _take(self, request: NodeRequest, room: _Room) -> Placement:
        exclusive = request.wants_exclusive
        room.used = room.node.capacity if exclusive else room.used + 1
        room.exclusive = room.exclusive or exclusive
        room.placed += 1
        return Placement(request, room.node, request.sliver_type or _default_type(
            room.node, exclusive), exclusive)

    def _candidates(self, criteria: tuple[str, str, bool], rooms: Iterable[_Room],
                    now: datetime) -> _SiteHeaps:
        hardware, sliver, exclusive = criteria
        probe = NodeRequest("", hardware_type=hardware, sliver_type=sliver, exclusive=exclusive)
        return _SiteHeaps(
            room for room in rooms
            if room.fits(exclusive) and _types_match(room.node, probe)
            and self.admission.admits(room.node, now)
        )


def _check_client_ids(requests: Sequence[NodeRequest]) -> None:
    seen: set[str] = set()
    for request in requests:
        if not request.client_id:
            raise BadArgs("every node of a request needs a client_id")
        if request.client_id in seen:
            raise BadArgs(f"client_id {request.client_id!r} appears twice in the request")
        seen.add(request.client_id)


def _default_type(node: Node, exclusive: bool) -> str:
    """The sliver type of a request that names none: ours, or else the node's first (a
    driver's nodes may offer only their own types)."""
    ours = EXCLUSIVE_SLIVER_TYPE if exclusive else SHARED_SLIVER_TYPE
    return ours if ours in node.sliver_types or not node.sliver_types else node.sliver_types[0]


def _types_match(node: Node, request: NodeRequest) -> bool:
    if request.hardware_type and request.hardware_type not in node.hardware_types:
        return False
    return not request.sliver_type or request.sliver_type in node.sliver_types


def _groups(requests: Iterable[NodeRequest]) -> dict[tuple[str, str, bool], list[NodeRequest]]:
    groups: dict[tuple[str, str, bool], list[NodeRequest]] = {}
    for request in requests:
        criteria = (request.hardware_type, request.sliver_type, request.wants_exclusive)
        groups.setdefault(criteria, []).append(request)
    return groups


def _key(room: _Room) -> tuple[object, ...]:
    """Lower is better: fewest of this request here, least load, most room."""
    node = room.node
    return (room.placed, round(node.load, 3), room.used / node.capacity, node.urn)


class _SiteHeaps:
    """Candidate nodes per site, best first; picks from the site this request uses least."""

    def __init__(self, rooms: Iterable[_Room]) -> None:
        self.heaps: dict[str, list[tuple[tuple[object, ...], str]]] = {}
        self.rooms: dict[str, _Room] = {}
        for room in rooms:
            self.rooms[room.node.urn] = room
            self.heaps.setdefault(room.node.site, []).append((_key(room), room.node.urn))
        for heap in self.heaps.values():
            heapq.heapify(heap)

    def best(self, sites: Counter[str], exclusive: bool) -> _Room | None:
        best_rank: tuple[int, tuple[tuple[object, ...], str]] | None = None
        best_site = ""
        for site, heap in self.heaps.items():
            while heap and not self.rooms[heap[0][1]].fits(exclusive):
                heapq.heappop(heap)
            if heap and (best_rank is None or (sites[site], heap[0]) < best_rank):
                best_rank, best_site = (sites[site], heap[0]), site
        if best_rank is None:
            return None
        _, urn = heapq.heappop(self.heaps[best_site])
        return self.rooms[urn]

    def put_back(self, room: _Room) -> None:
        heapq.heappush(self.heaps[room.node.site], (_key(room), room.node.urn))


def _describe(criteria: tuple[str, str, bool]) -> str:
    hardware, sliver, exclusive = criteria
    words = [w for w in (hardware and f"hardware_type {hardware}",
                         sliver and f"sliver_type {sliver}") if w]
    return ("exclusive " if exclusive else "shared ") + (", ".join(words) or "any-type")
