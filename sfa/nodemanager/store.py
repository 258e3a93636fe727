"""The node's durable state (one SQLite file): redeemed tickets, slivers and their leases.

A ticket serial is recorded forever (replay protection, even after its sliver is deleted);
a sliver row lives from redemption to deletion; each redemption or renewal adds a lease.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from sfa.nodemanager.backend import UserKeys
from sfa.nodemanager.resources import Resources, total
from sfa.storage.db import Database, Migration
from sfa.timeutil import format_rfc3339, parse_rfc3339, utcnow

# Sliver states: creating (row written, backend not done), ready, started, stopped, failed.
CREATING, READY, STARTED, STOPPED, FAILED = "creating", "ready", "started", "stopped", "failed"


def _schema_v1(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE tickets (serial TEXT PRIMARY KEY, digest TEXT NOT NULL,"
        " sliver_urn TEXT NOT NULL, kind TEXT NOT NULL, redeemed_at TEXT NOT NULL)"
    )
    db.execute(
        "CREATE TABLE slivers (sliver_urn TEXT PRIMARY KEY, slice_urn TEXT NOT NULL UNIQUE,"
        " login TEXT NOT NULL UNIQUE, issuer_urn TEXT NOT NULL, serial TEXT NOT NULL,"
        " expires TEXT NOT NULL, resources TEXT NOT NULL, users TEXT NOT NULL,"
        " slice_gid TEXT NOT NULL, slice_public_key TEXT, sealed_slice_key TEXT,"
        " initscript TEXT NOT NULL,"
        " uid INTEGER UNIQUE, state TEXT NOT NULL, last_error TEXT NOT NULL DEFAULT '',"
        " created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX slivers_expires ON slivers (expires)")
    db.execute(
        "CREATE TABLE leases (id INTEGER PRIMARY KEY AUTOINCREMENT, sliver_urn TEXT NOT NULL,"
        " serial TEXT NOT NULL, expires TEXT NOT NULL, lease TEXT NOT NULL,"
        " created_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX leases_sliver ON leases (sliver_urn)")


def _schema_v2(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE revoked (serial TEXT PRIMARY KEY, issuer_urn TEXT NOT NULL,"
        " sliver_urn TEXT NOT NULL, expires TEXT NOT NULL, revoked_at TEXT NOT NULL)"
    )
    db.execute("CREATE INDEX revoked_expires ON revoked (expires)")


MIGRATIONS = (
    Migration(1, "node manager: tickets, slivers, leases", _schema_v1),
    Migration(2, "node manager: tickets revoked by their aggregate", _schema_v2),
)


@dataclass(frozen=True)
class SliverRecord:
    """One sliver as the node manager remembers it."""

    sliver_urn: str
    slice_urn: str
    login: str
    issuer_urn: str
    serial: str
    expires: datetime
    resources: Resources
    users: tuple[UserKeys, ...]
    slice_gid: str
    slice_public_key: str | None
    sealed_slice_key: str | None  # sealed for this node (sfa.trust.slicekey); opened when needed
    initscript: str
    uid: int | None
    state: str
    last_error: str
    created_at: datetime


@dataclass(frozen=True)
class Revocation:
    """A ticket its aggregate withdrew (it deleted the sliver): never redeemable here, and
    kept until the ticket's own expiry."""

    serial: str
    issuer_urn: str
    sliver_urn: str
    expires: datetime


@dataclass(frozen=True)
class TicketRecord:
    serial: str
    digest: str
    sliver_urn: str
    kind: str
    redeemed_at: str


class SharedConnectionDatabase(Database):
    """A Database with one connection for every thread, used under a lock.

    One process may serve a thousand nodes from one thread pool: a connection per thread per
    node (three descriptors each in WAL mode) would exhaust the process's file descriptors
    and pay a connect for every new pairing. A node's statements are short, so serializing
    them costs nothing that matters.
    """

    def __init__(self, path: Path | str, migrations: Sequence[Migration] = ()) -> None:
        self._guard = threading.RLock()
        self._shared: sqlite_utils.Database | None = None
        super().__init__(path, migrations)

    def db(self) -> sqlite_utils.Database:
        with self._guard:
            if self._shared is None:
                self._shared = sqlite_utils.Database(self._connect(), execute_plugins=False)
            return self._shared

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        with self._guard, super().transaction() as handle:
            yield handle

    @contextmanager
    def snapshot(self) -> Iterator[sqlite_utils.Database]:
        with self._guard, super().snapshot() as handle:
            yield handle

    def close(self) -> None:
        with self._guard:
            super().close()
            self._shared = None

    def _holding(self) -> threading.RLock:
        return self._guard


