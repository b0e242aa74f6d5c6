"""The consumer SDK and the two example consumers against the real broker: poison messages, transient failures,
restarts at random points, old versions, start positions, graceful shutdown, and kcat reading the topic.

Every consumer connects as a consumer team's principal, in a consumer group of the test's own that the administrator
provisioned for that team (`team_group`: its dead-letter topic and its ACLs), as `ledger kafka init --consumer` does."""

from __future__ import annotations

import csv
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.sdk import Delivery, ProcessedEvents, Reject, Subscriber
from ledger.events import PUBLISHED_EVENT_TYPES, ClaimPaid, MemberEnrolled
from ledger.publishing import kafka_client
from tests.support.history import HISTORY_PARTITIONS, copy_topic
from tests.support.kafka_roles import TEAMS, KafkaRoles

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
IDLE_S = 3
WAIT_S_MAX = 120
NOTIFIER, WAREHOUSE = TEAMS  # the two consumer teams' principals


def of_type(history: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return [e for e in history["envelopes"] if e["type"] == name]


def group() -> str:
    return f"test-group-{uuid.uuid4().hex[:10]}"


def team_group(kafka_roles: KafkaRoles, prefix: str, team: str = NOTIFIER) -> str:
    """A consumer group of the test's own on the (existing) topics of `prefix`, provisioned by the administrator for
    `team`'s principal: its dead-letter topic, and on a secured broker the team's ACLs (the SDK creates no topic)."""
    name = group()
    kafka_roles.provision(prefix, teams=[name], team_principal=team)
    return name


def dead_letters(kafka_roles: KafkaRoles, topic: str, team: str = NOTIFIER) -> list[Any]:
    """The dead-letter topic's records, read by the team that owns it."""
    return list(kafka_client.read_to_end(kafka_roles.connection(team), topic))


def test_poison_messages_go_to_the_dead_letter_topic_with_their_origin_and_the_consumer_goes_on(
        branch_history, kafka_roles) -> None:
    claim = of_type(branch_history, "ClaimPaid")[0]
    poison = [
        (b"\x00 not json at all", []),
        (orjson.dumps({**claim, "data": {**claim["data"], "amount": "a lot"}}),
         [("type", b"ClaimPaid"), ("version", str(claim["version"]).encode())]),
        (orjson.dumps({**claim, "version": 99}), [("type", b"ClaimPaid"), ("version", b"99")]),
    ]
    s = copy_topic(branch_history, kafka_roles, poison)
    topic = f"{s.kafka_topic_prefix}.events"
    seen: list[str] = []
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=topic,
                            group_id=team_group(kafka_roles, s.kafka_topic_prefix), start="beginning", retries=0)

    @subscriber.on(ClaimPaid)
    def handle(event: ClaimPaid, delivery: Delivery) -> None:
        # The published model: ClaimPaid's fields less the personal one (the beneficiary's name).
        assert isinstance(event, PUBLISHED_EVENT_TYPES["ClaimPaid"]) and delivery.envelope.type == "ClaimPaid"
        seen.append(delivery.envelope.event_id)

    stats = subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    assert sorted(seen) == sorted(e["event_id"] for e in of_type(branch_history, "ClaimPaid"))
    assert stats.dead_lettered == 3 and stats.passed_over == len(branch_history["envelopes"]) - len(seen)
    letters = dead_letters(kafka_roles, subscriber.dead_letter_topic)
    assert [r.value for r in letters] == [value for value, _ in poison]
    for record in letters:  # each names where the original is: that record is the same bytes
        headers = {k: v.decode() for k, v in record.headers}
        assert headers["dlq.topic"] == topic and headers["dlq.group"] == subscriber.group_id
        [original] = [r for r in kafka_client.read_to_end(kafka_roles.connection(NOTIFIER), topic,
                                                          partitions=[int(headers["dlq.partition"])])
                      if r.offset == int(headers["dlq.offset"])]
        assert original.value == record.value
    reasons = [dict(r.headers)["dlq.reason"].decode() for r in letters]
    assert reasons[0].startswith("unparseable: JSONDecodeError")
    assert reasons[1].startswith("unparseable: ValidationError") and "amount" in reasons[1]
    assert reasons[2] == ("unparseable: UnknownEventType: ClaimPaid version 99 is newer than this code knows "
                          f"({ClaimPaid.VERSION})")


