"""Records in and out of the registry database: rows plus relations <-> Record objects.

Relations (keys, researchers, PIs) are stored by record id and shown by HRN. Call the writers
inside `repository.database.transaction()` so that a record and its relations change together.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from sfa.errors import SearchFailed
from sfa.registry.records import (
    AuthorityRecord,
    Record,
    SliceRecord,
    UserRecord,
    record_class,
    record_fields,
)
from sfa.storage.db import Database
from sfa.storage.records import RecordRow, RecordStore
from sfa.storage.registry_schema import TYPED_COLUMNS
from sfa.timeutil import utcnow


class RecordRepository:
    """Loads and saves whole records (with their relations) through the typed queries."""

    def __init__(self, store: RecordStore) -> None:
        self.store = store

    @property
    def database(self) -> Database:
        return self.store.database

    # --- reading -------------------------------------------------------------------------
    def get(self, hrn: str, type: str) -> Record | None:
        row = self.store.get(hrn, type)
        return self.load(row) if row else None

    def get_by_urn(self, urn: str) -> Record | None:
        row = self.store.get_by_urn(urn)
        return self.load(row) if row else None

    def find(self, hrn: str) -> list[Record]:
        with self.database.snapshot():
            return [self.load(row) for row in self.store.find(hrn)]

    def children(self, authority: str, *, recursive: bool = False) -> list[Record]:
        with self.database.snapshot():
            return [self.load(r) for r in self.store.children(authority, recursive=recursive)]

    def all(self, type: str | None = None) -> list[Record]:
        with self.database.snapshot():
            return [self.load(row) for row in self.store.all(type)]

    def load(self, row: RecordRow) -> Record:
        """The Record of a row, relations filled in."""
        cls = record_class(row.type)
        record = cls(
            hrn=row.hrn, gid=row.gid, date_created=row.date_created,
            last_updated=row.last_updated, id=row.id,
            **{name: getattr(row, name) for name in _typed_columns(cls)},
        )
        assert row.id is not None
        with self.database.snapshot():
            if isinstance(record, UserRecord):
                record.keys = self.store.keys(row.id)
                record.slices = [r.hrn for r in self.store.slices_of(row.id)]
                record.pi_authorities = [r.hrn for r in self.store.pi_authorities(row.id)]
            elif isinstance(record, SliceRecord):
                record.researchers = [r.hrn for r in self.store.researchers(row.id)]
            elif isinstance(record, AuthorityRecord):
                record.pis = [r.hrn for r in self.store.pis(row.id)]
        return record

    # --- writing -------------------------------------------------------------------------
    def insert(self, record: Record) -> Record:
        """Store a new record and its relations; AlreadyExists when the name is taken."""
        now = utcnow().replace(microsecond=0)
        typed = record_fields(record)
        row = RecordRow(
            hrn=record.hrn, type=record.type, urn=record.urn, authority=record.authority,
            date_created=now, last_updated=now, gid=record.gid,
            **{name: typed[name] for name in _typed_columns(type(record))},
        )
        with self.database.transaction():
            stored = self.store.insert(row)
            assert stored.id is not None
            self._save_relations(stored.id, typed)
        return replace(record, id=stored.id, date_created=now, last_updated=now)

    def update(self, record: Record, changes: dict[str, Any]) -> None:
        """Change writable fields (canonical names) and/or `gid` of a stored record."""
        assert record.id is not None
        columns = {
            name: value for name, value in changes.items()
            if name in TYPED_COLUMNS or name == "gid"
        }
        with self.database.transaction():
            self.store.update(
                record.id, last_updated=utcnow().replace(microsecond=0), **columns
            )
            self._save_relations(record.id, changes)

    def delete(self, record: Record) -> None:
        assert record.id is not None
        self.store.delete(record.id)

    def key_holders(self, key: str) -> list[str]:
        """HRNs of the users holding the public key `key` (an `ssh-rsa ...` line)."""
        return [row.hrn for row in self.store.key_holders(key)]

    def _save_relations(self, record_id: int, values: dict[str, Any]) -> None:
        if "keys" in values:
            self.store.set_keys(record_id, list(values["keys"]))
        if "researchers" in values:
            self.store.set_researchers(record_id, self._user_ids(values["researchers"]))
        if "pis" in values:
            self.store.set_pis(record_id, self._user_ids(values["pis"]))

    def _user_ids(self, hrns: list[str]) -> list[int]:
        ids = []
        for hrn in hrns:
            row = self.store.get(hrn, "user")
            if row is None or row.id is None:
                raise SearchFailed(f"no user {hrn!r} in this registry: register the user first")
            ids.append(row.id)
        return ids


def _typed_columns(cls: type[Record]) -> tuple[str, ...]:
    """The typed columns a record class keeps in `records` (not in a relation table)."""
    return tuple(f.name for f in fields(cls) if f.name in TYPED_COLUMNS)
