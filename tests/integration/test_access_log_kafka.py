"""The access log on the real secured broker (docs/audit.md, "The access log"): the API's principal publishes it to
`<prefix>.access` in seq order, exactly once, across a publisher that dies before its commit or is killed at any
moment; `ledger audit access`, as the auditor, lists who read a member and what a reader read, and reports a record
changed, dropped, added or forged by another principal as a breach; only the API's principal writes the topic.

Each test has topics of its own, provisioned by the administrator as `ledger kafka init --api ... --auditor ...`
does, and an access log in an SQLite file of its own."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from ledger.errors import AccessLogBroken
from ledger.publishing import kafka_client
from ledger.publishing.topics import Topics
from projections.access import AccessEntry
from projections.access_log import (
    AccessLog,
    AccessLogPublisher,
    AccessLogStore,
    LoggedEntry,
    entry_body,
    entry_hash,
)
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import ADMIN, API, AUDITOR, KafkaRoles

pytestmark = pytest.mark.integration

WAIT_S = 60.0  # the longest a test waits for a condition
MEMBER, OTHER = "15000000001", "17000000002"
BALANCE, HISTORY = "GET /members/{kpj}/balance", "GET /members/{kpj}/history"


@dataclass
class AccessSetup:
    roles: KafkaRoles
    topics: Topics
    store: AccessLogStore
    folder: Path

    @property
    def transactional_id(self) -> str:
        return f"access-{self.topics.prefix}"

    def record(self, entries: list[AccessEntry]) -> None:
        log = AccessLog(self.store)
        try:
            for one in entries:
                log.record(one)
        finally:
            log.close()

    def publisher(self, batch_max: int = 1_000) -> AccessLogPublisher:
        return AccessLogPublisher(self.store.same_store(), self.roles.connection(API), self.topics.access,
                                  transactional_id=self.transactional_id, batch_max=batch_max)

    def publish(self, batch_max: int = 1_000) -> int:
        publisher = self.publisher(batch_max)
        try:
            return publisher.run()
        finally:
            publisher.close()
            publisher.store.close()

    def on_topic(self) -> list[Any]:
        """The committed records of the access topic, as the auditor reads them."""
        return list(kafka_client.read_to_end(self.roles.connection(AUDITOR), self.topics.access))

    def stored(self) -> list[LoggedEntry]:
        reader = self.store.same_store()
        try:
            return reader.after(0, 100_000)
        finally:
            reader.close()

    def cli(self) -> Cli:
        return Cli(env={**os.environ, "LEDGER_KAFKA_TOPIC_PREFIX": self.topics.prefix,
                        "LEDGER_ACCESS_LOG_SQLITE_PATH": str(self.folder / "access-log.db"),
                        "LEDGER_ACCESS_LOG_TRANSACTIONAL_ID": self.transactional_id},
                   folder=self.folder, kafka=self.roles)

    def send_as(self, role: str, records: list[tuple[bytes, bytes]]) -> None:
        """Write records straight to the access topic as `role`, the way an attacker with its rights would."""
        producer = kafka_client.producer(self.roles.connection(role))
        try:
            for key, value in records:
                producer.send(self.topics.access, key=key, value=value, partition=0).get(timeout=30)
        finally:
            producer.close(timeout=10)


@pytest.fixture
def access(kafka_roles: KafkaRoles, tmp_path: Path) -> AccessSetup:
    prefix = f"test-access-{uuid.uuid4().hex[:10]}"
    topics = kafka_roles.provision(prefix, partitions=1)
    store = AccessLogStore("sqlite", sqlite_path=tmp_path / "access-log.db")
    store.create_schema()
    store.close()
    return AccessSetup(kafka_roles, topics, store, tmp_path)


def entry(subject: str, kpj: str = MEMBER, *, day: int = 4, endpoint: str = BALANCE, role: str = "branch-staff",
          purpose: str | None = None) -> AccessEntry:
    return AccessEntry(at=datetime(2026, 5, day, 8, 15, 2, 318530, tzinfo=UTC), subject=subject, role=role, kpj=kpj,
                       endpoint=endpoint, purpose=purpose)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {WAIT_S}s: {what}"
        time.sleep(0.1)


def assert_published_once_in_order(access: AccessSetup) -> None:
    """The topic holds exactly the store's entries, seq 1..N, each once, keyed by its subject, as the store has it."""
    records = access.on_topic()
    assert [LoggedEntry.parse(r.value) for r in records] == access.stored()
    assert [r.key for r in records] == [e.subject.encode() for e in access.stored()]
    assert {r.partition for r in records} <= {0}


