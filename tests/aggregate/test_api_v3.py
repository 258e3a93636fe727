"""The AM API v3 core, called directly with real credentials and a real SQLite file."""

from __future__ import annotations

import base64
import zlib
from datetime import timedelta
from typing import Any

import pytest
from lxml import etree

from sfa.aggregate.slivers import OperationalState
from sfa.errors import GeniCode, SfaError
from sfa.rspecs.reader import read_rspec
from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow

from .conftest import (
    AM_URN,
    GENI3,
    OTHER_AM,
    SLICE1,
    SLICE2,
    Aggregate,
    Pki,
    node,
    node_urn,
    request_rspec,
)

OPTS = {"geni_rspec_version": GENI3}


def code_of(call: Any, *args: Any) -> GeniCode:
    with pytest.raises(SfaError) as info:
        call(*args)
    return info.value.code


def allocate(am: Aggregate, pki: Pki, cred: str, *nodes: str, slice_urn: str = SLICE1,
             options: dict | None = None) -> dict[str, Any]:
    return am.v3.allocate(pki.alice.gid, slice_urn, [cred], request_rspec(*nodes),
                          options or {})


def test_get_version_shape(am: Aggregate) -> None:
    version = am.v3.get_version({})
    assert version["geni_api"] == 3
    assert type(version["geni_single_allocation"]) is int
    assert version["geni_single_allocation"] == 0
    assert version["geni_allocate"] == "geni_many"
    assert version["geni_handles_speaksfor"] is True
    assert set(version["geni_api_versions"]) == {"2", "3"}
    assert {(c["geni_type"], c["geni_version"]) for c in version["geni_credential_types"]} == {
        ("geni_sfa", "3"), ("geni_sfa", "2"), ("geni_abac", "1")}
    ad = version["geni_ad_rspec_versions"][0]
    assert ad["schema"] == "http://www.geni.net/resources/rspec/3/ad.xsd"
    assert "http://sfa.dev/resources/rspec/ext/sfa/1" in ad["extensions"]
    assert version["urn"] == AM_URN


def test_full_lifecycle(am: Aggregate, pki: Pki, cred1: str) -> None:
    alice = pki.alice.gid
    ad = am.v3.list_resources(alice, [], OPTS)
    assert read_rspec(ad).type == "advertisement"

    result = allocate(am, pki, cred1, node("a", node_urn(3)), node("b"))
    slivers = result["geni_slivers"]
    assert [s["geni_allocation_status"] for s in slivers] == ["geni_allocated"] * 2
    manifest = read_rspec(result["geni_rspec"], "manifest")
    by_client = {n.client_id: n for n in manifest.nodes}
    assert by_client["a"].component_id == node_urn(3)
    assert all(n.sliver_id and n.sliver_id.startswith("urn:publicid:IDN+plc+sliver+")
               for n in manifest.nodes)
    expires = parse_rfc3339(slivers[0]["geni_expires"])
    assert expires <= utcnow() + timedelta(minutes=10, seconds=5)

    users = [{"urn": pki.alice.gid.urn, "keys": ["ssh-rsa AAAAB3 alice@laptop"]}]
    provisioned = am.v3.provision(alice, [SLICE1], [cred1],
                                  {**OPTS, "geni_users": users})
    assert {s["geni_allocation_status"] for s in provisioned["geni_slivers"]} == {
        "geni_provisioned"}
    assert {s["geni_operational_status"] for s in provisioned["geni_slivers"]} == {
        "geni_notready"}
    login = read_rspec(provisioned["geni_rspec"], "manifest").nodes[0].services.logins[0]
    assert login.authentication == "ssh-keys" and login.port == 22
    assert login.username == "plc_princeton_exp1" and login.hostname
    assert "ssh-rsa AAAAB3 alice@laptop" in provisioned["geni_rspec"]

    started = am.v3.perform_operational_action(alice, [SLICE1], [cred1], "geni_start", {})
    assert {s["geni_operational_status"] for s in started} == {"geni_ready"}
    status = am.v3.status(alice, [SLICE1], [cred1], {})
    assert status["geni_urn"] == SLICE1
    assert {s["geni_operational_status"] for s in status["geni_slivers"]} == {"geni_ready"}
    described = am.v3.describe(alice, [SLICE1], [cred1], OPTS)
    assert len(described["geni_slivers"]) == 2 and described["geni_urn"] == SLICE1

    wanted = utcnow() + timedelta(days=5)
    renewed = am.v3.renew(alice, [SLICE1], [cred1], format_rfc3339(wanted), {})
    assert {s["geni_expires"] for s in renewed} == {format_rfc3339(wanted)}

    stopped = am.v3.perform_operational_action(alice, [SLICE1], [cred1], "geni_stop", {})
    assert {s["geni_operational_status"] for s in stopped} == {"geni_notready"}
    deleted = am.v3.delete(alice, [SLICE1], [cred1], {})
    assert {d["geni_allocation_status"] for d in deleted} == {"geni_unallocated"}
    empty = am.v3.describe(alice, [SLICE1], [cred1], OPTS)
    assert empty["geni_slivers"] == [] and read_rspec(empty["geni_rspec"]).nodes == []
    assert am.driver.slivers == {}


