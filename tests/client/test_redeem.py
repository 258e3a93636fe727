"""`sfi redeem` against real node managers over TLS with real tickets signed by the plc
aggregate's GID: one node manager is down (its node fails), comes back, and redeem retries it.

The aggregate's node-manager driver (which returns `sfa_tickets` from Describe) has not landed;
the saved tickets are put in the slice state the way createslice saves them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.client.state import SavedTicket, SliceStates
from sfa.deploy.config import LimitsConfig
from sfa.nodemanager.nodedir import open_node
from sfa.server.nm_api import NodeManagerService, start_node_manager
from sfa.trust.gid import GID
from sfa.trust.keys import generate_private_key
from tests.client.conftest import World, sfi, sfi_json
from tests.nodemanager.conftest import Principal
from tests.nodemanager.nodes import TicketMaker, make_node_dir

SLICE = "plc.princeton.exp6"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def nodes(world: World, reactor: Any, alice_dir: Path,
          tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Node managers for plc.node1 (running) and plc.node2 (not yet), and their tickets
    saved in alice's slice state."""
    root = world.plc.deployment.root_authority()
    identity = world.plc.deployment.service_identity("aggregate")
    (record,) = sfi_json(alice_dir, "show", SLICE)["records"]
    maker = TicketMaker(Principal(identity.gid, identity.key), GID.from_pem(record["gid"]),
                        generate_private_key(), ("ssh-rsa AAAAB3Nza alice",))
    state = SliceStates(alice_dir / "slices").load(SLICE)
    managers: dict[str, Any] = {}
    for name in ("node1", "node2"):
        gid, key = root.issue_gid(f"plc.{name}", "node")
        assert key is not None
        directory = make_node_dir(tmp_path / name, Principal(gid, key), root)
        port = _free_port()
        sliver = f"{name}-exp6"
        managers[name] = {"dir": directory, "port": port, "service": None}
        state.tickets[gid.urn] = SavedTicket(
            node_urn=gid.urn, sliver_urn=f"urn:publicid:IDN+plc+sliver+{sliver}",
            url=f"https://127.0.0.1:{port}/", ticket=maker.ticket(gid.urn, sliver=sliver),
            aggregate="plc", slice_key=maker.sealed_key(gid, sliver))
        state.remember_sliver(f"urn:publicid:IDN+plc+sliver+{sliver}", name, "plc")
    SliceStates(alice_dir / "slices").save(state)

    def start(name: str) -> NodeManagerService:
        nm = open_node(managers[name]["dir"])
        nm.recover()
        service = blockingCallFromThread(
            reactor, lambda: start_node_manager(reactor, nm, host="127.0.0.1",
                                                port=managers[name]["port"],
                                                limits=LimitsConfig()))
        managers[name]["service"] = service
        return service

    start("node1")
    yield {"start": start, "managers": managers}
    for entry in managers.values():
        if entry["service"] is not None:
            blockingCallFromThread(reactor, entry["service"].stop)


def test_redeem_retries_the_node_that_was_down(world: World, alice_dir: Path,
                                               nodes: dict[str, Any]) -> None:
    first = sfi(alice_dir, "redeem", SLICE, "node1", "node2")
    assert first.exit_code == 1
    lines = set(first.output.splitlines())
    assert "Success on node1" in lines
    assert any(line.startswith("Error on node2: UNAVAILABLE") for line in lines), lines
    nodes["start"]("node2")
    again = sfi_json(alice_dir, "redeem", SLICE, "node2")
    assert [(r["target"], r["ok"]) for r in again["results"]] == [("node2", True)]
    nm2 = nodes["managers"]["node2"]["service"].nm
    operator = world.plc.deployment.root_authority().gid
    assert [s.to_wire()["sliver_urn"] for s in nm2.list_slivers(operator)] == [
        "urn:publicid:IDN+plc+sliver+node2-exp6"]
    # Without names: every node the aggregate does not report ready (here: both, the
    # aggregate never heard of these slivers); redeeming again is idempotent.
    everything = sfi_json(alice_dir, "redeem", SLICE)
    assert sorted(r["target"] for r in everything["results"]) == ["node1", "node2"]


def test_redeem_without_saved_tickets_says_so(alice_dir: Path) -> None:
    result = sfi(alice_dir, "redeem", "plc.princeton.exp5")
    assert result.exit_code == 1 and result.output.startswith("BADARGS: no saved tickets")


def test_redeem_refuses_a_server_that_is_not_a_node(world: World, alice_dir: Path) -> None:
    states = SliceStates(alice_dir / "slices")
    state = states.load("plc.princeton.exp5")
    state.tickets["urn:publicid:IDN+plc+node+node3"] = SavedTicket(
        node_urn="urn:publicid:IDN+plc+node+node3", sliver_urn="urn:x", ticket="<t/>",
        url=world.plc.aggregate.url, aggregate="plc")
    states.save(state)
    result = sfi_json(alice_dir, "redeem", "plc.princeton.exp5", "urn:x", ok=False)
    assert result["results"][0]["code"] == "FORBIDDEN"
    assert "not a node's GID" in result["results"][0]["error"]