def test_a_handler_that_fails_transiently_is_retried_and_its_effect_happens_once(branch_history, kafka_roles,
                                                                                 tmp_path) -> None:
    claims = of_type(branch_history, "ClaimPaid")
    failing = {claims[0]["event_id"]: 2, claims[1]["event_id"]: 1}  # fails that many times, then succeeds
    processed = ProcessedEvents(tmp_path / "effects.db")
    processed.connection.execute("CREATE TABLE effects (event_id TEXT NOT NULL)")
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=branch_history["topics"].events,
                            group_id=team_group(kafka_roles, branch_history["topics"].prefix), start="beginning",
                            processed=processed, retries=3, backoff_first_s=0.01)

    @subscriber.on(ClaimPaid)
    def handle(event: ClaimPaid, delivery: Delivery) -> None:
        delivery.tx.execute("INSERT INTO effects VALUES (?)", (delivery.envelope.event_id,))
        if failing.get(delivery.envelope.event_id, 0) > 0:
            failing[delivery.envelope.event_id] -= 1
            raise ConnectionError("the notification gateway timed out")

    stats = subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    assert (stats.retries, stats.dead_lettered, stats.handled) == (3, 0, len(claims))
    effects = Counter(row[0] for row in processed.connection.execute("SELECT event_id FROM effects"))
    assert set(effects) == {c["event_id"] for c in claims} and set(effects.values()) == {1}


def test_a_consumer_that_stops_fetching_is_replaced_and_every_event_arrives_once(branch_history, kafka_roles) -> None:
    # kafka-python 3.0 can stop fetching a partition after its leader moves (consumers/sdk.py, StallWatch). A paused
    # partition behaves the same way: every poll returns nothing, with no error. The handler pauses the consumer's
    # partitions at the first event; the stall watch must replace the consumer, which resumes from the commits.
    enrolled = of_type(branch_history, "MemberEnrolled")
    said: list[str] = []
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=branch_history["topics"].events,
                            group_id=team_group(kafka_roles, branch_history["topics"].prefix), start="beginning",
                            log=said.append, stall_interval_s=1.0)
    seen: Counter[str] = Counter()
    paused: list[Any] = []

    @subscriber.on(MemberEnrolled)
    def handle(event: MemberEnrolled, delivery: Delivery) -> None:
        if not paused:
            paused.append(subscriber._client)  # the consumer in use now (fault injection: no public way to wedge it)
            subscriber._client.pause(*subscriber._client.assignment())
        seen[delivery.envelope.event_id] += 1

    give_up = threading.Timer(WAIT_S_MAX, subscriber.stop)  # without the watch, the idle exit never comes
    give_up.start()
    try:
        stats = subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    finally:
        give_up.cancel()
    assert any("reopening the consumer" in line for line in said), said
    assert set(seen) == {e["event_id"] for e in enrolled} and set(seen.values()) == {1}
    assert stats.handled == len(enrolled)


def consumers_that_never_join(monkeypatch: pytest.MonkeyPatch, count: int | None) -> list[Any]:
    """The next `count` consumers kafka_client makes (None: every one) never get into their group: each poll waits out
    its timeout and returns nothing, without an error, as a consumer stuck in `ensure_coordinator_ready` under heavy
    load does (fault injection on the real consumer). Returns the consumers made so far."""
    real = kafka_client.consumer
    made: list[Any] = []

    def consumer(*args: Any, **kwargs: Any) -> Any:
        client = real(*args, **kwargs)
        made.append(client)
        if count is None or len(made) <= count:
            client.poll = lambda timeout_ms=0, **_: time.sleep(timeout_ms / 1000) or {}
        return client

    monkeypatch.setattr(kafka_client, "consumer", consumer)
    return made


