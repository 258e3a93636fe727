"""The node manager's remote API over real TLS on 127.0.0.1, and its loopback local API."""

from __future__ import annotations

import ssl
import threading
import xmlrpc.client
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.threads import blockingCallFromThread

from sfa.deploy.config import LimitsConfig
from sfa.nodemanager.manager import NodeManager
from sfa.server.nm_api import NodeManagerService, start_node_manager
from sfa.trust.keys import private_key_to_pem, public_key_to_openssh
from sfa.trust.ticket import verify_lease
from tests.nodemanager.conftest import Principal, make_fifo, wait_for_fifo
from tests.nodemanager.nodes import (
    TicketMaker,
    make_node_dir,
    reopen,
    slice_credential,
    slivers_dir,
)

SLIVER = "urn:publicid:IDN+plc+sliver+s1"


@pytest.fixture
def service(reactor, open_dir, node1, plc) -> Iterator[NodeManagerService]:
    nm = reopen(make_node_dir(open_dir / "node1", node1, plc))
    nm.recover()
    running = blockingCallFromThread(
        reactor, lambda: start_node_manager(
            reactor, nm, host="127.0.0.1", port=0, local_port=0, limits=LimitsConfig(),
            reap_ceiling=timedelta(seconds=30),
        ),
    )
    yield running
    blockingCallFromThread(reactor, running.stop)
    for record in nm.store.slivers():
        nm.backend.destroy(record.login)
    nm.store.close()


def _client(url: str, root: Path, who: Principal | None, tmp: Path) -> Any:
    context = ssl.create_default_context(cafile=str(root))
    context.check_hostname = False  # node GIDs name the node, not a host; the chain is checked
    if who is not None:
        cert, key = tmp / f"{who.gid.hrn}.gid", tmp / f"{who.gid.hrn}.pkey"
        cert.write_text(who.gid.to_pem())
        key.write_bytes(private_key_to_pem(who.key))
        context.load_cert_chain(str(cert), str(key))
    return xmlrpc.client.ServerProxy(url, context=context, allow_none=True)


@pytest.fixture
def connect(service, open_dir, plc, tmp_path):
    root = open_dir / "root.pem"
    root.write_text(plc.gid.to_pem())

    def make(who: Principal | None) -> Any:
        return _client(service.url, root, who, tmp_path)

    return make


@pytest.fixture
def maker(am, exp1, slice_key, alice_ssh) -> TicketMaker:
    return TicketMaker(am, exp1.gid, slice_key, (alice_ssh,))


def _ok(reply: dict) -> Any:
    assert reply["code"]["geni_code"] == 0, reply
    return reply["value"]


def _code(reply: dict) -> str:
    from sfa.errors import GeniCode  # noqa: PLC0415

    return GeniCode(reply["code"]["geni_code"]).name


def test_get_version_anonymous_over_tls(connect, node1):
    value = _ok(connect(None).GetVersion())
    assert value["urn"] == node1.gid.urn and value["slivers"] == 0
    assert value["capacity"]["memory_mb"] == 4096


