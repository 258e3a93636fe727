"""Which aggregates hold slivers of which slice (DIR/db/slicemgr.sqlite), so that calls on a
slice go only where it has slivers; a restart keeps it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import sqlite_utils

from sfa.storage.db import Database, Migration


def _create(db: sqlite_utils.Database) -> None:
    db.execute("CREATE TABLE slice_aggregates (slice_urn TEXT NOT NULL, "
               "aggregate_urn TEXT NOT NULL, PRIMARY KEY (slice_urn, aggregate_urn))")


MIGRATIONS = (Migration(1, "slice_aggregates", _create),)


class SliceHolders:
    """The aggregates that hold slivers of each slice (as far as this slice manager knows)."""

    def __init__(self, path: Path | str) -> None:
        self.database = Database(path, MIGRATIONS)

    def of(self, slice_urn: str) -> set[str]:
        rows = self.database.db().execute(
            "SELECT aggregate_urn FROM slice_aggregates WHERE slice_urn = ?", [slice_urn])
        return {row[0] for row in rows.fetchall()}

    def add(self, slice_urn: str, aggregate_urns: Iterable[str]) -> None:
        with self.database.transaction() as db:
            for urn in aggregate_urns:
                db.execute("INSERT OR IGNORE INTO slice_aggregates VALUES (?, ?)",
                           [slice_urn, urn])

    def remove(self, slice_urn: str, aggregate_urns: Iterable[str]) -> None:
        with self.database.transaction() as db:
            for urn in aggregate_urns:
                db.execute("DELETE FROM slice_aggregates WHERE slice_urn = ? AND "
                           "aggregate_urn = ?", [slice_urn, urn])

    def close(self) -> None:
        self.database.close()
