"""The aggregate's store and node-manager book in batches: slot claims of many slivers in a
few statements with the same rules as one by one, values slivers share converted once, tickets
stored and marked sent together, slice keys parsed once, sliver URNs from a prefix."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sfa.aggregate import nm_driver
from sfa.aggregate.api_v3 import new_sliver_urn
from sfa.aggregate.inventory import generate_nodes
from sfa.aggregate.nm_book import NodeManagerBook, StoredTicket
from sfa.aggregate.nm_driver import NodeManagerDriver
from sfa.aggregate.slivers import AllocationState, OperationalState, Sliver, UserKeys
from sfa.aggregate.store import AggregateStore
from sfa.errors import DatabaseError, InsufficientNodes, SfaError
from sfa.timeutil import utcnow
from sfa.trust.keys import generate_private_key, private_key_to_pem
from sfa.xrn import hrn_to_urn, urn_to_hrn

from .conftest import SLICE1, Pki, node_urn


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AggregateStore]:
    opened = AggregateStore(tmp_path / "aggregate.sqlite")
    opened.upsert_nodes(generate_nodes("plc", 600, capacity=2))
    yield opened
    opened.close()


def sliver(node: int, *, exclusive: bool = False, users: tuple[UserKeys, ...] = ()) -> Sliver:
    now = utcnow().replace(microsecond=0)
    return Sliver(urn=new_sliver_urn("plc"), slice_urn=SLICE1, node_urn=node_urn(node),
                  client_id=f"c{uuid.uuid4().hex[:8]}", sliver_type="plab-vserver",
                  exclusive=exclusive, expires=now + timedelta(hours=1), created=now,
                  users=users)


def claims(store: AggregateStore) -> list[tuple[str, int, str]]:
    return [(r["node_urn"], r["slot"], r["sliver_urn"])
            for r in store.database.dump()["claims"]]


def test_shared_slivers_on_one_node_take_its_slots_in_turn(store: AggregateStore) -> None:
    first, second = sliver(1), sliver(1)
    store.claim([first, second])
    assert sorted(claims(store)) == sorted([(node_urn(1), 0, first.urn),
                                            (node_urn(1), 1, second.urn)])


@pytest.mark.parametrize(("batch", "error"), [
    ([sliver(1), sliver(1), sliver(1)], InsufficientNodes),  # capacity 2
    ([sliver(1), sliver(1, exclusive=True)], InsufficientNodes),  # in use by the first
    ([sliver(2), sliver(999)], DatabaseError),  # no such node: the sliver's foreign key
])
def test_a_batch_that_breaks_a_rule_claims_nothing(store: AggregateStore,
                                                   batch: list[Sliver],
                                                   error: type[SfaError]) -> None:
    before = store.database.dump()
    with pytest.raises(error):
        store.claim(batch)
    assert store.database.dump() == before


def test_an_exclusive_sliver_takes_every_slot_and_keeps_others_out(
        store: AggregateStore) -> None:
    alone = sliver(3, exclusive=True)
    store.claim([alone])
    assert sorted(slot for node, slot, _ in claims(store) if node == node_urn(3)) == [0, 1]
    with pytest.raises(InsufficientNodes):
        store.claim([sliver(3)])


def test_claims_of_many_nodes_take_a_few_queries(store: AggregateStore) -> None:
    """550 slivers on 550 nodes (over SQLite's chunk of 500 names): two reads per chunk and
    one insert of all slots, whatever the number of slivers."""
    batch = [sliver(i) for i in range(1, 551)]
    statements: list[str] = []
    conn = store.database.db().conn
    conn.set_trace_callback(statements.append)
    try:
        store.claim(batch)
    finally:
        conn.set_trace_callback(None)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4
    assert len(claims(store)) == 550
    assert {(n, s) for n, s, _ in claims(store)} == {(node_urn(i), 0) for i in range(1, 551)}


def test_slivers_read_back_as_written_sharing_their_common_values(
        store: AggregateStore) -> None:
    users = (UserKeys("urn:publicid:IDN+plc+user+alice", ("ssh-rsa AAAA a@b",), "plc_x"),)
    written = [sliver(4, users=users), sliver(5, users=users)]
    store.claim(written)
    read = store.slivers_by_urn([s.urn for s in written])
    assert read == written
    assert read[0].users is read[1].users  # one parse for the slice's users


@pytest.fixture
def book(store: AggregateStore) -> NodeManagerBook:
    return NodeManagerBook(store.database)


def ticket(sliver_urn: str, serial: str) -> StoredTicket:
    return StoredTicket(sliver_urn, node_urn(1), serial, "<ticket/>", "sealed",
                        {"expires": "2030-01-01T00:00:00Z"})


def test_new_tickets_and_older_ones_are_marked_sent_together(store: AggregateStore,
                                                             book: NodeManagerBook) -> None:
    old, new, unsent = sliver(1), sliver(2), sliver(3)
    store.claim([old, new, unsent])
    book.put_tickets([ticket(old.urn, "s-old"), ticket(unsent.urn, "s-unsent")])
    book.put_tickets([ticket(new.urn, "s-new")], sent=[old.urn, new.urn])
    sent = {urn: t.sent for urn, t in book.tickets([old.urn, new.urn, unsent.urn]).items()}
    assert sent == {old.urn: True, new.urn: True, unsent.urn: False}


def test_tickets_that_cannot_be_stored_mark_nothing_sent(store: AggregateStore,
                                                         book: NodeManagerBook) -> None:
    old, new = sliver(1), sliver(2)
    store.claim([old, new])
    book.put_tickets([ticket(old.urn, "s-old")])
    with pytest.raises(DatabaseError):  # a ticket of no sliver: the whole write fails
        book.put_tickets([ticket(new.urn, "s-new"), ticket(new_sliver_urn("plc"), "s-x")],
                         sent=[old.urn, new.urn])
    assert {u: t.sent for u, t in book.tickets([old.urn, new.urn]).items()} == {old.urn: False}


def test_forgetting_revokes_the_stored_tickets_only(store: AggregateStore,
                                                    book: NodeManagerBook) -> None:
    held, fresh = sliver(1), sliver(2)
    store.claim([held, fresh])
    book.put_tickets([ticket(held.urn, "s-held")])
    revoked = book.revoke_tickets([held.urn, fresh.urn], forget=True)
    assert list(revoked) == [held.urn]
    assert book.tickets([held.urn, fresh.urn]) == {}
    assert [r.serial for r in book.pending_revocations("2000-01-01T00:00:00Z")] == ["s-held"]


def test_a_slice_key_is_parsed_once_and_a_new_one_never(
        store: AggregateStore, book: NodeManagerBook, pki: Pki,
        monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Any] = []
    real_load = nm_driver.load_private_key

    def counted(pem):
        loads.append(pem)
        return real_load(pem)

    monkeypatch.setattr(nm_driver, "load_private_key", counted)
    driver = NodeManagerDriver(store, book, client=None,  # type: ignore[arg-type]
                               signer=pki.plc.gid, key=pki.plc.key)
    made, public = driver._slice_key(SLICE1)
    assert driver._slice_key(SLICE1) == (made, public) and loads == []
    assert public.startswith("ssh-rsa ")
    other = NodeManagerDriver(store, book, client=None,  # type: ignore[arg-type]
                              signer=pki.plc.gid, key=pki.plc.key)  # e.g. after a restart
    for _ in range(3):
        key, _ = other._slice_key(SLICE1)
    assert len(loads) == 1 and private_key_to_pem(key) == private_key_to_pem(made)
    replaced = private_key_to_pem(generate_private_key()).decode()
    with store.database.transaction() as handle:
        handle.execute("UPDATE slice_keys SET key_pem = ? WHERE slice_urn = ?",
                       [replaced, SLICE1])
    assert private_key_to_pem(other._slice_key(SLICE1)[0]).decode() == replaced


@pytest.mark.parametrize("authority", ["plc", "plc.princeton", "emulab\\.net.proj",
                                       "ple.site_x-y"])
def test_a_new_sliver_urn_is_the_one_hrn_to_urn_gives(authority: str) -> None:
    urn = new_sliver_urn(authority)
    name = urn.rsplit("+", 1)[1]
    assert len(name) == 32 and int(name, 16) >= 0
    assert urn == hrn_to_urn(f"{authority}.{name}", "sliver")
    assert urn_to_hrn(urn) == (f"{authority}.{name}", "sliver")
    assert new_sliver_urn(authority) != urn


def test_a_sliver_with_changes_is_what_dataclasses_replace_gives() -> None:
    original = sliver(1, users=(UserKeys("urn:publicid:IDN+plc+user+alice", ("k",)),))
    changes: dict[str, Any] = {"operational": OperationalState.READY, "error": "",
                               "allocation": AllocationState.PROVISIONED, "login_user": "x"}
    changed = original.with_changes(**changes)
    assert changed == dataclasses.replace(original, **changes)
    assert hash(changed) == hash(dataclasses.replace(original, **changes))
    assert original.operational is OperationalState.PENDING_ALLOCATION  # untouched
    with pytest.raises(TypeError, match="no field 'colour'"):
        original.with_changes(colour="red")
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.error = "x"  # type: ignore[misc]
