"""The aggregate's SQLite file (DIR/db/aggregate.sqlite): nodes, slices, slivers, claims.

Every state change is one transaction. A node's capacity is a set of slots; a sliver claims one
slot (shared) or every slot (exclusive) in `claims`, whose primary key (node, slot) makes the
database itself refuse a double allocation, whatever the callers race.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlite_utils

from sfa.errors import AlreadyExists, InsufficientNodes, SearchFailed
from sfa.storage.db import Database, Migration, in_lists
from sfa.timeutil import format_rfc3339, parse_rfc3339

from .inventory import Node, NodeResources
from .slivers import AllocationState, OperationalState, Sliver, UserKeys

_V1 = [
    """CREATE TABLE nodes (
        urn TEXT PRIMARY KEY, hostname TEXT NOT NULL, site TEXT NOT NULL,
        hardware_types TEXT NOT NULL, sliver_types TEXT NOT NULL,
        exclusive_allowed INTEGER NOT NULL, capacity INTEGER NOT NULL CHECK (capacity > 0),
        country TEXT NOT NULL, latitude REAL NOT NULL, longitude REAL NOT NULL,
        resources TEXT NOT NULL, up INTEGER NOT NULL, last_seen TEXT, load REAL NOT NULL,
        login_port INTEGER NOT NULL
    )""",
    "CREATE TABLE slices (urn TEXT PRIMARY KEY, shutdown INTEGER NOT NULL DEFAULT 0)",
    """CREATE TABLE slivers (
        urn TEXT PRIMARY KEY, slice_urn TEXT NOT NULL, node_urn TEXT NOT NULL
            REFERENCES nodes (urn),
        client_id TEXT NOT NULL, sliver_type TEXT NOT NULL, exclusive INTEGER NOT NULL,
        expires TEXT NOT NULL, created TEXT NOT NULL, allocation TEXT NOT NULL,
        operational TEXT NOT NULL, error TEXT NOT NULL, users TEXT NOT NULL,
        bound INTEGER NOT NULL, login_port INTEGER NOT NULL, login_user TEXT NOT NULL
    )""",
    "CREATE INDEX idx_slivers_slice ON slivers (slice_urn)",
    "CREATE INDEX idx_slivers_expires ON slivers (expires)",
    """CREATE TABLE claims (
        node_urn TEXT NOT NULL REFERENCES nodes (urn),
        slot INTEGER NOT NULL,
        sliver_urn TEXT NOT NULL REFERENCES slivers (urn) ON DELETE CASCADE,
        PRIMARY KEY (node_urn, slot)
    )""",
    "CREATE INDEX idx_claims_sliver ON claims (sliver_urn)",
]


def _create_v1(handle: sqlite_utils.Database) -> None:
    for statement in _V1:
        handle.execute(statement)


_V2 = [
    "ALTER TABLE slices ADD COLUMN gid TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE slivers ADD COLUMN initscript TEXT NOT NULL DEFAULT ''",
    """CREATE TABLE node_managers (
        node_urn TEXT PRIMARY KEY REFERENCES nodes (urn), url TEXT NOT NULL, gid TEXT NOT NULL
    )""",
    "CREATE TABLE slice_keys (slice_urn TEXT PRIMARY KEY, key_pem TEXT NOT NULL)",
    """CREATE TABLE tickets (
        sliver_urn TEXT PRIMARY KEY REFERENCES slivers (urn) ON DELETE CASCADE,
        node_urn TEXT NOT NULL, serial TEXT NOT NULL UNIQUE, ticket TEXT NOT NULL,
        slice_key TEXT NOT NULL, terms TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0
    )""",
]


def _create_v2(handle: sqlite_utils.Database) -> None:
    for statement in _V2:
        handle.execute(statement)


def _create_v3(handle: sqlite_utils.Database) -> None:
    handle.execute("ALTER TABLE nodes ADD COLUMN enforced TEXT")


def _create_v4(handle: sqlite_utils.Database) -> None:
    handle.execute(
        "CREATE TABLE revocations (serial TEXT PRIMARY KEY, node_urn TEXT NOT NULL,"
        " sliver_urn TEXT NOT NULL, expires TEXT NOT NULL)")


MIGRATIONS = (
    Migration(1, "nodes, slices, slivers and slot claims", _create_v1),
    Migration(2, "init scripts, node managers, slice keys and tickets", _create_v2),
    Migration(3, "the resource knobs each node manager enforces", _create_v3),
    Migration(4, "tickets revoked until their node acknowledges", _create_v4),
)


@dataclass(frozen=True)
class NodeUsage:
    """How much of a node is taken: slots claimed, and whether an exclusive sliver holds it."""

    used: int = 0
    exclusive: bool = False


class AggregateStore:
    """Queries and changes over the aggregate's database. `revision` bumps on every change."""

    def __init__(self, path: Path | str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.database = Database(path, MIGRATIONS)
        self._revision = 0
        self._lock = threading.Lock()
        self._node_revision = 0
        self._nodes: tuple[int, list[Node]] | None = None

    @property
    def revision(self) -> int:
        """A counter that changes whenever nodes or allocations change (cache key)."""
        return self._revision

    def _changed(self, *, nodes: bool = False) -> None:
        with self._lock:
            self._revision += 1
            self._node_revision += int(nodes)

    def close(self) -> None:
        self.database.close()

    # nodes
    def upsert_nodes(self, nodes: Iterable[Node]) -> None:
        """Add nodes or replace their description (one transaction)."""
        rows = [_node_row(node) for node in nodes]
        with self.database.transaction() as handle:
            handle["nodes"].upsert_all(rows, pk="urn")  # type: ignore[union-attr]
        self._changed(nodes=True)

    def remove_nodes(self, urns: Sequence[str]) -> list[str]:
        """Remove nodes that hold no sliver (and their node-manager entry); mark the others
        down so nothing new lands there. The URNs removed."""
        wanted = list(dict.fromkeys(urns))
        if not wanted:
            return []
        marks = ",".join("?" * len(wanted))
        query = f"SELECT DISTINCT node_urn FROM slivers WHERE node_urn IN ({marks})"  # noqa: S608
        with self.database.transaction() as handle:
            busy = {r["node_urn"] for r in handle.query(query, wanted)}
            free = [u for u in wanted if u not in busy]
            handle.conn.executemany("DELETE FROM node_managers WHERE node_urn = ?",
                                    [(u,) for u in free])
            handle.conn.executemany("DELETE FROM nodes WHERE urn = ?", [(u,) for u in free])
            handle.conn.executemany("UPDATE nodes SET up = 0 WHERE urn = ?",
                                    [(u,) for u in busy])
        self._changed(nodes=True)
        return free

    def nodes(self) -> list[Node]:
        """Every node, in URN order (cached until this store changes a node)."""
        cached = self._nodes
        if cached is not None and cached[0] == self._node_revision:
            return list(cached[1])
        revision = self._node_revision
        with self.database.snapshot() as handle:
            nodes = [_node(row) for row in handle.query("SELECT * FROM nodes ORDER BY urn")]
        self._nodes = (revision, nodes)
        return list(nodes)

    def node(self, urn: str) -> Node | None:
        with self.database.snapshot() as handle:
            rows = list(handle.query("SELECT * FROM nodes WHERE urn = ?", [urn]))
        return _node(rows[0]) if rows else None

    def set_liveness(self, urn: str, *, up: bool, load: float, last_seen: datetime) -> None:
        """Record a liveness observation of one node."""
        with self.database.transaction() as handle:
            cursor = handle.execute(
                "UPDATE nodes SET up = ?, load = ?, last_seen = ? WHERE urn = ?",
                [int(up), float(load), format_rfc3339(last_seen), urn],
            )
            if cursor.rowcount == 0:
                raise SearchFailed(f"no node {urn} in this aggregate's inventory")
        self._changed(nodes=True)

    def set_liveness_many(self, observations: Iterable[tuple[str, bool, float]],
                          last_seen: datetime) -> int:
        """Record (urn, up, load) of many nodes in one transaction; how many changed state."""
        rows = [(int(up), float(load), format_rfc3339(last_seen), urn)
                for urn, up, load in observations]
        with self.database.transaction() as handle:
            before = {r["urn"]: r["up"] for r in handle.query("SELECT urn, up FROM nodes")}
            handle.conn.executemany(
                "UPDATE nodes SET up = ?, load = ?, last_seen = ? WHERE urn = ?", rows)
        self._changed(nodes=True)
        return sum(1 for up, _, _, urn in rows if before.get(urn) != up)

    def set_enforcement_many(self, reports: Iterable[tuple[str, tuple[str, ...]]]) -> None:
        """Record which knobs each node's manager enforces (from its GetVersion); the
        advertisement changes only when a report does."""
        rows = [(" ".join(knobs), urn) for urn, knobs in reports]
        with self.database.transaction() as handle:
            before = {r["urn"]: r["enforced"]
                      for r in handle.query("SELECT urn, enforced FROM nodes")}
            changed = [(text, urn) for text, urn in rows if before.get(urn, text) != text]
            handle.conn.executemany("UPDATE nodes SET enforced = ? WHERE urn = ?", changed)
        if changed:
            self._changed(nodes=True)

    def usage(self) -> dict[str, NodeUsage]:
        """Claimed slots per node (nodes with no claim are absent)."""
        query = (
            "SELECT c.node_urn AS node, COUNT(*) AS used, MAX(s.exclusive) AS exclusive "
            "FROM claims c JOIN slivers s ON s.urn = c.sliver_urn GROUP BY c.node_urn"
        )
        with self.database.snapshot() as handle:
            return {
                row["node"]: NodeUsage(row["used"], bool(row["exclusive"]))
                for row in handle.query(query)
            }

    # slices
    def is_shutdown(self, slice_urn: str) -> bool:
        with self.database.snapshot() as handle:
            # a slice is one name whatever its spelling (sfa.xrn.name_key; NOCASE folds alike)
            rows = list(handle.query(
                "SELECT max(shutdown) AS shutdown FROM slices WHERE urn = ? COLLATE NOCASE",
                [slice_urn]))
        return bool(rows and rows[0]["shutdown"])

    def set_shutdown(self, slice_urn: str, shutdown: bool = True) -> None:
        """Freeze (or, for an operator, thaw) a slice."""
        with self.database.transaction() as handle:
            handle.execute(
                "INSERT INTO slices (urn, shutdown) VALUES (?, ?) "
                "ON CONFLICT (urn) DO UPDATE SET shutdown = excluded.shutdown",
                [slice_urn, int(shutdown)],
            )
        self._changed()

    def set_slice_gid(self, slice_urn: str, gid_pem: str) -> None:
        """Remember the slice's GID chain (tickets carry it to the nodes)."""
        with self.database.transaction() as handle:
            handle.execute(
                "INSERT INTO slices (urn, gid) VALUES (?, ?) "
                "ON CONFLICT (urn) DO UPDATE SET gid = excluded.gid", [slice_urn, gid_pem])

    def slice_gid(self, slice_urn: str) -> str:
        """The slice's GID chain as PEM ('' when never seen)."""
        with self.database.snapshot() as handle:
            rows = list(handle.query("SELECT gid FROM slices WHERE urn = ?", [slice_urn]))
        return str(rows[0]["gid"]) if rows else ""

    # slivers
    def claim(self, slivers: Sequence[Sliver]) -> None:
        """Insert new slivers and claim their slots, all or none (INSUFFICIENT_NODES)."""
        try:
            with self.database.transaction() as handle:
                _insert_rows(handle, "slivers", [_sliver_row(sliver) for sliver in slivers])
                _claim_slots(handle, slivers)
        except AlreadyExists:  # the unique (node, slot) backstop
            raise InsufficientNodes("a requested node was taken by another slice meanwhile; "
                                    "ask again for the free nodes") from None
        self._changed()

    def update(self, slivers: Sequence[Sliver]) -> None:
        """Write new states/expiries of existing slivers (one transaction)."""
        rows = [_sliver_row(sliver) for sliver in slivers]
        if not rows:
            return
        columns = [c for c in rows[0] if c != "urn"]
        statement = ("UPDATE slivers SET " + ", ".join(f"{c} = ?" for c in columns)  # noqa: S608
                     + " WHERE urn = ?")
        with self.database.transaction() as handle:
            handle.conn.executemany(
                statement, [[row[c] for c in columns] + [row["urn"]] for row in rows])
        self._changed()

    def delete(self, urns: Sequence[str]) -> None:
        """Remove slivers and free their slots (one transaction)."""
        with self.database.transaction() as handle:
            for urn in urns:
                handle.execute("DELETE FROM claims WHERE sliver_urn = ?", [urn])
                handle.execute("DELETE FROM tickets WHERE sliver_urn = ?", [urn])
                handle.execute("DELETE FROM slivers WHERE urn = ?", [urn])
        self._changed()

    def sliver(self, urn: str) -> Sliver | None:
        with self.database.snapshot() as handle:
            rows = list(handle.query("SELECT * FROM slivers WHERE urn = ?", [urn]))
        return _sliver(rows[0]) if rows else None

    def slivers_by_urn(self, urns: Sequence[str]) -> list[Sliver]:
        """The slivers among `urns` that exist, in the order given."""
        found: dict[str, Sliver] = {}
        with self.database.snapshot() as handle:
            for chunk, marks in in_lists(urns):
                query = f"SELECT * FROM slivers WHERE urn IN ({marks})"  # noqa: S608
                found.update((row["urn"], _sliver(row)) for row in handle.query(query, chunk))
        return [found[urn] for urn in urns if urn in found]

    def slivers_of(self, slice_urn: str) -> list[Sliver]:
        """Every sliver of a slice here, oldest first."""
        with self.database.snapshot() as handle:
            rows = handle.query(
                "SELECT * FROM slivers WHERE slice_urn = ? COLLATE NOCASE ORDER BY created, urn",
                [slice_urn],
            )
            return [_sliver(row) for row in rows]

    def all_slivers(self) -> list[Sliver]:
        with self.database.snapshot() as handle:
            return [_sliver(r) for r in handle.query("SELECT * FROM slivers ORDER BY urn")]

    def expired(self, now: datetime) -> list[Sliver]:
        """Slivers whose expiry is at or before `now`."""
        with self.database.snapshot() as handle:
            rows = handle.query(
                "SELECT * FROM slivers WHERE expires <= ? ORDER BY expires", [format_rfc3339(now)]
            )
            return [_sliver(row) for row in rows]

    def next_expiry(self) -> datetime | None:
        """When the next sliver expires, or None when there is none."""
        with self.database.snapshot() as handle:
            row = next(handle.query("SELECT MIN(expires) AS t FROM slivers"))
        return parse_rfc3339(row["t"]) if row["t"] else None


def _insert_rows(handle: sqlite_utils.Database, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows of the same columns with one executemany (sqlite_utils' insert costs a
    fraction of a millisecond of Python per row)."""
    if not rows:
        return
    columns = list(rows[0])
    statement = (f"INSERT INTO {table} ({', '.join(columns)}) "  # noqa: S608 - our names
                 f"VALUES ({', '.join('?' for _ in columns)})")
    handle.conn.executemany(statement, [[row[c] for c in columns] for row in rows])


def _claim_slots(handle: sqlite_utils.Database, slivers: Sequence[Sliver]) -> None:
    """Claim each sliver's slots, in order: the first free slot (shared) or every slot
    (exclusive, only on a node nobody holds); two queries and one insert for them all."""
    capacity: dict[str, int] = {}
    taken: dict[str, set[int]] = {}
    for chunk, marks in in_lists(list(dict.fromkeys(s.node_urn for s in slivers))):
        capacity.update(handle.conn.execute(
            f"SELECT urn, capacity FROM nodes WHERE urn IN ({marks})", chunk))  # noqa: S608
        for node_urn, slot in handle.conn.execute(
                f"SELECT node_urn, slot FROM claims WHERE node_urn IN ({marks})",  # noqa: S608
                chunk):
            taken.setdefault(node_urn, set()).add(slot)
    rows: list[tuple[str, int, str]] = []
    for sliver in slivers:
        node = sliver.node_urn
        if node not in capacity:
            raise SearchFailed(f"no node {node} in this aggregate's inventory")
        used = taken.setdefault(node, set())
        if sliver.exclusive and used:
            raise InsufficientNodes(f"node {node} is in use; it cannot be exclusive")
        wanted = range(capacity[node]) if sliver.exclusive else [
            next((s for s in range(capacity[node]) if s not in used), -1)]
        if -1 in wanted:
            raise InsufficientNodes(f"node {node} is full ({capacity[node]} slivers)")
        used.update(wanted)
        rows.extend((node, slot, sliver.urn) for slot in wanted)
    handle.conn.executemany(
        "INSERT INTO claims (node_urn, slot, sliver_urn) VALUES (?, ?, ?)", rows)


def _node_row(node: Node) -> dict[str, Any]:
    return {
        "urn": node.urn, "hostname": node.hostname, "site": node.site,
        "hardware_types": json.dumps(list(node.hardware_types)),
        "sliver_types": json.dumps(list(node.sliver_types)),
        "exclusive_allowed": int(node.exclusive_allowed), "capacity": node.capacity,
        "country": node.country, "latitude": node.latitude, "longitude": node.longitude,
        "resources": json.dumps(asdict(node.resources)), "up": int(node.up),
        "last_seen": format_rfc3339(node.last_seen) if node.last_seen else None,
        "load": node.load, "login_port": node.login_port,
        "enforced": None if node.enforced is None else " ".join(node.enforced),
    }


def _node(row: dict[str, Any]) -> Node:
    return Node(
        urn=row["urn"], hostname=row["hostname"], site=row["site"],
        hardware_types=tuple(json.loads(row["hardware_types"])),
        sliver_types=tuple(json.loads(row["sliver_types"])),
        exclusive_allowed=bool(row["exclusive_allowed"]), capacity=row["capacity"],
        country=row["country"], latitude=row["latitude"], longitude=row["longitude"],
        resources=NodeResources(**json.loads(row["resources"])), up=bool(row["up"]),
        last_seen=parse_rfc3339(row["last_seen"]) if row["last_seen"] else None,
        load=row["load"], login_port=row["login_port"],
        enforced=None if row.get("enforced") is None else tuple(row["enforced"].split()),
    )


def _sliver_row(sliver: Sliver) -> dict[str, Any]:
    return {
        "urn": sliver.urn, "slice_urn": sliver.slice_urn, "node_urn": sliver.node_urn,
        "client_id": sliver.client_id, "sliver_type": sliver.sliver_type,
        "exclusive": int(sliver.exclusive), "expires": _time_text(sliver.expires),
        "created": _time_text(sliver.created), "allocation": sliver.allocation.value,
        "operational": sliver.operational.value, "error": sliver.error,
        "users": _users_text(sliver.users),
        "bound": int(sliver.bound), "login_port": sliver.login_port,
        "login_user": sliver.login_user, "initscript": sliver.initscript,
    }


def _sliver(row: dict[str, Any]) -> Sliver:
    return Sliver(
        urn=row["urn"], slice_urn=row["slice_urn"], node_urn=row["node_urn"],
        client_id=row["client_id"], sliver_type=row["sliver_type"],
        exclusive=bool(row["exclusive"]), expires=_time(row["expires"]),
        created=_time(row["created"]), allocation=AllocationState(row["allocation"]),
        operational=OperationalState(row["operational"]), error=row["error"],
        users=_users(row["users"]),
        bound=bool(row["bound"]), login_port=row["login_port"], login_user=row["login_user"],
        initscript=row["initscript"],
    )


# The slivers of one slice share their times and users: each distinct value is converted once
# (the values are immutable, so sharing them is safe).
@lru_cache(maxsize=4096)
def _time(text: str) -> datetime:
    return parse_rfc3339(text)


@lru_cache(maxsize=4096)
def _time_text(value: datetime) -> str:
    return format_rfc3339(value)


@lru_cache(maxsize=1024)
def _users(text: str) -> tuple[UserKeys, ...]:
    return tuple(UserKeys(u, tuple(k), login) for u, k, login in json.loads(text))


@lru_cache(maxsize=1024)
def _users_text(users: tuple[UserKeys, ...]) -> str:
    return json.dumps([[u.urn, list(u.keys), u.login] for u in users])
