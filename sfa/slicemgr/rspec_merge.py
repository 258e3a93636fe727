"""RSpecs across aggregates: merge advertisements and manifests, split a request by
component_manager_id (matched to each aggregate by authority)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from sfa.errors import BadArgs, SfaError
from sfa.rspecs.model import ExtensionText, Link, Node, RSpec
from sfa.rspecs.reader import read_rspec
from sfa.rspecs.writer import write_rspec
from sfa.timeutil import utcnow
from sfa.xrn import hrn_authority, urn_to_hrn


def authority_of(urn: str) -> str:
    """The authority HRN of a URN ("" when it is not one): `+authority+am` and `+authority+cm`
    of the same authority match."""
    try:
        hrn, kind = urn_to_hrn(urn)
    except SfaError:
        return ""
    return hrn if kind.startswith("authority") else hrn_authority(hrn)


def merge_rspecs(texts: Iterable[str], kind: str) -> str:
    """One RSpec of type `kind` holding every node and link of `texts`, in order; each node
    keeps its component_manager_id. The earliest expiry wins."""
    documents = [read_rspec(text, expected_type=kind) for text in texts]
    expiries = [d.expires for d in documents if d.expires is not None]
    merged = RSpec(
        type=kind,
        generated=utcnow(),
        expires=min(expiries) if expiries else None,
        nodes=[node for d in documents for node in d.nodes],
        links=[link for d in documents for link in d.links],
        extensions=_unique(ext for d in documents for ext in d.extensions),
    )
    return write_rspec(merged, strict=False)


def split_request(text: str, aggregate_urns: Sequence[str]) -> dict[str, str]:
    """{aggregate URN: its part of the request}. A node without component_manager_id goes to
    the only aggregate, or is refused when there are several; links must stay within one."""
    request = read_rspec(text, expected_type="request")
    owners = {authority_of(urn): urn for urn in aggregate_urns}
    groups: dict[str, list[Node]] = {}
    for node in request.nodes:
        groups.setdefault(_owner(node, owners, aggregate_urns), []).append(node)
    links = _links_by_owner(request.links, groups)
    return {urn: write_rspec(replace(request, nodes=nodes, links=links.get(urn, [])),
                             strict=False)
            for urn, nodes in groups.items()}


def _owner(node: Node, owners: dict[str, str], aggregate_urns: Sequence[str]) -> str:
    if not node.component_manager_id:
        if len(aggregate_urns) == 1:
            return aggregate_urns[0]
        raise BadArgs(f"node {node.client_id!r} names no component_manager_id; with several "
                      f"aggregates each node must name one of {sorted(aggregate_urns)}")
    owner = owners.get(authority_of(node.component_manager_id))
    if owner is None:
        raise BadArgs(f"node {node.client_id!r} belongs to {node.component_manager_id}, which "
                      f"this slice manager does not reach (it reaches {sorted(aggregate_urns)})")
    return owner


def _links_by_owner(links: Sequence[Link], groups: dict[str, list[Node]]
                    ) -> dict[str, list[Link]]:
    where = {iface.client_id: urn for urn, nodes in groups.items()
             for node in nodes for iface in node.interfaces if iface.client_id}
    result: dict[str, list[Link]] = {}
    for link in links:
        owners = {where.get(ref.client_id or "") for ref in link.interface_refs}
        if len(owners) != 1 or None in owners:
            raise BadArgs(f"link {link.client_id!r} joins interfaces of several aggregates "
                          "(or unknown ones); links across aggregates are not supported")
        result.setdefault(owners.pop() or "", []).append(link)
    return result


def _unique(items: Iterable[ExtensionText]) -> list[ExtensionText]:
    return list(dict.fromkeys(items))
