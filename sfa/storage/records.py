"""Typed queries over the registry's tables: rows in, rows out, no policy.

Every method runs in its own transaction unless called inside `store.database.transaction()`,
in which case it joins it (that is how the registry makes one change out of several writes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime
from typing import Any

from sfa.storage.db import Database
from sfa.storage.registry_schema import TYPED_COLUMNS
from sfa.timeutil import format_rfc3339, parse_rfc3339

_TIME_COLUMNS = ("date_created", "last_updated", "expires")


@dataclass(frozen=True)
class RecordRow:
    """One row of `records`, times as aware UTC datetimes."""

    hrn: str
    type: str
    urn: str
    authority: str
    date_created: datetime
    last_updated: datetime
    gid: str | None = None
    email: str | None = None
    expires: datetime | None = None
    description: str | None = None
    url: str | None = None
    name: str | None = None
    hostname: str | None = None
    component_manager: str | None = None
    site: str | None = None
    id: int | None = None


_COLUMNS = tuple(f.name for f in fields(RecordRow) if f.name != "id")
_SELECT = f"SELECT id, {', '.join(_COLUMNS)} FROM records"  # noqa: S608
_UPDATABLE = frozenset({"gid", "last_updated", *TYPED_COLUMNS})


def _to_db(name: str, value: Any) -> Any:
    if name in _TIME_COLUMNS and isinstance(value, datetime):
        return format_rfc3339(value)
    return value


def _from_db(row: dict[str, Any]) -> RecordRow:
    values: dict[str, Any] = {
        key: parse_rfc3339(value) if key in _TIME_COLUMNS and value else value
        for key, value in row.items()
    }
    return RecordRow(**values)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class RecordStore:
    """Queries over records and their relations (keys, researchers, PIs)."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def _rows(self, where: str, params: tuple[Any, ...]) -> list[RecordRow]:
        with self.database.snapshot() as handle:
            return [_from_db(r) for r in handle.query(f"{_SELECT} WHERE {where}", params)]

    def _one(self, where: str, params: tuple[Any, ...]) -> RecordRow | None:
        rows = self._rows(where, params)
        return rows[0] if rows else None

    # --- records -------------------------------------------------------------------------
    # Names match ignoring the case of ASCII letters (sfa.xrn.name_key; LIKE does too).
    def get(self, hrn: str, type: str) -> RecordRow | None:
        return self._one("hrn = ? COLLATE NOCASE AND type = ?", (hrn, type))

    def get_by_urn(self, urn: str) -> RecordRow | None:
        return self._one("urn = ? COLLATE NOCASE", (urn,))

    def get_by_id(self, record_id: int) -> RecordRow | None:
        return self._one("id = ?", (record_id,))

    def find(self, hrn: str) -> list[RecordRow]:
        """Every record named `hrn`, whatever its type."""
        return self._rows("hrn = ? COLLATE NOCASE ORDER BY type", (hrn,))

    def children(self, authority: str, *, recursive: bool = False) -> list[RecordRow]:
        """Records directly under `authority` (or anywhere beneath it), ordered by name."""
        if not recursive:
            return self._rows("authority = ? COLLATE NOCASE ORDER BY hrn, type", (authority,))
        pattern = _escape_like(authority) + ".%"
        return self._rows(
            "(authority = ? COLLATE NOCASE OR authority LIKE ? ESCAPE '\\') ORDER BY hrn, type",
            (authority, pattern),
        )

    def all(self, type: str | None = None) -> list[RecordRow]:
        if type is None:
            return self._rows("1 ORDER BY hrn, type", ())
        return self._rows("type = ? ORDER BY hrn", (type,))

    def insert(self, row: RecordRow) -> RecordRow:
        """Insert a new record; AlreadyExists when (hrn, type) or the URN is taken."""
        values = {name: _to_db(name, getattr(row, name)) for name in _COLUMNS}
        placeholders = ", ".join("?" for _ in values)
        with self.database.transaction() as handle:
            cursor = handle.execute(
                f"INSERT INTO records ({', '.join(values)}) VALUES ({placeholders})",  # noqa: S608
                tuple(values.values()),
            )
            return replace(row, id=cursor.lastrowid)

    def update(self, record_id: int, **changes: Any) -> None:
        """Change typed columns, `gid` or `last_updated` of one record."""
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise ValueError(f"not updatable: {sorted(unknown)}")
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)
        params = (*(_to_db(k, v) for k, v in changes.items()), record_id)
        with self.database.transaction() as handle:
            handle.execute(f"UPDATE records SET {assignments} WHERE id = ?", params)  # noqa: S608

    def delete(self, record_id: int) -> None:
        """Delete one record; its keys and memberships go with it (ON DELETE CASCADE)."""
        with self.database.transaction() as handle:
            handle.execute("DELETE FROM records WHERE id = ?", (record_id,))

    # --- relations -----------------------------------------------------------------------
    def keys(self, user_id: int) -> list[str]:
        """A user's public keys, first registered first."""
        with self.database.snapshot() as handle:
            rows = handle.query(
                "SELECT key FROM user_keys WHERE record_id = ? ORDER BY rowid", (user_id,)
            )
            return [r["key"] for r in rows]

    def set_keys(self, user_id: int, keys: list[str]) -> None:
        unique = list(dict.fromkeys(keys))
        with self.database.transaction() as handle:
            handle.execute("DELETE FROM user_keys WHERE record_id = ?", (user_id,))
            for key in unique:
                handle.execute(
                    "INSERT INTO user_keys (record_id, key) VALUES (?, ?)", (user_id, key)
                )

    def key_holders(self, key: str) -> list[RecordRow]:
        """The users whose keys include `key` (as stored: one `ssh-rsa ...` line)."""
        return self._rows(
            "id IN (SELECT record_id FROM user_keys WHERE key = ?) ORDER BY hrn", (key,)
        )

    def researchers(self, slice_id: int) -> list[RecordRow]:
        return self._rows(
            "id IN (SELECT user_id FROM slice_researchers WHERE slice_id = ?) ORDER BY hrn",
            (slice_id,),
        )

    def slices_of(self, user_id: int) -> list[RecordRow]:
        return self._rows(
            "id IN (SELECT slice_id FROM slice_researchers WHERE user_id = ?) ORDER BY hrn",
            (user_id,),
        )

    def set_researchers(self, slice_id: int, user_ids: list[int]) -> None:
        self._set_relation("slice_researchers", "slice_id", slice_id, user_ids)

    def pis(self, authority_id: int) -> list[RecordRow]:
        return self._rows(
            "id IN (SELECT user_id FROM authority_pis WHERE authority_id = ?) ORDER BY hrn",
            (authority_id,),
        )

    def pi_authorities(self, user_id: int) -> list[RecordRow]:
        return self._rows(
            "id IN (SELECT authority_id FROM authority_pis WHERE user_id = ?) ORDER BY hrn",
            (user_id,),
        )

    def set_pis(self, authority_id: int, user_ids: list[int]) -> None:
        self._set_relation("authority_pis", "authority_id", authority_id, user_ids)

    def _set_relation(self, table: str, column: str, owner_id: int, user_ids: list[int]) -> None:
        with self.database.transaction() as handle:
            handle.execute(f"DELETE FROM {table} WHERE {column} = ?", (owner_id,))  # noqa: S608
            for user_id in dict.fromkeys(user_ids):
                handle.execute(
                    f"INSERT INTO {table} ({column}, user_id) VALUES (?, ?)",  # noqa: S608
                    (owner_id, user_id),
                )


def row_as_dict(row: RecordRow) -> dict[str, Any]:
    """The row as plain values (times as RFC 3339), for `admin show --json` and tests."""
    return {k: _to_db(k, v) for k, v in asdict(row).items()}
