"""The relay: publishes what the event store recorded to Kafka, exactly once, in order per aggregate.

The event store is the outbox. Commands never publish; this relay reads the store's notification log and produces
each contract event to the events topic inside a Kafka transaction.

Where the relay's position is kept, and why it is exact: in Kafka itself. Every transaction carries, besides its
events, one record on the relay-state topic saying "published up to notification N, last position P". The events
and that record commit or abort together, so the last committed state record is, by construction, the true last
published event. A restarted relay reads it (read_committed) and goes on from N + 1. Its transactional id fences
off any older instance still running, so two relays never interleave.

That holds for state records the relay wrote. Anyone who can write to the state topic can write one too, so the
relay refuses (`RelayStateInvalid`, exit 12) a state that is not a state, or that names a notification beyond the
store's last one: going on from there would skip events silently. `tally_store` gives `ledger audit reconcile` the
store's side of the comparison with the state and the topic.

The same transaction carries the log's signed checkpoint of the Merkle tree over every event published so far
(ledger.publishing.checkpoints), and the state record carries the tree's frontier: what extending the tree needs, so
a restart never rehashes history. Events, checkpoint and frontier commit together: the last committed checkpoint
always covers exactly the events committed, and a reader (read_committed) never sees an event it does not sign.

The topics are described in ledger.publishing.topics, the records' envelope in ledger.publishing.envelope.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.domain import INTERNAL_EVENT_TOPICS
from ledger.errors import NotFound, RelayStateInvalid, TlogInvalid
from ledger.memory import collector_paused
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import checkpoint_record, read_checkpoint_record
from ledger.publishing.envelope import envelope
from ledger.publishing.topics import Topics
from ledger.settings import KafkaConnection
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, open_checkpoint
from ledger.tlog.note import Ed25519Signer, Ed25519Verifier

RELAY_BATCH_MAX = 5_000  # notifications per Kafka transaction
RELAY_BATCH_LIMIT = 100_000  # the largest batch a relay accepts (`ledger relay --batch`)
RELAY_RETRIES_MAX = 30  # consecutive failures before giving up (about 5 minutes with the backoff below)
RETRY_BACKOFF_MAX_S = 10.0
FOLLOW_POLL_INTERVAL_S = 0.2
STATE_READ_POLL_MS = 500
STATE_READ_ROUNDS_MAX = 60
RELAY_STATE_KEY = b"relay"
# Offsets read back from the checkpoints topic's end to find the relay's last signed checkpoint; then wider, by this
# factor, until one is found or the topic's start is reached (a rotation reads it all, once).
CHECKPOINT_LOOKBACK_FIRST = 64
CHECKPOINT_LOOKBACK_WIDENING = 4


@dataclass(frozen=True)
class RelayState:
    notification_id: int = 0  # the last notification of the store that was published (or skipped as internal)
    position: int = 0  # the last position given to a published event
    # The Merkle tree over the events at positions 1..position (its size is `position`); None in a state written
    # before the relay signed checkpoints, until it is rebuilt (`Relay.connect`). Not compared: the two numbers
    # above determine it.
    tree: merkle.Frontier | None = field(default_factory=merkle.Frontier, compare=False)

    def record(self) -> bytes:
        body: dict[str, Any] = {"notification_id": self.notification_id, "position": self.position}
        if self.tree is not None:
            body["tree"] = self.tree.to_dict()
        return orjson.dumps(body)


@dataclass(frozen=True)
class Batch:
    """One transaction's worth: the shaped records, and the relay state once they are committed."""
    after: RelayState  # the state this batch follows
    records: list[tuple[bytes, bytes, list[tuple[str, bytes]]]]
    state: RelayState
    checkpoint: tuple[bytes, bytes, list[tuple[str, bytes]]] | None = None  # the signed checkpoint of `state.tree`


def read_state(kafka: KafkaConnection, topics: Topics) -> RelayState:
    """The last committed relay state: read the (small, compacted) state topic to its end, read_committed.

    Raises `RelayStateInvalid` when the last state record is not a relay state: the relay must not guess where it is.
    """
    state = RelayState()
    for record in kafka_client.read_to_end(kafka, topics.state, partitions=[0], rounds_max=STATE_READ_ROUNDS_MAX,
                                           poll_ms=STATE_READ_POLL_MS):
        if record.key == RELAY_STATE_KEY:
            state = _parse_state(topics.state, record.offset, record.value)
    return state


