"""Fixtures of the integration tests: a generated branch history, written by the ledger and relayed to Kafka once
per session, on topics of its own. Tests read it; none writes to its topics.

Each piece connects as its own principal (tests/support/kafka_roles.py): the administrator creates the topics and
grants the roles their ACLs, the relay publishes, the auditor reads the envelopes back."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.generator import generate_branch
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.settings import Settings
from tests.support.history import HISTORY_PARTITIONS, HISTORY_PLAN
from tests.support.kafka_roles import AUDITOR, PROJECTIONS, RELAY, KafkaRoles
from tests.support.signing import log_signer


@pytest.fixture(scope="session")
def branch_history(tmp_path_factory, settings: Settings, kafka_roles: KafkaRoles) -> dict[str, Any]:
    """`app` (the SQLite ledger), `settings` (its store and topic prefix, connecting as the projections, the one piece
    that reads these settings), `topics`, `envelopes` (as read back)."""
    root = tmp_path_factory.mktemp("branch-history")
    prefix = f"test-history-{uuid.uuid4().hex[:10]}"
    base = settings.model_copy(update={"sqlite_path": root / "ledger.db", "kafka_topic_prefix": prefix})
    app = Ledger(env=base.eventsourcing_env(), clock=lambda: date(2026, 11, 23), nik_key=base.nik_hmac_key_bytes())
    generate_branch(app, HISTORY_PLAN)
    topics = kafka_roles.provision(prefix, partitions=HISTORY_PARTITIONS)
    publisher = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                      transactional_id=f"relay-{prefix}",
                      batch_max=500)
    published = publisher.run()
    publisher.close()
    envelopes = [orjson.loads(r.value) for r in kafka_client.read_to_end(kafka_roles.connection(AUDITOR),
                                                                         topics.events)]
    assert len(envelopes) == published > 3_000
    return {"app": app, "settings": kafka_roles.settings(PROJECTIONS, base), "topics": topics, "envelopes": envelopes,
            "plan": HISTORY_PLAN}
