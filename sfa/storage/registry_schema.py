"""The registry's tables and their migrations (`spec/registry-api.md`, "Records").

(hrn, type) is unique in the database; PIs, researchers and keys are relations, not strings.
Peers live in the configuration, not here.
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from sfa.storage.db import DEFAULT_BUSY_TIMEOUT, Database, Migration

RECORD_TYPES = ("authority", "user", "slice", "node")

# Typed columns beside the common ones; which type uses which is in sfa.registry.records.
TYPED_COLUMNS = (
    "email", "expires", "description", "url", "name", "hostname", "component_manager", "site",
)

_V1 = [
    f"""CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        hrn TEXT NOT NULL,
        type TEXT NOT NULL CHECK (type IN ({", ".join(repr(t) for t in RECORD_TYPES)})),
        urn TEXT NOT NULL,
        gid TEXT,
        authority TEXT NOT NULL,
        date_created TEXT NOT NULL,
        last_updated TEXT NOT NULL,
        {", ".join(f"{column} TEXT" for column in TYPED_COLUMNS)},
        UNIQUE (hrn, type)
    )""",
    "CREATE UNIQUE INDEX idx_records_urn ON records (urn)",
    "CREATE INDEX idx_records_authority ON records (authority)",
    """CREATE TABLE user_keys (
        record_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
        key TEXT NOT NULL,
        UNIQUE (record_id, key)
    )""",
    """CREATE TABLE slice_researchers (
        slice_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
        PRIMARY KEY (slice_id, user_id)
    )""",
    "CREATE INDEX idx_slice_researchers_user ON slice_researchers (user_id)",
    """CREATE TABLE authority_pis (
        authority_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES records (id) ON DELETE CASCADE,
        PRIMARY KEY (authority_id, user_id)
    )""",
    "CREATE INDEX idx_authority_pis_user ON authority_pis (user_id)",
]


def _create_v1(handle: sqlite_utils.Database) -> None:
    for statement in _V1:
        handle.execute(statement)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "records, user keys, slice researchers, authority PIs", _create_v1),
)


def open_registry_database(
    path: Path | str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, readonly: bool = False
) -> Database:
    """Open (creating and migrating when needed) the registry's SQLite file."""
    return Database(path, MIGRATIONS, busy_timeout=busy_timeout, readonly=readonly)
