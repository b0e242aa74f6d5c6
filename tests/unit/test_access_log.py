"""The access log's entries, their chain and its bytes as docs/audit.md ("The access log") states them, the bounds on
what an entry holds, and the group commit's promises (`record` returns only once its entry is committed; concurrent
reads share a commit; a failed commit fails every read in it and writes none of it), against a store in memory.
The same against SQLite and PostgreSQL: tests/integration/test_access_log.py."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest

from ledger.errors import AccessLogUnavailable, InvalidInput
from projections.access import AccessEntry
from projections.access_log import (
    ENDPOINT_CHARS_MAX,
    GENESIS_HASH,
    PURPOSE_CHARS_MAX,
    RECORD_BYTES_MAX,
    SUBJECT_CHARS_MAX,
    AccessLog,
    AccessRecordInvalid,
    LoggedEntry,
    at_text,
    chain_problems,
    entry_body,
    entry_hash,
)
from tests.support.access_log import MemoryAccessLog
from tests.unit.test_documented_hashes import docs_snippet

WAIT_S = 10.0  # the longest a test waits for a condition (a thread to arrive, a commit to finish)
WIB = timezone(timedelta(hours=7))  # Jakarta
BALANCE = "GET /members/{kpj}/balance"


def read(subject: str = "siti@bekasi.bpjs.example", kpj: str = "15000000001", *, purpose: str | None = None,
         role: str = "branch-staff", endpoint: str = BALANCE, at: datetime | None = None) -> AccessEntry:
    return AccessEntry(at=at or datetime(2026, 5, 4, 8, 15, 2, 318530, tzinfo=UTC), subject=subject, role=role,
                       kpj=kpj, endpoint=endpoint, purpose=purpose)


def chained(entries: Sequence[AccessEntry]) -> list[LoggedEntry]:
    """The entries as the store writes them: numbered from 1 and linked."""
    log = MemoryAccessLog()
    for entry in entries:
        log.record(entry)
    return log.entries


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
        time.sleep(0.005)


# --- the chain's bytes -----------------------------------------------------------------------------------------------

def test_an_entrys_hash_is_the_sha256_of_the_documented_bytes() -> None:
    entry = read(at=datetime(2026, 5, 4, 15, 15, 2, 318530, tzinfo=WIB), purpose='pengaduan "Café" \\ 2026/118')
    body = entry_body(entry, seq=1)
    documented = (b"0" * 64 + b"\n" +
                  '{"at":"2026-05-04T08:15:02.318530Z","endpoint":"GET /members/{kpj}/balance","kpj":"15000000001",'
                  '"purpose":"pengaduan \\"Café\\" \\\\ 2026/118","role":"branch-staff","seq":1,'
                  '"subject":"siti@bekasi.bpjs.example"}'.encode())
    assert entry_hash(GENESIS_HASH, body) == hashlib.sha256(documented).hexdigest() == \
        "2b4c9a7c4bda1c867f315d47b393b4992dc12b3c7b71309a7e70b0ab5d5af092"
    # The standard library's JSON gives the same body: an auditor needs no code of ours.
    assert json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() == \
        documented.split(b"\n", 1)[1]


def test_the_time_is_always_utc_with_six_fraction_digits_and_a_time_without_a_zone_is_refused() -> None:
    assert at_text(datetime(2026, 5, 4, 7, 0, 0, tzinfo=WIB)) == "2026-05-04T00:00:00.000000Z"
    assert at_text(datetime(2026, 1, 1, 0, 0, 0, 5, tzinfo=UTC)) == "2026-01-01T00:00:00.000005Z"
    with pytest.raises(InvalidInput, match="has no timezone"):
        at_text(datetime(2026, 5, 4, 7, 0, 0))  # noqa: DTZ001 - the point: a time without a zone


def test_a_record_on_the_topic_is_the_subject_as_key_and_the_nine_fields_as_canonical_json() -> None:
    first, second = chained([read(purpose="complaint 2026-118"), read(subject="portal", role="member-service")])
    key, value = second.record()
    assert key == b"portal"
    fields = orjson.loads(value)
    assert fields == {"seq": 2, "at": "2026-05-04T08:15:02.318530Z", "subject": "portal", "role": "member-service",
                      "kpj": "15000000001", "endpoint": BALANCE, "purpose": None, "prev_hash": first.hash,
                      "hash": second.hash}
    assert value == json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert LoggedEntry.parse(value) == second
    assert first.prev_hash == GENESIS_HASH


def test_the_documented_program_checks_a_chain_of_every_kind_of_entry_and_finds_each_change() -> None:
    check = docs_snippet("audit.md", "check_access.py")["check"]
    entries = chained([read(), read(purpose="pengaduan “Café” \\ /x"),
                       read("portal", "17000000002", role="member-service", endpoint="GET /members/{kpj}/history"),
                       read("ops", purpose="x" * PURPOSE_CHARS_MAX)])
    values = [orjson.loads(entry.record()[1]) for entry in entries]
    assert check(values) == (4, [])
    changed = [dict(value) for value in values]
    changed[1]["kpj"] = "15000000009"
    assert check(changed)[1] == ["seq 2: its hash is not its content's"]
    assert check([values[0], values[2], values[3]])[1] == [
        "seq 3 follows seq 1", "seq 3: its prev_hash is not the hash of the entry before"]
    assert check([values[1], values[0], *values[2:]])[1][0] == "seq 2 follows seq 0"


def test_the_chain_names_a_gap_a_repeat_a_broken_link_and_a_changed_entry() -> None:
    one, two, three = chained([read(), read("b"), read("c")])
    assert chain_problems(two, 2, one.hash) == []
    assert chain_problems(three, 2, one.hash) == ["seq 3 where seq 2 was due (seq 2 to 2 missing)",
                                                  "its prev_hash is not the hash of the entry before it"]
    assert chain_problems(two, 3, two.hash)[0] == "seq 2 where seq 3 was due (a seq again, or going back)"
    forged = LoggedEntry(**{**two.as_dict(), "kpj": "15000000009"})
    assert chain_problems(forged, 2, one.hash) == [
        "its hash is not the SHA-256 of its content: it was changed after it was written, or forged"]


@pytest.mark.parametrize(("value", "problem"), [
    (None, "no value"),
    (b"x" * (RECORD_BYTES_MAX + 1), "at most"),
    (b"{not json", "not JSON"),
    (b"[1]", "not an object of exactly the members"),
    (b'{"seq": 1}', "not an object of exactly the members"),
    ("extra", "not an object of exactly the members"),
    (("seq", True), "seq is True"),
    (("seq", 0), "seq is 0"),
    (("seq", "1"), "seq is '1'"),
    (("kpj", 15000000001), "kpj not text"),
    (("purpose", 7), "purpose not text"),
    (("at", "2026-05-04 08:15:02"), "at is not a time"),
    (("hash", "A" * 64), "hash is not 64 lowercase hex"),
    (("prev_hash", "0" * 63), "prev_hash is not 64 lowercase hex"),
])
def test_a_record_that_is_not_an_entry_is_refused_saying_why(value: Any, problem: str) -> None:
    fields = chained([read()])[0].as_dict()
    if value == "extra":
        value = orjson.dumps({**fields, "nik": "3275014101900001"})
    elif isinstance(value, tuple):
        value = orjson.dumps({**fields, value[0]: value[1]})
    with pytest.raises(AccessRecordInvalid, match=problem):
        LoggedEntry.parse(value)


# --- what an entry may hold ------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("entry", "problem"), [
    (read(subject=""), "subject is empty"),
    (read(subject="s" * (SUBJECT_CHARS_MAX + 1)), f"subject is 257 characters long: at most {SUBJECT_CHARS_MAX}"),
    (read(subject="siti\nfake line"), r"subject holds the character U\+000A"),
    (read(role=""), "role is empty"),
    (read(role="r" * 33), "role is 33 characters long: at most 32"),
    (read(kpj="1500000000"), "kpj: KPJ number"),
    (read(kpj="15000000001 "), "kpj: KPJ number"),
    (read(endpoint=""), "endpoint is empty"),
    (read(endpoint="/" * (ENDPOINT_CHARS_MAX + 1)), f"at most {ENDPOINT_CHARS_MAX}"),
    (read(purpose=""), "purpose is empty"),
    (read(purpose="p" * (PURPOSE_CHARS_MAX + 1)), f"at most {PURPOSE_CHARS_MAX}"),
    (read(purpose="audit\r\nsubject: someone else"), r"purpose holds the character U\+000D"),
    (read(purpose="complaint \u202e811-6202"), r"U\+202E \(RIGHT-TO-LEFT OVERRIDE\)"),
    (read(purpose="a\u2028b"), r"U\+2028"),
    (read(purpose="tab\there"), r"U\+0009"),
    (read(at=datetime(2026, 5, 4, 8, 15)), "has no timezone"),  # noqa: DTZ001 - the point
])
def test_an_entry_out_of_bounds_is_refused_naming_the_field_and_nothing_is_written(entry: AccessEntry,
                                                                                  problem: str) -> None:
    store = MemoryStore()
    log = AccessLog(store)
    try:
        with pytest.raises(InvalidInput, match=problem):
            log.record(entry)
        log.record(read())
    finally:
        log.close()
    assert [e.seq for e in store.entries] == [1]


def test_an_entry_at_every_bound_is_kept_as_given() -> None:
    entry = read(subject="s" * SUBJECT_CHARS_MAX, role="r" * 32, endpoint="e" * ENDPOINT_CHARS_MAX,
                 purpose="Pengaduan no. 118/KC-BKS/2026 — ditanyakan ahli waris" + "." * (PURPOSE_CHARS_MAX - 53))
    logged = chained([entry])[0]
    assert (logged.subject, logged.role, logged.endpoint, logged.purpose) == (entry.subject, entry.role,
                                                                             entry.endpoint, entry.purpose)
    assert len(logged.record()[1]) < RECORD_BYTES_MAX


# --- the group commit ------------------------------------------------------------------------------------------------

class MemoryStore:
    """The store's side of the group commit, in memory: numbers and links what it is given, one transaction per
    `append`. `gate` cleared holds every `append` until it is set; `refusals` > 0 fails that many appends whole."""

    def __init__(self) -> None:
        self.entries: list[LoggedEntry] = []
        self.batches: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.appending = threading.Event()  # an append has started (and may be held at the gate)
        self.refusals = 0

    def same_store(self) -> MemoryStore:
        return self

    def describe(self) -> str:
        return "memory"

    def close(self) -> None:
        pass

    def append(self, bodies: Sequence[dict[str, Any]]) -> list[LoggedEntry]:
        self.appending.set()
        assert self.gate.wait(WAIT_S), "the test never opened the gate"
        if self.refusals:
            self.refusals -= 1
            raise AccessLogUnavailable("the access log (memory) could not write its entries: disk full")
        written = []
        for body in bodies:
            prev_hash = self.entries[-1].hash if self.entries else GENESIS_HASH
            numbered = {**body, "seq": len(self.entries) + 1}
            self.entries.append(LoggedEntry(**numbered, prev_hash=prev_hash, hash=entry_hash(prev_hash, numbered)))
            written.append(self.entries[-1])
        self.batches.append(len(bodies))
        return written


def in_threads(log: AccessLog, entries: Sequence[AccessEntry]) -> tuple[list[threading.Thread], list[BaseException]]:
    """Each entry recorded by a thread of its own; what each raised is kept."""
    raised: list[BaseException] = []

    def one(entry: AccessEntry) -> None:
        try:
            log.record(entry)
        except BaseException as error:  # noqa: BLE001 - kept for the test to look at
            raised.append(error)

    threads = [threading.Thread(target=one, args=(entry,)) for entry in entries]
    for thread in threads:
        thread.start()
    return threads, raised


def joined(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.join(WAIT_S)
        assert not thread.is_alive(), "a record() call did not return"


def test_reads_that_arrive_while_a_commit_is_made_share_the_next_commit() -> None:
    store = MemoryStore()
    store.gate.clear()
    log = AccessLog(store)
    try:
        first, _ = in_threads(log, [read("first")])
        wait_until(store.appending.is_set, "the writer took the first entry")
        others, raised = in_threads(log, [read(f"reader-{n}") for n in range(50)])
        wait_until(lambda: log.queued() == 50, "50 entries queued behind the first commit")
        assert store.entries == [] and log.waiting == 51  # none of them has returned: none is committed
        store.gate.set()
        joined(first + others)
    finally:
        log.close()
    assert raised == []
    assert store.batches == [1, 50] and log.commits == 2
    assert [entry.seq for entry in store.entries] == list(range(1, 52))
    assert {entry.subject for entry in store.entries} == {"first", *(f"reader-{n}" for n in range(50))}


def test_a_commit_that_fails_fails_every_read_in_it_writes_none_of_them_and_the_log_goes_on() -> None:
    store = MemoryStore()
    store.gate.clear()
    store.refusals = 2  # the first entry's commit, and the next one, of the 10 queued behind it
    log = AccessLog(store)
    try:
        first, first_raised = in_threads(log, [read("first")])
        wait_until(store.appending.is_set, "the writer took the first entry")
        queued, raised = in_threads(log, [read(f"reader-{n}") for n in range(10)])
        wait_until(lambda: log.queued() == 10, "10 entries queued")
        store.gate.set()
        joined(first + queued)
        log.record(read("after"))
    finally:
        log.close()
    assert [str(error) for error in first_raised + raised] == [
        "the access log (memory) could not write its entries: disk full"] * 11
    assert all(isinstance(error, AccessLogUnavailable) for error in first_raised + raised)
    assert [(entry.seq, entry.subject, entry.prev_hash) for entry in store.entries] == [(1, "after", GENESIS_HASH)]


def test_a_read_whose_entry_is_not_committed_in_time_is_refused_and_its_entry_never_written() -> None:
    store = MemoryStore()
    store.gate.clear()
    log = AccessLog(store, commit_wait_s=0.2)
    try:
        first, first_raised = in_threads(log, [read("taken")])
        wait_until(store.appending.is_set, "the writer took the first entry")
        with pytest.raises(AccessLogUnavailable, match=r"did not commit the entry within 0.2s: the read is refused"):
            log.record(read("late"))
        joined(first)
        store.gate.set()
    finally:
        log.close()
    # Both reads were refused. The first entry was in the commit under way: it is written (the log may hold a read
    # that was refused, never miss one answered). The second was not taken yet: it never is.
    assert len(first_raised) == 1 and isinstance(first_raised[0], AccessLogUnavailable)
    assert [entry.subject for entry in store.entries] == ["taken"]


def test_a_full_queue_refuses_the_read_at_once_rather_than_keep_it_waiting() -> None:
    store = MemoryStore()
    store.gate.clear()
    log = AccessLog(store, queue_max=1)
    try:
        first, _ = in_threads(log, [read("in the commit")])
        wait_until(store.appending.is_set, "the writer took the first entry")
        second, _ = in_threads(log, [read("queued")])
        wait_until(lambda: log.queued() == 1, "the queue is full")
        with pytest.raises(AccessLogUnavailable, match="has 1 entries waiting"):
            log.record(read("refused"))
        store.gate.set()
        joined(first + second)
    finally:
        log.close()
    assert [entry.subject for entry in store.entries] == ["in the commit", "queued"]


def test_closing_commits_what_is_queued_and_refuses_what_comes_after() -> None:
    store = MemoryStore()
    log = AccessLog(store)
    log.record(read("before"))
    log.close()
    with pytest.raises(AccessLogUnavailable, match="closed"):
        log.record(read("after"))
    log.close()  # twice: nothing happens
    assert [entry.subject for entry in store.entries] == ["before"]


def test_the_memory_log_for_other_tests_checks_entries_as_the_real_one_and_can_refuse() -> None:
    log = MemoryAccessLog()
    log.record(read())
    with pytest.raises(InvalidInput):
        log.record(read(subject=""))
    log.unavailable = "the store is full"
    with pytest.raises(AccessLogUnavailable, match="the store is full"):
        log.record(read())
    assert [entry.seq for entry in log.reads_of("15000000001")] == [1]
