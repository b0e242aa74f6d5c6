"""The subscription SDK: typed handlers over the ledger's events topic, at-least-once, with effects made exactly once.

    from consumers.sdk import ProcessedEvents, Subscriber
    from ledger.events import ClaimPaid
    from ledger.settings import Settings

    # Settings(): the LEDGER_KAFKA_* of the team's environment file (docs/kafka.md): its principal, password, CA.
    subscriber = Subscriber(Settings().kafka(), topic="ledger.events", group_id="claims-notifier",
                            processed=ProcessedEvents("notifier.db"))

    @subscriber.on(ClaimPaid)
    def notify(event: ClaimPaid, delivery: Delivery) -> None:
        delivery.tx.execute("INSERT INTO outbox ...", (...))  # same transaction as "event done": exactly once

    subscriber.run()  # until stop() or SIGTERM/SIGINT; run(idle_timeout_s=5) returns once idle and caught up

What a record goes through:
1. **Routing** by the `type` header. A type nobody handles is passed over unparsed.
2. **Parsing** into the current published model of its type: `ledger.events.parse_published`, upcasting older
   versions. A record that is not an envelope, or whose data does not fit its type, goes to the dead-letter topic.
3. **Idempotence.** With a `ProcessedEvents` store, an event id already processed is skipped. Otherwise the handler
   runs inside a store transaction (`delivery.tx`) that also records the id. Effects written through `delivery.tx`
   happen exactly once, even though Kafka delivers at least once.
4. **Bounded retries** with exponential backoff. A handler that raises `Reject` is not retried. A reject, or a handler
   that keeps failing, sends the record to the dead-letter topic, and the consumer goes on.
5. **Offsets** are committed to the group after the records before them are handled or dead-lettered. A crash
   repeats at most the uncommitted records, and step 3 makes those repeats harmless.

**Idle exit** (`run(idle_timeout_s=N)`, the CLI's `--idle-exit N`) means caught up, not merely quiet. A consumer
group goes quiet while it waits for a member that died to time out (10 s, `kafka_client.GROUP_SESSION_TIMEOUT_MS`)
before it hands that member's partitions on; a consumer that stopped then would leave those partitions unread, and a
nightly export would stop short. So `run` returns only when nothing arrived for N seconds **and** the group has
consumed every partition of the topic up to the end offsets taken when that quiet spell began (`partitions_behind`).
Each member speaks only for what it knows: for the partitions assigned to it, its own positions; for every other
partition, the offset the group committed, which the member holding it commits when it is idle. A member that is not
assigned (joining, or while the group rebalances) is never caught up, nor is a partition nobody has committed up to
its end: a dead member's partitions wait for the member that inherits them. Until then it keeps polling, and logs
which partitions it waits for.

The dead-letter topic (default `<group_id>.dead-letters`) gets the original key, value and headers, plus
`dlq.reason`, `dlq.topic`, `dlq.partition`, `dlq.offset`, `dlq.group` and `dlq.failed_at` headers.

Where to start (`start=`), the first time this process gets a partition:
- `"committed"`: the group's committed offset, or the beginning for a new group;
- `"beginning"`;
- `"end"`;
- a `datetime`: the first record published at or after it (Kafka's offsets_for_times). The time is the publish time,
  not the event's effective date.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from pydantic import ValidationError

from ledger.errors import NotFound
from ledger.events import (
    PUBLISHED_EVENT_TYPES,
    Envelope,
    LedgerEvent,
    UnknownEventType,
    UpcastNeedsMember,
    parse_published,
)
from ledger.private_files import create_private_database
from ledger.publishing import kafka_client
from ledger.publishing.topics import dead_letter_topic as team_dead_letter_topic
from ledger.settings import KafkaConnection

RETRIES_DEFAULT = 3  # attempts after the first, before a failing record goes to the dead-letter topic
RETRIES_MAX = 20
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0
POLL_TIMEOUT_MS = 500
POLL_RECORDS_MAX = 500
# A poll that fails for a reason that passes (a broker lost, its group coordinator moving) is tried again, after the
# first backoff (BACKOFF_FIRST_S by default) doubling up to BACKOFF_MAX_S: with the defaults, about five minutes of
# consecutive failures before `run` gives up and raises the last error.
POLL_FAILURES_MAX = 30
# A consumer out of its group for kafka_client.GROUP_JOIN_TIMEOUT_S (60 s) is replaced by a new one
# (`kafka_client.JoinWatch`); after this many consumers in a row have failed to join, about five minutes with the
# default, `run` gives up and raises, naming the group, rather than wait on without a bound.
GROUP_JOIN_ATTEMPTS_MAX = 5
DEAD_LETTER_SEND_TIMEOUT_S = 30
SQLITE_BUSY_TIMEOUT_S = 30
REASONS_KEPT_MAX = 100


class Reject(Exception):
    """Raised by a handler that refuses an event for good: it is dead-lettered at once, without retries."""


@dataclass(frozen=True)
class Delivery:
    """What a handler gets besides the event: where it came from, and the transaction to write effects in."""

    envelope: Envelope
    topic: str
    partition: int
    offset: int
    tx: sqlite3.Connection | None  # the ProcessedEvents transaction, when the subscriber has one


Handler = Callable[[Any, Delivery], None]


class ProcessedEvents:
    """The idempotence helper: processed event ids in a SQLite file, beside the consumer's own tables.

    `process` runs an effect and records the event id in one transaction, so the effect happens once however often
    Kafka delivers the event. Keep the consumer's effects in the same file, written through the transaction.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        create_private_database(self.path)  # 0600, and its -wal and -shm with it: it holds the consumer's effects
        self.connection = sqlite3.connect(self.path, isolation_level=None, timeout=SQLITE_BUSY_TIMEOUT_S)
        self.connection.execute("PRAGMA journal_mode = WAL")
        self.connection.execute("CREATE TABLE IF NOT EXISTS processed_events (consumer TEXT NOT NULL, "
                                "event_id TEXT NOT NULL, processed_at TEXT NOT NULL, PRIMARY KEY (consumer, event_id))")

    def process(self, consumer: str, event_id: str, effect: Callable[[sqlite3.Connection], None]) -> bool:
        """Run `effect` and record `event_id` in one transaction. False (and nothing run) if already recorded."""
        self.connection.execute("BEGIN IMMEDIATE")
        try:
            done = self.connection.execute("SELECT 1 FROM processed_events WHERE consumer = ? AND event_id = ?",
                                           (consumer, event_id)).fetchone()
            if done:
                self.connection.rollback()
                return False
            effect(self.connection)
            self.connection.execute("INSERT INTO processed_events VALUES (?, ?, ?)",
                                    (consumer, event_id, datetime.now(UTC).isoformat(timespec="seconds")))
        except BaseException:
            self.connection.rollback()
            raise
        self.connection.commit()
        return True

    def count(self, consumer: str) -> int:
        (count,) = self.connection.execute("SELECT COUNT(*) FROM processed_events WHERE consumer = ?",
                                           (consumer,)).fetchone()
        return int(count)

    def close(self) -> None:
        self.connection.close()


