"""The access log's store on real SQLite and PostgreSQL (projections/access_log.py; docs/audit.md, "The access log"):
many threads and two processes writing one store keep one gapless chain, concurrent reads share commits, the table
refuses every change but the next link, and a store that cannot be written refuses the read with nothing half
written. Every test runs on both engines, each on a database of its own (an SQLite file, a PostgreSQL schema)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from ledger.errors import AccessLogUnavailable
from ledger.settings import Settings
from projections.access import AccessEntry
from projections.access_log import GENESIS_HASH, AccessLog, AccessLogStore, LoggedEntry, chain_problems

pytestmark = pytest.mark.integration

WAIT_S = 30.0  # the longest a test waits for a condition
THREADS, PER_THREAD = 16, 25
PROCESSES, PROCESS_THREADS, PER_PROCESS_THREAD = 2, 4, 50


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AccessLogStore]:
    """An empty access log on the engine of the parameter, its table and triggers created as `AccessLog.open` does."""
    if request.param == "sqlite":
        made = AccessLogStore("sqlite", sqlite_path=tmp_path / "access-log.db")
        made.create_schema()
        made.close()
        yield made
        return
    settings: Settings = request.getfixturevalue("postgres_settings")
    schema = f"access_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    made = AccessLogStore("postgres", conninfo=f"{settings.postgres_conninfo()} options=-csearch_path={schema}")
    made.create_schema()
    made.close()
    yield made
    with psycopg.connect(settings.postgres_conninfo(), autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


def raw(store: AccessLogStore) -> Any:
    """A connection of the test's own to the store's database, committing each statement: an insider's."""
    if store.dialect == "sqlite":
        assert store.sqlite_path is not None
        return sqlite3.connect(store.sqlite_path, isolation_level=None)
    return psycopg.connect(store.conninfo or "", autocommit=True)


def refused_errors(store: AccessLogStore) -> type[Exception]:
    return sqlite3.Error if store.dialect == "sqlite" else psycopg.Error


def entry(subject: str, kpj: str = "15000000001", purpose: str | None = None) -> AccessEntry:
    return AccessEntry(at=datetime.now(UTC), subject=subject, role="branch-staff", kpj=kpj,
                       endpoint="GET /members/{kpj}/balance", purpose=purpose)


def everything(store: AccessLogStore) -> list[LoggedEntry]:
    reader = store.same_store()
    try:
        return reader.after(0, 100_000)
    finally:
        reader.close()


def assert_one_chain(entries: list[LoggedEntry], count: int) -> None:
    """Seq 1..count, each linked to the one before and hashing to what it says."""
    assert [e.seq for e in entries] == list(range(1, count + 1))
    prev_hash = GENESIS_HASH
    for e in entries:
        assert chain_problems(e, e.seq, prev_hash) == [], e
        prev_hash = e.hash


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
        time.sleep(0.005)


def recording(log: AccessLog, entries: list[AccessEntry], raised: list[BaseException] | None = None
              ) -> tuple[list[threading.Thread], list[BaseException]]:
    """Each entry recorded by a thread of its own; what each raises is added to `raised` (a new list if None)."""
    raised = [] if raised is None else raised

    def one(e: AccessEntry) -> None:
        try:
            log.record(e)
        except BaseException as error:  # noqa: BLE001 - kept for the test to look at
            raised.append(error)

    threads = [threading.Thread(target=one, args=(e,)) for e in entries]
    for thread in threads:
        thread.start()
    return threads, raised


def joined(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT_S)
        assert not thread.is_alive(), "a record() call did not return"


class WriteLock:
    """Holds the store's write lock from a connection of the test's own, as another process's writer would."""

    def __init__(self, store: AccessLogStore) -> None:
        self.connection = raw(store)
        self.dialect = store.dialect

    def __enter__(self) -> WriteLock:
        if self.dialect == "sqlite":
            self.connection.execute("BEGIN IMMEDIATE")
        else:
            self.connection.execute("BEGIN")
            self.connection.execute("LOCK TABLE access_log IN EXCLUSIVE MODE")
        return self

    def release(self) -> None:
        self.connection.execute("ROLLBACK")

    def __exit__(self, *_: object) -> None:
        self.connection.close()


# --- one chain -------------------------------------------------------------------------------------------------------

def test_many_threads_recording_at_once_keep_one_gapless_chain_in_fewer_commits(store: AccessLogStore) -> None:
    log = AccessLog(store)
    try:
        def reader(n: int) -> None:
            for k in range(PER_THREAD):
                log.record(entry(f"reader-{n}", purpose=f"case {k}"))

        threads = [threading.Thread(target=reader, args=(n,)) for n in range(THREADS)]
        for thread in threads:
            thread.start()
        joined(threads)
    finally:
        log.close()
    written = everything(store)
    assert_one_chain(written, THREADS * PER_THREAD)
    for n in range(THREADS):  # each reader's entries, in the order it made them
        assert [e.purpose for e in written if e.subject == f"reader-{n}"] == [f"case {k}" for k in range(PER_THREAD)]
    assert log.commits < THREADS * PER_THREAD


