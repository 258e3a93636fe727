"""The registry's tables and their migrations (`spec/registry-api.md`, "Records").

(hrn, type) is unique in the database, ignoring the case of ASCII letters (`sfa.xrn.name_key`,
SQLite's NOCASE): `plc.lab.ASLICE` and `plc.lab.aslice` are one name. PIs, researchers and
keys are relations, not strings. Peers live in the configuration, not here.
"""

from __future__ import annotations

from pathlib import Path

import sqlite_utils

from sfa.errors import DatabaseError
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


def _names_ignore_case_v2(handle: sqlite_utils.Database) -> None:
    clashes = list(handle.query(
        "SELECT type, group_concat(hrn, ', ') AS names FROM records"
        " GROUP BY hrn COLLATE NOCASE, type HAVING count(*) > 1"))
    if clashes:
        listed = "; ".join(f"{row['type']} {row['names']}" for row in clashes)
        raise DatabaseError(
            f"the registry holds records whose names differ only in case ({listed}); names "
            "that differ only in case are one name now: remove or rename all but one of each "
            "(sfa admin DIR remove HRN) with the previous version, then start again")
    handle.execute("DROP INDEX idx_records_urn")
    handle.execute("CREATE UNIQUE INDEX idx_records_urn ON records (urn COLLATE NOCASE)")
    handle.execute("CREATE UNIQUE INDEX idx_records_name ON records (hrn COLLATE NOCASE, type)")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "records, user keys, slice researchers, authority PIs", _create_v1),
    Migration(2, "names unique ignoring case", _names_ignore_case_v2),
)


def open_registry_database(
    path: Path | str, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT, readonly: bool = False
) -> Database:
    """Open (creating and migrating when needed) the registry's SQLite file."""
    return Database(path, MIGRATIONS, busy_timeout=busy_timeout, readonly=readonly)