def test_list_resources_options(am: Aggregate, pki: Pki, cred1: str) -> None:
    allocate(am, pki, cred1, node("x", node_urn(1), exclusive="true"))
    full = am.v3.list_resources(pki.alice.gid, [], OPTS)
    available = am.v3.list_resources(pki.alice.gid, [], {**OPTS, "geni_available": True})
    assert len(read_rspec(full).nodes) == 8
    assert node_urn(1) not in {n.component_id for n in read_rspec(available).nodes}
    packed = am.v3.list_resources(pki.alice.gid, [cred1], {**OPTS, "geni_compressed": True})
    assert zlib.decompress(base64.b64decode(packed)).decode() == full


@pytest.mark.parametrize(("options", "code"), [
    ({}, GeniCode.BADARGS),
    ({"geni_rspec_version": {"type": "GENI", "version": "2"}}, GeniCode.BADVERSION),
    ({"geni_rspec_version": {"type": "ProtoGENI", "version": "3"}}, GeniCode.BADVERSION),
    ({**OPTS, "geni_slice_urn": SLICE1}, GeniCode.BADARGS),
])
def test_list_resources_refusals(am: Aggregate, pki: Pki, options: dict,
                                 code: GeniCode) -> None:
    assert code_of(am.v3.list_resources, pki.alice.gid, [], options) == code


def test_list_resources_with_no_usable_credential(am: Aggregate, pki: Pki) -> None:
    code = code_of(am.v3.list_resources, pki.alice.gid, ["<not-a-credential/>"], OPTS)
    assert code in (GeniCode.CREDENTIAL_INVALID, GeniCode.BADARGS, GeniCode.FORBIDDEN)


def test_geni_version_int_and_case(am: Aggregate, pki: Pki) -> None:
    text = am.v3.list_resources(pki.alice.gid, [], {"geni_rspec_version":
                                                    {"type": "geni", "version": 3}})
    assert "advertisement" in text


@pytest.mark.parametrize(("rspec", "code"), [
    ("", GeniCode.BADARGS),
    ("<rspec", GeniCode.BADARGS),
    (request_rspec(), GeniCode.BADARGS),
    (request_rspec(node("a")).replace('type="request"', 'type="manifest"'), GeniCode.BADARGS),
    (request_rspec(node("a")).replace("rspec/3", "rspec/9"), GeniCode.BADVERSION),
    (request_rspec(node("a", node_urn(99))), GeniCode.BADARGS),
    (request_rspec(node("a", manager=OTHER_AM)), GeniCode.BADARGS),
])
def test_allocate_refuses_bad_requests(am: Aggregate, pki: Pki, cred1: str, rspec: str,
                                       code: GeniCode) -> None:
    before = am.dump()
    assert code_of(am.v3.allocate, pki.alice.gid, SLICE1, [cred1], rspec, {}) == code
    assert am.dump() == before