def queued_behind_a_blocked_commit(log: AccessLog, lock: WriteLock, entries: list[AccessEntry]
                                   ) -> tuple[list[threading.Thread], list[BaseException]]:
    """Record one entry, which the writer takes into a commit that waits on `lock`; then `entries`, each from a thread
    of its own, which queue behind it. Returns once they all wait; none has returned."""
    first, raised = recording(log, [entry("first")])
    wait_until(lambda: log.committing == 1, "the writer took the first entry")
    threads, _ = recording(log, entries, raised)
    wait_until(lambda: log.queued() == len(entries), f"{len(entries)} entries queued")
    assert log.waiting == len(entries) + 1
    return first + threads, raised


def test_reads_queued_while_a_commit_waits_on_the_stores_lock_all_share_the_next_commit(
        store: AccessLogStore) -> None:
    log = AccessLog(store)
    try:
        with WriteLock(store) as lock:
            threads, raised = queued_behind_a_blocked_commit(log, lock, [entry(f"reader-{n}") for n in range(40)])
            assert log.commits == 0 and everything(store) == []
            lock.release()
            joined(threads)
    finally:
        log.close()
    assert raised == []
    assert log.commits == 2  # the one that waited on the lock, and one for all 40 queued behind it
    assert_one_chain(everything(store), 41)


