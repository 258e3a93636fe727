"""Sliver uids unique on the host, whatever the number of node managers running there.

One SQLite file per host (default /var/lib/sfa/uids.db, `uid_db` in node.toml) records which
uid each sliver holds: uid -> (owner = the node's data directory, sliver URN). Every change
happens under an exclusive flock on `<file>.lock`, so node managers in one process or in many
allocate in turn. A uid is skipped while it is recorded, named in the system user database, or
owned by a running process (the process table is read at most once a second); it is reused
only after its sliver was destroyed (released).
"""

from __future__ import annotations

import fcntl
import os
import pwd
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from sfa.errors import Refused
from sfa.nodemanager import process
from sfa.nodemanager.store import SharedConnectionDatabase
from sfa.storage.db import Migration
from sfa.timeutil import format_rfc3339, utcnow

DEFAULT_UID_DB = Path("/var/lib/sfa/uids.db")
UID_SPAN = 100_000
RUNNING_TTL = 1.0  # seconds


def _schema_v1(db: sqlite_utils.Database) -> None:
    db.execute(
        "CREATE TABLE uids (uid INTEGER PRIMARY KEY, owner TEXT NOT NULL, sliver_urn TEXT NOT NULL,"
        " allocated_at TEXT NOT NULL, UNIQUE (owner, sliver_urn))"
    )


MIGRATIONS = (Migration(1, "host-wide sliver uids", _schema_v1),)


@dataclass(frozen=True)
class HostUids:
    """One node manager's view of the host's allocator: its own rows, its uid range."""

    allocator: UidAllocator
    owner: str
    base: int
    span: int = UID_SPAN

    def allocate(self, sliver_urn: str) -> int:
        return self.allocator.allocate(self.owner, sliver_urn, self.base, self.span)

    def release(self, sliver_urn: str) -> None:
        self.allocator.release(self.owner, sliver_urn)

    def reconcile(self, held: Mapping[str, int]) -> list[str]:
        return self.allocator.reconcile(self.owner, held)


class UidAllocator:
    """The host's uid file (use `host_allocator` to share one per file in a process)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.database = SharedConnectionDatabase(self.path, MIGRATIONS)
        self._running: tuple[float, set[int]] = (-RUNNING_TTL, set())

    def allocate(self, owner: str, sliver_urn: str, base: int, span: int = UID_SPAN) -> int:
        """The sliver's uid: the one it holds already, else the lowest free one in
        [base, base+span). Refused when none is free."""
        with self._locked(), self.database.transaction() as db:
            held = db.conn.execute("SELECT uid FROM uids WHERE owner = ? AND sliver_urn = ?",
                                   [owner, sliver_urn]).fetchone()
            if held:
                return int(held[0])
            end = base + span
            count, highest = db.conn.execute(
                "SELECT COUNT(*), MAX(uid) FROM uids WHERE uid >= ? AND uid < ?", [base, end]
            ).fetchone()
            first = base if highest is None else highest + 1
            if count == first - base:  # base..highest all recorded (the usual case): look above
                recorded: set[int] = set()
            else:  # a released uid left a gap below: the lowest free one may be there
                first = base
                recorded = {uid for (uid,) in db.conn.execute(
                    "SELECT uid FROM uids WHERE uid >= ? AND uid < ?", [base, end])}
            running = self._running_uids()
            for uid in range(first, end):
                if uid in recorded or uid in running or _in_user_database(uid):
                    continue
                db.conn.execute("INSERT INTO uids (uid, owner, sliver_urn, allocated_at)"
                                " VALUES (?, ?, ?, ?)", [uid, owner, sliver_urn,
                                                         format_rfc3339(utcnow())])
                return uid
        raise Refused(f"no free sliver uid in {base}..{base + span - 1} on this host")

    def release(self, owner: str, sliver_urn: str) -> None:
        """The sliver is gone: its uid may be given again."""
        with self._locked():
            self.database.execute("DELETE FROM uids WHERE owner = ? AND sliver_urn = ?",
                                  [owner, sliver_urn])

    def reconcile(self, owner: str, held: Mapping[str, int]) -> list[str]:
        """Make the owner's rows what its slivers hold (sliver URN -> uid), after a crash or
        an upgrade: rows of slivers it lost are released, slivers missing a row get theirs.
        The slivers whose uid is recorded for another sliver (given twice before this file
        existed): the caller must not keep running them under it."""
        clashes: list[str] = []
        with self._locked(), self.database.transaction() as db:
            rows = {row["sliver_urn"]: row["uid"] for row in db.query(
                "SELECT sliver_urn, uid FROM uids WHERE owner = ?", [owner])}
            for sliver_urn in rows.keys() - held.keys():
                db.execute("DELETE FROM uids WHERE owner = ? AND sliver_urn = ?",
                           [owner, sliver_urn])
            for sliver_urn, uid in held.items():
                if rows.get(sliver_urn) == uid:
                    continue
                taken = list(db.query("SELECT 1 FROM uids WHERE uid = ?", [uid]))
                if taken:
                    clashes.append(sliver_urn)
                    continue
                db.execute("INSERT INTO uids (uid, owner, sliver_urn, allocated_at)"
                           " VALUES (?, ?, ?, ?)",
                           [uid, owner, sliver_urn, format_rfc3339(utcnow())])
        return clashes

    def holders(self) -> dict[int, tuple[str, str]]:
        """uid -> (owner, sliver URN), for operators and tests."""
        with self.database.snapshot() as db:
            return {row["uid"]: (row["owner"], row["sliver_urn"])
                    for row in db.query("SELECT * FROM uids")}

    def close(self) -> None:
        self.database.close()

    def _running_uids(self) -> set[int]:
        """The uids of running processes, read at most every RUNNING_TTL seconds (a /proc scan
        costs milliseconds; Provision on a thousand nodes of one host allocates a thousand)."""
        taken, uids = self._running
        if time.monotonic() - taken >= RUNNING_TTL:
            uids = process.running_uids()
            self._running = (time.monotonic(), uids)
        return uids

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


_shared: dict[Path, UidAllocator] = {}
_shared_lock = threading.Lock()


def host_allocator(path: Path) -> UidAllocator:
    """The process's one allocator for `path` (a thousand node managers, one connection)."""
    key = Path(path).resolve()
    with _shared_lock:
        allocator = _shared.get(key)
        if allocator is None:
            allocator = _shared[key] = UidAllocator(key)
        return allocator


def _in_user_database(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True