def test_redeem_start_keys_and_delete_over_tls(  # noqa: PLR0917
    service, connect, maker, node1, am, alice, exp1, princeton, open_dir, bob
):
    nm: NodeManager = service.nm
    fifo = make_fifo(open_dir)
    ticket = maker.ticket(node1.gid.urn, initscript=f"echo $SFA_SLIVER_URN > {fifo}\nsleep 60\n")
    user = connect(alice)  # the dslice way: a user redeems the ticket at the node
    lease = _ok(user.RedeemTicket(ticket, {"slice_key": maker.sealed_key(node1.gid)}))
    assert verify_lease(lease["lease"], nm.policy).sliver_urn == SLIVER
    assert _ok(user.RedeemTicket(ticket, {})) == lease  # idempotent over the wire
    assert _ok(user.RedeemTicket(ticket, "")) == lease  # options "" are {} as on every service

    credential = slice_credential(alice, exp1.gid, princeton)
    assert _code(connect(bob).StartSliver(SLIVER, [])) == "FORBIDDEN"
    started = _ok(user.StartSliver(SLIVER, [credential]))
    assert started["state"] == "started"
    # a lone credential is taken as a list of one, as on every service
    assert _ok(user.SliverStatus(SLIVER, credential))["sliver_urn"] == SLIVER
    assert _code(user.SliverStatus(SLIVER, 42)) == "BADARGS"
    assert wait_for_fifo(fifo).strip() == SLIVER

    local: Any = xmlrpc.client.ServerProxy(service.local_url, allow_none=True)
    assert local.GetKeys("plc_princeton_exp1")[0] == maker.user_keys[0]
    bob_key = public_key_to_openssh(bob.key)
    users = [{"urn": "urn:publicid:IDN+plc:princeton+user+bob", "keys": [bob_key]}]
    _ok(connect(am).UpdateKeys(SLIVER, users, []))
    assert local.GetKeys("plc_princeton_exp1") == [bob_key, public_key_to_openssh(maker.slice_key)]
    assert local.GetSliverInfo("plc.princeton.exp1")["sliver_urn"] == SLIVER

    status = _ok(connect(am).SliverStatus(SLIVER, []))
    assert status["running"] and status["processes"] >= 1
    assert [s["sliver_urn"] for s in _ok(connect(am).ListSlivers([]))] == [SLIVER]
    assert _ok(connect(am).DeleteSliver(SLIVER, [])) is True
    assert not (slivers_dir(nm) / "plc_princeton_exp1").exists()
    assert _code(connect(am).SliverStatus(SLIVER, [])) == "SEARCHFAILED"
    with pytest.raises(xmlrpc.client.Fault) as fault:
        local.GetKeys("plc_princeton_exp1")
    assert fault.value.faultCode == 12


def test_replay_refused_over_tls_and_nothing_changes(service, connect, maker, node1, am):
    nm: NodeManager = service.nm
    _ok(connect(am).RedeemTicket(maker.ticket(node1.gid.urn, serial="wire-1"), {}))
    before = nm.store.database.dump()
    replay = maker.ticket(node1.gid.urn, serial="wire-1", sliver="s7")
    assert _code(connect(am).RedeemTicket(replay, {})) == "REFUSED"
    garbage = "<signed-ticket><ticket/></signed-ticket>"
    assert _code(connect(am).RedeemTicket(garbage, {})) == "CREDENTIAL_INVALID"
    assert nm.store.database.dump() == before
    assert _ok(connect(None).GetVersion())["slivers"] == 1  # still answering


def test_methods_other_than_getversion_need_a_client_certificate(connect, service):
    assert _code(connect(None).ListSlivers([])) == "FORBIDDEN"


def test_lease_expiry_is_reaped_without_any_call(service, maker, node1, am):
    nm: NodeManager = service.nm
    gone = threading.Event()
    nm.on_reaped = lambda urn: gone.set()
    expires = datetime.now(UTC) + timedelta(seconds=2)
    nm.redeem(maker.ticket(node1.gid.urn, expires=expires))
    service.reaper.poke()
    assert gone.wait(15), "the lease ended but the sliver was not reaped"
    assert nm.store.slivers() == []
    assert not (slivers_dir(nm) / "plc_princeton_exp1").exists()


def test_keys_that_would_inject_lines_are_refused_and_nothing_changes(service, connect, maker,
                                                                      node1, am):
    nm: NodeManager = service.nm
    _ok(connect(am).RedeemTicket(maker.ticket(node1.gid.urn), {}))
    keys_file = slivers_dir(nm) / "plc_princeton_exp1/home/plc_princeton_exp1/.ssh/authorized_keys"
    before = (nm.store.database.dump(), keys_file.read_text())
    for bad in ("ssh-rsa AAAA x\ncommand=\"sh\" ssh-rsa BBBB", "not a key", ""):
        users = [{"urn": "urn:publicid:IDN+plc:princeton+user+eve", "keys": [bad]}]
        assert _code(connect(am).UpdateKeys(SLIVER, users, [])) == "BADARGS"
    assert _code(connect(am).UpdateKeys(SLIVER, "nonsense", [])) == "BADARGS"
    assert (nm.store.database.dump(), keys_file.read_text()) == before