@dataclass
class Stats:
    handled: int = 0  # handler ran and its effect committed
    duplicates: int = 0  # already processed: skipped
    passed_over: int = 0  # no handler for the type
    retries: int = 0
    dead_lettered: int = 0
    dead_letter_reasons: list[str] = field(default_factory=list)


class Subscriber:
    def __init__(self, kafka: KafkaConnection, *, topic: str, group_id: str, start: str | datetime = "committed",
                 processed: ProcessedEvents | None = None, dead_letter_topic: str | None = None,
                 retries: int = RETRIES_DEFAULT, backoff_first_s: float = BACKOFF_FIRST_S,
                 log: Callable[[str], None] = lambda _: None,
                 stall_interval_s: float = kafka_client.STALL_INTERVAL_S,
                 join_timeout_s: float = kafka_client.GROUP_JOIN_TIMEOUT_S) -> None:
        if not 0 <= retries <= RETRIES_MAX:
            raise ValueError(f"retries must be between 0 and {RETRIES_MAX}")
        if not (isinstance(start, datetime) or start in ("committed", "beginning", "end")):
            raise ValueError(f"start must be 'committed', 'beginning', 'end' or a datetime, not {start!r}")
        self.kafka = kafka
        self.topic = topic
        self.group_id = group_id
        self.start = start
        self.processed = processed
        self.dead_letter_topic = dead_letter_topic or team_dead_letter_topic(group_id)
        self.retries = retries
        self.backoff_first_s = backoff_first_s
        self.log = log
        self.handlers: dict[str, Handler] = {}
        self.stats = Stats()
        self._stopping = threading.Event()
        self._positioned: set[int] = set()  # partitions this process has had (start applies to the first time)
        self._to_position: set[int] = set()  # of those, the ones still to move to `start`
        self._assignment: frozenset[int] | None = None  # this member's partitions; None while joining or rebalancing
        self._committed: dict[int, int] = {}  # partition -> the next offset this member last committed for it
        self._waiting_for: list[int] | None = None  # partitions the idle exit last waited for (logged on change)
        self._client: Any = None
        self._producer: Any = None
        self._poll_failures = 0  # consecutive polls that failed for a reason that passes
        self._stall = kafka_client.StallWatch(self._own_readable_ends, stall_interval_s)
        self._join = kafka_client.JoinWatch(join_timeout_s)
        self._join_attempts = 0  # consumers opened in a row that have not got into the group yet

    # --- registration ------------------------------------------------------------------------------------------

    def on(self, *models: type[LedgerEvent]) -> Callable[[Handler], Handler]:
        """Register the decorated function for these event types; it receives the current published model."""
        for model in models:
            if model.TYPE not in PUBLISHED_EVENT_TYPES:
                raise ValueError(f"{model.__name__} is not a published event type")

        def register(handler: Handler) -> Handler:
            for model in models:
                if model.TYPE in self.handlers:
                    raise ValueError(f"{model.TYPE} already has a handler")
                self.handlers[model.TYPE] = handler
            return handler

        return register

    # --- running ---------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the record in hand, commit, and return from `run`. Safe from a signal handler or another thread."""
        self._stopping.set()

    def run(self, *, idle_timeout_s: float | None = None, handle_signals: bool = True) -> Stats:
        """Consume until `stop()` (or SIGTERM/SIGINT), or until nothing arrives for `idle_timeout_s`."""
        if not self.handlers:
            raise ValueError("no handlers: register at least one with @subscriber.on(EventType)")
        # The team does not create its dead-letter topic: only the administrator creates topics (docs/kafka.md).
        if not kafka_client.topic_partitions(self.kafka, self.dead_letter_topic):
            raise NotFound(f"the dead-letter topic {self.dead_letter_topic} does not exist on Kafka at "
                           f"{self.kafka.servers}, or {self.kafka.principal} may not see it: the administrator "
                           f"creates it, and grants the team its rights, with `ledger kafka init --consumer "
                           f"{self.group_id}=PRINCIPAL` (docs/kafka.md)")
        previous = self._install_signals() if handle_signals else {}
        self._open()
        idle_since = time.monotonic()
        idle_ends: dict[int, int] | None = None  # the topic's end offsets when this quiet spell began
        try:
            while not self._stopping.is_set():
                batches = self._poll()
                if batches is None:
                    continue
                if not batches:
                    # Quiet: every record polled so far is handled, so the positions can be committed. They are
                    # past the transaction markers, which the last records' offsets are not: other members read
                    # from them that these partitions are done (see "Idle exit" above).
                    self._quiet()
                    if idle_timeout_s is not None:
                        if idle_ends is None:
                            idle_ends = self._readable_ends()
                        if (idle_ends is not None and time.monotonic() - idle_since >= idle_timeout_s
                                and self._caught_up(idle_ends)):
                            break
                    continue
                idle_since = time.monotonic()
                idle_ends = None
                self._handle(batches)
        finally:
            self._close()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return self.stats

    def _poll(self) -> dict[Any, list[Any]] | None:
        """One poll's records to handle; None after a failure that passes (logged, and waited out with a growing
        pause)."""
        try:
            batches: dict[Any, list[Any]] = self._client.poll(timeout_ms=POLL_TIMEOUT_MS)
        except kafka_client.RetriableError as error:
            self._poll_failures += 1
            if self._poll_failures > POLL_FAILURES_MAX:
                raise
            pause = min(BACKOFF_MAX_S, self.backoff_first_s * 2 ** (self._poll_failures - 1))
            self.log(f"Kafka unavailable ({_first_line(error)}); poll {self._poll_failures} of "
                     f"{POLL_FAILURES_MAX} failed, trying again in {pause:.1f}s")
            self._stopping.wait(pause)
            return None
        self._poll_failures = 0
        # kafka-python's poll returns nothing, without an error, while it waits for the group coordinator and the
        # join; bounded per poll, but not across polls. A consumer that never gets in is replaced, with a bound.
        joined = kafka_client.in_group(self._client)
        if self._join.overdue(joined):
            self._reopen_out_of_group()
            return None
        if joined:
            self._join_attempts = 0
        if self._to_position:
            # Newly assigned partitions move to `start` first; records polled from before the move are dropped
            # unprocessed (and uncommitted), so nothing is lost or handled out of place.
            moved = self._position()
            batches = {tp: records for tp, records in batches.items() if tp.partition not in moved}
        return batches

    def _open(self) -> None:
        self._client = kafka_client.consumer(self.kafka, group_id=self.group_id, max_poll_records=POLL_RECORDS_MAX)
        kafka_client.subscribe(self._client, self.topic, on_assigned=self._assigned, on_revoked=self._revoked)
        self._assignment = None
        self._committed = {}
        self._stall.reset()
        self._join.reset()
        self._join_attempts += 1

    def _reopen_out_of_group(self) -> None:
        """Replace a consumer that has been out of its group for the join timeout (`kafka_client.JoinWatch` says why
        this happens); raise once GROUP_JOIN_ATTEMPTS_MAX consumers in a row have failed to join. Handled records
        were committed after each batch, so the new consumer resumes where this one stopped."""
        if self._join_attempts >= GROUP_JOIN_ATTEMPTS_MAX:
            raise kafka_client.KafkaTimeoutError(
                f"could not join the consumer group {self.group_id} on {self.topic}: {self._join_attempts} consumers "
                f"in a row each waited {self._join.timeout_s:g}s for the group coordinator and an assignment. Is "
                f"Kafka at {self.kafka.servers} well, and may {self.kafka.principal} use the group?")
        self.log(f"the consumer has been out of the group {self.group_id} (no coordinator or no assignment) for "
                 f"{self._join.timeout_s:g}s; reopening the consumer (attempt {self._join_attempts + 1} of "
                 f"{GROUP_JOIN_ATTEMPTS_MAX})")
        self._client.close(autocommit=False)
        self._open()

    def _quiet(self) -> None:
        """On a quiet poll: commit this member's positions, and replace its consumer if it has stalled."""
        positions = self._own_positions()
        if positions is None:  # joining, rebalancing or repositioning: nothing to commit or judge yet
            self._stall.reset()
            return
        self._commit_positions(positions)
        self._reopen_if_stalled(positions)

    def _reopen_if_stalled(self, positions: dict[int, int]) -> None:
        """A consumer that fetches nothing while its partitions have records to read leaves the group and a new one
        joins, resuming from the offsets committed after each handled batch (`kafka_client.StallWatch` says why this
        happens). Partitions already positioned keep their committed offsets: `start` is not applied again."""
        stalled = self._stall.stalled(positions)
        if stalled:
            self.log(f"partitions {stalled} of {self.topic} fetched nothing for {self._stall.interval_s:g}s although "
                     f"they have records to read; reopening the consumer")
            self._client.close(autocommit=False)
            self._open()

    def _own_readable_ends(self) -> dict[int, int]:
        assignment = self._assignment or frozenset()
        return {p: end for p, end in kafka_client.committed_ends(self.kafka, self.topic).items() if p in assignment}

    def _handle(self, batches: dict[Any, list[Any]]) -> None:
        """Deliver the polled records in order, then commit the offsets after them; a `stop()` ends it early."""
        done: dict[int, int] = {}
        for records in batches.values():
            for record in records:
                if self._stopping.is_set():
                    break
                self._deliver(record)
                done[record.partition] = record.offset + 1
        if done:
            self._commit(done)

    def _install_signals(self) -> dict[signal.Signals, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[signal.Signals, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, lambda *_: self.stop())
        return previous

    def _assigned(self, partitions: list[int]) -> None:
        # Runs on the client's network thread, which must not block: the seeks happen in `run`, after the poll.
        fresh = [p for p in partitions if p not in self._positioned]
        self._positioned.update(fresh)
        if self.start != "committed":
            self._to_position.update(fresh)
        self._committed = {}  # another member may have committed these partitions meanwhile
        self._assignment = frozenset(partitions)

    def _revoked(self, _partitions: list[int]) -> None:
        # A rebalance begins (or the consumer closes): until the next assignment this member speaks for nothing.
        self._assignment = None

    def _commit(self, offsets: dict[int, int]) -> None:
        try:
            kafka_client.commit_offsets(self._client, self.topic, offsets)
        except kafka_client.KafkaError as error:  # e.g. a rebalance took the partitions meanwhile
            # Not fatal: the new owner gets these records again, and idempotence absorbs the repeat.
            self.log(f"commit failed ({type(error).__name__}: {error}); the records will be redelivered")
            return
        self._committed.update(offsets)

    def _readable_ends(self) -> dict[int, int] | None:
        try:
            return kafka_client.readable_ends(self._client, self.topic)
        except kafka_client.KafkaError as error:  # the broker is away: ask again on the next quiet poll
            self.log(f"could not read the end offsets of {self.topic} ({type(error).__name__}: {error})")
            return None

    def _own_positions(self) -> dict[int, int] | None:
        """This member's positions on its partitions; None while it has none to speak for (joining, rebalancing,
        repositioning) or cannot read them."""
        assignment = self._assignment
        if not assignment or self._to_position:
            return None
        try:
            return kafka_client.positions(self._client, self.topic, sorted(assignment))
        except kafka_client.KafkaError as error:  # e.g. the partitions were taken by a rebalance meanwhile
            self.log(f"could not read the positions ({type(error).__name__}: {error})")
            return None

    def _commit_positions(self, positions: dict[int, int]) -> None:
        """Commit the positions of this member's partitions where they moved past what it committed."""
        moved = {p: offset for p, offset in positions.items() if self._committed.get(p) != offset}
        if moved:
            self._commit(moved)

    def _caught_up(self, ends: dict[int, int]) -> bool:
        """Whether the group has consumed every partition up to `ends`, as far as this member can tell."""
        assignment = self._assignment
        behind = sorted(ends)  # until shown otherwise
        if assignment is not None and not self._to_position:  # else joining or rebalancing: it cannot speak yet
            try:
                mine = kafka_client.positions(self._client, self.topic, sorted(assignment))
                others = kafka_client.committed_offsets(self._client, self.topic,
                                                        [p for p in sorted(ends) if p not in assignment])
                behind = partitions_behind(ends, mine, others)
            except kafka_client.KafkaError as error:
                self.log(f"could not compare with the end offsets ({type(error).__name__}: {error})")
        if behind != self._waiting_for:
            self._waiting_for = behind
            if behind:
                self.log(f"idle, but not caught up: partitions {behind} of {self.topic} are "
                         + ("not assigned yet (the group is forming or rebalancing)" if assignment is None else
                            "behind their end offsets (held by another member, or waiting to be reassigned)")
                         + "; waiting")
        return not behind

    def _position(self) -> set[int]:
        fresh = sorted(self._to_position)
        self._to_position.clear()
        if isinstance(self.start, datetime):
            moment = self.start if self.start.tzinfo else self.start.replace(tzinfo=UTC)
            found = kafka_client.offsets_for_time(self._client, self.topic, fresh, int(moment.timestamp() * 1000))
            for partition, offset in found.items():
                kafka_client.seek(self._client, self.topic, partition, "end" if offset is None else offset)
        else:
            for partition in fresh:
                kafka_client.seek(self._client, self.topic, partition, self.start)
        return set(fresh)

    def _close(self) -> None:
        if self._client is not None:
            self._client.close(autocommit=False)
            self._client = None
        if self._producer is not None:
            self._producer.close(timeout=DEAD_LETTER_SEND_TIMEOUT_S)
            self._producer = None

    # --- one record ------------------------------------------------------------------------------------------------

    def _deliver(self, record: Any) -> None:
        headers = dict(record.headers or [])
        event_type = headers.get("type", b"").decode(errors="replace")
        if event_type and event_type not in self.handlers:
            self.stats.passed_over += 1
            return
        try:
            envelope = Envelope.model_validate(orjson.loads(record.value))
            if envelope.type not in self.handlers:
                self.stats.passed_over += 1
                return
            event = parse_published(envelope.type, envelope.version, envelope.data)
        except (orjson.JSONDecodeError, TypeError, ValidationError, UnknownEventType, UpcastNeedsMember) as error:
            self._dead_letter(record, f"unparseable: {type(error).__name__}: {_first_line(error)}")
            return
        handler = self.handlers[envelope.type]
        for attempt in range(self.retries + 1):
            try:
                if self.processed is None:
                    handler(event, Delivery(envelope, record.topic, record.partition, record.offset, None))
                    self.stats.handled += 1
                elif self.processed.process(self.group_id, envelope.event_id, lambda tx: handler(
                        event, Delivery(envelope, record.topic, record.partition, record.offset, tx))):
                    self.stats.handled += 1
                else:
                    self.stats.duplicates += 1
                return
            except Reject as error:
                self._dead_letter(record, f"rejected by the handler: {error}")
                return
            except Exception as error:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                if attempt == self.retries or self._stopping.is_set():
                    self._dead_letter(record, f"handler failed {attempt + 1} times, last: {type(error).__name__}: "
                                              f"{_first_line(error)}")
                    return
                self.stats.retries += 1
                delay = min(BACKOFF_MAX_S, self.backoff_first_s * 2 ** attempt)
                self.log(f"{envelope.event_id}: {type(error).__name__}: {error}; retry {attempt + 1} in {delay:.1f}s")
                self._stopping.wait(delay)

    def _dead_letter(self, record: Any, reason: str) -> None:
        if self._producer is None:
            self._producer = kafka_client.producer(self.kafka)
        headers = [
            *(record.headers or []), ("dlq.reason", reason.encode()), ("dlq.topic", record.topic.encode()),
            ("dlq.partition", str(record.partition).encode()), ("dlq.offset", str(record.offset).encode()),
            ("dlq.group", self.group_id.encode()),
            ("dlq.failed_at", datetime.now(UTC).isoformat(timespec="seconds").encode())]
        # Wait for the broker's acknowledgement: the offset is committed after this, so the record must be safe.
        self._producer.send(self.dead_letter_topic, key=record.key, value=record.value,
                            headers=headers).get(timeout=DEAD_LETTER_SEND_TIMEOUT_S)
        self.stats.dead_lettered += 1
        if len(self.stats.dead_letter_reasons) < REASONS_KEPT_MAX:
            self.stats.dead_letter_reasons.append(reason)
        self.log(f"dead-lettered {record.topic}/{record.partition}/{record.offset}: {reason}")


def partitions_behind(ends: dict[int, int], positions: dict[int, int], committed: dict[int, int | None]
                      ) -> list[int]:
    """The partitions not yet consumed up to `ends`: judged by this member's `positions` for its own partitions, and
    by the offsets the group `committed` for the others (None: never committed, which counts as the beginning)."""
    behind = []
    for partition, end in sorted(ends.items()):
        reached = positions[partition] if partition in positions else committed.get(partition)
        if (reached or 0) < end:
            behind.append(partition)
    return behind


def _first_line(error: BaseException) -> str:
    """A one-line reason for the dead-letter header: a validation error names its fields."""
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()[:3])
    return str(error).splitlines()[0] if str(error) else type(error).__name__
