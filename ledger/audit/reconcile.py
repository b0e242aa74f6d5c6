"""`ledger audit reconcile`: the event store's head, the relay's saved state and the topic's last record, side by
side; it names every way they disagree: an intact topic can still stop short of the store, or end past the relay's
state."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ledger.audit.topic import envelope_of
from ledger.errors import (
    NotFound,
    RelayStateInvalid,
    TopicUnreadable,
)
from ledger.publishing import kafka_client, relay
from ledger.publishing.relay import RelayState, StoreTally
from ledger.publishing.topics import Topics
from ledger.settings import KafkaConnection

RECONCILE_READS_MAX = 5  # tries at reading the relay state and the topic's end with no relay commit in between
HASH_SHOWN_CHARS = 16  # of a hash in a message; the JSON report has them whole


@dataclass(frozen=True)
class Mismatch:
    name: str  # stable, for scripts: store_ahead_of_topic, relay_state_beyond_store, ...
    message: str

    def __str__(self) -> str:
        return f"{self.name}: {self.message}"


@dataclass
class TopicEnd:
    """The events topic's last record: the one with the highest position among each partition's last record."""

    position: int = 0  # 0: the topic holds no event
    event_id: str | None = None
    hash: str | None = None
    partition: int | None = None
    offset: int | None = None
    unreadable: list[str] = field(default_factory=list)  # last records that are not ledger envelopes


def topic_end(last: dict[int, Any]) -> TopicEnd:
    """The topic's end from `kafka_client.last_records`."""
    end = TopicEnd()
    for partition, record in sorted(last.items()):
        if record is None:
            continue
        env = envelope_of(record.value)
        if env is None or not isinstance(env["position"], int):
            end.unreadable.append(f"partition {partition}, offset {record.offset}")
        elif env["position"] > end.position:
            end.position, end.event_id, end.hash = env["position"], env["event_id"], env["hash"]
            end.partition, end.offset = partition, record.offset
    return end


def _short(value: str | None) -> str:
    return f"{value[:HASH_SHOWN_CHARS]}..." if value else "-"


def reconcile_findings(tally: StoreTally, state: RelayState | None, state_problem: str | None,
                       end: TopicEnd) -> list[Mismatch]:
    """Every way the store (`relay.StoreTally`), the relay's state (`relay.RelayState`, or None with the reason it
    could not be read) and the topic's end disagree, each by name. Empty when all three agree."""
    found = [Mismatch("topic_last_record_unreadable",
                      f"the last record of the topic at {where} is not a ledger envelope") for where in end.unreadable]
    events, position = tally.events, end.position
    if events > position:
        found.append(Mismatch("store_ahead_of_topic", f"the store holds {events:,} events to publish, the topic's last "
                                                      f"position is {position:,}: {events - position:,} event(s) not "
                                                      f"published; `ledger relay` publishes them"))
    elif position > events:
        found.append(Mismatch("topic_ahead_of_store", f"the topic's last position {position:,} is beyond the store's "
                                                      f"{events:,} events: the topic holds events this store does not "
                                                      f"(records the relay did not write, or another store's topic)"))
    at = tally.at_position
    if 0 < position <= events and at is not None and (at["event_id"], at["hash"]) != (end.event_id, end.hash):
        found.append(Mismatch("topic_last_event_differs_from_store",
                              f"the topic's last record (position {position:,}, partition {end.partition}, offset "
                              f"{end.offset}) is event {end.event_id} with hash {_short(end.hash)}; the store's event "
                              f"at position {position:,} is {at['event_id']} with hash {_short(at['hash'])}"))
    if state is None:
        found.append(Mismatch("relay_state_unreadable", state_problem or "the relay's state could not be read"))
        return found
    if state.notification_id > tally.last_notification_id:
        found.append(Mismatch("relay_state_beyond_store",
                              f"the relay's state says notification {state.notification_id} was published, but the "
                              f"store's last notification is {tally.last_notification_id}: the relay refuses to "
                              f"start (exit 12)"))
    elif tally.events_up_to != state.position:
        found.append(Mismatch("relay_state_differs_from_store",
                              f"the relay's state says position {state.position:,} at notification "
                              f"{state.notification_id}, but the store has {tally.events_up_to:,} events to publish "
                              f"up to that notification"))
    if state.position > position:
        found.append(Mismatch("relay_state_ahead_of_topic",
                              f"the relay's state says position {state.position:,}, the topic's last position is "
                              f"{position:,}: the state was moved forward, or published events are missing from "
                              f"the topic"))
    elif position > state.position:
        found.append(Mismatch("topic_ahead_of_relay_state",
                              f"the topic's last position {position:,} is past the relay's state (position "
                              f"{state.position:,}): records reached the topic without the relay's state, or the "
                              f"state was moved back, and the relay would publish from position "
                              f"{state.position + 1:,} again"))
    return found


