"""The access log: every read of a member's data (who, in which role, when, which member, through which endpoint, and
why when the reader said), written durably before the answer is given, append-only, hash-chained, and published to
Kafka exactly once (docs/audit.md, "The access log").

Entries. Entry `seq` n (1, 2, 3, ... with no gap) holds the `AccessEntry` fields, `at` as text in one fixed form
(`YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC, always six fraction digits), `prev_hash` (the `hash` of entry n - 1; 64 `0`s for
entry 1) and `hash`: the SHA-256, in lowercase hex, of `prev_hash` in ASCII, one newline byte, and the canonical JSON
(ledger.events.canonical_json: UTF-8, keys sorted, no whitespace) of the object of the seven members `seq`, `at`,
`subject`, `role`, `kpj`, `endpoint`, `purpose` (a string, or null). Changing, dropping, adding or reordering any
entry breaks the chain from there; `ledger audit access` checks it from seq 1.

Storage: the table `access_log` (its own SQLite file, LEDGER_ACCESS_LOG_SQLITE_PATH, created 0600; or, with
LEDGER_PROJECTION_STORE=postgres, a table of the configured PostgreSQL database). Triggers refuse every UPDATE and
DELETE (and on PostgreSQL TRUNCATE), and an INSERT whose seq is not the next one or whose prev_hash is not the last
entry's hash: the chain is checked where it is written, and again where it is read (the publisher recomputes every
hash before it publishes; the auditor recomputes them from the topic). Triggers stop mistakes, not whoever holds the
store's credentials (the API's database user owns the table and may drop them; and may read the views unlogged
anyway): against them, the copy on Kafka is what holds, once an entry is published (docs/audit.md, "The access log").

Group commit: `AccessLog.record` hands its entry to one writer thread and waits (bounded) for it to be committed. The
writer takes what is waiting (at most `GROUP_COMMIT_BATCH_MAX`) and writes it in one transaction: while one commit is
being made, the reads that arrive queue up and share the next, so concurrent reads share commits with no added wait
when the log is idle. A transaction takes the store's write lock first (SQLite: BEGIN IMMEDIATE; PostgreSQL: an
EXCLUSIVE table lock, which readers pass) and reads the chain's head inside it, so several processes writing one store
keep one chain. A commit that fails fails every entry of it, and nothing of it is written.

Publishing: `AccessLogPublisher` sends the entries in seq order to the topic `<prefix>.access` (one partition, kept
forever) in Kafka transactions. Where it is, is the topic itself: after `init_transactions` (which fences an older
publisher and ends its open transaction) it reads the topic's last committed record, checks it is the store's entry
of that seq, and goes on from the next seq; so a publisher killed at any point and started again publishes each entry
exactly once. `ledger serve` runs one in a background thread; `ledger api publish-access` is the same for operators.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import re
import sqlite3
import threading
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from ledger import identifiers
from ledger.errors import AccessLogBroken, AccessLogUnavailable, InvalidInput, NotFound
from ledger.events import canonical_json
from ledger.private_files import create_private_database
from ledger.publishing import kafka_client
from ledger.publishing.topics import Topics
from ledger.settings import KafkaConnection, Settings
from projections.access import AccessEntry

GENESIS_HASH = "0" * 64  # the prev_hash of entry 1
AT_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
AT_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
HASH_PATTERN = re.compile(r"[0-9a-f]{64}")
BODY_FIELDS = ("seq", "at", "subject", "role", "kpj", "endpoint", "purpose")
RECORD_FIELDS = (*BODY_FIELDS, "prev_hash", "hash")

# Bounds on what an entry holds, in characters: a subject is an identity provider's `sub` (an e-mail address, a UUID,
# a service account's name); an endpoint names a route, not a URL with its query; a purpose is a short reason such as
# a complaint's reference.
SUBJECT_CHARS_MAX = 256
ROLE_CHARS_MAX = 32
ENDPOINT_CHARS_MAX = 200
PURPOSE_CHARS_MAX = 200
# A record on the topic is at most this many bytes: the bounds above, four UTF-8 bytes a character, and the rest.
RECORD_BYTES_MAX = 8_192
# Characters no entry may hold: control and format characters (a newline or a right-to-left override in a purpose
# would make the auditor's table lie), surrogates, line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

# Group commit (see the module's docstring).
GROUP_COMMIT_BATCH_MAX = 500  # entries per transaction
QUEUE_MAX = 10_000  # entries waiting for the writer; beyond it a read is refused rather than kept waiting
ENQUEUE_WAIT_S = 1.0  # how long a read waits for a place in a full queue
COMMIT_WAIT_S = 15.0  # how long a read waits for its entry to be committed before it is refused
WRITER_STOP_WAIT_S = 30.0  # `close`: how long the writer may take to commit what is queued
# How long a transaction waits for another process's write lock on the store (SQLite's busy timeout, PostgreSQL's
# lock_timeout): a commit is a few milliseconds, so this is a store in trouble, well within COMMIT_WAIT_S.
LOCK_WAIT_MS = 5_000
POSTGRES_CONNECT_TIMEOUT_S = 5
POSTGRES_STATEMENT_TIMEOUT_MS = 10_000
# One number for `pg_advisory_xact_lock`, so that two processes creating the schema at once take turns ("acclog").
SCHEMA_LOCK_KEY = 0x6163636C6F67

# Publishing (see the module's docstring).
PUBLISH_BATCH_MAX = 1_000  # entries per Kafka transaction
PUBLISH_RETRIES_MAX = 30  # consecutive failures before `run` gives up (about 5 minutes with the backoff below)
RETRY_BACKOFF_MAX_S = 10.0
FOLLOW_POLL_INTERVAL_S = 0.5  # how often a following publisher looks for new entries
BACKGROUND_PAUSE_S = 30.0  # `ledger serve`: after the retries ran out, this long before trying again
BACKGROUND_STOP_WAIT_S = kafka_client.TRANSACTION_COMMIT_TIMEOUT_S + 5.0
PAUSE_STEP_S = 0.1  # waits are taken in steps this long, so that a stop is noticed at once


# --- entries and their chain ---------------------------------------------------------------------------------------

def at_text(at: datetime) -> str:
    """`at` in the log's one form: UTC, microseconds, `Z`. Refuses a time without a timezone (whose UTC is unknown)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidInput(f"the access log's time {at.isoformat()} has no timezone: give it in UTC")
    return at.astimezone(UTC).strftime(AT_FORMAT)