def test_other_aggregates_nodes_are_ignored(am: Aggregate, pki: Pki, cred1: str) -> None:
    result = allocate(am, pki, cred1, node("mine"), node("theirs", manager=OTHER_AM),
                      node("far", "urn:publicid:IDN+ple+node+n1"))
    assert [n.client_id for n in read_rspec(result["geni_rspec"]).nodes] == ["mine"]


def test_insufficient_nodes_names_what_is_missing(am: Aggregate, pki: Pki, cred1: str) -> None:
    before = am.dump()
    request = [node(f"n{i}", exclusive="true") for i in range(9)]
    with pytest.raises(SfaError) as info:
        allocate(am, pki, cred1, *request)
    assert info.value.code == GeniCode.INSUFFICIENT_NODES
    assert "'n8'" in info.value.message and "exclusive" in info.value.message
    assert am.dump() == before


def test_bound_exclusive_node_taken_by_another_slice(am: Aggregate, pki: Pki, cred1: str,
                                                      cred2: str) -> None:
    allocate(am, pki, cred1, node("a", node_urn(2), exclusive="true"))
    before = am.dump()
    with pytest.raises(SfaError) as info:
        allocate(am, pki, cred2, node("b", node_urn(2)), slice_urn=SLICE2)
    assert info.value.code == GeniCode.INSUFFICIENT_NODES
    assert node_urn(2) in info.value.message
    assert am.dump() == before


def test_duplicate_client_id_in_slice(am: Aggregate, pki: Pki, cred1: str) -> None:
    allocate(am, pki, cred1, node("a"))
    before = am.dump()
    assert code_of(allocate, am, pki, cred1, node("a")) == GeniCode.ALREADYEXISTS
    assert am.dump() == before


def test_wrong_credentials(am: Aggregate, pki: Pki, cred1: str, cred2: str) -> None:
    allocate(am, pki, cred1, node("a"))
    before = am.dump()
    user_cred = pki.user_cred()
    for creds in ([user_cred], [cred2]):
        code = code_of(am.v3.describe, pki.alice.gid, [SLICE1], creds, OPTS)
        assert code in (GeniCode.CREDENTIAL_MISMATCH, GeniCode.FORBIDDEN)
        code = code_of(am.v3.allocate, pki.alice.gid, SLICE1, creds,
                       request_rspec(node("z")), {})
        assert code in (GeniCode.CREDENTIAL_MISMATCH, GeniCode.FORBIDDEN)
    # bob presents alice's credential: stolen
    code = code_of(am.v3.delete, pki.bob.gid, [SLICE1], [cred1], {})
    assert code in (GeniCode.CREDENTIAL_MISMATCH, GeniCode.FORBIDDEN)
    assert am.dump() == before


def test_urn_arguments(am: Aggregate, pki: Pki, cred1: str) -> None:
    allocate(am, pki, cred1, node("a"))
    alice = pki.alice.gid
    assert code_of(am.v3.describe, alice, [node_urn(1)], [cred1], OPTS) == GeniCode.BADARGS
    unknown = "urn:publicid:IDN+plc+sliver+0123456789abcdef"
    assert code_of(am.v3.describe, alice, [unknown], [cred1], OPTS) == GeniCode.SEARCHFAILED
    assert code_of(am.v3.describe, alice, [], [cred1], OPTS) == GeniCode.BADARGS
    assert code_of(am.v3.describe, alice, [SLICE1], [cred1], {}) == GeniCode.BADARGS
    assert code_of(am.v3.describe, alice, ["not a urn"], [cred1], OPTS) == GeniCode.BADARGS


