"""What the node-manager driver keeps in the aggregate's database: where each node's manager
answers (and its GID), one key pair per slice, and the ticket of each sliver.

A sliver's ticket is stored before it is sent, so that a retry after a failure or a crash sends
the very same ticket (a node answers a ticket it redeemed before with the same lease; a new
serial for a sliver it already holds would be ALREADYEXISTS).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sfa.storage.db import Database, in_lists
from sfa.trust.gid import GID


@dataclass(frozen=True)
class NodeManagerEntry:
    """Where a node's manager answers and who it is."""

    node_urn: str
    url: str
    gid_pem: str

    @property
    def gid(self) -> GID:
        return GID.from_pem(self.gid_pem)


@dataclass(frozen=True)
class StoredTicket:
    """A signed ticket for one sliver, its sealed slice key, the terms it was signed for,
    and whether it was ever sent (a sent ticket is never replaced, only retried)."""

    sliver_urn: str
    node_urn: str
    serial: str
    ticket: str = field(repr=False)
    slice_key: str = field(repr=False)
    terms: dict[str, Any]
    sent: bool = False


@dataclass(frozen=True)
class PendingRevocation:
    """A ticket withdrawn (its sliver deleted here) that its node has not acknowledged yet."""

    serial: str
    node_urn: str
    sliver_urn: str
    expires: str  # RFC 3339, the ticket's own expiry: after it, nothing needs telling

    def to_wire(self) -> dict[str, str]:
        return {"serial": self.serial, "sliver_urn": self.sliver_urn, "expires": self.expires}


class NodeManagerBook:
    """Node managers, slice keys and tickets over the aggregate's `Database`."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._managers: dict[str, NodeManagerEntry] | None = None
        self._gids: dict[str, GID] = {}

    # node managers
    def set_managers(self, entries: Iterable[NodeManagerEntry]) -> None:
        """Add or replace node managers (one transaction)."""
        rows = [(e.node_urn, e.url, e.gid_pem) for e in entries]
        with self.database.transaction() as handle:
            handle.conn.executemany(
                "INSERT INTO node_managers (node_urn, url, gid) VALUES (?, ?, ?) "
                "ON CONFLICT (node_urn) DO UPDATE SET url = excluded.url, gid = excluded.gid",
                rows,
            )
        self._managers = None

    def managers(self) -> dict[str, NodeManagerEntry]:
        """node URN -> its manager (cached until changed through this book)."""
        if self._managers is None:
            with self.database.snapshot() as handle:
                self._managers = {
                    row["node_urn"]: NodeManagerEntry(row["node_urn"], row["url"], row["gid"])
                    for row in handle.query("SELECT * FROM node_managers")
                }
        return self._managers

    def node_gid(self, node_urn: str) -> GID | None:
        """The GID of a node's manager (parsed once)."""
        gid = self._gids.get(node_urn)
        if gid is None:
            entry = self.managers().get(node_urn)
            if entry is None:
                return None
            gid = self._gids[node_urn] = entry.gid
        return gid

    # slice keys
    def slice_key(self, slice_urn: str) -> str | None:
        with self.database.snapshot() as handle:
            rows = list(handle.query(
                "SELECT key_pem FROM slice_keys WHERE slice_urn = ?", [slice_urn]))
        return rows[0]["key_pem"] if rows else None

    def add_slice_key(self, slice_urn: str, key_pem: str) -> str:
        """Keep `key_pem` unless the slice has a key already; the slice's key either way."""
        with self.database.transaction() as handle:
            handle.execute(
                "INSERT INTO slice_keys (slice_urn, key_pem) VALUES (?, ?) "
                "ON CONFLICT (slice_urn) DO NOTHING", [slice_urn, key_pem])
            row = next(handle.query(
                "SELECT key_pem FROM slice_keys WHERE slice_urn = ?", [slice_urn]))
        return str(row["key_pem"])

    # tickets
    def put_tickets(self, tickets: Sequence[StoredTicket], *, sent: Sequence[str] = ()
                    ) -> None:
        """Store or replace tickets, then mark the tickets of the `sent` slivers as sent,
        stored before or now (one transaction)."""
        marked = set(sent)
        rows = [(t.sliver_urn, t.node_urn, t.serial, t.ticket, t.slice_key,
                 json.dumps(t.terms, sort_keys=True), int(t.sent or t.sliver_urn in marked))
                for t in tickets]
        older = marked.difference(t.sliver_urn for t in tickets)
        with self.database.transaction() as handle:
            handle.conn.executemany(
                "INSERT OR REPLACE INTO tickets (sliver_urn, node_urn, serial, ticket, slice_key,"
                " terms, sent) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            handle.conn.executemany("UPDATE tickets SET sent = 1 WHERE sliver_urn = ?",
                                    [(urn,) for urn in older])

    def tickets(self, sliver_urns: Sequence[str]) -> dict[str, StoredTicket]:
        """The stored tickets of these slivers (absent ones are missing)."""
        found: dict[str, StoredTicket] = {}
        with self.database.snapshot() as handle:
            for chunk, marks in in_lists(sliver_urns):
                query = f"SELECT * FROM tickets WHERE sliver_urn IN ({marks})"  # noqa: S608
                for row in handle.query(query, chunk):
                    found[row["sliver_urn"]] = StoredTicket(
                        row["sliver_urn"], row["node_urn"], row["serial"], row["ticket"],
                        row["slice_key"], json.loads(row["terms"]), bool(row["sent"]))
        return found

    def revoke_tickets(self, sliver_urns: Sequence[str], *, forget: bool
                       ) -> dict[str, PendingRevocation]:
        """Record the stored tickets of these slivers as revoked, pending until their nodes
        acknowledge (and, with `forget`, drop the tickets); sliver URN -> its revocation."""
        with self.database.transaction() as handle:
            revoked = {urn: PendingRevocation(t.serial, t.node_urn, urn,
                                              str(t.terms.get("expires")))
                       for urn, t in self.tickets(sliver_urns).items()}
            handle.conn.executemany(
                "INSERT OR IGNORE INTO revocations (serial, node_urn, sliver_urn, expires)"
                " VALUES (?, ?, ?, ?)",
                [(r.serial, r.node_urn, r.sliver_urn, r.expires) for r in revoked.values()])
            if forget:  # only slivers that have a ticket (a new sliver has none)
                handle.conn.executemany("DELETE FROM tickets WHERE sliver_urn = ?",
                                        [(urn,) for urn in revoked])
        return revoked

    def pending_revocations(self, now: str) -> list[PendingRevocation]:
        """The revocations not yet acknowledged, those of tickets expired by `now` (RFC 3339,
        UTC) dropped first."""
        with self.database.transaction() as handle:
            handle.execute("DELETE FROM revocations WHERE expires <= ?", [now])
            rows = list(handle.query("SELECT * FROM revocations ORDER BY node_urn, serial"))
        return [PendingRevocation(r["serial"], r["node_urn"], r["sliver_urn"], r["expires"])
                for r in rows]

    def settle_revocations(self, serials: Sequence[str]) -> None:
        """Forget revocations their node answered (acknowledged, or refused for good)."""
        with self.database.transaction() as handle:
            handle.conn.executemany("DELETE FROM revocations WHERE serial = ?",
                                    [(serial,) for serial in serials])
