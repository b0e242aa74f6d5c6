"""The auditor's recount of collections per payer (`ledger audit as-of`) on the real broker: a history with a bill, its
settlement reversed and settled again, money returned as a bank error and a refund (`tests/support/collections.py`),
relayed to a topic of its own and projected, then recounted from the topic by the CLI, as the auditor's principal."""

from __future__ import annotations

import os
import uuid
from datetime import date

import pytest

from ledger.application import Ledger
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.settings import Settings
from projections import runner
from projections.catalog import PROJECTIONS
from tests.support.cli_runner import Cli
from tests.support.collections import NPP, collections_with_reversals
from tests.support.kafka_roles import AUDITOR, RELAY, KafkaRoles
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.signing import log_signer

pytestmark = pytest.mark.integration


def test_audit_as_of_recounts_every_payers_collections_from_the_topic(tmp_path, settings: Settings,
                                                                     kafka_roles: KafkaRoles) -> None:
    prefix = f"test-collections-{uuid.uuid4().hex[:10]}"
    base = kafka_roles.settings(PROJECTIONS_ROLE, settings.model_copy(update={
        "sqlite_path": tmp_path / "ledger.db", "kafka_topic_prefix": prefix,
        "projection_sqlite_path": tmp_path / "views.db"}))
    app = Ledger(env=base.eventsourcing_env(), clock=lambda: date(2026, 11, 23), nik_key=base.nik_hmac_key_bytes())
    collections_with_reversals(app)
    topics = kafka_roles.provision(prefix, partitions=2)
    relay = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                  transactional_id=f"relay-{prefix}", batch_max=500)
    relay.run()
    relay.close()
    published = len(list(kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.events)))
    assert runner.run(base, list(PROJECTIONS), follow=False) == dict.fromkeys(PROJECTIONS, published)
    cli = Cli(env={**os.environ, **kafka_roles.env(AUDITOR), "LEDGER_SQLITE_PATH": str(base.sqlite_path),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(base.projection_sqlite_path),
                   "LEDGER_KAFKA_TOPIC_PREFIX": prefix}, folder=tmp_path)

    reopened = cli.json("audit", "as-of", "2016-12-20")["collections"]
    end = cli.json("audit", "as-of", "2016-12-31")

    assert reopened["payers"][f"npp:{NPP}"] == {
        "bills": 1, "bills_settled": 0, "bills_open": 1, "billed": 477_000, "settled": 0, "outstanding": 477_000,
        "fines": 0, "received": 477_000, "returned": 0, "applied": 0, "refunded": 0, "unapplied": 477_000}
    assert end["ok"] is True and end["collections"]["problems"] == []
    assert end["collections"]["payers"][f"npp:{NPP}"] == {
        "bills": 1, "bills_settled": 1, "bills_open": 0, "billed": 477_000, "settled": 477_000, "outstanding": 0,
        "fines": 9_540, "received": 2_987_540, "returned": 2_500_000, "applied": 486_540, "refunded": 1_000,
        "unapplied": 0}
    text = cli("audit", "as-of", "2016-12-31").stdout.splitlines()
    assert text[-3].startswith("collections recounted from the topic: 1 payer(s), 1 bill(s) (0 open)")
    assert text[-1].split()[:3] == [f"npp:{NPP}", "0", "Rp477,000"]