def test_a_consumer_that_never_gets_into_its_group_is_replaced_and_every_event_arrives(
        branch_history, kafka_roles, monkeypatch) -> None:
    said: list[str] = []
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=branch_history["topics"].events,
                            group_id=team_group(kafka_roles, branch_history["topics"].prefix), start="beginning",
                            log=said.append, join_timeout_s=5.0)  # a real join takes well under 5 s
    seen: Counter[str] = Counter()

    @subscriber.on(MemberEnrolled)
    def handle(event: MemberEnrolled, delivery: Delivery) -> None:
        seen[delivery.envelope.event_id] += 1

    made = consumers_that_never_join(monkeypatch, 1)
    give_up = threading.Timer(WAIT_S_MAX, subscriber.stop)  # without the watch, the idle exit never comes
    give_up.start()
    try:
        stats = subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    finally:
        give_up.cancel()
    assert len(made) >= 2 and any("out of the group" in line for line in said), said
    assert set(seen) == {e["event_id"] for e in of_type(branch_history, "MemberEnrolled")}
    assert set(seen.values()) == {1} and stats.handled == len(seen)


def test_consumers_that_keep_failing_to_join_end_the_run_with_an_error_naming_the_group(
        branch_history, kafka_roles, monkeypatch) -> None:
    from consumers import sdk

    monkeypatch.setattr(sdk, "GROUP_JOIN_ATTEMPTS_MAX", 2)
    name = team_group(kafka_roles, branch_history["topics"].prefix)
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=branch_history["topics"].events,
                            group_id=name, start="beginning", join_timeout_s=1.0)

    @subscriber.on(MemberEnrolled)
    def handle(event: MemberEnrolled, delivery: Delivery) -> None:
        pass

    made = consumers_that_never_join(monkeypatch, None)
    give_up = threading.Timer(WAIT_S_MAX, subscriber.stop)  # without the bound, a clear failure rather than a hang
    give_up.start()
    try:
        with pytest.raises(kafka_client.KafkaTimeoutError, match=f"could not join the consumer group {name}"):
            subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    finally:
        give_up.cancel()
    assert len(made) == 2


def failing_polls(subscriber: Subscriber, failures: int | None) -> list[int]:
    """From the first event on, the subscriber's consumer fails its next `failures` polls (None: every poll) as a
    lost broker makes it (fault injection on the real consumer). Returns the count of polls failed so far."""
    failed = [0]

    def install() -> None:
        client = subscriber._client
        real = client.poll

        def poll(*args: Any, **kwargs: Any) -> Any:
            if failures is None or failed[0] < failures:
                failed[0] += 1
                raise kafka_client.KafkaTimeoutError("the group coordinator did not answer (injected)")
            return real(*args, **kwargs)

        client.poll = poll

    installed: list[bool] = []

    @subscriber.on(MemberEnrolled)
    def handle(event: MemberEnrolled, delivery: Delivery) -> None:
        if not installed:
            installed.append(True)
            install()

    return failed


def test_polls_that_fail_for_a_while_are_waited_out_and_nothing_is_lost(branch_history, kafka_roles) -> None:
    said: list[str] = []
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=branch_history["topics"].events,
                            group_id=team_group(kafka_roles, branch_history["topics"].prefix), start="beginning",
                            log=said.append, backoff_first_s=0.01)
    failed = failing_polls(subscriber, 3)
    stats = subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    assert failed[0] == 3
    assert len([line for line in said if line.startswith("Kafka unavailable")]) == 3, said
    assert stats.handled == len(of_type(branch_history, "MemberEnrolled"))


