"""Slice-wide sfi commands against two real aggregates: createslice split by
component_manager_id without a slice manager, keys, renewal, listing, deletion, clean, the
slice-manager delegation, and timeouts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sfa.client.amclient import AmClient
from sfa.client.config import load_config
from sfa.client.session import Session
from sfa.client.state import SliceStates
from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow
from sfa.trust.credential import parse_credential
from sfa.trust.verify import TrustPolicy, authorize
from tests.client.conftest import World, sfi, sfi_json

PLC_AM = "urn:publicid:IDN+plc+authority+am"
PLE_AM = "urn:publicid:IDN+ple+authority+am"


def _request(tmp_path: Path, nodes: list[tuple[str, str]]) -> Path:
    path = tmp_path / "both.xml"
    path.write_text('<rspec xmlns="http://www.geni.net/resources/rspec/3" type="request">'
                    + "".join(f'<node client_id="c{i}" component_manager_id="{am}" '
                              f'component_id="{node}"/>' for i, (am, node) in enumerate(nodes))
                    + "</rspec>")
    return path


def _keys_on(world: World, directory: Path, hrn: str) -> set[tuple[str, ...]]:
    """The keys each sliver of the slice holds at the aggregates' drivers."""
    slivers = {**world.plc.driver.slivers, **world.ple.driver.slivers}
    mine = SliceStates(directory / "slices").load(hrn).slivers
    assert mine and set(mine) <= set(slivers)
    return {tuple(k for user in slivers[urn].users for k in user.keys) for urn in mine}


def test_createslice_spans_both_aggregates_then_the_slice_life(
        world: World, alice_dir: Path, tmp_path: Path) -> None:
    hrn = "plc.princeton.exp2"
    nodes = [(PLC_AM, f"urn:publicid:IDN+plc+node+node{i}") for i in (1, 2, 3)]
    nodes += [(PLE_AM, f"urn:publicid:IDN+ple+node+node{i}") for i in (1, 2)]
    created = sfi(alice_dir, "createslice", hrn, str(_request(tmp_path, nodes)))
    assert created.exit_code == 0, created.output
    lines = sorted(created.output.splitlines())
    assert lines == sorted(["Success on node1"] * 2 + ["Success on node2"] * 2
                           + ["Success on node3"])
    listed = sfi_json(alice_dir, "nodelist", hrn)["nodes"]
    assert sorted((n["aggregate"], n["node"]) for n in listed) == [
        ("plc", "node1"), ("plc", "node2"), ("plc", "node3"), ("ple", "node1"), ("ple", "node2")]
    assert all(n["login"] for n in listed)
    state = SliceStates(alice_dir / "slices").load(hrn)
    assert state.aggregates() == {"plc", "ple"} and len(state.slivers) == 5
    status = sfi_json(alice_dir, "status", hrn)["slivers"]
    assert {s["state"] for s in status} == {"geni_ready"} and len(status) == 5

    alice_pub = world.key_files["alice"].with_suffix(".pub")
    bob_pub = world.key_files["bob"].with_suffix(".pub")
    added = sfi_json(alice_dir, "addkey", hrn, str(bob_pub))
    assert len(added["results"]) == 5 and added["keys"] == [
        alice_pub.read_text().strip(), bob_pub.read_text().strip()]
    assert _keys_on(world, alice_dir, hrn) == {tuple(added["keys"])}
    removed = sfi_json(alice_dir, "delkey", hrn, str(alice_pub))
    assert _keys_on(world, alice_dir, hrn) == {(bob_pub.read_text().strip(),)} == {
        tuple(removed["keys"])}
    assert sfi_json(alice_dir, "nukekeys", hrn)["keys"] == []
    assert _keys_on(world, alice_dir, hrn) == {()}

    assert sfi_json(alice_dir, "update", "slice", hrn, "--expires", "+10d")["ok"]
    until = utcnow() + timedelta(days=20)  # beyond the slice's expiry: the registry first
    renewed = sfi_json(alice_dir, "renewslice", hrn, format_rfc3339(until))
    assert len(renewed["results"]) == 5
    expiring = sfi_json(alice_dir, "expirations", hrn)
    assert parse_rfc3339(expiring["slice_expires"]) >= until - timedelta(seconds=1)
    assert {s["expires"] for s in expiring["slivers"]} == {format_rfc3339(until)}

    deleted = sfi(alice_dir, "deleteslice", hrn)
    assert deleted.exit_code == 0 and deleted.output.count("Success on") == 5
    assert not SliceStates(alice_dir / "slices").path(hrn).exists()
    assert sfi_json(alice_dir, "status", hrn)["slivers"] == []