class NodeStore:
    """Typed queries over the node's SQLite file; every change is one transaction.

    A change of one statement runs alone (SQLite's own transaction: one statement instead of
    BEGIN IMMEDIATE, it, COMMIT), a read of one query likewise; changes of several statements,
    and callers grouping changes (`transaction`), use BEGIN IMMEDIATE ... COMMIT. Hot paths
    use plain sqlite3 (`Database.execute/one/all`), not sqlite-utils' per-call wrapping.
    """

    def __init__(self, path: Path | str) -> None:
        self.database = SharedConnectionDatabase(path, MIGRATIONS)

    def close(self) -> None:
        self.database.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several changes (and the reads deciding them) into one transaction."""
        with self.database.transaction():
            yield

    # --- tickets and leases -------------------------------------------------------------------

    def ticket(self, serial: str) -> TicketRecord | None:
        row = self._one("SELECT * FROM tickets WHERE serial = ?", serial)
        return TicketRecord(**row) if row else None

    def add_ticket(self, serial: str, digest: str, sliver_urn: str, kind: str) -> None:
        self.database.execute(
            "INSERT INTO tickets (serial, digest, sliver_urn, kind, redeemed_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (serial, digest, sliver_urn, kind, _now()),
        )

    def add_lease(self, sliver_urn: str, serial: str, expires: datetime, lease: str) -> None:
        self.database.execute(
            "INSERT INTO leases (sliver_urn, serial, expires, lease, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (sliver_urn, serial, format_rfc3339(expires), lease, _now()),
        )

    def add_revocations(self, revocations: Sequence[Revocation]) -> None:
        """Record revoked serials (one transaction; a serial revoked before stays as it was)."""
        rows = [(r.serial, r.issuer_urn, r.sliver_urn, format_rfc3339(r.expires), _now())
                for r in revocations]
        if len(rows) == 1:
            self.database.execute(_INSERT_REVOCATION, rows[0])
            return
        with self.database.transaction() as db:
            db.conn.executemany(_INSERT_REVOCATION, rows)

    def revocation(self, serial: str) -> Revocation | None:
        row = self._one("SELECT * FROM revoked WHERE serial = ?", serial)
        if row is None:
            return None
        return Revocation(row["serial"], row["issuer_urn"], row["sliver_urn"],
                          parse_rfc3339(row["expires"]))

    def prune_revocations(self, now: datetime) -> None:
        """Forget revocations of tickets that have expired (no node accepts those anyway)."""
        self.database.execute("DELETE FROM revoked WHERE expires <= ?", (format_rfc3339(now),))

    def first_serial(self, sliver_urn: str) -> str | None:
        """The serial of the ticket that created the sliver (its first lease)."""
        row = self._one("SELECT serial FROM leases WHERE sliver_urn = ? ORDER BY id LIMIT 1",
                        sliver_urn)
        return str(row["serial"]) if row else None

    def lease_for_serial(self, serial: str) -> str | None:
        row = self._one("SELECT lease FROM leases WHERE serial = ? ORDER BY id DESC", serial)
        return str(row["lease"]) if row else None

    def current_lease(self, sliver_urn: str) -> str | None:
        row = self._one(
            "SELECT lease FROM leases WHERE sliver_urn = ? ORDER BY id DESC", sliver_urn
        )
        return str(row["lease"]) if row else None

    # --- slivers ------------------------------------------------------------------------------

    def add_sliver(self, record: SliverRecord) -> None:
        self.database.execute(
            "INSERT INTO slivers (sliver_urn, slice_urn, login, issuer_urn, serial, expires,"
            " resources, users, slice_gid, slice_public_key, sealed_slice_key, initscript, uid,"
            " state, last_error, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.sliver_urn, record.slice_urn, record.login, record.issuer_urn,
                record.serial, format_rfc3339(record.expires),
                json.dumps(record.resources.to_dict()), _users_json(record.users),
                record.slice_gid, record.slice_public_key, record.sealed_slice_key,
                record.initscript, record.uid,
                record.state, record.last_error, format_rfc3339(record.created_at), _now(),
            ),
        )

    def sliver(self, sliver_urn: str) -> SliverRecord | None:
        row = self._one("SELECT * FROM slivers WHERE sliver_urn = ?", sliver_urn)
        return _sliver(row) if row else None

    def sliver_of_slice(self, slice_urn: str) -> SliverRecord | None:
        row = self._one("SELECT * FROM slivers WHERE slice_urn = ? COLLATE NOCASE", slice_urn)
        return _sliver(row) if row else None

    def sliver_by_login(self, login: str) -> SliverRecord | None:
        row = self._one("SELECT * FROM slivers WHERE login = ?", login)
        return _sliver(row) if row else None

    def sliver_in_the_way(self, sliver_urn: str, slice_urn: str, login: str
                          ) -> SliverRecord | None:
        """A sliver with this URN, of this slice, or with this login (one query)."""
        row = self._one(
            "SELECT * FROM slivers WHERE sliver_urn = ? OR slice_urn = ? OR login = ? LIMIT 1",
            sliver_urn, slice_urn, login,
        )
        return _sliver(row) if row else None

    def slivers(self) -> list[SliverRecord]:
        return [_sliver(row) for row in self.database.all(
            "SELECT * FROM slivers ORDER BY created_at")]

    def sliver_count(self) -> int:
        row = self._one("SELECT COUNT(*) AS n FROM slivers")
        return int(row["n"]) if row else 0

    def expired(self, now: datetime) -> list[SliverRecord]:
        return [_sliver(row) for row in self.database.all(
            "SELECT * FROM slivers WHERE expires <= ? ORDER BY expires", (format_rfc3339(now),))]

    def next_expiry(self) -> datetime | None:
        row = self._one("SELECT MIN(expires) AS e FROM slivers")
        return parse_rfc3339(row["e"]) if row and row["e"] else None

    def allocated(self, *, excluding: str | None = None) -> Resources:
        """The sum of the resources granted to the slivers (but `excluding`)."""
        rows = self.database.all("SELECT sliver_urn, resources FROM slivers")
        return total(Resources.from_mapping(json.loads(row["resources"]))
                     for row in rows if row["sliver_urn"] != excluding)

    def set_state(self, sliver_urn: str, state: str, last_error: str = "") -> None:
        self._update(sliver_urn, state=state, last_error=last_error)

    def set_users(self, sliver_urn: str, users: tuple[UserKeys, ...]) -> None:
        self._update(sliver_urn, users=_users_json(users))

    def set_expiry(
        self, sliver_urn: str, expires: datetime, serial: str, resources: Resources
    ) -> None:
        self._update(
            sliver_urn, expires=format_rfc3339(expires), serial=serial,
            resources=json.dumps(resources.to_dict()),
        )

    def remove_sliver(self, sliver_urn: str) -> None:
        """Forget the sliver and its leases (its tickets stay: they may never be redeemed again)."""
        with self.database.transaction() as db:
            db.conn.execute("DELETE FROM leases WHERE sliver_urn = ?", (sliver_urn,))
            db.conn.execute("DELETE FROM slivers WHERE sliver_urn = ?", (sliver_urn,))

    def forget_ticket(self, serial: str) -> None:
        """Undo a redemption whose sliver could not be made, so that it may be retried."""
        self.database.execute("DELETE FROM tickets WHERE serial = ?", (serial,))

    # --- helpers ------------------------------------------------------------------------------

    def _one(self, sql: str, *params: Any) -> dict[str, Any] | None:
        return self.database.one(sql, params)

    def _update(self, sliver_urn: str, **values: Any) -> None:
        values["updated_at"] = _now()
        columns = ", ".join(f"{name} = ?" for name in values)
        self.database.execute(
            f"UPDATE slivers SET {columns} WHERE sliver_urn = ?",  # noqa: S608 - fixed names
            (*values.values(), sliver_urn),
        )


_INSERT_REVOCATION = ("INSERT OR IGNORE INTO revoked (serial, issuer_urn, sliver_urn, expires,"
                      " revoked_at) VALUES (?, ?, ?, ?, ?)")


def _now() -> str:
    return format_rfc3339(utcnow())


def _users_json(users: tuple[UserKeys, ...]) -> str:
    return json.dumps([{"urn": user.urn, "keys": list(user.keys)} for user in users])


def _sliver(row: dict[str, Any]) -> SliverRecord:
    users = tuple(UserKeys(item["urn"], tuple(item["keys"])) for item in json.loads(row["users"]))
    return SliverRecord(
        sliver_urn=row["sliver_urn"],
        slice_urn=row["slice_urn"],
        login=row["login"],
        issuer_urn=row["issuer_urn"],
        serial=row["serial"],
        expires=parse_rfc3339(row["expires"]),
        resources=Resources.from_mapping(json.loads(row["resources"])),
        users=users,
        slice_gid=row["slice_gid"],
        slice_public_key=row["slice_public_key"],
        sealed_slice_key=row["sealed_slice_key"],
        initscript=row["initscript"],
        uid=row["uid"],
        state=row["state"],
        last_error=row["last_error"],
        created_at=parse_rfc3339(row["created_at"]),
    )