def test_polls_that_keep_failing_end_the_run_with_the_error(branch_history, kafka_roles, monkeypatch) -> None:
    from consumers import sdk

    monkeypatch.setattr(sdk, "POLL_FAILURES_MAX", 4)
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=branch_history["topics"].events,
                            group_id=team_group(kafka_roles, branch_history["topics"].prefix), start="beginning",
                            backoff_first_s=0.01)
    failed = failing_polls(subscriber, None)
    with pytest.raises(kafka_client.KafkaTimeoutError, match="injected"):
        subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    assert failed[0] == 5  # the first try and four more


def test_a_rejected_event_is_dead_lettered_without_retries(branch_history, kafka_roles) -> None:
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=branch_history["topics"].events,
                            group_id=team_group(kafka_roles, branch_history["topics"].prefix), start="beginning",
                            retries=5)
    calls = Counter()

    @subscriber.on(MemberEnrolled)
    def handle(event: MemberEnrolled, delivery: Delivery) -> None:
        calls[event.kpj] += 1
        if event.segment.value == "BPU":
            raise Reject("this consumer takes wage earners only")

    stats = subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    bpu = [e for e in of_type(branch_history, "MemberEnrolled") if e["data"]["segment"] == "BPU"]
    assert stats.dead_lettered == len(bpu) > 0 and stats.retries == 0 and set(calls.values()) == {1}
    assert {orjson.loads(r.value)["event_id"] for r in dead_letters(kafka_roles, subscriber.dead_letter_topic)} == \
        {e["event_id"] for e in bpu}


def run_killed_at_random_points(args: list[str], env: dict[str, str], seed: int) -> None:
    """Start the consumer CLI, SIGKILL it at random moments a few times, then let it finish."""
    rng = random.Random(seed)
    for _ in range(4):
        process = subprocess.Popen([sys.executable, "-m", "ledger.cli", *args], env=env, cwd=ROOT,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.5, 4.0))
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=WAIT_S_MAX)
    done = subprocess.run([sys.executable, "-m", "ledger.cli", *args, "--idle-exit", str(IDLE_S), "--json"],
                          env=env, cwd=ROOT, capture_output=True, text=True, check=False, timeout=WAIT_S_MAX)
    assert done.returncode == 0, done.stderr


def cli_env(history: dict[str, Any], kafka_roles: KafkaRoles, team: str) -> dict[str, str]:
    """The environment of `ledger consumers ...` on the history's topic, run as the team's principal."""
    return {**os.environ, **kafka_roles.env(team), "LEDGER_KAFKA_TOPIC_PREFIX": history["topics"].prefix}


def test_the_notifier_restarted_at_random_points_notifies_each_claim_exactly_once(branch_history, kafka_roles,
                                                                                  tmp_path) -> None:
    db = tmp_path / "notifier.db"
    name = team_group(kafka_roles, branch_history["topics"].prefix, NOTIFIER)
    run_killed_at_random_points(["consumers", "notifier", "--db", str(db), "--group", name],
                                cli_env(branch_history, kafka_roles, NOTIFIER), seed=5)
    claims = of_type(branch_history, "ClaimPaid")
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT claim_id, event_id, amount, message FROM notifications").fetchall()
    assert sorted(r[1] for r in rows) == sorted(c["event_id"] for c in claims)
    by_event = {c["event_id"]: c["data"] for c in claims}
    for claim_id, event_id, amount, message in rows:
        assert (claim_id, amount) == (by_event[event_id]["claim_id"], by_event[event_id]["amount"])
        assert f"Rp{amount:,}".replace(",", ".") in message


def test_the_warehouse_restarted_at_random_points_exports_each_event_exactly_once(branch_history, kafka_roles,
                                                                                  tmp_path) -> None:
    out = tmp_path / "warehouse"
    name = team_group(kafka_roles, branch_history["topics"].prefix, WAREHOUSE)
    run_killed_at_random_points(["consumers", "warehouse", "--out", str(out), "--group", name],
                                cli_env(branch_history, kafka_roles, WAREHOUSE), seed=9)
    rows = []
    for path in sorted(out.glob("month=*/events-p*.csv")):
        with path.open(newline="", encoding="utf-8") as file:
            part = list(csv.DictReader(file))
        assert part, path
        assert {row["effective_date"][:7] for row in part} == {path.parent.name.removeprefix("month=")}
        rows += part
    assert Counter(row["event_id"] for row in rows) == Counter(e["event_id"] for e in branch_history["envelopes"])
    by_id = {e["event_id"]: e for e in branch_history["envelopes"]}
    for row in random.Random(1).sample(rows, 50):
        env = by_id[row["event_id"]]
        assert int(row["position"]) == env["position"] and json.loads(row["data"]) == env["data"]