def _text(name: str, value: object, chars_max: int) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the access log's {name} is empty: every entry names its {name}")
    if len(value) > chars_max:
        raise InvalidInput(f"the access log's {name} is {len(value):,} characters long: at most {chars_max}")
    bad = next((char for char in value if unicodedata.category(char) in REFUSED_CATEGORIES), None)
    if bad is not None:
        raise InvalidInput(f"the access log's {name} holds the character U+{ord(bad):04X} "
                           f"({unicodedata.name(bad, 'a control character')}): printable text only")
    return value


def entry_body(entry: AccessEntry, seq: int = 0) -> dict[str, Any]:
    """The hashed members of an entry, checked: `InvalidInput` naming the field that is missing, too long, holds a
    character no entry may, or (the KPJ) is not 11 digits. `seq` is given by the store when it is written."""
    try:
        kpj = identifiers.validate_kpj(entry.kpj)
    except (ValueError, TypeError) as error:
        raise InvalidInput(f"the access log's kpj: {error}") from None
    purpose = None if entry.purpose is None else _text("purpose", entry.purpose, PURPOSE_CHARS_MAX)
    return {"seq": seq, "at": at_text(entry.at), "subject": _text("subject", entry.subject, SUBJECT_CHARS_MAX),
            "role": _text("role", entry.role, ROLE_CHARS_MAX), "kpj": kpj,
            "endpoint": _text("endpoint", entry.endpoint, ENDPOINT_CHARS_MAX), "purpose": purpose}


def entry_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """The chain's hash of an entry: SHA-256 over the previous entry's hash (ASCII), a newline, and the canonical JSON
    of the entry's seven members (docs/audit.md, "The access log")."""
    return hashlib.sha256(prev_hash.encode("ascii") + b"\n" + canonical_json(body)).hexdigest()


class AccessRecordInvalid(ValueError):
    """A record of the access topic that is not an access log entry; the message says why."""