def _process_writes(dialect: str, path: str | None, conninfo: str | None, name: str,
                    start: Any, threads: int, each: int) -> None:
    """Run in a process of its own: an access log of its own on the shared store, `threads` readers at once."""
    made = AccessLogStore(dialect, sqlite_path=Path(path) if path else None, conninfo=conninfo)
    log = AccessLog(made)
    start.wait(WAIT_S)

    def reader(n: int) -> None:
        for _ in range(each):
            log.record(AccessEntry(at=datetime.now(UTC), subject=f"{name}-{n}", role="auditor", kpj="15000000001",
                                   endpoint="GET /members/{kpj}/history", purpose=None))

    workers = [threading.Thread(target=reader, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    log.close()


def test_two_processes_writing_one_store_keep_one_chain(store: AccessLogStore) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [context.Process(target=_process_writes, args=(
        store.dialect, str(store.sqlite_path) if store.sqlite_path else None, store.conninfo, f"process-{p}", start,
        PROCESS_THREADS, PER_PROCESS_THREAD)) for p in range(PROCESSES)]
    for process in processes:
        process.start()
    start.set()  # both at once: their commits take turns at the store's lock
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    written = everything(store)
    assert_one_chain(written, PROCESSES * PROCESS_THREADS * PER_PROCESS_THREAD)
    per_process = {p: sum(e.subject.startswith(f"process-{p}-") for e in written) for p in range(PROCESSES)}
    assert per_process == dict.fromkeys(range(PROCESSES), PROCESS_THREADS * PER_PROCESS_THREAD)


# --- append-only -----------------------------------------------------------------------------------------------------

def test_the_table_refuses_every_change_but_the_next_link(store: AccessLogStore) -> None:
    log = AccessLog(store)
    for subject in ("siti", "budi", "ani"):
        log.record(entry(subject))
    log.close()
    before = everything(store)
    second = before[1]

    def row(seq: int, prev_hash: str, fill: str) -> str:
        return (f"INSERT INTO access_log VALUES ({seq}, '{second.at}', 'x', 'r', '15000000001', 'e', NULL, "
                f"'{prev_hash}', '{fill * 64}')")

    attempts = [
        "UPDATE access_log SET kpj = '15000000009' WHERE seq = 2",
        "UPDATE access_log SET purpose = 'routine' WHERE seq = 2",
        "DELETE FROM access_log WHERE seq = 3",
        "DELETE FROM access_log",
        # a new row that is not the next link: an old seq, a gap, a link to the wrong entry
        row(2, GENESIS_HASH, "a"), row(5, before[2].hash, "b"), row(4, second.hash, "c"),
    ]
    if store.dialect == "sqlite":
        # REPLACE deletes the old row without firing a DELETE trigger: the INSERT trigger stops it.
        attempts.append("INSERT OR REPLACE INTO access_log SELECT seq, at, 'someone else', role, kpj, endpoint, "
                        "purpose, prev_hash, hash FROM access_log WHERE seq = 2")
    else:
        attempts += ["TRUNCATE access_log",
                     row(2, GENESIS_HASH, "d") + " ON CONFLICT (seq) DO UPDATE SET subject = 'someone else'"]
    with closing(raw(store)) as insider:
        for sql in attempts:
            with pytest.raises(refused_errors(store), match=r"access log is (append-only|a chain)"):
                insider.execute(sql)
    assert everything(store) == before


# --- a store that cannot be written ---------------------------------------------------------------------------------

def poison(store: AccessLogStore) -> None:
    """From now on the store refuses any commit holding an entry of the subject `poison`, as a full disk would."""
    with closing(raw(store)) as insider:
        if store.dialect == "sqlite":
            insider.execute("CREATE TRIGGER poison BEFORE INSERT ON access_log WHEN NEW.subject = 'poison' "
                            "BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
        else:
            insider.execute("CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                            "IF NEW.subject = 'poison' THEN RAISE EXCEPTION 'could not extend file'; END IF; "
                            "RETURN NEW; END $$")
            insider.execute("CREATE TRIGGER poison BEFORE INSERT ON access_log FOR EACH ROW EXECUTE FUNCTION poison()")


def test_a_commit_the_store_refuses_fails_every_read_in_it_and_writes_none_of_it(store: AccessLogStore) -> None:
    poison(store)
    log = AccessLog(store)
    try:
        log.record(entry("before"))
        with pytest.raises(AccessLogUnavailable, match=r"the access log \(.*\) could not write its entries"):
            log.record(entry("poison"))
        # Five reads that share one commit, the poison third: the store writes two rows before it refuses the third,
        # and the transaction takes them back. Every one of the five is refused.
        with WriteLock(store) as lock:
            threads, raised = queued_behind_a_blocked_commit(log, lock, [entry(name) for name in "ab"] + [
                entry("poison")] + [entry(name) for name in "cd"])
            lock.release()
            joined(threads)
        log.record(entry("after"))
    finally:
        log.close()
    assert len(raised) == 5
    assert all(isinstance(error, AccessLogUnavailable) and "could not write its entries" in str(error)
               for error in raised)
    written = everything(store)
    assert [e.subject for e in written] == ["before", "first", "after"]
    assert_one_chain(written, 3)


def test_a_read_only_store_refuses_the_read_and_a_store_that_cannot_be_created_is_named(
        store: AccessLogStore, tmp_path: Path) -> None:
    if store.dialect == "postgres":
        assert store.conninfo is not None and store.conninfo.endswith(tuple("0123456789abcdef"))  # ...=<schema>
        read_only = AccessLogStore("postgres", conninfo=store.conninfo.replace(
            "options=-csearch_path=", "options='-cdefault_transaction_read_only=on -csearch_path=") + "'")
        log = AccessLog(read_only)
        try:
            with pytest.raises(AccessLogUnavailable, match="read-only transaction"):
                log.record(entry("siti"))
        finally:
            log.close()
        assert everything(store) == []
        return
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the access log's folder should be")
    settings = Settings().model_copy(update={"access_log_sqlite_path": blocker / "access-log.db"})
    with pytest.raises(AccessLogUnavailable, match=r"sqlite:.*not-a-folder/access-log.db\) could not create its table"):
        AccessLog.open(settings)


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """`path` read-only for this process: mode 0400, and for root (whom modes do not stop) the immutable attribute.
    Undone on the way out, so the test's folder can be removed."""
    mode = path.stat().st_mode
    path.chmod(0o400)
    chattr = shutil.which("chattr")  # e2fsprogs'
    immutable = os.geteuid() == 0 and chattr is not None and subprocess.run(
        [chattr, "+i", str(path)], capture_output=True, check=False).returncode == 0
    try:
        try:
            os.close(os.open(path, os.O_WRONLY))
            writable = True
        except PermissionError:
            writable = False
        if writable:
            pytest.skip("this machine cannot make a file read-only for root (no CAP_LINUX_IMMUTABLE for chattr +i); "
                        "the PostgreSQL case and the refused commits above cover the refusal")
        yield
    finally:
        if immutable:
            assert chattr is not None
            subprocess.run([chattr, "-i", str(path)], check=True)
        path.chmod(mode & 0o777)


def test_an_sqlite_file_that_became_read_only_refuses_the_read_and_keeps_what_it_held(tmp_path: Path) -> None:
    path = tmp_path / "access-log.db"
    settings = Settings().model_copy(update={"access_log_sqlite_path": path, "projection_store": "sqlite"})
    log = AccessLog.open(settings)
    log.record(entry("before"))
    log.close()
    before = everything(AccessLogStore("sqlite", sqlite_path=path))
    with read_only(path):
        log = AccessLog.open(settings)
        try:
            with pytest.raises(AccessLogUnavailable, match=r"sqlite:.*access-log.db\) could not .*readonly database"):
                log.record(entry("after"))
        finally:
            log.close()
    assert everything(AccessLogStore("sqlite", sqlite_path=path)) == before