# A member of a consumer group that takes the partitions it is given, reads them, and never commits: what a consumer
# killed in the middle of its first batch leaves behind. It writes its assignment to a file after every rebalance. It
# connects as the principal its environment's LEDGER_KAFKA_* name. Like the SDK, it replaces a consumer that stays
# out of its group (kafka_client.JoinWatch), which a loaded machine has been seen to cause.
HOLDER = """
import json, pathlib, sys
from ledger.publishing import kafka_client
from ledger.settings import Settings
topic, group, assignment, join_timeout_s = sys.argv[1:5]
def assigned(partitions):
    pathlib.Path(assignment + ".tmp").write_text(json.dumps(partitions))
    pathlib.Path(assignment + ".tmp").replace(assignment)
def joining():
    client = kafka_client.consumer(Settings().kafka(), group_id=group, max_poll_records=1)
    kafka_client.subscribe(client, topic, on_assigned=assigned, on_revoked=lambda _: None)
    return client
client, join = joining(), kafka_client.JoinWatch(float(join_timeout_s))
while True:
    client.poll(timeout_ms=200)
    if join.overdue(kafka_client.in_group(client)):
        print("out of the group for", join_timeout_s, "s: a new consumer", file=sys.stderr, flush=True)
        client.close(autocommit=False)
        client = joining()
        join.reset()
"""
# A holder's first join, in a group of its own, takes a few seconds even on a loaded machine; after this long out of
# the group it is replaced. The tests wait for its partitions as long as four of them, Python's start-up included.
HOLDER_JOIN_TIMEOUT_S = 30.0
HOLDER_JOIN_WAIT_S = 4 * HOLDER_JOIN_TIMEOUT_S


def hold_partitions(kafka_roles: KafkaRoles, team: str, topic: str, group_id: str,
                    folder: Path) -> tuple[subprocess.Popen, Path]:
    """A member of the team's group `group_id` (HOLDER) in a process of its own."""
    assignment = folder / f"holder-{uuid.uuid4().hex[:6]}.json"
    with (folder / f"{assignment.stem}.stderr").open("wb") as errors:  # what it said, if it dies (see `held`)
        holder = subprocess.Popen([sys.executable, "-c", HOLDER, topic, group_id, str(assignment),
                                   str(HOLDER_JOIN_TIMEOUT_S)],
                                  env={**os.environ, **kafka_roles.env(team)}, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=errors)
    HOLDERS[assignment] = holder
    return holder, assignment


HOLDERS: dict[Path, subprocess.Popen] = {}  # assignment file -> its holder process


def held(assignment: Path) -> list[int] | None:
    """The holder's partitions as it last wrote them. A holder that died on its own fails the wait at once, with
    what it said, instead of letting it run out."""
    holder = HOLDERS.get(assignment)
    if holder is not None and holder.poll() is not None and holder.returncode != -9:
        errors = assignment.with_name(f"{assignment.stem}.stderr").read_text(errors="replace")
        raise AssertionError(f"the holder exited {holder.returncode}: {errors[-2000:]}")
    return json.loads(assignment.read_text()) if assignment.exists() else None


def wait_until(condition, what: str, timeout_s: float = WAIT_S_MAX) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        time.sleep(0.2)


