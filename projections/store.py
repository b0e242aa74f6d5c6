"""The view database: where projections keep their tables and the Kafka offsets those tables reflect.

SQLite (a file, WAL mode: readers never wait for the writer) by default; PostgreSQL by configuration
(`LEDGER_PROJECTION_STORE=postgres`). SQL in this package is written once, with `?` placeholders and the upsert
syntax both engines share; `Tx` translates the placeholders for PostgreSQL.

Versions: each projection's tables are named `<projection>_v<N>_<table>`. `projection_registry` says which version
readers use (`live_version`). A rebuild fills version N+1 beside the live one and then flips `live_version` in one
transaction: readers switch at once, and a reader in the middle of a query keeps its snapshot of the old tables.
`projection_offsets` holds, per projection version and partition, the next Kafka offset to read; it is written in the
same transaction as the rows those offsets produced, which is what makes a crash lose or repeat nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.private_files import create_private_database
from ledger.settings import Settings

SQLITE_BUSY_TIMEOUT_MS = 120_000  # rebuild workers take turns at the single SQLite writer lock
POSTGRES_CONNECT_TIMEOUT_S = 10

REGISTRY_DDL = (
    ("CREATE TABLE IF NOT EXISTS projection_registry (name TEXT PRIMARY KEY, live_version INTEGER, "
     "last_version INTEGER NOT NULL, switched_at TEXT)"),
    ("CREATE TABLE IF NOT EXISTS projection_offsets (name TEXT NOT NULL, version INTEGER NOT NULL, "
     "topic TEXT NOT NULL, partition_id INTEGER NOT NULL, next_offset BIGINT NOT NULL, events BIGINT NOT NULL, "
     "updated_at TEXT NOT NULL, PRIMARY KEY (name, version, topic, partition_id))"),
)


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def table_name(projection: str, version: int, table: str) -> str:
    return f"{projection}_v{version}_{table}"


class Tx:
    """One open transaction on either engine: `?` placeholders, rows as tuples."""

    def __init__(self, connection: Any, dialect: str) -> None:
        self.connection = connection
        self.dialect = dialect

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.connection.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if self.dialect == "postgres":
            with self.connection.cursor() as cursor:
                cursor.executemany(self._sql(sql), rows)
        else:
            self.connection.executemany(sql, rows)

    @contextmanager
    def savepoint(self, name: str) -> Iterator[None]:
        """Undo only what the block wrote if it raises; the transaction goes on."""
        self.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.execute(f"ROLLBACK TO SAVEPOINT {name}")
            self.execute(f"RELEASE SAVEPOINT {name}")
            raise
        self.execute(f"RELEASE SAVEPOINT {name}")

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.execute(sql, params).fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row = self.execute(sql, params).fetchone()
        return tuple(row) if row is not None else None

    def aggregate(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The row of an aggregate query (COUNT, SUM, MAX without GROUP BY), which always answers exactly one."""
        row = self.one(sql, params)
        assert row is not None, sql
        return row

    def table_exists(self, name: str) -> bool:
        if self.dialect == "postgres":
            return self.one("SELECT 1 FROM information_schema.tables WHERE table_name = ?", (name,)) is not None
        return self.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)) is not None

    def index_exists(self, name: str) -> bool:
        if self.dialect == "postgres":
            return self.one("SELECT 1 FROM pg_indexes WHERE indexname = ?", (name,)) is not None
        return self.one("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,)) is not None


class ViewStore:
    """Opens short transactions on the view database. Cheap to create; each transaction has its own connection."""

    def __init__(self, dialect: str, *, sqlite_path: Path | None = None, conninfo: str | None = None) -> None:
        self.dialect = dialect
        self.sqlite_path = sqlite_path
        self.conninfo = conninfo
        # One connection per thread, kept open: opening (and on SQLite, closing, which checkpoints the WAL) per
        # transaction cost a tenth of a rebuild. The HTTP API's worker threads each get their own.
        self._local = threading.local()
        with self.transaction() as tx:
            for ddl in REGISTRY_DDL:
                tx.execute(ddl)

    @classmethod
    def open(cls, settings: Settings) -> ViewStore:
        if settings.projection_store == "postgres":
            return cls("postgres", conninfo=settings.postgres_conninfo())
        create_private_database(settings.projection_sqlite_path)  # 0600, and its -wal and -shm with it
        return cls("sqlite", sqlite_path=settings.projection_sqlite_path)

    def describe(self) -> str:
        return f"sqlite:{self.sqlite_path}" if self.dialect == "sqlite" else "postgres"

    def _connect(self) -> Any:
        if self.dialect == "postgres":
            import psycopg

            assert self.conninfo is not None, "a PostgreSQL view store is opened with its conninfo"
            return psycopg.connect(self.conninfo, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S)
        assert self.sqlite_path is not None, "an SQLite view store is opened with its path"
        connection = sqlite3.connect(self.sqlite_path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
        connection.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a power cut may drop the last transactions, but never tears one; the offsets drop with
        # their rows, so the runner simply reads those events again.
        connection.execute("PRAGMA synchronous = NORMAL")
        return connection

    def _connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = self._connect()
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            self._local.connection = None
            connection.close()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction: everything inside commits together or not at all."""
        connection = self._connection()
        try:
            if self.dialect == "sqlite":
                connection.execute("BEGIN IMMEDIATE")  # take the writer lock now, not half-way through
            yield Tx(connection, self.dialect)
        except BaseException:
            self._discard(connection)
            raise
        connection.commit()

    @contextmanager
    def reading(self) -> Iterator[Tx]:
        """A read-only snapshot: every query inside sees the same committed state."""
        connection = self._connection()
        try:
            if self.dialect == "sqlite":
                connection.execute("BEGIN")
            else:
                connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield Tx(connection, self.dialect)
        except BaseException:
            self._discard(connection)
            raise
        connection.rollback()

    def _discard(self, connection: Any) -> None:
        """After a failure the connection may be in any state: roll back and drop it; the next use reconnects."""
        try:
            connection.rollback()
        finally:
            self._local.connection = None
            connection.close()

    # --- the registry ---------------------------------------------------------------------------------------------

    @staticmethod
    def live_version(tx: Tx, name: str, *, lock: bool = False) -> int | None:
        """With `lock`, a writer holds off a version switch until its transaction ends (SQLite's writer lock
        already does; PostgreSQL needs the row lock)."""
        sql = "SELECT live_version FROM projection_registry WHERE name = ?"
        row = tx.one(sql + " FOR SHARE" if lock and tx.dialect == "postgres" else sql, (name,))
        return row[0] if row else None

    @staticmethod
    def new_version(tx: Tx, name: str) -> int:
        row = tx.one("SELECT last_version FROM projection_registry WHERE name = ?", (name,))
        version = (row[0] if row else 0) + 1
        tx.execute("INSERT INTO projection_registry (name, live_version, last_version) VALUES (?, NULL, ?) "
                   "ON CONFLICT (name) DO UPDATE SET last_version = excluded.last_version", (name, version))
        return version

    @staticmethod
    def switch(tx: Tx, name: str, version: int) -> int | None:
        """Make `version` the one readers use. Returns the version it replaced."""
        old = ViewStore.live_version(tx, name)
        tx.execute("UPDATE projection_registry SET live_version = ?, switched_at = ? WHERE name = ?",
                   (version, now_text(), name))
        return old

    @staticmethod
    def offsets(tx: Tx, name: str, version: int) -> dict[tuple[str, int], tuple[int, int, str]]:
        """(topic, partition) -> (next offset, events applied, updated at) of one projection version."""
        rows = tx.all("SELECT topic, partition_id, next_offset, events, updated_at FROM projection_offsets "
                      "WHERE name = ? AND version = ?", (name, version))
        return {(topic, partition): (int(offset), int(events), updated) for topic, partition, offset, events, updated
                in rows}

    @staticmethod
    def save_offsets(tx: Tx, name: str, version: int, positions: dict[tuple[str, int], tuple[int, int]]) -> None:
        """Store next offsets (and events applied since the last save) in the caller's transaction."""
        stamp = now_text()
        tx.executemany(
            "INSERT INTO projection_offsets (name, version, topic, partition_id, next_offset, events, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name, version, topic, partition_id) DO UPDATE SET "
            "next_offset = excluded.next_offset, events = projection_offsets.events + excluded.events, "
            "updated_at = excluded.updated_at",
            [(name, version, topic, partition, offset, count, stamp)
             for (topic, partition), (offset, count) in positions.items()])

    @staticmethod
    def drop_offsets(tx: Tx, name: str, version: int) -> None:
        tx.execute("DELETE FROM projection_offsets WHERE name = ? AND version = ?", (name, version))