# --- publishing ------------------------------------------------------------------------------------------------------

def test_the_api_publishes_every_entry_once_in_seq_order_and_a_second_run_publishes_nothing(
        access: AccessSetup) -> None:
    access.record([entry(f"reader-{n % 4}", purpose=f"case {n}" if n % 3 else None) for n in range(30)])
    assert access.publish(batch_max=7) == 30  # five transactions
    assert_published_once_in_order(access)
    assert access.publish() == 0
    access.record([entry("late")] * 5)
    assert access.publish() == 5
    assert len(access.on_topic()) == 35
    assert_published_once_in_order(access)


class Killed(BaseException):
    """What a publisher meets when its process is killed: nothing after it runs."""


def test_a_publisher_that_dies_before_its_commit_leaves_nothing_and_the_next_publishes_each_entry_once(
        access: AccessSetup, monkeypatch: pytest.MonkeyPatch) -> None:
    access.record([entry(f"reader-{n}") for n in range(20)])
    dying = access.publisher(batch_max=8)
    dying.connect()
    assert dying.publish_batch() == 8  # committed

    def killed(*_: object, **__: object) -> None:
        raise Killed

    # 2. The second batch's records are sent, and the process dies before step 3 (no commit, and no abort either).
    with monkeypatch.context() as patch:
        patch.setattr(kafka_client, "commit_transaction", killed)
        patch.setattr(kafka_client, "abort_transaction", lambda *_, **__: None)
        with pytest.raises(Killed):
            dying.publish_batch()
    # Its records are on the partition, in a transaction still open: read_committed readers never see them.
    raw = KafkaConsumer(**raw_options(access.roles, ADMIN), isolation_level="read_uncommitted", group_id=None,
                        enable_auto_commit=False)
    try:
        partition = TopicPartition(access.topics.access, 0)
        raw.assign([partition])
        raw.seek_to_beginning(partition)
        seen: list[Any] = []
        deadline = time.monotonic() + WAIT_S
        while len(seen) < 16 and time.monotonic() < deadline:
            seen += raw.poll(timeout_ms=500).get(partition, [])
        assert len(seen) == 16
    finally:
        raw.close()
    assert len(access.on_topic()) == 8

    # A new publisher fences the dead one (its transaction is aborted) and goes on from the last committed entry.
    assert access.publish(batch_max=8) == 12
    assert_published_once_in_order(access)
    with pytest.raises(KafkaError):  # the dead one's producer, were it to wake up and commit, is fenced off
        kafka_client.commit_transaction(dying.producer, timeout_s=10)
    dying.producer.close(timeout=5)
    assert_published_once_in_order(access)


def test_a_publisher_fenced_by_a_second_one_says_so_and_each_entry_is_still_published_once(
        access: AccessSetup) -> None:
    access.record([entry(f"reader-{n}") for n in range(6)])
    first = access.publisher(batch_max=4)
    said: list[str] = []
    first.log = said.append
    first.connect()
    second = access.publisher(batch_max=4)
    try:
        second.connect()  # the same transactional id: the first one's producer is fenced off
        assert first.run() == 6  # fenced once, said so, started again (fencing the second) and published it all
    finally:
        for one in (first, second):
            one.close()
            one.store.close()
    assert any("fenced by another publisher" in line for line in said), said
    assert not any("Kafka unavailable" in line for line in said), said
    assert_published_once_in_order(access)