def test_idle_exit_waits_until_a_killed_members_partitions_are_reassigned_and_exported(
        branch_history, kafka_roles, tmp_path) -> None:
    """A member took every partition and was killed before it committed anything. The group hands its partitions on
    only when its session times out; until then a new member gets nothing. A warehouse run with --idle-exit 1 must
    wait for them and export every event, not stop after a quiet second."""
    topic, name = branch_history["topics"].events, team_group(kafka_roles, branch_history["topics"].prefix, WAREHOUSE)
    holder, assignment = hold_partitions(kafka_roles, WAREHOUSE, topic, name, tmp_path)
    try:
        wait_until(lambda: held(assignment) == list(range(HISTORY_PARTITIONS)), "the holder has every partition",
                   HOLDER_JOIN_WAIT_S)
    finally:
        holder.kill()
        holder.wait(timeout=WAIT_S_MAX)
    out = tmp_path / "warehouse"
    done = subprocess.run([sys.executable, "-m", "ledger.cli", "consumers", "warehouse", "--out", str(out), "--group",
                           name, "--idle-exit", "1", "--json"], env=cli_env(branch_history, kafka_roles, WAREHOUSE),
                          cwd=ROOT,
                          capture_output=True, text=True, check=False, timeout=WAIT_S_MAX)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["handled"] == len(branch_history["envelopes"])
    assert "not assigned yet" in done.stderr  # it said what it waited for
    exported = Counter()
    for path in out.glob("month=*/events-p*.csv"):
        with path.open(newline="", encoding="utf-8") as file:
            exported.update(row["event_id"] for row in csv.DictReader(file))
    assert exported == Counter(e["event_id"] for e in branch_history["envelopes"])


def test_idle_exit_waits_for_partitions_another_member_held_when_it_died(branch_history, kafka_roles,
                                                                         tmp_path) -> None:
    """Two members share the partitions; the other one dies before committing. This member's own partitions are done,
    but it can speak only for those: it must wait until the dead member's partitions come to it, and handle them."""
    topic, name = branch_history["topics"].events, team_group(kafka_roles, branch_history["topics"].prefix)
    holder, assignment = hold_partitions(kafka_roles, NOTIFIER, topic, name, tmp_path)
    handled: Counter[str] = Counter()
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=topic, group_id=name)

    @subscriber.on(*PUBLISHED_EVENT_TYPES.values())
    def count(event: Any, delivery: Delivery) -> None:
        handled[delivery.envelope.event_id] += 1

    consumer = threading.Thread(target=subscriber.run, kwargs={"idle_timeout_s": 1, "handle_signals": False})
    try:
        wait_until(lambda: held(assignment) == list(range(HISTORY_PARTITIONS)), "the holder has every partition",
                   HOLDER_JOIN_WAIT_S)
        consumer.start()
        # Once this member has partitions of its own (unless it returned before, as it should not).
        wait_until(lambda: not consumer.is_alive() or 0 < len(held(assignment)) < HISTORY_PARTITIONS,
                   "the group split the partitions")
    finally:
        holder.kill()
        holder.wait(timeout=WAIT_S_MAX)
    consumer.join(timeout=WAIT_S_MAX)
    assert not consumer.is_alive(), "the consumer did not finish"
    assert handled == Counter(e["event_id"] for e in branch_history["envelopes"])


