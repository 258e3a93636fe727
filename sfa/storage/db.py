"""One SQLite file per service: WAL mode, a busy timeout, ordered migrations, one transaction
per change, and sqlite errors turned into DatabaseError / Busy / AlreadyExists.

Each thread gets its own connection (SQLite connections are not shared between threads), so a
server may call in from a thread pool while an operator's CLI writes the same file.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

from sfa.errors import AlreadyExists, Busy, DatabaseError, SfaError

DEFAULT_BUSY_TIMEOUT = 5.0


@dataclass(frozen=True)
class Migration:
    """One schema step: `apply` runs inside the transaction that records `version`."""

    version: int
    description: str
    apply: Callable[[sqlite_utils.Database], None]


def map_sqlite_error(exc: sqlite3.Error, path: Path | str) -> SfaError:
    """The sfa error a user can act on for a sqlite error; nothing was changed."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, sqlite3.IntegrityError) and "unique" in lowered:
        return AlreadyExists(f"already registered ({text})")
    if "locked" in lowered or "busy" in lowered:
        return Busy(f"the database {path} is locked by another writer; retry in a moment")
    if "readonly" in lowered or "read-only" in lowered:
        return DatabaseError(f"the database {path} is read-only; nothing was changed")
    if "full" in lowered:
        return DatabaseError(f"the disk holding {path} is full; nothing was changed")
    return DatabaseError(f"database {path}: {text}; nothing was changed")


class Database:
    """A SQLite file opened through sqlite-utils, its migrations applied at open."""

    def __init__(
        self,
        path: Path | str,
        migrations: Sequence[Migration] = (),
        *,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        self.readonly = readonly
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        if readonly and not self.path.exists():
            raise DatabaseError(f"no database at {self.path}; create it first (sfa init)")
        try:
            with self._errors():
                self.db()
                if not readonly:
                    apply_migrations(self, migrations)
            _check_version(self, migrations)
        except BaseException:
            self.close()
            raise

    def db(self) -> sqlite_utils.Database:
        """This thread's sqlite-utils handle (opened on first use)."""
        handle: sqlite_utils.Database | None = getattr(self._local, "db", None)
        if handle is None:
            handle = sqlite_utils.Database(self._connect(), execute_plugins=False)
            self._local.db = handle
        return handle

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            target, uri = f"{self.path.resolve().as_uri()}?mode=ro", True
        else:
            target, uri = str(self.path), False
        conn = sqlite3.connect(
            target, timeout=self.busy_timeout, isolation_level=None,
            check_same_thread=False, uri=uri,
        )
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            conn.execute("PRAGMA foreign_keys = ON")
            if not self.readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
        except sqlite3.Error:
            conn.close()
            raise
        with self._lock:
            self._all.append(conn)
        return conn

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise map_sqlite_error(exc, self.path) from None

    @contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """Every change is one of these: BEGIN IMMEDIATE ... COMMIT, or rolled back on error.

        Nested use joins the outer transaction.
        """
        handle = self.db()
        if handle.conn.in_transaction:
            yield handle
            return
        with self._errors():
            handle.conn.execute("BEGIN IMMEDIATE")
            try:
                yield handle
                handle.conn.execute("COMMIT")
            except BaseException:
                if handle.conn.in_transaction:
                    handle.conn.execute("ROLLBACK")
                raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement on plain sqlite3, its own transaction (SQLite's autocommit) or part
        of the caller's; the rows it changed. For the hot paths: no sqlite-utils wrapper, and
        one statement where BEGIN IMMEDIATE ... COMMIT would make three."""
        with self._holding(), self._errors():
            return int(self.db().conn.execute(sql, params).rowcount)

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The first row of one query (a single statement reads one state of the file)."""
        with self._holding(), self._errors():
            cursor = self.db().conn.execute(sql, params)
            row = cursor.fetchone()
            return None if row is None else _as_dict(cursor, row)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of one query, as dicts."""
        with self._holding(), self._errors():
            cursor = self.db().conn.execute(sql, params)
            return [_as_dict(cursor, row) for row in cursor.fetchall()]

    def _holding(self) -> AbstractContextManager[Any]:
        """Held while this thread uses its connection (a shared connection needs a lock)."""
        return nullcontext()

    @contextmanager
    def snapshot(self) -> Iterator[sqlite_utils.Database]:
        """A consistent read: several queries see one state of the file."""
        handle = self.db()
        if handle.conn.in_transaction:
            yield handle
            return
        with self._errors():
            handle.conn.execute("BEGIN")
            try:
                yield handle
            finally:
                if handle.conn.in_transaction:
                    handle.conn.execute("ROLLBACK")

    def schema_version(self) -> int:
        """The version of the newest migration applied to the file."""
        with self.snapshot() as handle:
            return current_version(handle)

    def dump(self) -> dict[str, list[dict[str, Any]]]:
        """Every row of every table, ordered: tests compare a dump before and after a refusal."""
        with self.snapshot() as handle:
            return {
                name: list(handle.query(f"SELECT * FROM [{name}] ORDER BY rowid"))  # noqa: S608
                for name in sorted(handle.table_names())
            }

    def close(self) -> None:
        """Close every connection this object opened (in any thread)."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()


MAX_IN_LIST = 500  # values bound in one `IN (...)`, well under SQLite's limit on parameters


def in_lists(values: Sequence[str]) -> Iterator[tuple[list[str], str]]:
    """`values` in lists short enough to bind in one `IN (...)`, each with its placeholders
    (`?, ?, ...`)."""
    for start in range(0, len(values), MAX_IN_LIST):
        chunk = list(values[start:start + MAX_IN_LIST])
        yield chunk, ", ".join("?" * len(chunk))


def _as_dict(cursor: sqlite3.Cursor, row: Sequence[Any]) -> dict[str, Any]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def current_version(handle: sqlite_utils.Database) -> int:
    if "schema_version" not in handle.table_names():
        return 0
    row = next(handle.query("SELECT MAX(version) AS v FROM schema_version"))
    return int(row["v"] or 0)


def apply_migrations(database: Database, migrations: Sequence[Migration]) -> None:
    """Apply, in order and each in its own transaction, the migrations the file lacks."""
    ordered = sorted(migrations, key=lambda m: m.version)
    if len({m.version for m in ordered}) != len(ordered):
        raise ValueError("two migrations share a version number")
    for migration in ordered:
        with database.transaction() as handle:
            _ensure_version_table(handle)
            if migration.version <= current_version(handle):
                continue
            migration.apply(handle)
            handle.execute(
                "INSERT INTO schema_version (version, description) VALUES (?, ?)",
                (migration.version, migration.description),
            )


def _ensure_version_table(handle: sqlite_utils.Database) -> None:
    handle.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')))"
    )


def _check_version(database: Database, migrations: Sequence[Migration]) -> None:
    known = max((m.version for m in migrations), default=0)
    found = database.schema_version()
    if found < known:
        raise DatabaseError(
            f"the database {database.path} has schema version {found}, older than {known}; "
            "open it once read-write (sfa serve) to migrate it"
        )
    if found > known:
        raise DatabaseError(
            f"the database {database.path} has schema version {found}, newer than this sfa "
            f"knows ({known}); upgrade sfa"
        )
