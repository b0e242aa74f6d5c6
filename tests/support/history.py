"""Shared by the integration tests: the generated branch history they read, and copies of its topic."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from ledger.generator import BranchPlan
from ledger.publishing import kafka_client
from ledger.publishing.envelope import record_headers
from ledger.settings import Settings
from tests.support.kafka_roles import KafkaRoles

HISTORY_PLAN = BranchPlan(employers=8, members=400, bpu_members=30, first_month="2016-11", months=8, seed=7)
HISTORY_PARTITIONS = 6


def copy_topic(history: dict[str, Any], kafka_roles: KafkaRoles, extra: list[tuple[bytes, list]] = (),
               partitions: int = 3) -> Settings:
    """The history's events in a fresh topic of their own, then `extra` (value, headers) records at the end, written
    straight to the topic by the administrator, as an attacker with its rights would (not by the relay, not in a
    transaction). The copy's topics are provisioned as a ledger's are: every role may read them as it reads the
    history's. Returns the history's settings (the projections' connection) with the copy's topic prefix."""
    prefix = f"test-copy-{uuid.uuid4().hex[:10]}"
    topics = kafka_roles.provision(prefix, partitions=partitions)
    producer = kafka_client.producer(kafka_roles.admin)
    for env in history["envelopes"]:
        producer.send(topics.events, key=env["aggregate_id"].encode(), value=orjson.dumps(env),
                      headers=record_headers(env["type"], env["version"]))
    for value, headers in extra:
        producer.send(topics.events, key=b"extra", value=value, headers=headers)
    producer.flush()
    producer.close()
    return history["settings"].model_copy(update={"kafka_topic_prefix": prefix})