def test_an_old_version_replayed_through_the_current_sdk_arrives_upcast(branch_history, kafka_roles) -> None:
    """A topic written before ClaimPaid v2 holds v1 claims, which named the beneficiary. The SDK hands them to a
    handler of today's ClaimPaid with the relationship the v1 upcaster derives, and never the name."""
    from ledger.publishing.envelope import record_headers

    claims = of_type(branch_history, "ClaimPaid")
    names = {c["event_id"]: f"Penerima {i}" for i, c in enumerate(claims)}
    topics = kafka_roles.provision(f"test-v1-claims-{uuid.uuid4().hex[:10]}", partitions=2)
    topic = topics.events
    producer = kafka_client.producer(kafka_roles.admin)  # the old records, written straight to the topic
    for c in claims:
        v1 = {k: v for k, v in c["data"].items() if k != "beneficiary"} | {"beneficiary": names[c["event_id"]]}
        producer.send(topic, key=c["aggregate_id"].encode(), value=orjson.dumps({**c, "version": 1, "data": v1}),
                      headers=record_headers("ClaimPaid", 1))
    producer.flush()
    producer.close()
    received: list[Any] = []
    subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=topic,
                            group_id=team_group(kafka_roles, topics.prefix), start="beginning")

    @subscriber.on(ClaimPaid)
    def handle(event: Any, delivery: Delivery) -> None:
        assert delivery.envelope.version == 1
        received.append(event)

    stats = subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
    assert stats.dead_lettered == 0 and len(received) == len(claims) > 0
    assert all(isinstance(e, PUBLISHED_EVENT_TYPES["ClaimPaid"]) for e in received)
    death = {"death", "death-benefit"}
    assert Counter(e.beneficiary.value for e in received) == Counter(
        "other-heir" if c["data"]["kind"] in death else "self" for c in claims)
    assert all("beneficiary_name" not in e.model_dump() for e in received)
    assert not any(name in repr(e) for e in received for name in names.values())


def test_start_from_the_end_or_from_a_time_and_stop_gracefully(branch_history, kafka_roles) -> None:
    s = copy_topic(branch_history, kafka_roles)
    prefix, topic = s.kafka_topic_prefix, f"{s.kafka_topic_prefix}.events"
    time.sleep(1.1)  # the later records get a publish time clearly after `cut`
    cut = datetime.now(UTC)
    later = of_type(branch_history, "MemberEnrolled")[:7]
    producer = kafka_client.producer(kafka_roles.admin)  # as copy_topic wrote the others

    def produce_later() -> None:
        for env in later:
            producer.send(topic, key=env["aggregate_id"].encode(), value=orjson.dumps(env),
                          headers=[("type", b"MemberEnrolled"), ("version", str(env["version"]).encode())])
        producer.flush()

    def collect(start: Any, after_start: bool = False) -> list[str]:
        seen: list[str] = []
        subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=topic,
                                group_id=team_group(kafka_roles, prefix), start=start)

        @subscriber.on(MemberEnrolled)
        def handle(event: MemberEnrolled, delivery: Delivery) -> None:
            seen.append(delivery.envelope.event_id)

        if not after_start:
            subscriber.run(idle_timeout_s=IDLE_S, handle_signals=False)
            return seen
        # The end is where the consumer starts: produce once it has its partitions and has settled its positions at
        # their ends, which it commits on its first quiet poll (a fixed pause can be too short on a loaded machine),
        # then wait for the records themselves (an idle exit could come first if the join had used up the quiet).
        consumer = threading.Thread(target=subscriber.run, kwargs={"handle_signals": False})
        consumer.start()
        try:
            wait_until(lambda: not consumer.is_alive() or bool(
                subscriber._assignment and set(subscriber._committed) >= subscriber._assignment),
                "the consumer is positioned at the end of every partition")
            assert consumer.is_alive(), "the consumer stopped before it was positioned"
            produce_later()
            wait_until(lambda: not consumer.is_alive() or len(seen) >= len(later), "the later records arrive")
        finally:
            subscriber.stop()
            consumer.join(timeout=WAIT_S_MAX)
        assert not consumer.is_alive(), "the consumer did not stop"
        return seen

    assert sorted(collect("end", after_start=True)) == sorted(e["event_id"] for e in later)
    assert sorted(collect(cut)) == sorted(e["event_id"] for e in later)  # only what was published after `cut`
    everything = collect("beginning")
    assert len(everything) == len(of_type(branch_history, "MemberEnrolled")) + len(later)
    producer.close()

    # Graceful shutdown: stop() mid-stream; a restart in the same group goes on with no gap and no repeat.
    name = team_group(kafka_roles, prefix)
    seen: list[str] = []

    def subscriber_of(limit: int | None) -> Subscriber:
        subscriber = Subscriber(kafka_roles.connection(NOTIFIER), topic=topic, group_id=name, start="committed")

        @subscriber.on(MemberEnrolled)
        def handle(event: MemberEnrolled, delivery: Delivery) -> None:
            seen.append(delivery.envelope.event_id)
            if limit is not None and len(seen) == limit:
                subscriber.stop()

        return subscriber

    first = subscriber_of(limit=100).run(idle_timeout_s=IDLE_S, handle_signals=False)
    assert first.handled == 100
    subscriber_of(limit=None).run(idle_timeout_s=IDLE_S, handle_signals=False)
    assert sorted(seen) == sorted(everything)


