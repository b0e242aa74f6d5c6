"""A history written with the `Ledger`, relayed to the real broker, with a CLI pointed at it; and an empty event store
in a PostgreSQL schema of its own. Shared by the integration tests of collections."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import psycopg

from ledger.application import Ledger
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.settings import Settings
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import AUDITOR, RELAY, KafkaRoles
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.signing import log_signer

RELAY_BATCH_MAX = 500


def relayed_history(root: Path, name: str, settings: Settings, kafka_roles: KafkaRoles, clock: date,
                    write: Callable[[Ledger], dict[str, Any]]) -> dict[str, Any]:
    """`write(app)` on a fresh SQLite ledger in `root`, relayed with signed checkpoints to topics of their own; the
    result: `app`, `settings` (the projections' role), `topics`, `published`, `envelopes` (as read back from the
    topic), `cli` (its environment pointed at all of it), and what `write` returned."""
    prefix = f"test-{name}-{uuid.uuid4().hex[:10]}"
    base = kafka_roles.settings(PROJECTIONS_ROLE, settings.model_copy(update={
        "sqlite_path": root / "ledger.db", "kafka_topic_prefix": prefix, "projection_sqlite_path": root / "views.db"}))
    app = Ledger(env=base.eventsourcing_env(), clock=lambda: clock, nik_key=base.nik_hmac_key_bytes())
    story = write(app)
    topics = kafka_roles.provision(prefix, partitions=3)
    relay = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                  transactional_id=f"relay-{prefix}", batch_max=RELAY_BATCH_MAX)
    published = relay.run()
    relay.close()
    envelopes = [orjson.loads(r.value) for r in kafka_client.read_to_end(kafka_roles.connection(AUDITOR),
                                                                         topics.events)]
    cli = Cli(env={**os.environ, "LEDGER_SQLITE_PATH": str(base.sqlite_path),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(base.projection_sqlite_path),
                   "LEDGER_KAFKA_TOPIC_PREFIX": prefix, "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{prefix}"},
              folder=root, kafka=kafka_roles)
    return {"app": app, "settings": base, "topics": topics, "published": published, "envelopes": envelopes,
            "cli": cli, **story}


@contextmanager
def postgres_store(pg: Settings) -> Iterator[dict[str, str]]:
    """The eventsourcing environment of an empty event store in a new PostgreSQL schema, dropped afterwards."""
    schema = f"ledger_test_{uuid.uuid4().hex[:10]}"
    connect = dict(host=pg.postgres_host, port=pg.postgres_port, user=pg.postgres_user, dbname=pg.postgres_dbname,
                   password=pg.postgres_password or None, autocommit=True)
    with psycopg.connect(**connect) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield {**pg.eventsourcing_env(), "POSTGRES_SCHEMA": schema}
    finally:
        with psycopg.connect(**connect) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
