"""Slices of plc's users spanning plc and ple: through plc's slice manager and directly."""

from __future__ import annotations

from datetime import timedelta

from sfa.rspecs.builder import Request
from sfa.rspecs.reader import read_rspec
from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow
from sfa.xrn import hrn_to_urn
from tests.federation.conftest import Federation, binary_text, value_of, wrap

GENI3 = {"type": "GENI", "version": "3"}


def advertised(fed: Federation) -> dict[str, list[str]]:
    """{component_manager_id: [component_id]} from the slice manager's merged advertisement."""
    reply = fed.alice.call(fed.sm.url, "ListResources", [], {"geni_rspec_version": GENI3})
    ad = read_rspec(binary_text(value_of(reply)), expected_type="advertisement")
    nodes: dict[str, list[str]] = {}
    for node in ad.nodes:
        nodes.setdefault(node.component_manager_id or "", []).append(node.component_id or "")
    return nodes


def request(fed: Federation, plc_nodes: int, ple_nodes: int) -> str:
    nodes = advertised(fed)
    built = Request()
    for am_urn, count in ((fed.plc.am_urn, plc_nodes), (fed.ple.am_urn, ple_nodes)):
        for index, component in enumerate(nodes[am_urn][:count]):
            built.node(f"{am_urn.split('+')[1]}-{index}", component_id=component,
                       component_manager_id=am_urn)
    return built.to_xml()


def test_list_resources_merges_both_aggregates_keeping_component_managers(
        federation: Federation) -> None:
    reply = federation.alice.call(federation.sm.url, "ListResources", [],
                                  {"geni_rspec_version": GENI3})
    nodes = advertised(federation)
    assert {k: len(v) for k, v in nodes.items()} == {federation.plc.am_urn: 6,
                                                     federation.ple.am_urn: 4}
    reports = {r["urn"]: r["geni_code"] for r in reply["sfa_aggregates"]}
    assert reports == {federation.plc.am_urn: 0, federation.ple.am_urn: 0}


def test_slice_across_authorities_through_the_slice_manager(federation: Federation) -> None:
    fed = federation
    slice_urn = hrn_to_urn("plc.s1", "slice")
    delegated = [wrap(fed.alice.delegate(fed.slice_credential(fed.alice, "plc.s1", fed.plc),
                                         fed.sm_gid))]
    value = value_of(fed.alice.call(fed.sm.url, "Allocate", slice_urn, delegated,
                                    request(fed, 2, 2), {}))
    assert len(value["geni_slivers"]) == 4
    assert {r["urn"]: r["geni_code"] for r in value["sfa_aggregates"]} == {
        fed.plc.am_urn: 0, fed.ple.am_urn: 0}
    manifest = read_rspec(value["geni_rspec"], expected_type="manifest")
    assert sorted(n.component_manager_id or "" for n in manifest.nodes) == sorted(
        [fed.plc.am_urn] * 2 + [fed.ple.am_urn] * 2)
    # ple's own aggregate holds two slivers of plc's slice
    assert len(fed.ple.slivers(slice_urn)) == 2 and len(fed.plc.slivers(slice_urn)) == 2

    provisioned = value_of(fed.alice.call(fed.sm.url, "Provision", [slice_urn], delegated,
                                          {"geni_rspec_version": GENI3,
                                           "geni_best_effort": True}))
    assert {s["geni_allocation_status"] for s in provisioned["geni_slivers"]} == {
        "geni_provisioned"}
    status = value_of(fed.alice.call(fed.sm.url, "Status", [slice_urn], delegated, {}))
    assert len(status["geni_slivers"]) == 4

    until = format_rfc3339(utcnow() + timedelta(days=3))
    renewed = value_of(fed.alice.call(fed.sm.url, "Renew", [slice_urn], delegated, until,
                                      {"geni_best_effort": True}))
    assert len(renewed) == 4
    assert all(parse_rfc3339(s["geni_expires"]) > utcnow() + timedelta(days=2)
               for s in renewed)

    deleted = value_of(fed.alice.call(fed.sm.url, "Delete", [slice_urn], delegated,
                                      {"geni_best_effort": True}))
    assert len(deleted) == 4
    assert fed.ple.slivers(slice_urn) == [] and fed.plc.slivers(slice_urn) == []


def test_slice_across_authorities_directly(federation: Federation) -> None:
    """alice calls ple's aggregate herself with the slice credential from plc's registry."""
    fed = federation
    slice_urn = hrn_to_urn("plc.s2", "slice")
    creds = [wrap(fed.slice_credential(fed.alice, "plc.s2", fed.plc))]
    nodes = advertised(fed)[fed.ple.am_urn]
    rspec = Request().node("b0", component_id=nodes[0],
                           component_manager_id=fed.ple.am_urn).to_xml()
    allocated = value_of(fed.alice.call(fed.ple.aggregate.url, "Allocate", slice_urn, creds,
                                        rspec, {}))
    assert len(allocated["geni_slivers"]) == 1
    until = format_rfc3339(utcnow() + timedelta(days=2))
    renewed = value_of(fed.alice.call(fed.ple.aggregate.url, "Renew", [slice_urn], creds,
                                      until, {}))
    assert len(renewed) == 1
    value_of(fed.alice.call(fed.ple.aggregate.url, "Delete", [slice_urn], creds, {}))
    assert fed.ple.slivers(slice_urn) == []


def test_allocate_failing_at_one_aggregate_releases_the_other(federation: Federation) -> None:
    fed = federation
    slice_urn = hrn_to_urn("plc.s3", "slice")
    delegated = [wrap(fed.alice.delegate(fed.slice_credential(fed.alice, "plc.s3", fed.plc),
                                         fed.sm_gid))]
    ple_node = advertised(fed)[fed.ple.am_urn][1]
    fed.ple.driver.failing[ple_node] = "node is down"
    try:
        reply = fed.alice.call(fed.sm.url, "Allocate", slice_urn, delegated,
                               request(fed, 1, 2), {})
    finally:
        fed.ple.driver.failing.pop(ple_node)
    assert reply["code"]["geni_code"] != 0
    assert fed.ple.aggregate.url in reply["output"] and "released" in reply["output"]
    codes = {r["urn"]: r["geni_code"] for r in reply["sfa_aggregates"]}
    assert codes[fed.plc.am_urn] == 0 and codes[fed.ple.am_urn] != 0
    assert fed.plc.slivers(slice_urn) == [] and fed.ple.slivers(slice_urn) == []
