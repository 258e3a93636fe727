"""The node manager over real tickets, real leases, a real SQLite file and real slivers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sfa.errors import (
    AlreadyExists,
    BadArgs,
    CredentialMismatch,
    CredentialSignerUntrusted,
    Expired,
    Forbidden,
    Refused,
    SearchFailed,
    SfaError,
)
from sfa.nodemanager import process
from sfa.nodemanager.admission import Thresholds
from sfa.nodemanager.backend import UserKeys
from sfa.nodemanager.localapi import LocalApi
from sfa.nodemanager.manager import NodeManager
from sfa.nodemanager.resources import Resources
from sfa.nodemanager.store import STARTED, Revocation
from sfa.trust.gid import GID
from sfa.trust.keys import load_private_key, public_key_to_openssh
from sfa.trust.ticket import TicketResources, parse_ticket, verify_lease
from tests.nodemanager.conftest import make_fifo, wait_for_fifo
from tests.nodemanager.nodes import (
    TicketMaker,
    make_node_dir,
    reopen,
    slice_credential,
    slivers_dir,
)

SLIVER = "urn:publicid:IDN+plc+sliver+s1"


@pytest.fixture
def maker(am, exp1, slice_key, alice_ssh) -> TicketMaker:
    return TicketMaker(am, exp1.gid, slice_key, (alice_ssh,))


@pytest.fixture
def node_dir(open_dir, node1, plc) -> Path:
    return make_node_dir(open_dir / "node1", node1, plc)


@pytest.fixture
def nm(node_dir) -> Iterator[NodeManager]:
    manager = reopen(node_dir)
    yield manager
    for record in manager.store.slivers():
        manager.backend.destroy(record.login)
    manager.store.close()


def _snapshot(nm: NodeManager) -> tuple[dict, list[str]]:
    return nm.store.database.dump(), sorted(os.listdir(slivers_dir(nm)))


def _home(nm: NodeManager, login: str = "plc_princeton_exp1") -> Path:
    return slivers_dir(nm) / login / "home" / login


def test_redeem_creates_the_sliver_and_returns_a_signed_lease(nm, maker, node1, exp1, slice_key):
    ticket = maker.ticket(node1.gid.urn)
    result = nm.redeem(ticket, slice_key=maker.sealed_key(node1.gid))
    lease = verify_lease(result.lease, nm.policy, node_urn=node1.gid.urn)
    assert lease.sliver_urn == SLIVER and lease.expires == result.expires
    root = slivers_dir(nm) / result.login
    assert GID.from_pem((root / "etc/slice.gid").read_text()).urn == exp1.gid.urn
    assert GID.from_pem((root / "etc/node.gid").read_text()).urn == node1.gid.urn
    keys = (_home(nm) / ".ssh/authorized_keys").read_text().splitlines()
    assert keys == [*maker.user_keys, public_key_to_openssh(slice_key)]
    private = load_private_key((_home(nm) / ".ssh/id_rsa").read_bytes())
    assert private.private_numbers() == slice_key.private_numbers()
    assert nm.info(SLIVER).record.state == "ready"


def test_the_same_ticket_twice_returns_the_same_lease(nm, maker, node1):
    ticket = maker.ticket(node1.gid.urn)
    first = nm.redeem(ticket)
    before = _snapshot(nm)
    assert nm.redeem(ticket) == first
    assert _snapshot(nm) == before
    assert len(nm.store.slivers()) == 1


def test_a_replayed_serial_with_other_content_is_refused(nm, maker, node1):
    nm.redeem(maker.ticket(node1.gid.urn, serial="serial-1"))
    before = _snapshot(nm)
    forged = maker.ticket(node1.gid.urn, serial="serial-1", initscript="echo other")
    with pytest.raises(Refused, match="replay"):
        nm.redeem(forged)
    assert _snapshot(nm) == before


def test_a_ticket_for_another_node_is_refused_there(nm, maker, node1, node2, open_dir, plc):  # noqa: PLR0917
    ticket = maker.ticket(node1.gid.urn)
    nm.redeem(ticket)
    other = reopen(make_node_dir(open_dir / "node2", node2, plc))
    before = _snapshot(other)
    with pytest.raises(CredentialMismatch):
        other.redeem(ticket)
    assert _snapshot(other) == before
    other.store.close()


def test_a_redeemed_ticket_whose_sliver_was_deleted_cannot_come_back(nm, maker, node1, am):
    ticket = maker.ticket(node1.gid.urn)
    nm.redeem(ticket)
    nm.delete(SLIVER, am.gid, [])
    before = _snapshot(nm)
    with pytest.raises(Refused):
        nm.redeem(ticket)
    assert _snapshot(nm) == before


def test_tickets_from_untrusted_or_unauthorized_issuers_are_refused(  # noqa: PLR0917
    nm, maker, node1, princeton, exp1, slice_key
):
    gid, key = princeton.issue_service_gid("am", "127.0.0.1")
    outsider = TicketMaker(type(maker.am)(gid, key), exp1.gid, slice_key, maker.user_keys)
    before = _snapshot(nm)
    with pytest.raises(CredentialSignerUntrusted):
        nm.redeem(outsider.ticket(node1.gid.urn))  # plc.princeton is no authority over plc.node1
    assert _snapshot(nm) == before


def test_expired_ticket_is_refused(nm, maker, node1):
    before = _snapshot(nm)
    old = datetime.now(UTC) - timedelta(minutes=1)
    with pytest.raises(SfaError) as caught:
        nm.redeem(maker.ticket(node1.gid.urn, expires=old, valid_from=old - timedelta(hours=1)))
    assert caught.value.code.name in ("CREDENTIAL_EXPIRED", "REFUSED")
    assert _snapshot(nm) == before


def test_a_slice_key_sealed_for_another_node_is_refused(nm, maker, node1, node2):
    before = _snapshot(nm)
    with pytest.raises(Forbidden):
        nm.redeem(maker.ticket(node1.gid.urn), slice_key=maker.sealed_key(node2.gid))
    assert _snapshot(nm) == before


def test_admission_refusal_creates_nothing(node_dir, maker, node1):
    small = reopen(node_dir, capacity=Resources(memory_mb=100))
    before = _snapshot(small)
    with pytest.raises(Refused, match="memory_mb"):
        small.redeem(maker.ticket(node1.gid.urn))
    assert _snapshot(small) == before
    full_disk = reopen(node_dir, thresholds=Thresholds(min_free_disk_percent=100.5))
    with pytest.raises(Refused, match="disk"):
        full_disk.redeem(maker.ticket(node1.gid.urn))
    assert _snapshot(full_disk) == before


def test_capacity_is_shared_between_slivers(node_dir, maker, node1, am, exp2, slice_key):  # noqa: PLR0917
    nm = reopen(node_dir, capacity=Resources(memory_mb=200))
    nm.redeem(maker.ticket(node1.gid.urn))
    second = TicketMaker(am, exp2.gid, slice_key, maker.user_keys)
    with pytest.raises(Refused):
        nm.redeem(second.ticket(node1.gid.urn, sliver="s2"))
    assert nm.version()["free"]["memory_mb"] == 72
    nm.delete(SLIVER, am.gid, [])
    nm.redeem(second.ticket(node1.gid.urn, sliver="s2"))
    assert [r.slice_urn for r in nm.store.slivers()] == [exp2.gid.urn]
    nm.delete("urn:publicid:IDN+plc+sliver+s2", am.gid, [])


def test_one_sliver_per_slice_per_node(nm, maker, node1):
    nm.redeem(maker.ticket(node1.gid.urn))
    with pytest.raises(AlreadyExists):
        nm.redeem(maker.ticket(node1.gid.urn, sliver="s9"))


def test_start_stop_by_the_issuing_am_and_by_a_slice_credential_holder(  # noqa: PLR0917
    nm, maker, node1, am, alice, bob, exp1, princeton, open_dir
):
    fifo = make_fifo(open_dir)
    nm.redeem(maker.ticket(node1.gid.urn, initscript=f"echo up > {fifo}\nexec sleep 60\n"))
    info = nm.start(SLIVER, am.gid, [])
    wait_for_fifo(fifo)
    assert info.record.state == STARTED and nm.info(SLIVER).running
    with pytest.raises(Forbidden):
        nm.stop(SLIVER, bob.gid, [])
    assert nm.info(SLIVER).running
    credential = slice_credential(alice, exp1.gid, princeton)
    with pytest.raises(SfaError) as caught:
        nm.stop(SLIVER, bob.gid, [credential])  # alice's credential presented by bob
    assert caught.value.code.name.startswith("CREDENTIAL") or caught.value.code.name == "FORBIDDEN"
    assert nm.info(SLIVER).running
    stopped = nm.stop(SLIVER, alice.gid, [credential])
    assert stopped.record.state == "stopped" and not stopped.running


def test_update_keys_replaces_the_authorized_keys_and_getkeys_follows(  # noqa: PLR0917
    nm, maker, node1, am, bob, slice_key
):
    nm.redeem(maker.ticket(node1.gid.urn))
    local = LocalApi(nm.store)
    slice_public = public_key_to_openssh(slice_key)
    assert local.get_keys("plc_princeton_exp1") == [*maker.user_keys, slice_public]
    bob_key = public_key_to_openssh(bob.key)
    nm.update_keys(SLIVER, (UserKeys("urn:publicid:IDN+plc:princeton+user+bob", (bob_key,)),),
                   am.gid, [])
    assert (_home(nm) / ".ssh/authorized_keys").read_text().splitlines() == [bob_key, slice_public]
    assert local.get_keys("plc.princeton.exp1") == [bob_key, slice_public]
    info = local.get_sliver_info("urn:publicid:IDN+plc:princeton+slice+exp1")
    assert info["sliver_urn"] == SLIVER and info["login"] == "plc_princeton_exp1"
    with pytest.raises(SearchFailed):
        local.get_keys("nobody_here")


def test_delete_removes_everything_and_kills_the_processes(nm, maker, node1, am, open_dir):
    fifo = make_fifo(open_dir)
    nm.redeem(maker.ticket(node1.gid.urn, initscript=f"sleep 60 &\necho up > {fifo}\nsleep 60\n"))
    nm.start(SLIVER, am.gid, [])
    wait_for_fifo(fifo)
    pgid = nm.backend.status("plc_princeton_exp1").pid
    assert len(process.members(pgid=pgid)) >= 2  # the shell and its background sleep
    nm.delete(SLIVER, am.gid, [])
    assert process.members(pgid=pgid) == []
    assert not (slivers_dir(nm) / "plc_princeton_exp1").exists()
    assert nm.store.slivers() == []
    nm.delete(SLIVER, am.gid, [])  # idempotent
    with pytest.raises(SearchFailed):
        nm.info(SLIVER)


def test_renew_sets_the_expiry_of_a_ticket_of_the_issuer(nm, maker, node1, am):
    first = nm.redeem(maker.ticket(node1.gid.urn))
    later = first.expires + timedelta(hours=5)
    renewal = maker.ticket(node1.gid.urn, expires=later)
    renewed = nm.renew(SLIVER, renewal)
    assert renewed.expires == later and nm.info(SLIVER).record.expires == later
    assert verify_lease(renewed.lease, nm.policy).expires == later
    assert nm.renew(SLIVER, renewal) == renewed  # idempotent
    # Its aggregate may shorten a lease (AM API v3 Renew to an earlier time).
    earlier = first.expires - timedelta(minutes=30)
    shortened = nm.renew(SLIVER, maker.ticket(node1.gid.urn, expires=earlier))
    assert shortened.expires == earlier and nm.info(SLIVER).record.expires == earlier
    assert verify_lease(shortened.lease, nm.policy).expires == earlier
    before = _snapshot(nm)
    with pytest.raises(BadArgs):
        nm.renew(SLIVER, maker.ticket(node1.gid.urn, sliver="other"))
    assert _snapshot(nm) == before


def test_expired_leases_are_reaped(nm, maker, node1, am, open_dir):
    fifo = make_fifo(open_dir)
    nm.redeem(maker.ticket(node1.gid.urn, initscript=f"echo up > {fifo}\nexec sleep 60\n"))
    nm.start(SLIVER, am.gid, [])
    wait_for_fifo(fifo)
    assert nm.reap_expired() == []
    later = datetime.now(UTC) + timedelta(hours=3)
    assert nm.reap_expired(later) == [SLIVER]
    assert nm.store.slivers() == [] and not (slivers_dir(nm) / "plc_princeton_exp1").exists()


def test_an_expired_sliver_cannot_be_acted_on(node_dir, maker, node1, am):
    nm = reopen(node_dir)
    nm.redeem(maker.ticket(node1.gid.urn))
    nm.clock = lambda: datetime.now(UTC) + timedelta(hours=3)
    with pytest.raises(Expired):
        nm.start(SLIVER, am.gid, [])
    assert nm.store.slivers() == []


def test_restart_recovery_restarts_running_slivers_and_reaps_expired_ones(  # noqa: PLR0917
    node_dir, maker, node1, am, exp2, slice_key, open_dir
):
    nm = reopen(node_dir)
    fifo = make_fifo(open_dir)
    nm.redeem(maker.ticket(node1.gid.urn, initscript=f"echo up > {fifo}\nexec sleep 60\n"))
    nm.start(SLIVER, am.gid, [])
    wait_for_fifo(fifo)
    short = TicketMaker(am, exp2.gid, slice_key, maker.user_keys)
    soon = datetime.now(UTC) + timedelta(minutes=30)
    nm.redeem(short.ticket(node1.gid.urn, sliver="s2", expires=soon))
    nm.backend.stop("plc_princeton_exp1")  # the node rebooted: its processes are gone
    nm.store.close()

    again = reopen(node_dir)
    again.clock = lambda: datetime.now(UTC) + timedelta(hours=1)
    report = again.recover()
    wait_for_fifo(fifo)  # the init script ran again
    assert report["reaped"] == ["urn:publicid:IDN+plc+sliver+s2"]
    assert report["restarted"] == [SLIVER]
    assert again.info(SLIVER).running
    assert not (slivers_dir(again) / "plc_princeton_exp2").exists()
    again.delete(SLIVER, am.gid, [])


def test_listing_for_the_node_authority_and_the_issuing_am(nm, maker, node1, am, plc, alice):  # noqa: PLR0917
    nm.redeem(maker.ticket(node1.gid.urn))
    assert [i.record.sliver_urn for i in nm.list_slivers(am.gid)] == [SLIVER]
    assert [i.record.sliver_urn for i in nm.list_slivers(plc.gid)] == [SLIVER]
    assert nm.list_slivers(alice.gid) == []
    version = nm.version()
    assert version["urn"] == node1.gid.urn and version["slivers"] == 1


def test_ticket_resources_left_at_zero_take_the_defaults(nm, maker, node1):
    nm.redeem(maker.ticket(node1.gid.urn, resources=TicketResources(cpu_share=64)))
    assert nm.info(SLIVER).record.resources == Resources(cpu_share=64)


def test_warm_up_changes_nothing_and_redemption_still_verifies(nm, maker, node1):
    before = _snapshot(nm)
    nm.warm_up()
    assert _snapshot(nm) == before
    result = nm.redeem(maker.ticket(node1.gid.urn), slice_key=maker.sealed_key(node1.gid))
    assert verify_lease(result.lease, nm.policy, node_urn=node1.gid.urn).sliver_urn == SLIVER


def test_statements_per_operation_stay_few(nm, maker, node1, am):
    """The node's store runs one statement per read or single change, one transaction where
    several changes go together: a redemption, a start and a revocation stay within a few
    statements (in SQLite's own accounting, sqlite3's trace callback)."""
    seen: list[str] = []
    nm.store.database.db().conn.set_trace_callback(seen.append)
    ticket = maker.ticket(node1.gid.urn)
    serial = parse_ticket(ticket).serial
    counts = {}
    for name, operation in (
        ("redeem", lambda: nm.redeem(ticket)),
        ("start", lambda: nm.start(SLIVER, am.gid, [])),
        ("revoke", lambda: nm.revoke([Revocation(serial, am.gid.urn, SLIVER,
                                                 datetime.now(UTC) + timedelta(hours=2))],
                                     am.gid)),
    ):
        seen.clear()
        operation()
        counts[name] = len(seen)
    nm.store.database.db().conn.set_trace_callback(None)
    # redeem: revoked? redeemed? in the way? allocated; BEGIN, 3 inserts, COMMIT; ready.
    # start: the sliver; started. revoke: record it; the sliver; its first serial; BEGIN, 2
    # deletes, COMMIT.
    assert counts == {"redeem": 10, "start": 2, "revoke": 7}
    assert nm.store.sliver(SLIVER) is None and nm.store.revocation(serial) is not None