@dataclass(frozen=True)
class LoggedEntry:
    """An entry as the store and the topic hold it."""

    seq: int
    at: str
    subject: str
    role: str
    kpj: str
    endpoint: str
    purpose: str | None
    prev_hash: str
    hash: str

    def body(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "subject": self.subject, "role": self.role, "kpj": self.kpj,
                "endpoint": self.endpoint, "purpose": self.purpose}

    def computed_hash(self) -> str:
        return entry_hash(self.prev_hash, self.body())

    def as_dict(self) -> dict[str, Any]:
        return {**self.body(), "prev_hash": self.prev_hash, "hash": self.hash}

    def record(self) -> tuple[bytes, bytes]:
        """Key (the subject, so a reader's entries can be told by key) and value (every field, canonical JSON)."""
        return self.subject.encode("utf-8"), canonical_json(self.as_dict())

    @classmethod
    def parse(cls, value: bytes | None) -> LoggedEntry:
        """A topic record's value as an entry, its shape checked (not its hash: see `chain_problems`);
        `AccessRecordInvalid` says what is wrong."""
        if value is None or len(value) > RECORD_BYTES_MAX:
            raise AccessRecordInvalid("no value" if value is None else f"{len(value):,} bytes: at most "
                                                                         f"{RECORD_BYTES_MAX:,}")
        try:
            fields = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise AccessRecordInvalid("not JSON") from None
        if not isinstance(fields, dict) or sorted(fields) != sorted(RECORD_FIELDS):
            raise AccessRecordInvalid(f"not an object of exactly the members {', '.join(RECORD_FIELDS)}")
        seq = fields["seq"]
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
            raise AccessRecordInvalid(f"seq is {seq!r}, not a whole number from 1")
        texts = [name for name in RECORD_FIELDS[1:] if name != "purpose" and not isinstance(fields[name], str)]
        if texts or not (fields["purpose"] is None or isinstance(fields["purpose"], str)):
            raise AccessRecordInvalid(f"{', '.join(texts) or 'purpose'} not text")
        if not AT_PATTERN.fullmatch(fields["at"]):
            raise AccessRecordInvalid(f"at is not a time YYYY-MM-DDTHH:MM:SS.ffffffZ: {fields['at'][:40]!r}")
        for name in ("prev_hash", "hash"):
            if not HASH_PATTERN.fullmatch(fields[name]):
                raise AccessRecordInvalid(f"{name} is not 64 lowercase hex characters")
        return cls(**fields)


def chain_problems(entry: LoggedEntry, seq_due: int, prev_hash: str) -> list[str]:
    """What is wrong with `entry` as the entry after the one of seq `seq_due - 1` and hash `prev_hash` (empty: it is
    the next link of the chain)."""
    problems = []
    if entry.seq != seq_due:
        problems.append(f"seq {entry.seq} where seq {seq_due} was due ("
                        + (f"seq {seq_due} to {entry.seq - 1} missing)" if entry.seq > seq_due else
                           "a seq again, or going back)"))
    if entry.prev_hash != prev_hash:
        problems.append("its prev_hash is not the hash of the entry before it")
    if entry.computed_hash() != entry.hash:
        problems.append("its hash is not the SHA-256 of its content: it was changed after it was written, or forged")
    return problems


# --- the store -----------------------------------------------------------------------------------------------------

SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS access_log (
        seq INTEGER PRIMARY KEY CHECK (seq >= 1),
        at TEXT NOT NULL,
        subject TEXT NOT NULL,
        role TEXT NOT NULL,
        kpj TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        purpose TEXT,
        prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
        hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64))""",
    """CREATE TRIGGER IF NOT EXISTS access_log_no_update BEFORE UPDATE ON access_log
        BEGIN SELECT RAISE(ABORT, 'the access log is append-only: UPDATE refused'); END""",
    """CREATE TRIGGER IF NOT EXISTS access_log_no_delete BEFORE DELETE ON access_log
        BEGIN SELECT RAISE(ABORT, 'the access log is append-only: DELETE refused'); END""",
    # Also stops INSERT OR REPLACE, which would delete a row without firing the DELETE trigger.
    f"""CREATE TRIGGER IF NOT EXISTS access_log_next_only BEFORE INSERT ON access_log
        WHEN NEW.seq <> COALESCE((SELECT MAX(seq) FROM access_log), 0) + 1
          OR NEW.prev_hash <> COALESCE((SELECT hash FROM access_log WHERE seq = NEW.seq - 1), '{GENESIS_HASH}')
        BEGIN SELECT RAISE(ABORT, 'the access log is a chain: only the next seq, linked to the last entry'); END""",
)

POSTGRES_SCHEMA = (
    f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})",
    """CREATE TABLE IF NOT EXISTS access_log (
        seq BIGINT PRIMARY KEY CHECK (seq >= 1),
        at TEXT NOT NULL,
        subject TEXT NOT NULL,
        role TEXT NOT NULL,
        kpj TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        purpose TEXT,
        prev_hash TEXT NOT NULL CHECK (length(prev_hash) = 64),
        hash TEXT NOT NULL UNIQUE CHECK (length(hash) = 64))""",
    """CREATE OR REPLACE FUNCTION access_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the access log is append-only: % refused', TG_OP; END $$""",
    f"""CREATE OR REPLACE FUNCTION access_log_next_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.seq <> COALESCE((SELECT MAX(seq) FROM access_log), 0) + 1
             OR NEW.prev_hash <> COALESCE((SELECT hash FROM access_log WHERE seq = NEW.seq - 1), '{GENESIS_HASH}')
          THEN RAISE EXCEPTION 'the access log is a chain: only the next seq, linked to the last entry';
          END IF;
          RETURN NEW;
        END $$""",
    """DO $$ BEGIN
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'access_log'::regclass
                       AND tgname = 'access_log_no_change') THEN
          CREATE TRIGGER access_log_no_change BEFORE UPDATE OR DELETE ON access_log
            FOR EACH ROW EXECUTE FUNCTION access_log_refuse();
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'access_log'::regclass
                       AND tgname = 'access_log_no_truncate') THEN
          CREATE TRIGGER access_log_no_truncate BEFORE TRUNCATE ON access_log
            FOR EACH STATEMENT EXECUTE FUNCTION access_log_refuse();
        END IF;
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'access_log'::regclass
                       AND tgname = 'access_log_next_only') THEN
          CREATE TRIGGER access_log_next_only BEFORE INSERT ON access_log
            FOR EACH ROW EXECUTE FUNCTION access_log_next_only();
        END IF;
      END $$""",
)