@dataclass
class Reconciliation:
    events_topic: str
    state_topic: str
    store: dict[str, int]
    relay_state: dict[str, int] | None
    topic: TopicEnd
    store_at_topic_position: dict[str, Any] | None
    mismatches: list[Mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def state_from_topic(self) -> dict[str, int] | None:
        """The relay state the topic and the store prove, when they agree: where a repaired state must point."""
        if any(m.name in ("topic_ahead_of_store", "topic_last_event_differs_from_store", "topic_last_record_unreadable")
               for m in self.mismatches):
            return None
        if self.topic.position == 0:
            return {"notification_id": 0, "position": 0}
        assert self.store_at_topic_position is not None
        return {"notification_id": self.store_at_topic_position["notification_id"], "position": self.topic.position}

    def as_dict(self) -> dict[str, Any]:
        end = self.topic
        return {"events_topic": self.events_topic, "state_topic": self.state_topic, "store": self.store,
                "relay_state": self.relay_state,
                "topic": {"last_position": end.position, "last_event_id": end.event_id, "last_hash": end.hash,
                          "partition": end.partition, "offset": end.offset},
                "store_at_topic_position": self.store_at_topic_position, "state_from_topic": self.state_from_topic,
                "ok": self.ok, "mismatches": [{"name": m.name, "message": m.message} for m in self.mismatches]}


def reconcile(recorder: Any, kafka: KafkaConnection, topics: Topics) -> Reconciliation:
    """Compare the event store (`recorder`), the relay's state and the events topic's end (`relay.Topics`).

    The relay state and the topic's end are read until the state is the same before and after the topic was read
    (at most `RECONCILE_READS_MAX` times), so a relay committing meanwhile does not show as a mismatch. The store is
    read last: it only grows, so a relay running meanwhile can only show as unpublished events."""
    try:
        if not kafka_client.topic_partitions(kafka, topics.events):
            raise NotFound(f"topic {topics.events} does not exist on Kafka at {kafka.servers}, or "
                           f"{kafka.principal} may not read it")
        for _ in range(RECONCILE_READS_MAX):
            state, problem = _relay_state(kafka, topics)
            end = topic_end(kafka_client.last_records(kafka, topics.events))
            if _relay_state(kafka, topics) == (state, problem):
                break
    except (kafka_client.KafkaError, TimeoutError) as error:
        raise TopicUnreadable(f"could not read {topics.events} and {topics.state} from Kafka at "
                              f"{kafka.servers}: {error}") from None
    tally = relay.tally_store(recorder, position=end.position,
                              notification_id=state.notification_id if state is not None else 0)
    return Reconciliation(
        events_topic=topics.events, state_topic=topics.state,
        store={"last_notification_id": tally.last_notification_id, "events": tally.events},
        relay_state=None if state is None else {"notification_id": state.notification_id, "position": state.position},
        topic=end, store_at_topic_position=tally.at_position if 0 < end.position <= tally.events else None,
        mismatches=reconcile_findings(tally, state, problem, end))


def _relay_state(kafka: KafkaConnection, topics: Topics) -> tuple[RelayState | None, str | None]:
    try:
        return relay.read_state(kafka, topics), None
    except RelayStateInvalid as error:
        return None, str(error)