def test_actions_and_states(am: Aggregate, pki: Pki, cred1: str) -> None:
    alice = pki.alice.gid
    urns = [s["geni_sliver_urn"] for s in allocate(am, pki, cred1, node("a"), node("b"))
            ["geni_slivers"]]
    before = am.dump()
    for action in ("", "geni_explode", "geni_start"):
        assert code_of(am.v3.perform_operational_action, alice, [SLICE1], [cred1], action,
                       {}) == GeniCode.UNSUPPORTED
    assert am.dump() == before
    am.v3.provision(alice, [urns[0]], [cred1], OPTS)
    # b is only allocated: without best effort nothing happens, with it a starts alone
    assert code_of(am.v3.perform_operational_action, alice, [SLICE1], [cred1], "geni_start",
                   {}) == GeniCode.UNSUPPORTED
    result = am.v3.perform_operational_action(alice, [SLICE1], [cred1], "geni_start",
                                              {"geni_best_effort": True})
    by_urn = {s["geni_sliver_urn"]: s for s in result}
    assert by_urn[urns[0]]["geni_operational_status"] == "geni_ready"
    assert by_urn[urns[0]]["geni_error"] == ""
    assert "allocated" in by_urn[urns[1]]["geni_error"]
    restarted = am.v3.perform_operational_action(alice, [urns[0]], [cred1], "geni_restart", {})
    assert restarted[0]["geni_operational_status"] == "geni_ready"
    keys = [{"urn": pki.bob.gid.urn, "keys": ["ssh-rsa BBBB bob"]}]
    am.v3.perform_operational_action(alice, [urns[0]], [cred1], "geni_update_users",
                                     {"geni_users": keys})
    assert am.driver.slivers[urns[0]].users[0].keys == ("ssh-rsa BBBB bob",)


def test_provision_best_effort_and_all_or_nothing(am: Aggregate, pki: Pki, cred1: str) -> None:
    alice = pki.alice.gid
    result = allocate(am, pki, cred1, node("a", node_urn(1)), node("b", node_urn(2)))
    urns = {s["geni_sliver_urn"] for s in result["geni_slivers"]}
    am.driver.failing[node_urn(2)] = "node manager unreachable"
    before = am.dump()
    assert code_of(am.v3.provision, alice, [SLICE1], [cred1], OPTS) == GeniCode.ERROR
    assert am.dump() == before
    done = am.v3.provision(alice, [SLICE1], [cred1], {**OPTS, "geni_best_effort": True})
    states = {s["geni_sliver_urn"]: s for s in done["geni_slivers"]}
    assert set(states) == urns
    errors = [s for s in states.values() if s["geni_error"]]
    assert len(errors) == 1 and "unreachable" in errors[0]["geni_error"]
    assert errors[0]["geni_allocation_status"] == "geni_allocated"


def test_operational_action_without_best_effort_is_all_or_nothing(am: Aggregate, pki: Pki,
                                                                  cred1: str) -> None:
    alice = pki.alice.gid
    result = allocate(am, pki, cred1, node("a", node_urn(1)), node("b", node_urn(2)))
    urns = sorted(s["geni_sliver_urn"] for s in result["geni_slivers"])
    am.v3.provision(alice, [SLICE1], [cred1], OPTS)
    am.driver.failing[node_urn(2)] = "node manager unreachable"
    try:
        before = am.dump()
        assert code_of(am.v3.perform_operational_action, alice, [SLICE1], [cred1],
                       "geni_start", {}) == GeniCode.ERROR
        assert am.dump() == before
        # the sliver that did start was stopped again: the backend is as it was
        assert {am.driver.slivers[u].state for u in urns} == {OperationalState.NOTREADY}
        keys = [{"urn": pki.bob.gid.urn, "keys": ["ssh-rsa BBBB bob"]}]
        old_users = {u: am.driver.slivers[u].users for u in urns}
        assert code_of(am.v3.perform_operational_action, alice, [SLICE1], [cred1],
                       "geni_update_users", {"geni_users": keys}) == GeniCode.ERROR
        assert {u: am.driver.slivers[u].users for u in urns} == old_users
        assert am.dump() == before
    finally:
        am.driver.failing.clear()
    started = am.v3.perform_operational_action(alice, [SLICE1], [cred1], "geni_start", {})
    assert {s["geni_operational_status"] for s in started} == {"geni_ready"}