COLUMNS = ", ".join(RECORD_FIELDS)


def _database_errors() -> tuple[type[Exception], ...]:
    import psycopg

    return sqlite3.Error, psycopg.Error, OSError


class AccessLogStore:
    """The access log's table, through one connection of its own: for one thread at a time (the group commit's
    writer, or a publisher), opened on first use in that thread. Every failure of the database is raised as
    `AccessLogUnavailable` naming the store, and the connection is dropped (the next use opens a new one)."""

    def __init__(self, dialect: str, *, sqlite_path: Path | None = None, conninfo: str | None = None) -> None:
        assert dialect in ("sqlite", "postgres")
        assert (sqlite_path is not None) == (dialect == "sqlite") and (conninfo is not None) == (dialect == "postgres")
        self.dialect, self.sqlite_path, self.conninfo = dialect, sqlite_path, conninfo
        self._connection: Any = None

    @classmethod
    def open(cls, settings: Settings) -> AccessLogStore:
        """The store the settings name, its table and triggers created if missing."""
        if settings.projection_store == "postgres":
            store = cls("postgres", conninfo=settings.postgres_conninfo())
        else:
            store = cls("sqlite", sqlite_path=settings.access_log_sqlite_path)
        store.create_schema()
        store.close()  # each thread that uses the store opens a connection of its own
        return store

    def same_store(self) -> AccessLogStore:
        """Another handle on this store, with a connection of its own (for another thread)."""
        return AccessLogStore(self.dialect, sqlite_path=self.sqlite_path, conninfo=self.conninfo)

    def describe(self) -> str:
        return f"sqlite:{self.sqlite_path}" if self.dialect == "sqlite" else "the PostgreSQL table access_log"

    def _connect(self) -> Any:
        if self.dialect == "postgres":
            import psycopg

            postgres = psycopg.connect(self.conninfo or "", connect_timeout=POSTGRES_CONNECT_TIMEOUT_S)
            postgres.execute(f"SET lock_timeout = {LOCK_WAIT_MS}")
            postgres.execute(f"SET statement_timeout = {POSTGRES_STATEMENT_TIMEOUT_MS}")
            postgres.commit()
            return postgres
        assert self.sqlite_path is not None
        create_private_database(self.sqlite_path)  # 0600, and its -wal and -shm with it (ledger.private_files)
        connection = sqlite3.connect(self.sqlite_path, isolation_level=None, timeout=LOCK_WAIT_MS / 1000)
        connection.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")
        connection.execute("PRAGMA journal_mode = WAL")
        # FULL: a commit is on disk (the WAL synced) before `record` returns, so a read answered is a read logged,
        # even through a power cut. The group commit pays one sync for all the reads that share it.
        connection.execute("PRAGMA synchronous = FULL")
        return connection

    def _fail(self, doing: str, error: Exception) -> AccessLogUnavailable:
        """Drop the connection (it may be in any state) and say what failed."""
        self.close()
        lines = str(error).strip().splitlines()
        detail = getattr(error, "strerror", None) or (lines[0] if lines else "no detail")
        return AccessLogUnavailable(f"the access log ({self.describe()}) could not {doing}: "
                                    f"{type(error).__name__}: {detail}")

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(*_database_errors()):
                connection.close()

    def _run(self, doing: str, work: Callable[[Any], Any], *, write: bool) -> Any:
        """`work(connection)` in one transaction (a write transaction holding the store's write lock when `write`),
        committed, or rolled back and raised as `AccessLogUnavailable`."""
        errors = _database_errors()
        try:
            if self._connection is None:
                self._connection = self._connect()
            connection = self._connection
            if self.dialect == "sqlite":
                connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            elif write:
                # EXCLUSIVE: one writer at a time, across processes; readers (ACCESS SHARE) pass.
                connection.execute("LOCK TABLE access_log IN EXCLUSIVE MODE")
        except errors as error:
            raise self._fail(doing, error) from None
        try:
            result = work(connection)
            if write:
                connection.commit()
            else:
                connection.rollback()
        except errors as error:
            with contextlib.suppress(*errors):
                connection.rollback()
            raise self._fail(doing, error) from None
        return result

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def create_schema(self) -> None:
        """The table and its triggers, if missing (idempotent; two processes at once take turns)."""
        def create(connection: Any) -> None:
            for statement in SQLITE_SCHEMA if self.dialect == "sqlite" else POSTGRES_SCHEMA:
                connection.execute(statement)

        errors = _database_errors()
        try:
            if self._connection is None:
                self._connection = self._connect()
            connection = self._connection
            if self.dialect == "sqlite":
                connection.execute("BEGIN IMMEDIATE")
            create(connection)
            connection.commit()
        except errors as error:
            raise self._fail("create its table", error) from None

    @staticmethod
    def _head(connection: Any) -> tuple[int, str]:
        row = connection.execute("SELECT seq, hash FROM access_log ORDER BY seq DESC LIMIT 1").fetchone()
        return (int(row[0]), str(row[1])) if row else (0, GENESIS_HASH)

    def append(self, bodies: Sequence[dict[str, Any]]) -> list[LoggedEntry]:
        """Write the entries (as `entry_body` makes them) after the chain's head, in one transaction: all of them,
        numbered and linked, or none (`AccessLogUnavailable`)."""
        assert 1 <= len(bodies) <= GROUP_COMMIT_BATCH_MAX

        def write(connection: Any) -> list[LoggedEntry]:
            # The head is read under the write lock: no other process can append between this read and the commit.
            seq, prev_hash = self._head(connection)
            logged = []
            for body in bodies:
                seq += 1
                numbered = {**body, "seq": seq}
                entry = LoggedEntry(**numbered, prev_hash=prev_hash, hash=entry_hash(prev_hash, numbered))
                logged.append(entry)
                prev_hash = entry.hash
            insert = self._sql(f"INSERT INTO access_log ({COLUMNS}) VALUES ({', '.join('?' * len(RECORD_FIELDS))})")
            rows = [tuple(entry.as_dict()[name] for name in RECORD_FIELDS) for entry in logged]
            if self.dialect == "postgres":
                with connection.cursor() as cursor:
                    cursor.executemany(insert, rows)
            else:
                connection.executemany(insert, rows)
            return logged

        result: list[LoggedEntry] = self._run("write its entries", write, write=True)
        return result

    def after(self, seq: int, limit: int) -> list[LoggedEntry]:
        """The entries after `seq`, in seq order, at most `limit`."""
        def read(connection: Any) -> list[LoggedEntry]:
            rows = connection.execute(self._sql(f"SELECT {COLUMNS} FROM access_log WHERE seq > ? ORDER BY seq "
                                                f"LIMIT ?"), (seq, limit)).fetchall()
            return [LoggedEntry(**dict(zip(RECORD_FIELDS, row, strict=True))) for row in rows]

        result: list[LoggedEntry] = self._run("be read", read, write=False)
        return result

    def head(self) -> tuple[int, str]:
        """The last entry's seq and hash: (0, the genesis hash) while the log is empty."""
        result: tuple[int, str] = self._run("be read", self._head, write=False)
        return result