def raw_options(roles: KafkaRoles, role: str) -> dict[str, Any]:
    kafka = roles.connection(role)
    return {"bootstrap_servers": list(kafka.bootstrap_servers), "security_protocol": kafka.security_protocol,
            "sasl_mechanism": kafka.sasl_mechanism, "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password, "ssl_cafile": kafka.ssl_cafile}


def test_a_publisher_killed_at_any_moment_and_started_again_publishes_each_entry_once(access: AccessSetup) -> None:
    cli = access.cli()
    total = 400
    access.record([entry("first")])
    writing_done = threading.Event()

    def reads() -> None:  # the API keeps answering reads while the publisher follows, and after it is killed
        log = AccessLog(access.store)
        try:
            for n in range(total - 1):
                log.record(entry(f"reader-{n % 7}", OTHER if n % 2 else MEMBER))
        finally:
            log.close()
            writing_done.set()

    out = (access.folder / "publisher.out").open("wb")
    follower = cli.start("api", "publish-access", "--follow", stdout=out, stderr=subprocess.STDOUT)
    writer = threading.Thread(target=reads)
    writer.start()
    try:
        wait_until(lambda: len(access.on_topic()) >= 50, "the follower published 50 entries")
    finally:
        follower.kill()  # SIGKILL: no transaction in hand is committed or aborted
        follower.wait(timeout=30)
        out.close()
        writer.join(WAIT_S)
    assert writing_done.is_set()
    assert follower.returncode == -9
    published_before = len(access.on_topic())  # committed; what its open transaction held, if any, never will be

    again = cli.json("api", "publish-access", "--json")
    assert again == {"published": total - published_before, "seq": total, "topic": access.topics.access}
    assert len(access.stored()) == total
    assert_published_once_in_order(access)
    assert cli("api", "publish-access").stdout == (f"published 0 access log entries to {access.topics.access}; "
                                                   f"last seq {total}\n")


# --- ledger audit access ---------------------------------------------------------------------------------------------

READS = [
    entry("siti@bekasi.bpjs.example", MEMBER, day=1, purpose="complaint 2026-118"),
    entry("budi@bogor.bpjs.example", OTHER, day=2, endpoint=HISTORY),
    entry("portal", MEMBER, day=3, role="member-service", endpoint=HISTORY),
    entry("siti@bekasi.bpjs.example", OTHER, day=4),
    entry("audit-team", MEMBER, day=5, role="auditor", purpose="annual audit 2026"),
]


def test_audit_access_lists_who_read_a_member_and_what_a_reader_read(access: AccessSetup) -> None:
    access.record(READS)
    assert access.publish() == 5
    cli = access.cli()

    member = cli.json("audit", "access", "--kpj", MEMBER)
    assert (member["intact"], member["records"], member["last_seq"], member["breaches"]) == (True, 5, 5, [])
    assert [(r["seq"], r["subject"], r["role"], r["endpoint"], r["purpose"], r["verified"]) for r in member["reads"]] \
        == [(1, "siti@bekasi.bpjs.example", "branch-staff", BALANCE, "complaint 2026-118", True),
            (3, "portal", "member-service", HISTORY, None, True),
            (5, "audit-team", "auditor", BALANCE, "annual audit 2026", True)]
    assert member["reads"][0]["at"] == "2026-05-01T08:15:02.318530Z" and member["reads_found"] == 3

    table = cli("audit", "access", "--kpj", MEMBER, "--from", "2026-05-02", "--to", "2026-05-04").stdout.splitlines()
    assert table[0] == f"access log {access.topics.access}: 5 records checked, chain intact from seq 1 to 5"
    assert table[1] == f"1 read(s) of member {MEMBER} from 2026-05-02 to 2026-05-04"
    assert table[2].split() == ["when", "(UTC)", "subject", "role", "member", "(KPJ)", "endpoint", "purpose"]
    assert table[3].split() == ["2026-05-03", "08:15:02", "portal", "member-service", MEMBER, "GET",
                                "/members/{kpj}/history", "-"]
    assert len(table) == 4

    siti = cli.json("audit", "access", "--subject", "siti@bekasi.bpjs.example")
    assert [(r["kpj"], r["at"][:10]) for r in siti["reads"]] == [(MEMBER, "2026-05-01"), (OTHER, "2026-05-04")]
    text = cli("audit", "access", "--subject", "siti@bekasi.bpjs.example", "--to", "2026-05-01").stdout
    assert "1 read(s) by subject siti@bekasi.bpjs.example from the start to 2026-05-01" in text
    assert "complaint 2026-118" in text
    assert cli.json("audit", "access", "--subject", "nobody")["reads"] == []


BAD_INPUT = [
    ((), "give exactly one of --kpj (a member) or --subject (a reader)"),
    (("--kpj", MEMBER, "--subject", "siti"), "give exactly one of --kpj"),
    (("--kpj", "1500000000"), "KPJ number"),
    (("--subject", "s" * 257), "--subject is 1 to 256 characters"),
    (("--kpj", MEMBER, "--from", "2026-05-09", "--to", "2026-05-01"), "--from 2026-05-09 is after --to 2026-05-01"),
    (("--kpj", MEMBER, "--from", "May 1"), "--from must be a date YYYY-MM-DD"),
]


def test_audit_access_refuses_bad_input_before_reading_anything(access: AccessSetup) -> None:
    for args, problem in BAD_INPUT:
        assert problem in access.cli()("audit", "access", *args, expect=2).stderr, args


def published_reads(access: AccessSetup) -> list[LoggedEntry]:
    access.record(READS)
    assert access.publish() == 5
    return access.stored()


def audit_breach(access: AccessSetup, *args: str) -> dict[str, Any]:
    cli = access.cli()
    found: dict[str, Any] = cli.json("audit", "access", *args, expect=8)
    text = cli("audit", "access", *args, expect=8).stdout
    first = found["breaches"][0]
    assert f"chain BROKEN: {found['breaches_found']} breach(es), the first at offset {first['offset']}" in text
    return found


def test_a_changed_copy_of_an_entry_added_by_another_principal_is_a_breach_naming_its_offset_and_seq(
        access: AccessSetup) -> None:
    entries = published_reads(access)
    # The administrator (all rights) appends entry 3 again, now saying that a colleague read the member.
    changed = {**entries[2].as_dict(), "subject": "budi@bogor.bpjs.example"}
    access.send_as(ADMIN, [(b"budi@bogor.bpjs.example", orjson.dumps(changed))])
    found = audit_breach(access, "--kpj", MEMBER)
    offset = access.on_topic()[-1].offset
    assert found["breaches"] == [{"offset": offset, "seq": 3, "problem": (
        "seq 3 where seq 6 was due (a seq again, or going back); its prev_hash is not the hash of the entry before "
        "it; its hash is not the SHA-256 of its content: it was changed after it was written, or forged")}]
    assert [(r["seq"], r["subject"], r["verified"]) for r in found["reads"]] == [
        (1, "siti@bekasi.bpjs.example", True), (3, "portal", True), (5, "audit-team", True),
        (3, "budi@bogor.bpjs.example", False)]
    text = access.cli()("audit", "access", "--kpj", MEMBER, expect=8).stdout
    assert text.splitlines()[-1].endswith("UNVERIFIED: after a breach")
    # The API's publisher will not go on from a last record that is not its own entry: it stops.
    publisher = access.publisher()
    with pytest.raises(AccessLogBroken, match=rf"offset {offset}\) is entry 3, and differs from the store's entry 3"):
        publisher.connect()
    publisher.close()
    assert access.cli()("api", "publish-access", expect=8).stderr.startswith("error: the last record of")


def test_a_record_that_is_not_an_entry_and_a_gap_are_breaches(access: AccessSetup) -> None:
    entries = published_reads(access)
    # An entry 8 that links to entry 5 and hashes right: entries 6 and 7 are missing. Then junk.
    gap = {**entry_body(entry("mallory", OTHER), seq=8), "prev_hash": entries[-1].hash}
    gap["hash"] = entry_hash(gap["prev_hash"], {k: v for k, v in gap.items() if k != "prev_hash"})
    access.send_as(ADMIN, [(b"mallory", orjson.dumps(gap)), (b"x", b"not an entry")])
    found = audit_breach(access, "--subject", "mallory")
    offsets = [r.offset for r in access.on_topic()][-2:]
    assert found["breaches"] == [
        {"offset": offsets[0], "seq": 8, "problem": "seq 8 where seq 6 was due (seq 6 to 7 missing)"},
        {"offset": offsets[1], "seq": None, "problem": "not an access log entry: not JSON"}]
    assert found["breaches_found"] == 2 and found["last_seq"] == 8


def test_an_entry_forged_at_the_end_is_found_once_the_api_publishes_again(access: AccessSetup) -> None:
    """The chain is unkeyed: a forged entry 6 that links and hashes right passes until the API's own entry 6 comes
    (docs/audit.md, "What the chain proves"). The publisher refuses to go on after it, so it does not come; the
    forgery is found by the publisher, which stops (exit 8), and by the auditor once a real entry follows."""
    entries = published_reads(access)
    forged = {**entry_body(entry("siti@bekasi.bpjs.example", OTHER, purpose="framed"), seq=6),
              "prev_hash": entries[-1].hash}
    forged["hash"] = entry_hash(forged["prev_hash"], {k: v for k, v in forged.items() if k != "prev_hash"})
    access.send_as(ADMIN, [(b"siti@bekasi.bpjs.example", orjson.dumps(forged))])
    assert access.cli().json("audit", "access", "--kpj", OTHER)["intact"] is True  # the limit, as documented

    access.record([entry("real-sixth")])
    refused = access.cli()("api", "publish-access", expect=8).stderr
    assert "is entry 6, and differs from the store's entry 6" in refused
    assert len(access.on_topic()) == 6
    # Had the API's principal published its entry 6 anyway (say, from another store), the auditor sees two sixes.
    real = access.stored()[5]
    access.send_as(API, [real.record()])
    found = audit_breach(access, "--kpj", OTHER)
    assert [(b["seq"], b["problem"].split(";")[0]) for b in found["breaches"]] == [
        (6, "seq 6 where seq 7 was due (a seq again, or going back)")]


# --- who may write the access log ------------------------------------------------------------------------------------

def test_only_the_api_writes_the_access_log_and_the_api_writes_no_event(access: AccessSetup) -> None:
    assert access.roles.secured, "scripts/test runs the suite against the secured broker (LEDGER_TEST_KAFKA_PRINCIPALS)"
    record = (b"mallory", orjson.dumps({"seq": 1, "subject": "mallory"}))
    for role, topic in [(AUDITOR, access.topics.access), (API, access.topics.events),
                        (API, access.topics.checkpoints)]:
        producer = KafkaProducer(**raw_options(access.roles, role), acks="all", max_block_ms=8_000)
        try:
            with pytest.raises(KafkaError, match="AuthorizationFailed"):
                producer.send(topic, key=record[0], value=record[1]).get(timeout=10)
        finally:
            producer.close(timeout=10)
    assert access.on_topic() == []
    assert kafka_client.end_offsets(access.roles.admin, access.topics.events) == {0: 0}
    # The control: the API's principal does write the access topic (so the refusals above are the ACLs at work).
    access.send_as(API, [record])
    assert len(access.on_topic()) == 1
