"""Reading the events topic as an auditor: read_committed, with no consumer group (it changes nothing), from the
beginning; every record must be a ledger envelope."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import orjson

from ledger.errors import (
    NotFound,
    TopicUnreadable,
)
from ledger.events import (
    UnknownEventType,
    UpcastContext,
    envelope_data,
)
from ledger.publishing import kafka_client
from ledger.settings import KafkaConnection

ENVELOPE_KEYS = ("event_id", "type", "version", "aggregate_id", "aggregate_version", "position", "effective_date",
                 "branch", "prev_hash", "hash", "data")


def envelope_of(value: bytes) -> dict[str, Any] | None:
    """The record's envelope, or None when it is not one (what `audit verify` reports as a breach)."""
    try:
        env = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(env, dict) or any(key not in env for key in ENVELOPE_KEYS) or not isinstance(env["data"], dict):
        return None
    return env


def read_topic(kafka: KafkaConnection, topic: str) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """Every committed record of the events topic as (its value as read, its envelope), in partition order."""
    try:
        if not kafka_client.topic_partitions(kafka, topic):
            raise NotFound(f"topic {topic} does not exist on Kafka at {kafka.servers}, or {kafka.principal} may not "
                           f"read it")
        for record in kafka_client.read_to_end(kafka, topic):
            env = envelope_of(record.value)
            if env is None:
                # Stop rather than skip: an answer that silently leaves an event out would be wrong.
                raise TopicUnreadable(f"{topic} partition {record.partition}, offset {record.offset}: not a ledger "
                                      f"envelope; `ledger audit verify` reports every breach of the topic")
            yield record.value, env
    except (kafka_client.KafkaError, TimeoutError) as error:
        raise TopicUnreadable(f"could not read {topic} from Kafka at {kafka.servers} as {kafka.principal}: "
                              f"{type(error).__name__}: {error}") from None


def current_data(env: dict[str, Any], context: UpcastContext | None = None) -> dict[str, Any]:
    """The event's data at the current contract version (older versions through `ledger.events.UPCASTERS`)."""
    try:
        return envelope_data(env, upgrade="the ledger", context=context)
    except UnknownEventType as error:
        raise TopicUnreadable(str(error)) from None


class _BranchTotalsOnly:
    """The upcast context of the export's totals, which add money per branch only: they never read a reversal's
    account, so an older reversal whose payment lies before the exported period is upcast with placeholders for the
    account (`npp` None, segment PU) instead of failing for want of it."""

    def member_facts(self, kpj: str) -> tuple[str | None, str]:  # noqa: ARG002
        return None, "PU"


BRANCH_TOTALS_ONLY = _BranchTotalsOnly()


def in_period(env: dict[str, Any], start: date | None, end: date | None) -> bool:
    """Whether the event's effective date is within [start, end] (either bound may be open)."""
    on = env["effective_date"]
    return (start is None or on >= start.isoformat()) and (end is None or on <= end.isoformat())