# --- writing: the group commit -------------------------------------------------------------------------------------

@dataclass(eq=False)
class _Pending:
    """One `record` call waiting for its commit."""

    body: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    taken: bool = False  # in a batch the writer is committing: it will commit or fail, whatever the reader does
    cancelled: bool = False  # the reader stopped waiting before the writer took it: it is never written
    error: str | None = None


class AccessLog:
    """Writes the access log: `record` returns once its entry is committed, or raises `AccessLogUnavailable`."""

    def __init__(self, store: AccessLogStore, *, batch_max: int = GROUP_COMMIT_BATCH_MAX,
                 queue_max: int = QUEUE_MAX, commit_wait_s: float = COMMIT_WAIT_S) -> None:
        assert 1 <= batch_max <= GROUP_COMMIT_BATCH_MAX and 1 <= queue_max <= QUEUE_MAX
        self.store = store
        self.batch_max, self.commit_wait_s = batch_max, commit_wait_s
        self._queue: queue.Queue[_Pending | None] = queue.Queue(maxsize=queue_max)
        self._lock = threading.Lock()  # guards each _Pending's taken/cancelled, and the counters below
        self._closed = threading.Event()
        self.commits = 0  # transactions committed: fewer than the entries when reads shared them
        self.waiting = 0  # `record` calls not yet answered
        self.committing = 0  # entries in the commit under way
        self._writer = threading.Thread(target=self._write_loop, args=(store.same_store(),),
                                        name="access-log-writer", daemon=True)
        self._writer.start()

    @classmethod
    def open(cls, settings: Settings) -> AccessLog:
        """The access log the settings name (LEDGER_ACCESS_LOG_SQLITE_PATH, or PostgreSQL with
        LEDGER_PROJECTION_STORE=postgres), its table created if missing: `AccessLogUnavailable` if it cannot be."""
        return cls(AccessLogStore.open(settings))

    def record(self, entry: AccessEntry) -> None:
        """Write `entry` to the log and return once it is committed. `InvalidInput` (nothing written) for an entry
        out of bounds; `AccessLogUnavailable` when it was not committed within the bounded waits: the read must then
        fail. (An entry whose wait ran out after the writer took it may still be committed: the log can hold a read
        that was refused, never miss one that was answered.)"""
        pending = _Pending(entry_body(entry))
        if self._closed.is_set():
            raise AccessLogUnavailable("the access log is closed: no read can be recorded")
        with self._lock:
            self.waiting += 1
        try:
            try:
                self._queue.put(pending, timeout=ENQUEUE_WAIT_S)
            except queue.Full:
                raise AccessLogUnavailable(f"the access log's writer has {self._queue.maxsize:,} entries waiting "
                                           f"({self.store.describe()} is slow or stuck): the read is refused") from None
            if not pending.done.wait(self.commit_wait_s):
                with self._lock:
                    if not pending.taken:
                        pending.cancelled = True
                raise AccessLogUnavailable(f"the access log ({self.store.describe()}) did not commit the entry within "
                                           f"{self.commit_wait_s:g}s: the read is refused")
            if pending.error is not None:
                raise AccessLogUnavailable(pending.error)
        finally:
            with self._lock:
                self.waiting -= 1

    def queued(self) -> int:
        """Entries waiting for the writer (not those it is committing)."""
        return self._queue.qsize()

    def close(self) -> None:
        """Commit what is queued, stop the writer (bounded) and close the store. Later `record` calls raise."""
        if self._closed.is_set():
            return
        self._closed.set()
        deadline = time.monotonic() + WRITER_STOP_WAIT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(queue.Full):
                self._queue.put(None, timeout=PAUSE_STEP_S)
                break
        self._writer.join(max(0.0, deadline - time.monotonic()))
        self.store.close()

    def _write_loop(self, store: AccessLogStore) -> None:
        """The writer thread: take what is waiting (at most `batch_max`), commit it in one transaction, answer each
        waiting reader; until `close` queues the end (None)."""
        try:
            ending = False
            while not ending:
                first = self._queue.get()
                if first is None:
                    break
                batch = [first]
                while len(batch) < self.batch_max:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        ending = True
                        break
                    batch.append(item)
                self._commit(store, batch)
        finally:
            store.close()
            self._fail_waiting("the access log was closed before the entry was written")

    def _commit(self, store: AccessLogStore, batch: list[_Pending]) -> None:
        with self._lock:
            taken = [pending for pending in batch if not pending.cancelled]
            for pending in taken:
                pending.taken = True
            self.committing = len(taken)
        if not taken:
            return
        problem: str | None = None
        try:
            store.append([pending.body for pending in taken])
        except AccessLogUnavailable as error:
            problem = str(error)
        except Exception as error:  # noqa: BLE001 - a bug, yet the readers waiting must be answered, and refused
            problem = f"the access log's writer failed: {type(error).__name__}: {error}"
        else:
            with self._lock:
                self.commits += 1
        with self._lock:
            self.committing = 0
        for pending in taken:
            pending.error = problem
            pending.done.set()

    def _fail_waiting(self, problem: str) -> None:
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None:
                pending.error = problem
                pending.done.set()