def last_commit(kafka: KafkaConnection, topics: Topics) -> tuple[RelayState, int | None]:
    """The relay's last committed state and when it was committed (its record's Kafka timestamp, ms since the epoch;
    None before the relay's first commit): the state topic's last record, read back from the end, so the time is
    the commit's, not a read's. Raises `RelayStateInvalid` as `read_state` does."""
    last = kafka_client.last_records(kafka, topics.state, rounds_max=STATE_READ_ROUNDS_MAX,
                                     poll_ms=STATE_READ_POLL_MS).get(0)
    if last is None:
        return RelayState(), None
    if last.key != RELAY_STATE_KEY:
        raise RelayStateInvalid(f"the last record of {topics.state} (offset {last.offset}) is not the relay's state")
    return _parse_state(topics.state, last.offset, last.value), last.timestamp


@dataclass(frozen=True)
class SignedCheckpoint:
    offset: int  # on the checkpoints topic (one partition)
    checkpoint: Checkpoint
    timestamp_ms: int  # the record's Kafka timestamp: when the relay committed it
    passed_over: int  # records after it that are not checkpoints signed by the key


def last_signed_checkpoint(kafka: KafkaConnection, topic: str, verifier: Ed25519Verifier) -> SignedCheckpoint | None:
    """The checkpoints topic's last record that opens with the key `verifier` (signature checked): read back from the
    end, in windows that widen until one is found or the topic's start is reached."""
    end = kafka_client.end_offsets(kafka, topic).get(0, 0)
    window = CHECKPOINT_LOOKBACK_FIRST
    while True:
        start = max(0, end - window)
        found = None
        passed_over = 0
        for batch in kafka_client.read_partition(kafka, topic, 0, start):
            for record in batch:
                try:
                    note = read_checkpoint_record(record.value, record.headers).note
                    found = (record.offset, open_checkpoint(note, verifier.name, verifier).checkpoint,
                             record.timestamp)
                    passed_over = 0
                except TlogInvalid:
                    passed_over += 1
        if found is not None or start == 0:
            return None if found is None else SignedCheckpoint(*found, passed_over)
        window *= CHECKPOINT_LOOKBACK_WIDENING


def _parse_state(topic: str, offset: int, value: bytes) -> RelayState:
    try:
        body = orjson.loads(value)
        numbers = (body["notification_id"], body["position"])
    except (orjson.JSONDecodeError, TypeError, KeyError):
        numbers = None
    if numbers is None or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in numbers):
        raise RelayStateInvalid(f"the relay state record at {topic} offset {offset} is not a relay state "
                                f"({{\"notification_id\": N, \"position\": P, \"tree\": ...}}, whole "
                                f"numbers)") from None
    tree = None
    if "tree" in body:
        try:
            tree = merkle.Frontier.from_dict(body["tree"])
        except TlogInvalid as error:
            raise RelayStateInvalid(f"the relay state record at {topic} offset {offset} holds no Merkle tree "
                                    f"frontier: {error}") from None
        if tree.size != numbers[1]:
            raise RelayStateInvalid(f"the relay state record at {topic} offset {offset} holds a tree of {tree.size} "
                                    f"events for position {numbers[1]}: they go together")
    elif numbers[1] == 0:
        tree = merkle.Frontier()
    return RelayState(notification_id=numbers[0], position=numbers[1], tree=tree)


def check_state(state: RelayState, store_head: int, topics: Topics) -> None:
    """Refuse a saved state beyond the store's last notification.

    Publishing from there would skip every event up to it, silently, and print "published 0 events" until the store
    grew past it. Such a state comes from a record on the state topic that the relay did not write, or from a store
    that is not the one the topic was published from (another file, an older backup)."""
    if state.notification_id > store_head:
        raise RelayStateInvalid(
            f"the relay's saved state on {topics.state} says notification {state.notification_id} (position "
            f"{state.position}) was published, but the event store's last notification is {store_head}; "
            f"{REFUSAL_ADVICE}")