def test_renew_limits(am: Aggregate, pki: Pki) -> None:
    alice = pki.alice.gid
    short = pki.slice_cred(SLICE1, lifetime=timedelta(days=2))
    allocate(am, pki, short, node("a"))
    am.v3.provision(alice, [SLICE1], [short], OPTS)
    before = am.dump()
    beyond_cred = format_rfc3339(utcnow() + timedelta(days=3))
    assert code_of(am.v3.renew, alice, [SLICE1], [short], beyond_cred, {}) == GeniCode.OUTOFRANGE
    beyond_max = format_rfc3339(utcnow() + timedelta(days=45))
    long = pki.slice_cred(SLICE1)
    assert code_of(am.v3.renew, alice, [SLICE1], [long], beyond_max, {}) == GeniCode.OUTOFRANGE
    past = format_rfc3339(utcnow() - timedelta(hours=1))
    assert code_of(am.v3.renew, alice, [SLICE1], [long], past, {}) == GeniCode.OUTOFRANGE
    assert code_of(am.v3.renew, alice, [SLICE1], [long], "tomorrow", {}) == GeniCode.BADARGS
    assert am.dump() == before
    clamped = am.v3.renew(alice, [SLICE1], [short], beyond_cred, {"geni_extend_alap": True})
    granted = parse_rfc3339(clamped[0]["geni_expires"])
    assert granted <= utcnow() + timedelta(days=2)
    assert granted >= utcnow() + timedelta(days=2) - timedelta(minutes=1)


def test_shutdown_freezes_slice(am: Aggregate, pki: Pki, cred1: str) -> None:
    alice = pki.alice.gid
    allocate(am, pki, cred1, node("a"))
    am.v3.provision(alice, [SLICE1], [cred1], OPTS)
    am.v3.perform_operational_action(alice, [SLICE1], [cred1], "geni_start", {})
    assert am.v3.shutdown(alice, SLICE1, [cred1], {}) is True
    assert {s.operational.value for s in am.store.slivers_of(SLICE1)} == {"geni_notready"}
    before = am.dump()
    later = utcnow() + timedelta(days=2)
    assert code_of(am.v3.perform_operational_action, alice, [SLICE1], [cred1], "geni_start",
                   {}) == GeniCode.REFUSED
    assert code_of(am.v3.renew, alice, [SLICE1], [cred1], format_rfc3339(later),
                   {}) == GeniCode.REFUSED
    assert code_of(allocate, am, pki, cred1, node("b")) == GeniCode.REFUSED
    assert code_of(am.v3.delete, alice, [SLICE1], [cred1], {}) == GeniCode.REFUSED
    assert am.dump() == before


def test_restart_keeps_everything(am: Aggregate, pki: Pki, cred1: str) -> None:
    from .conftest import make_aggregate  # noqa: PLC0415

    alice = pki.alice.gid
    allocate(am, pki, cred1, node("a"), node("b"))
    am.v3.provision(alice, [SLICE1], [cred1], OPTS)
    before = am.v3.describe(alice, [SLICE1], [cred1], OPTS)
    am.store.close()
    again = make_aggregate(am.path, pki)
    after = again.v3.describe(alice, [SLICE1], [cred1], OPTS)
    assert after["geni_slivers"] == before["geni_slivers"]
    assert etree.fromstring(after["geni_rspec"].encode()).findall(
        "{*}node")[0].get("sliver_id") == etree.fromstring(
        before["geni_rspec"].encode()).findall("{*}node")[0].get("sliver_id")
    again.store.close()
