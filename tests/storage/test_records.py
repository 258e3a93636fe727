"""The registry schema and its typed queries against a real SQLite file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sfa.errors import AlreadyExists, DatabaseError
from sfa.storage.db import Database
from sfa.storage.records import RecordRow, RecordStore, row_as_dict
from sfa.storage.registry_schema import MIGRATIONS, open_registry_database
from sfa.timeutil import utcnow


def _row(hrn: str, type: str, **extra: Any) -> RecordRow:
    now = utcnow().replace(microsecond=0)
    authority = hrn.rsplit(".", 1)[0] if "." in hrn else ""
    return RecordRow(
        hrn=hrn, type=type, urn=f"urn:test+{hrn}+{type}", authority=authority,
        date_created=now, last_updated=now, **extra,
    )


@dataclass(frozen=True)
class _Saved:
    id: int
    row: RecordRow


def _insert(store: RecordStore, hrn: str, type: str, **extra: Any) -> _Saved:
    row = store.insert(_row(hrn, type, **extra))
    assert row.id is not None
    return _Saved(row.id, row)


@pytest.fixture
def store(tmp_path: Path) -> RecordStore:
    return RecordStore(open_registry_database(tmp_path / "registry.sqlite"))


def test_schema_has_decided_tables_and_indexes(store: RecordStore) -> None:
    handle = store.database.db()
    assert {"records", "user_keys", "slice_researchers", "authority_pis", "schema_version"} <= set(
        handle.table_names()
    )
    indexes = {i.name for i in handle.table("records").indexes}
    assert {"idx_records_urn", "idx_records_authority"} <= indexes
    assert store.database.schema_version() == max(m.version for m in MIGRATIONS)


def test_insert_get_and_times_round_trip(store: RecordStore) -> None:
    expires = utcnow().replace(microsecond=0) + timedelta(days=30)
    row = store.insert(_row("plc.pri.s1", "slice", expires=expires, description="d"))
    assert row.id is not None
    got = store.get("plc.pri.s1", "slice")
    assert got == row
    assert got.expires == expires and got.expires.tzinfo is not None
    assert store.get_by_urn(row.urn) == row
    assert store.get_by_id(row.id) == row
    assert store.get("plc.pri.s1", "user") is None


def test_hrn_type_unique_in_database(store: RecordStore) -> None:
    store.insert(_row("plc.pri.alice", "user"))
    before = store.database.dump()
    with pytest.raises(AlreadyExists):
        store.insert(_row("plc.pri.alice", "user"))
    # the same name with another type is a different record
    store.insert(_row("plc.pri.alice", "slice"))
    assert [r.type for r in store.find("plc.pri.alice")] == ["slice", "user"]
    assert len(store.database.dump()["records"]) == len(before["records"]) + 1
    # and the database itself refuses a duplicate, whatever the code does
    with pytest.raises(Exception, match="UNIQUE"):
        store.database.db().conn.execute(
            "INSERT INTO records (hrn, type, urn, authority, date_created, last_updated)"
            " VALUES ('plc.pri.alice', 'user', 'other', 'plc.pri', 'x', 'x')"
        )


def test_type_is_checked_by_database(store: RecordStore) -> None:
    with pytest.raises(DatabaseError):
        store.insert(_row("plc.x", "sliver"))
    assert store.database.dump()["records"] == []


def test_children_direct_and_recursive(store: RecordStore) -> None:
    for hrn, type in [
        ("plc", "authority"), ("plc.pri", "authority"), ("plc.pri.alice", "user"),
        ("plc.pri.sub", "authority"), ("plc.pri.sub.bob", "user"), ("plc.prix.eve", "user"),
        ("plc.pri_x.carl", "user"),
    ]:
        store.insert(_row(hrn, type))
    assert [r.hrn for r in store.children("plc.pri")] == ["plc.pri.alice", "plc.pri.sub"]
    assert [r.hrn for r in store.children("plc.pri", recursive=True)] == [
        "plc.pri.alice", "plc.pri.sub", "plc.pri.sub.bob",
    ]
    assert [r.hrn for r in store.all("authority")] == ["plc", "plc.pri", "plc.pri.sub"]


def test_update_changes_only_named_columns(store: RecordStore) -> None:
    row = _insert(store, "plc.alice", "user", email="a@x")
    store.update(row.id, email="new@x", gid="PEM")
    got = store.get_by_id(row.id)
    assert got is not None and (got.email, got.gid, got.hrn) == ("new@x", "PEM", "plc.alice")
    with pytest.raises(ValueError, match="not updatable"):
        store.update(row.id, hrn="plc.mallory")


def test_relations_and_cascade(store: RecordStore) -> None:
    auth = _insert(store, "plc", "authority")
    alice = _insert(store, "plc.alice", "user")
    bob = _insert(store, "plc.bob", "user")
    s1 = _insert(store, "plc.s1", "slice")
    store.set_keys(alice.id, ["ssh-rsa AAA1", "ssh-rsa AAA2", "ssh-rsa AAA1"])
    assert store.keys(alice.id) == ["ssh-rsa AAA1", "ssh-rsa AAA2"]
    store.set_researchers(s1.id, [alice.id, bob.id])
    store.set_pis(auth.id, [bob.id])
    assert [r.hrn for r in store.researchers(s1.id)] == ["plc.alice", "plc.bob"]
    assert [r.hrn for r in store.slices_of(alice.id)] == ["plc.s1"]
    assert [r.hrn for r in store.pis(auth.id)] == ["plc.bob"]
    assert [r.hrn for r in store.pi_authorities(bob.id)] == ["plc"]
    store.delete(alice.id)
    dump = store.database.dump()
    assert dump["user_keys"] == []
    assert [r["user_id"] for r in dump["slice_researchers"]] == [bob.id]


def test_relation_to_missing_record_is_refused(store: RecordStore) -> None:
    s1 = _insert(store, "plc.s1", "slice")
    with pytest.raises(DatabaseError):
        store.set_researchers(s1.id, [9999])
    assert store.database.dump()["slice_researchers"] == []


def test_reopen_keeps_every_record(tmp_path: Path) -> None:
    path = tmp_path / "registry.sqlite"
    store = RecordStore(open_registry_database(path))
    alice = _insert(store, "plc.alice", "user", email="a@x")
    store.set_keys(alice.id, ["ssh-rsa K"])
    before = store.database.dump()
    store.database.close()
    reopened = RecordStore(open_registry_database(path))
    assert reopened.database.dump() == before
    assert reopened.get("plc.alice", "user") == alice.row
    assert row_as_dict(alice.row)["date_created"].endswith("Z")


def test_names_differing_only_in_case_are_one_record(store: RecordStore) -> None:
    saved = _insert(store, "plc.pri.ASLICE", "slice")
    before = store.database.dump()
    with pytest.raises(AlreadyExists):
        store.insert(_row("plc.pri.aslice", "slice"))
    with pytest.raises(Exception, match="UNIQUE"):  # the database itself, not only the code
        store.database.db().conn.execute(
            "INSERT INTO records (hrn, type, urn, authority, date_created, last_updated)"
            " VALUES ('plc.PRI.aslice', 'slice', 'other', 'plc.pri', 'x', 'x')"
        )
    assert store.database.dump() == before
    assert store.get("plc.pri.aslice", "slice") == saved.row
    assert store.get_by_urn(saved.row.urn.upper()) == saved.row
    assert store.find("PLC.pri.aslice") == [saved.row]


def test_migration_refuses_a_database_holding_names_equal_ignoring_case(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    old = Database(path, MIGRATIONS[:1])
    for hrn in ("plc.pri.ASLICE", "plc.pri.aslice"):
        old.db().conn.execute(
            "INSERT INTO records (hrn, type, urn, authority, date_created, last_updated)"
            " VALUES (?, 'slice', ?, 'plc.pri', 'x', 'x')", (hrn, f"urn:{hrn}"))
    old.close()
    clash = r"differ only in case.*plc\.pri\.ASLICE, plc\.pri\.aslice"
    with pytest.raises(DatabaseError, match=clash):
        open_registry_database(path)
    again = Database(path, MIGRATIONS[:1])
    try:  # nothing was changed: still version 1, both records there
        assert again.schema_version() == 1
        assert len(again.dump()["records"]) == 2
    finally:
        again.close()