def test_createslice_refuses_a_node_of_an_unknown_aggregate(world: World, alice_dir: Path,
                                                            tmp_path: Path) -> None:
    before = (dict(world.plc.driver.slivers), dict(world.ple.driver.slivers))
    request = _request(tmp_path, [(PLC_AM, "urn:publicid:IDN+plc+node+node5"),
                                  ("urn:publicid:IDN+elsewhere+authority+am",
                                   "urn:publicid:IDN+elsewhere+node+n1")])
    result = sfi(alice_dir, "createslice", "plc.princeton.exp3", str(request))
    assert result.exit_code == 1 and result.output.startswith("BADARGS: node 'c1' belongs")
    assert (world.plc.driver.slivers, world.ple.driver.slivers) == before


def test_partial_failure_reports_each_node(world: World, alice_dir: Path,
                                           tmp_path: Path) -> None:
    bad = "urn:publicid:IDN+plc+node+node6"
    world.plc.driver.provision_failing[bad] = "disk full"
    try:
        request = _request(tmp_path, [(PLC_AM, bad), (PLC_AM, "urn:publicid:IDN+plc+node+node7")])
        result = sfi(alice_dir, "createslice", "-a", "plc", "plc.princeton.exp4", str(request))
    finally:
        world.plc.driver.provision_failing.clear()
    assert result.exit_code == 1
    lines = set(result.output.splitlines())
    assert "Success on node7" in lines
    assert any(line.startswith("Error on node6: ") and "disk full" in line for line in lines)
    sfi_json(alice_dir, "deleteslice", "plc.princeton.exp4")


def test_clean_forgets_expired_slices_only(alice_dir: Path) -> None:
    states = SliceStates(alice_dir / "slices")
    old, live = states.load("plc.princeton.old"), states.load("plc.princeton.live")
    old.set_expires(utcnow() - timedelta(hours=1))
    live.set_expires(utcnow() + timedelta(hours=1))
    states.save(old)
    states.save(live)
    document = sfi_json(alice_dir, "clean")
    targets = [r["target"] for r in document["results"]]
    assert len(targets) == 1 and targets[0].startswith("slice plc.princeton.old")
    assert not states.path("plc.princeton.old").exists()
    assert states.path("plc.princeton.live").exists()


def test_slice_manager_gets_a_delegated_slice_credential(world: World, alice_dir: Path) -> None:
    """Against an `sm` endpoint sfi delegates the slice credential to the GID the server
    presents; a server whose GID is not a slice manager's gets nothing."""
    sfi(alice_dir, "config", "--slicemgr", world.plc.aggregate.url)
    session = Session(load_config(alice_dir))
    config = session.config.all_aggregates()
    client = AmClient.open(session, "sm", config["sm"])
    with pytest.raises(Exception) as refused:
        client.slice_credentials("plc.princeton.exp1")
    assert "refusing to delegate" in str(refused.value)
    sm_gid = world.plc.deployment.service_identity("slicemgr").gid
    session.server_gid = lambda url: sm_gid  # type: ignore[method-assign]
    (wire,) = client.slice_credentials("plc.princeton.exp1")
    delegated = parse_credential(wire["geni_value"])
    assert delegated.owner_urn == sm_gid.urn and delegated.parent is not None
    policy = TrustPolicy(roots=session.roots)
    call = authorize([wire], sm_gid, policy, operation="createsliver",
                     targets=["urn:publicid:IDN+plc:princeton+slice+exp1"])
    assert call.caller_urn == sm_gid.urn


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A TCP port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(5)
    for conn in accepted:
        conn.close()
    listener.close()


def test_timeout_per_call_reports_timedout(alice_dir: Path, silent_server: str) -> None:
    sfi(alice_dir, "config", "--aggregate", f"dead={silent_server}")
    sfi_json(alice_dir, "gid")  # bootstrap outside the timed call
    result = sfi_json(alice_dir, "-t", "2", "version", "-a", "dead", "-a", "plc", ok=False)
    by_target = {r["target"]: r for r in result["results"]}
    assert by_target["dead"]["code"] == "TIMEDOUT"
    assert result["aggregates"]["plc"]["geni_api"] == 3