# --- publishing: the access topic ----------------------------------------------------------------------------------

def _pause(seconds: float, stop: Callable[[], bool]) -> None:
    """Sleep `seconds`, or less if `stop()` becomes true."""
    deadline = time.monotonic() + seconds
    while not stop() and time.monotonic() < deadline:
        time.sleep(min(PAUSE_STEP_S, max(0.0, deadline - time.monotonic())))


class AccessLogPublisher:
    """Publishes the store's entries to the access topic, in seq order, exactly once (see the module's docstring)."""

    def __init__(self, store: AccessLogStore, kafka: KafkaConnection, topic: str, *, transactional_id: str,
                 batch_max: int = PUBLISH_BATCH_MAX, log: Callable[[str], None] = lambda _: None) -> None:
        assert 1 <= batch_max <= PUBLISH_BATCH_MAX
        self.store, self.kafka, self.topic = store, kafka, topic
        self.transactional_id, self.batch_max, self.log = transactional_id, batch_max, log
        self.producer: Any = None
        self.published: tuple[int, str] = (0, GENESIS_HASH)  # the last entry on the topic: seq and hash
        self.last_error: str | None = None  # what stopped or paused the background publisher, for the operator
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def open(cls, settings: Settings, *, log: Callable[[str], None] = lambda _: None) -> AccessLogPublisher:
        """The publisher the settings name: their Kafka connection checked first (`ConfigurationError`, nothing
        created), then their access log store (created if missing)."""
        kafka = settings.kafka()
        return cls(AccessLogStore.open(settings), kafka, Topics.for_prefix(settings.kafka_topic_prefix).access,
                   transactional_id=settings.access_log_transactional_id, log=log)

    def connect(self) -> None:
        """(Re)start the producer, fencing an older publisher, and read where the topic is."""
        self.close()
        if not kafka_client.topic_partitions(self.kafka, self.topic):
            raise NotFound(f"topic {self.topic} does not exist on Kafka at {self.kafka.servers}, or "
                           f"{self.kafka.principal} may not see it: the administrator creates it and grants the API "
                           f"its rights with `ledger kafka init --api PRINCIPAL` (docs/kafka.md)")
        self.producer = kafka_client.producer(self.kafka, transactional_id=self.transactional_id)
        # After this, no transaction of an older publisher is open: the topic's last committed record is the truth.
        self.producer.init_transactions()
        self.published = self._last_published()

    def _last_published(self) -> tuple[int, str]:
        """The seq and hash of the topic's last committed entry, checked against the store: the publisher goes on
        from an entry of its own store only (`AccessLogBroken` otherwise: publishing would skip or repeat)."""
        last = kafka_client.last_records(self.kafka, self.topic).get(0)
        if last is None:
            return 0, GENESIS_HASH
        where = f"the last record of {self.topic} (offset {last.offset})"
        advice = ("nothing was published; check that LEDGER_ACCESS_LOG_SQLITE_PATH (or the PostgreSQL settings) and "
                  "LEDGER_KAFKA_TOPIC_PREFIX name a store and a topic that belong together, and run `ledger audit "
                  "access` (docs/audit.md, 'The access log')")
        try:
            on_topic = LoggedEntry.parse(last.value)
        except AccessRecordInvalid as error:
            raise AccessLogBroken(f"{where} is not an access log entry ({error}): {advice}") from None
        stored = self.store.after(on_topic.seq - 1, 1)
        if not stored or stored[0].seq != on_topic.seq:
            head = self.store.head()[0]
            raise AccessLogBroken(f"{where} is entry {on_topic.seq}, but the store's last entry is {head}: {advice}")
        if stored[0] != on_topic:
            raise AccessLogBroken(f"{where} is entry {on_topic.seq}, and differs from the store's entry "
                                  f"{on_topic.seq}: {advice}")
        return on_topic.seq, on_topic.hash

    def close(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(kafka_client.KafkaError):
                self.producer.close(timeout=5)
            self.producer = None

    def publish_batch(self) -> int:
        """Publish the entries after the last published one (at most `batch_max`) in one transaction; how many."""
        seq, prev_hash = self.published
        entries = self.store.after(seq, self.batch_max)
        for entry in entries:
            # The chain is checked again where it is read: an entry changed in the store (its triggers dropped) is
            # never published as if it were the log.
            problems = chain_problems(entry, seq + 1, prev_hash)
            if problems:
                raise AccessLogBroken(f"the access log's store ({self.store.describe()}) is broken at seq "
                                      f"{entry.seq}: {'; '.join(problems)}. Nothing from there on is published")
            seq, prev_hash = entry.seq, entry.hash
        if not entries:
            return 0
        producer = self.producer
        # 1. Begin the transaction: nothing below is visible to read_committed readers until step 3.
        producer.begin_transaction()
        try:
            # 2. The entries, in seq order, on the topic's one partition.
            for entry in entries:
                key, value = entry.record()
                producer.send(self.topic, key=key, value=value, partition=0)
            # 3. Commit: all of them become visible, or (on failure) none; the next connect reads where the topic is.
            kafka_client.commit_transaction(producer)
        except BaseException:
            with contextlib.suppress(kafka_client.KafkaError):  # the next producer's init_transactions aborts it
                kafka_client.abort_transaction(producer)
            raise
        self.published = (seq, prev_hash)
        return len(entries)

    def run(self, *, follow: bool = False, stop: Callable[[], bool] = lambda: False) -> int:
        """Publish until the store's end (and with `follow`, keep publishing new entries until `stop()`). Retries
        Kafka's failures with a bounded backoff, at most PUBLISH_RETRIES_MAX in a row. Returns how many."""
        total = failures = 0
        while not stop():
            try:
                if self.producer is None:
                    self.connect()
                published = self.publish_batch()
                failures = 0
            except (kafka_client.SaslAuthenticationFailedError, kafka_client.AuthorizationError):
                raise  # refused, not unavailable: retrying changes nothing
            except (kafka_client.KafkaError, TimeoutError) as error:
                failures += 1
                if failures > PUBLISH_RETRIES_MAX:
                    raise
                delay = min(RETRY_BACKOFF_MAX_S, 0.2 * 2 ** failures)
                if kafka_client.fenced(error):
                    # Not Kafka being away: another publisher with the same transactional id started (a second
                    # `ledger serve`, or `ledger api publish-access` beside it). Each takes over from the other.
                    self.log(f"access log: fenced by another publisher of {self.topic} (transactional id "
                             f"{self.transactional_id}: another `ledger serve` or `ledger api publish-access`); "
                             f"retry {failures} in {delay:.1f}s")
                else:
                    named = (str(error) if type(error).__name__ in str(error)
                             else f"{type(error).__name__}: {error}")
                    self.log(f"access log: Kafka unavailable ({named}); retry {failures} in {delay:.1f}s")
                self.close()
                _pause(delay, stop)
                continue
            total += published
            if published == 0:
                if not follow:
                    break
                _pause(FOLLOW_POLL_INTERVAL_S, stop)
        return total

    # `ledger serve` runs the publisher beside the API, in a thread of its own.

    def start(self) -> None:
        """Publish in a background thread until `stop`: new entries as they come; when Kafka stays away past the
        retries, pause BACKGROUND_PAUSE_S and try again (the entries wait, durable, in the store); stop for good on
        a refusal or a broken chain, which an operator must look at (said through `log`, kept in `last_error`)."""
        assert self._thread is None, "started once"
        self._thread = threading.Thread(target=self._background, name="access-log-publisher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread: the transaction in hand commits or aborts first (bounded)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(BACKGROUND_STOP_WAIT_S)
        else:
            self.close()
            self.store.close()

    def _background(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run(follow=True, stop=self._stopping.is_set)
            except (AccessLogBroken, kafka_client.SaslAuthenticationFailedError,
                    kafka_client.AuthorizationError) as error:
                self.last_error = f"{type(error).__name__}: {error}"
                self.log(f"access log: publishing stopped, an operator must look: {self.last_error}")
                break
            except (kafka_client.KafkaError, TimeoutError, NotFound, AccessLogUnavailable) as error:
                self.last_error = f"{type(error).__name__}: {error}"
                self.log(f"access log: publishing paused for {BACKGROUND_PAUSE_S:g}s: {self.last_error}")
                self.close()
                _pause(BACKGROUND_PAUSE_S, self._stopping.is_set)
            else:
                self.last_error = None
        self.close()
        self.store.close()  # its connection was opened in this thread
