"""The ledger's Kafka topics: their names, and creating them (`ledger kafka init`).

Topics (with the default prefix `ledger`):
- `ledger.events`: every contract event, key = the aggregate id (so one member's or employer's events keep their
  order in one partition), value = the envelope (ledger.publishing.envelope) as JSON, headers `type` and `version`. Retention forever.
- `ledger.relay-state`: the relay's position, compacted, one partition.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.publishing import kafka_client

EVENT_TOPIC_SUFFIX = "events"
STATE_TOPIC_SUFFIX = "relay-state"


@dataclass(frozen=True)
class Topics:
    events: str
    state: str

    @classmethod
    def for_prefix(cls, prefix: str) -> Topics:
        return cls(events=f"{prefix}.{EVENT_TOPIC_SUFFIX}", state=f"{prefix}.{STATE_TOPIC_SUFFIX}")


def init_topics(bootstrap: list[str], topics: Topics, partitions: int) -> list[str]:
    """Create the ledger's topics if missing. Idempotent; returns the names it created."""
    created = []
    if kafka_client.ensure_topic(bootstrap, topics.events, partitions, config=kafka_client.RETENTION_FOREVER):
        created.append(topics.events)
    state_config = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}
    if kafka_client.ensure_topic(bootstrap, topics.state, 1, config=state_config):
        created.append(topics.state)
    return created
