"""`sfi rspec request`: a request RSpec made from the aggregates' advertisements."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sfa.errors import BadArgs, InsufficientNodes
from sfa.rspecs.builder import Request
from sfa.rspecs.model import Node
from sfa.rspecs.reader import read_rspec


def request_from_ads(ads: Mapping[str, str], *, count: int | None,
                     component_ids: Sequence[str] = (), init_script: str | None = None) -> str:
    """A bound request for the nodes named by `component_ids` (URN or component name), or for
    the first `count` available nodes, taken round-robin over the aggregates; `init_script`
    is the slice's init script (our RSpec extension)."""
    offered = {nick: [n for n in read_rspec(text).nodes if n.component_id]
               for nick, text in ads.items()}
    if component_ids:
        chosen = [_find(offered, wanted) for wanted in component_ids]
    else:
        if not count or count < 1:
            raise BadArgs("give --nodes N (1 or more) or --component-id ...")
        chosen = _first_available(offered, count)
    request = Request()
    for index, node in enumerate(chosen, start=1):
        request.node(f"node{index}", component_id=node.component_id,
                     component_manager_id=node.component_manager_id)
    if init_script:
        request.init_script(init_script)
    return request.to_xml()


def _find(offered: Mapping[str, list[Node]], wanted: str) -> Node:
    for nodes in offered.values():
        for node in nodes:
            if wanted in (node.component_id, node.component_name):
                return node
    raise BadArgs(f"no aggregate advertises a node {wanted!r}")


def _first_available(offered: Mapping[str, list[Node]], count: int) -> list[Node]:
    queues = [[n for n in nodes if n.available is not False] for _, nodes in
              sorted(offered.items())]
    chosen: list[Node] = []
    while len(chosen) < count and any(queues):
        for queue in queues:
            if queue and len(chosen) < count:
                chosen.append(queue.pop(0))
    if len(chosen) < count:
        raise InsufficientNodes(f"asked for {count} nodes, the aggregates have {len(chosen)} "
                                "available")
    return chosen