# What an operator does when the relay refuses its state: said once, for every refusal.
REFUSAL_ADVICE = ("nothing was published. Check that LEDGER_SQLITE_PATH (or LEDGER_POSTGRES_*) and "
                  "LEDGER_KAFKA_TOPIC_PREFIX name a store and topics that belong together; `ledger audit reconcile` "
                  "compares the store, the relay's state and the events topic, and docs/kafka.md ('When the relay "
                  "refuses its state') says how to repair the state")


class Relay:
    """Publishes the store's notifications to Kafka in transactions of at most `RELAY_BATCH_MAX` events."""

    def __init__(self, recorder: Any, kafka: KafkaConnection, topics: Topics, *, transactional_id: str,
                 signer: Ed25519Signer | None, compression_type: str | None = None, batch_max: int = RELAY_BATCH_MAX,
                 log: Callable[[str], None] = lambda _: None) -> None:
        """`signer` signs the checkpoints with the log's key; None (development mode only, see
        `Settings.log_signing_key`) publishes none, and every event stays an unsigned tail for `audit verify`."""
        assert 1 <= batch_max <= RELAY_BATCH_LIMIT
        self.signer = signer
        self.recorder = recorder
        self.kafka = kafka
        self.topics = topics
        self.transactional_id = transactional_id
        self.compression_type = compression_type
        self.batch_max = batch_max
        self.log = log
        self.producer: Any = None
        self.state = RelayState()
        self.prepared: Batch | None = None  # the batch after `state`, shaped while the last one was committing

    def connect(self) -> None:
        """(Re)start the producer and reload the true position from Kafka; fences any older relay instance."""
        self.close()
        if not kafka_client.topic_partitions(self.kafka, self.topics.events):
            raise NotFound(f"topic {self.topics.events} does not exist on Kafka at {self.kafka.servers}, or "
                           f"{self.kafka.principal} may not see it: the administrator creates the ledger's topics "
                           f"and grants the relay its rights with `ledger kafka init` (docs/kafka.md)")
        self.producer = kafka_client.producer(self.kafka, transactional_id=self.transactional_id,
                                              compression_type=self.compression_type)
        self.producer.init_transactions()
        try:
            self.state = read_state(self.kafka, self.topics)
        except RelayStateInvalid as error:
            raise RelayStateInvalid(f"{error}; {REFUSAL_ADVICE}") from None
        self.prepared = None
        # A state beyond the store would make the relay skip events silently: refuse it (`check_state`).
        check_state(self.state, self._store_head(), self.topics)
        if self.state.tree is None:
            self.state = self._with_tree(self.state)
        if self.signer is not None:
            self._check_tree_against_last_checkpoint(self.signer)

    def _check_tree_against_last_checkpoint(self, signer: Ed25519Signer) -> None:
        """Refuse a saved tree that is not the one the relay last signed.

        The state topic is only as safe as its ACLs: someone who can write it could put there a frontier of another
        tree (one that includes a record they forged on the events topic, say), which the relay would extend and sign
        from then on. The last checkpoint signed with the relay's own key was committed in the same transaction as the
        state it goes with, so the saved tree must be exactly that checkpoint's: the same size and root. Records
        after it that the key did not sign (a forgery, junk) vouch for nothing and are passed over (`audit verify
        --key` reports them). No checkpoint signed by the key at all: a topic published before checkpoints, or a key
        just rotated (docs/audit.md, "Keys"); the state's tree is then taken as it is, and said so."""
        verifier = signer.verifier()
        found = self._last_signed_checkpoint(verifier)
        tree = self.state.tree
        assert tree is not None
        if found is None:
            if tree.size:
                self.log(f"relay: {self.topics.checkpoints} holds no checkpoint signed by {verifier.name}+"
                         f"{verifier.key_id:08x} (a topic published before checkpoints, or a key just rotated): its "
                         f"first checkpoint will cover the {tree.size:,} events published so far")
            return
        offset, signed = found
        if (signed.size, signed.root_hash) != (tree.size, tree.root()):
            raise RelayStateInvalid(
                f"the relay's saved state on {self.topics.state} holds a tree of {tree.size} events, but its last "
                f"signed checkpoint (offset {offset} of {self.topics.checkpoints}) is of {signed.size} events"
                f"{' with another root' if signed.size == tree.size else ''}: the state was not written by this "
                f"relay; {REFUSAL_ADVICE}")

    def _last_signed_checkpoint(self, verifier: Ed25519Verifier) -> tuple[int, Checkpoint] | None:
        found = last_signed_checkpoint(self.kafka, self.topics.checkpoints, verifier)
        if found is None:
            return None
        if found.passed_over:
            self.log(f"relay: {found.passed_over} record(s) after offset {found.offset} of {self.topics.checkpoints} "
                     f"are not checkpoints signed by {verifier.name}+{verifier.key_id:08x}: passed over; "
                     f"`ledger audit verify --key` reports them")
        return found.offset, found.checkpoint

    def _with_tree(self, state: RelayState) -> RelayState:
        """`state` with the tree over the events it says were published, rebuilt from the store: once, for a topic
        published before the relay signed checkpoints. The store gives the same envelopes the relay published then
        (`envelope` is a function of the stored event and its position); `audit verify` checks the result against
        the topic, as it checks every checkpoint."""
        self.log(f"relay: building the Merkle tree over the {state.position} events published before checkpoints "
                 f"(once)")
        tree = merkle.Frontier()
        start = 1
        while start <= state.notification_id:
            page = self.recorder.select_notifications(start=start, stop=state.notification_id, limit=self.batch_max)
            if not page:
                break
            for notification in page:
                if notification.topic not in INTERNAL_EVENT_TOPICS:
                    tree.append(merkle.leaf_hash(envelope(notification, tree.size + 1)[1]))
            start = page[-1].id + 1
        if tree.size != state.position:
            raise RelayStateInvalid(f"the relay's saved state on {self.topics.state} says {state.position} events "
                                    f"were published up to notification {state.notification_id}, but the store "
                                    f"holds {tree.size} there; {REFUSAL_ADVICE}")
        return RelayState(state.notification_id, state.position, tree)

    def close(self) -> None:
        if self.producer is not None:
            with contextlib.suppress(kafka_client.KafkaError):
                self.producer.close(timeout=5)
            self.producer = None

    def prepare(self, after: RelayState) -> Batch | None:
        """Read and shape the notifications after `after`: at most `batch_max`, None when there are none yet."""
        page = self.recorder.select_notifications(start=after.notification_id + 1, limit=self.batch_max)
        if not page:
            return None
        position = after.position
        records = []
        for notification in page:
            if notification.topic in INTERNAL_EVENT_TOPICS:
                continue  # command records (idempotency) are internal: skipped, and given no position
            position += 1
            records.append(envelope(notification, position))
        assert after.tree is not None, "the tree is rebuilt on connecting"
        if not records:
            return Batch(after=after, records=records,
                         state=RelayState(notification_id=page[-1].id, position=position, tree=after.tree))
        # The tree grows by the leaf hash of each record's value, exactly the bytes sent; one signature a batch.
        leaves = [merkle.leaf_hash(value) for _, value, _ in records]
        tree = after.tree.copy()
        tree.extend(leaves)
        checkpoint = None
        if self.signer is not None:
            proof = merkle.consistency_proof_extending(after.tree, leaves)
            checkpoint = checkpoint_record(self.signer, after.tree, tree, proof)
        return Batch(after=after, records=records, checkpoint=checkpoint,
                     state=RelayState(notification_id=page[-1].id, position=position, tree=tree))

    def publish_batch(self) -> int:
        with collector_paused():  # see ledger.memory: about a fifth of the relay's time otherwise
            return self._publish_batch()

    def _publish_batch(self) -> int:
        """Publish the next batch of notifications in one transaction. Returns how many events it published.

        While the transaction's records are in flight, the batch after it is read and shaped, so the store reads
        and envelope building overlap the producer's flush and the commit round trip. That prepared batch is kept
        only if this transaction commits; otherwise it is dropped with the producer (see `connect`)."""
        batch, self.prepared = self.prepared, None
        if batch is None or batch.after != self.state:
            batch = self.prepare(self.state)
        if batch is None:
            return 0
        producer = self.producer
        # 1. Begin the transaction: nothing below is visible to read_committed consumers until step 3.
        producer.begin_transaction()
        try:
            # 2. The events, in store order, each with the next position; then the relay state that says so.
            for key, value, headers in batch.records:
                producer.send(self.topics.events, key=key, value=value, headers=headers)
            if batch.checkpoint is not None:
                key, value, headers = batch.checkpoint
                producer.send(self.topics.checkpoints, key=key, value=value, headers=headers)
            producer.send(self.topics.state, key=RELAY_STATE_KEY, value=batch.state.record())
            following = self.prepare(batch.state)
            # 3. Commit: the events and the state become visible together, or (on failure) not at all.
            kafka_client.commit_transaction(producer)
        except BaseException:
            with contextlib.suppress(kafka_client.KafkaError):  # the next producer's init_transactions aborts it
                kafka_client.abort_transaction(producer)
            raise
        self.state = batch.state
        self.prepared = following
        return len(batch.records)

    def run(self, *, follow: bool = False, stop: Callable[[], bool] = lambda: False) -> int:
        """Catch up (and with `follow`, keep tailing). Retries broker failures with bounded backoff."""
        total = 0
        failures = 0
        while not stop():
            try:
                if self.producer is None:
                    self.connect()
                published = self.publish_batch()
                failures = 0
            except (kafka_client.SaslAuthenticationFailedError, kafka_client.AuthorizationError):
                raise  # refused, not unavailable: retrying changes nothing
            except (kafka_client.KafkaError, TimeoutError) as error:
                # TimeoutError: after an outage, reading the relay state (read_committed) can wait on the broker
                # finishing the aborted transaction's markers; like a Kafka error, that passes: retry.
                failures += 1
                if failures > RELAY_RETRIES_MAX:
                    raise
                delay = min(RETRY_BACKOFF_MAX_S, 0.2 * 2 ** failures)
                # kafka-python's errors name their own type ("KafkaTimeoutError: ..."); others do not.
                named = str(error) if type(error).__name__ in str(error) else f"{type(error).__name__}: {error}"
                self.log(f"relay: Kafka unavailable ({named}); "
                         f"retry {failures} in {delay:.1f}s")
                self.close()
                time.sleep(delay)
                continue
            total += published
            if published == 0 and self.state.notification_id >= self._store_head():
                if not follow:
                    break
                time.sleep(FOLLOW_POLL_INTERVAL_S)
        return total

    def _store_head(self) -> int:
        return self.recorder.max_notification_id() or 0


