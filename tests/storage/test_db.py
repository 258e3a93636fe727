"""The SQLite layer: WAL, migrations at open, one transaction per change, errors mapped."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
import sqlite_utils

from sfa.errors import AlreadyExists, Busy, DatabaseError, GeniCode
from sfa.storage.db import Database, Migration, map_sqlite_error


def _create_things(handle: sqlite_utils.Database) -> None:
    handle.execute("CREATE TABLE things (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")


def _add_colour(handle: sqlite_utils.Database) -> None:
    handle.execute("ALTER TABLE things ADD COLUMN colour TEXT")


V1 = Migration(1, "things", _create_things)
V2 = Migration(2, "colour", _add_colour)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "test.sqlite"


def test_open_uses_wal_foreign_keys_and_records_versions(path: Path) -> None:
    db = Database(path, [V1])
    handle = db.db()
    assert handle.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert handle.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.schema_version() == 1
    rows = db.dump()["schema_version"]
    assert [(r["version"], r["description"]) for r in rows] == [(1, "things")]
    db.close()


def test_migrations_apply_in_order_only_once(path: Path) -> None:
    Database(path, [V1]).close()
    db = Database(path, [V2, V1])  # order given does not matter
    assert db.schema_version() == 2
    assert "colour" in db.db()["things"].columns_dict
    db.close()
    again = Database(path, [V1, V2])  # a second open applies nothing
    assert [r["version"] for r in again.dump()["schema_version"]] == [1, 2]
    again.close()


def test_failing_migration_leaves_previous_version(path: Path) -> None:
    def broken(handle: sqlite_utils.Database) -> None:
        handle.execute("CREATE TABLE half (x)")
        handle.execute("THIS IS NOT SQL")

    with pytest.raises(DatabaseError):
        Database(path, [V1, Migration(2, "broken", broken)])
    db = Database(path, [V1])
    assert db.schema_version() == 1
    assert "half" not in db.db().table_names()
    db.close()


def test_newer_file_than_code_is_refused(path: Path) -> None:
    Database(path, [V1, V2]).close()
    with pytest.raises(DatabaseError, match="newer"):
        Database(path, [V1])


def test_transaction_commits_or_rolls_back_as_one(path: Path) -> None:
    db = Database(path, [V1])
    with db.transaction() as handle:
        handle.execute("INSERT INTO things (name) VALUES ('a')")
        handle.execute("INSERT INTO things (name) VALUES ('b')")
    before = db.dump()
    with pytest.raises(AlreadyExists), db.transaction() as handle:
        handle.execute("INSERT INTO things (name) VALUES ('c')")
        handle.execute("INSERT INTO things (name) VALUES ('a')")
    assert db.dump() == before
    with pytest.raises(RuntimeError), db.transaction() as handle:
        handle.execute("INSERT INTO things (name) VALUES ('d')")
        raise RuntimeError("caller failed half-way")
    assert db.dump() == before
    db.close()


def test_nested_transaction_joins_outer(path: Path) -> None:
    db = Database(path, [V1])
    with pytest.raises(RuntimeError), db.transaction():
        with db.transaction() as inner:
            inner.execute("INSERT INTO things (name) VALUES ('x')")
        raise RuntimeError("outer fails after inner finished")
    assert db.dump()["things"] == []
    db.close()


def test_single_statements_commit_alone_map_errors_and_join_an_open_transaction(
    path: Path,
) -> None:
    db = Database(path, [V1])
    assert db.execute("INSERT INTO things (name) VALUES (?)", ("a",)) == 1
    assert db.one("SELECT name FROM things WHERE name = ?", ("a",)) == {"name": "a"}
    assert db.one("SELECT name FROM things WHERE name = ?", ("nobody",)) is None
    with pytest.raises(AlreadyExists):
        db.execute("INSERT INTO things (name) VALUES (?)", ("a",))
    with pytest.raises(RuntimeError), db.transaction():
        db.execute("INSERT INTO things (name) VALUES (?)", ("b",))
        raise RuntimeError("the outer transaction fails: the statement goes with it")
    assert db.all("SELECT id, name FROM things ORDER BY id") == [{"id": 1, "name": "a"}]
    other = sqlite3.connect(path)  # committed: another connection sees it
    assert other.execute("SELECT name FROM things").fetchall() == [("a",)]
    other.close()
    db.close()


def test_locked_database_gives_busy_and_changes_nothing(path: Path) -> None:
    db = Database(path, [V1], busy_timeout=0.05)
    before = db.dump()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Busy) as info, db.transaction() as handle:
            handle.execute("INSERT INTO things (name) VALUES ('z')")
        assert info.value.code == GeniCode.BUSY
        assert "locked" in info.value.message
        with pytest.raises(Busy):
            db.execute("INSERT INTO things (name) VALUES ('z')")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert db.dump() == before
    db.close()


def test_readonly_database_refuses_writes(path: Path) -> None:
    Database(path, [V1]).close()
    ro = Database(path, [V1], readonly=True)
    with pytest.raises(DatabaseError) as info, ro.transaction() as handle:
        handle.execute("INSERT INTO things (name) VALUES ('z')")
    assert info.value.code == GeniCode.DBERROR
    assert "read-only" in info.value.message
    assert ro.dump()["things"] == []
    ro.close()


def test_readonly_open_of_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DatabaseError, match="no database"):
        Database(tmp_path / "absent.sqlite", [V1], readonly=True)
    assert not (tmp_path / "absent.sqlite").exists()


def test_disk_full_gives_database_error_and_changes_nothing(path: Path) -> None:
    db = Database(path, [V1])
    conn = db.db().conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    before = db.dump()
    with pytest.raises(DatabaseError, match="full"), db.transaction() as handle:
        for i in range(2000):
            handle.execute("INSERT INTO things (name) VALUES (?)", (f"name-{i:05d}" * 20,))
    assert db.dump() == before
    db.close()


def test_each_thread_has_its_own_connection_and_sees_commits(path: Path) -> None:
    db = Database(path, [V1])
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(20):
                with db.transaction() as handle:
                    handle.execute("INSERT INTO things (name) VALUES (?)", (f"t{n}-{i}",))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(db.dump()["things"]) == 80
    db.close()


def test_error_mapping_messages() -> None:
    assert isinstance(map_sqlite_error(sqlite3.OperationalError("database is locked"), "f"), Busy)
    unknown = map_sqlite_error(sqlite3.DatabaseError("file is not a database"), "f")
    assert type(unknown) is DatabaseError
    assert "nothing was changed" in unknown.message


def test_garbage_file_is_a_database_error(path: Path) -> None:
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(DatabaseError):
        Database(path, [V1])
    assert path.read_bytes() == b"this is not sqlite at all" * 100
