"""Reading a request RSpec into what the mapper needs (via sfa.rspecs, read leniently)."""

from __future__ import annotations

from dataclasses import dataclass

from sfa.errors import BadArgs
from sfa.rspecs.model import REQUEST
from sfa.rspecs.reader import read_rspec

from .mapping import NodeRequest

MAX_REQUEST_NODES = 20_000


@dataclass(frozen=True)
class ParsedRequest:
    """The nodes of a request RSpec and its slice init script, if any."""

    nodes: tuple[NodeRequest, ...]
    init_script: str | None = None


def parse_request(text: object) -> ParsedRequest:
    """The nodes of a request RSpec; BADARGS for an empty, malformed or non-request document."""
    if not isinstance(text, str) or not text.strip():
        raise BadArgs("the request RSpec is empty; send a GENI v3 request RSpec")
    rspec = read_rspec(text, expected_type=REQUEST)
    if rspec.type != REQUEST:
        raise BadArgs(f"the RSpec is of type {rspec.type!r}; Allocate needs a request RSpec")
    if not rspec.nodes:
        raise BadArgs("the request RSpec names no node")
    if len(rspec.nodes) > MAX_REQUEST_NODES:
        raise BadArgs(f"the request names {len(rspec.nodes)} nodes; the limit is "
                      f"{MAX_REQUEST_NODES}")
    nodes = tuple(
        NodeRequest(
            client_id=node.client_id or "",
            component_id=node.component_id or "",
            component_manager_id=node.component_manager_id or "",
            hardware_type=next((h.name for h in node.hardware_types if h.name), ""),
            sliver_type=next((s.name for s in node.sliver_types if s.name), ""),
            exclusive=node.exclusive,
        )
        for node in rspec.nodes
    )
    return ParsedRequest(nodes, rspec.init_script)