@dataclass(frozen=True)
class StoreTally:
    """What the store says about publishing, from one pass over its notification log (`tally_store`)."""

    last_notification_id: int
    events: int  # notifications the relay publishes (all but the internal ones): the topic's last position, when done
    events_up_to: int  # of those, how many have a notification id at or before the one asked about
    at_position: dict[str, Any] | None  # the event the relay gives the position asked about: event_id, hash, id


def tally_store(recorder: Any, *, position: int, notification_id: int, page_max: int = RELAY_BATCH_MAX) -> StoreTally:
    """Count the publishable events and find the one at `position`, as the relay numbers them: the k-th publishable
    notification in store order has position k. One pass over the log, in pages of `page_max`."""
    last = events = events_up_to = 0
    at_position = None
    start = 1
    while True:
        page = recorder.select_notifications(start=start, limit=page_max)
        for notification in page:
            last = notification.id
            if notification.topic in INTERNAL_EVENT_TOPICS:
                continue
            events += 1
            if notification.id <= notification_id:
                events_up_to = events
            if events == position:
                value = orjson.loads(envelope(notification, events)[1])
                at_position = {"event_id": value["event_id"], "hash": value["hash"], "notification_id": notification.id}
        if len(page) < page_max:
            return StoreTally(last_notification_id=last, events=events, events_up_to=events_up_to,
                              at_position=at_position)
        start = page[-1].id + 1