def test_kcat_reads_and_decodes_the_topic(branch_history, kafka_roles) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: scripts/test installs it from Debian's packages"
    # As a consumer team, by its client certificate on a secured broker (docs/consumers.md), granted its rights on
    # the topic by the administrator (as `ledger kafka init --consumer` does) whatever other tests ran before.
    team_group(kafka_roles, branch_history["topics"].prefix, NOTIFIER)
    done = subprocess.run([kcat, "-C", *kafka_roles.kcat(NOTIFIER), "-t", branch_history["topics"].events,
                           "-o", "beginning",
                           "-e", "-q", "-X", "isolation.level=read_committed", "-f", "%k\t%h\t%s\n"],
                          capture_output=True, text=True, check=False, timeout=WAIT_S_MAX)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(branch_history["envelopes"])
    positions = set()
    for line in lines:
        key, headers, value = line.split("\t", 2)
        envelope = json.loads(value)
        assert key == envelope["aggregate_id"]
        assert f"type={envelope['type']}" in headers and f"version={envelope['version']}" in headers
        positions.add(envelope["position"])
    assert positions == set(range(1, len(branch_history["envelopes"]) + 1))


def console_consumer(kafka_roles: KafkaRoles, team: str, topic: str, group_id: str, count: int
                     ) -> subprocess.CompletedProcess[str]:
    """Kafka's own console consumer as `team`, with the team's properties file, as docs/consumers.md shows it."""
    assert kafka_roles.principals_dir is not None, "run with scripts/test: the secured broker's principals"
    servers = kafka_roles.env(team)["LEDGER_KAFKA_BOOTSTRAP_SERVERS"]
    return subprocess.run(
        [str(ROOT / "scripts" / "kafka"), "tool", "kafka-console-consumer", "--bootstrap-server", servers,
         "--consumer.config", str(kafka_roles.principals_dir / f"{team}.properties"), "--group", group_id,
         "--topic", topic, "--from-beginning", "--isolation-level", "read_committed", "--max-messages", str(count),
         "--timeout-ms", str(WAIT_S_MAX * 1000)],
        capture_output=True, text=True, check=False, timeout=WAIT_S_MAX * 2)


def test_kafkas_console_consumer_reads_as_a_team_in_its_own_group_only(branch_history, kafka_roles) -> None:
    topics = branch_history["topics"]
    count = len(branch_history["envelopes"])
    own = team_group(kafka_roles, topics.prefix, NOTIFIER)
    done = console_consumer(kafka_roles, NOTIFIER, topics.events, own, count)
    assert done.returncode == 0, done.stderr
    positions = [json.loads(line)["position"] for line in done.stdout.splitlines() if line.startswith("{")]
    assert sorted(positions) == list(range(1, count + 1)), done.stderr[-2000:]

    # The same team in the other team's group: refused by the group ACL, nothing read.
    theirs = team_group(kafka_roles, topics.prefix, WAREHOUSE)
    refused = console_consumer(kafka_roles, NOTIFIER, topics.events, theirs, count)
    # (The tool exits 0 even so: it reports the refusal on stderr and "Processed a total of 0 messages".)
    assert "GroupAuthorizationException" in refused.stderr, refused.stderr[-2000:]
    assert not [line for line in refused.stdout.splitlines() if line.startswith("{")]
