"""The relay's saved state against the store, and `ledger audit reconcile`, against the real broker.

Someone with write access to the broker can put a record on `<prefix>.relay-state` or `<prefix>.events` that the
relay did not write. The relay must refuse a saved state beyond the store's last notification (it would otherwise
skip every event up to it, printing "published 0 events"), and `ledger audit reconcile` must name every way the
store, the relay's state and the topic disagree.

Since only the relay and the administrator may write those topics, the intruder here has the administrator's rights;
the relay runs as the relay's principal, `ledger audit ...` as the auditor's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.commands import EnrollMembers, PayContribution, RegisterEmployer
from ledger.events import chain_hash
from ledger.generator import member_rows
from ledger.publishing import kafka_client
from ledger.publishing.envelope import record_headers
from ledger.publishing.relay import RELAY_STATE_KEY, read_state
from ledger.publishing.topics import Topics
from ledger.settings import KafkaConnection
from tests.support.kafka_roles import AUDITOR, RELAY, KafkaRoles

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 120
NPP = "66666666"


@pytest.fixture
def books(tmp_path, settings, unique, kafka_roles: KafkaRoles) -> tuple[Ledger, dict[str, dict[str, str]], Topics]:
    """A store with an employer, 20 members and January paid, and the topics the administrator made for it; the
    environment of the CLI as each role (`RELAY`, `AUDITOR`)."""
    prefix = f"test-reconcile-{unique}"
    topics = kafka_roles.provision(prefix, transactional_id=f"relay-{unique}")
    env = {**os.environ, "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"), "LEDGER_KAFKA_TOPIC_PREFIX": prefix,
           "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}"}
    envs = {role: {**env, **kafka_roles.env(role)} for role in (RELAY, AUDITOR)}
    app = Ledger(env=settings.model_copy(update={"sqlite_path": tmp_path / "ledger.db"}).eventsourcing_env(),
                 clock=lambda: date(2026, 11, 23), nik_key=settings.nik_hmac_key_bytes())
    app.execute(RegisterEmployer.build(npp=NPP, name="PT Rekonsiliasi", branch="BEKASI-KOTA", kind="company",
                                       risk_class="low", registered_on=date(2020, 1, 1)))
    app.execute(EnrollMembers.build(npp=NPP, effective=date(2024, 1, 1), members=member_rows(1, 20)))
    pay(app, "2024-01")
    return app, envs, topics


def pay(app: Ledger, month: str) -> None:
    app.execute(PayContribution.build(npp=NPP, month=month, paid_on=date(2024, 6, 10)))


def events_in(app: Ledger) -> int:
    return sum(1 for _ in app.stored_contract_notifications())


def ledger(env: dict[str, str], *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=env, capture_output=True, text=True,
                          check=False, timeout=CLI_TIMEOUT_S)
    assert done.returncode == expect, f"ledger {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done


def reconcile(envs: dict[str, dict[str, str]], expect: int) -> dict[str, Any]:
    report = json.loads(ledger(envs[AUDITOR], "audit", "reconcile", "--json", expect=expect).stdout)
    assert report["ok"] is (expect == 0)
    return report


def names(report: dict[str, Any]) -> list[str]:
    return [mismatch["name"] for mismatch in report["mismatches"]]


def produce(kafka_admin: KafkaConnection, topic: str, key: bytes, value: bytes, headers: list | None = None,
            partition: int | None = None) -> None:
    """A record written the way an intruder with the administrator's rights (or the administrator with kcat) would:
    not by the relay, not transactional."""
    producer = kafka_client.producer(kafka_admin)
    try:
        producer.send(topic, key=key, value=value, headers=headers or [], partition=partition).get(timeout=30)
    finally:
        producer.close()


def last_envelope(auditor: KafkaConnection, topics: Topics) -> dict[str, Any]:
    envelopes = [orjson.loads(r.value) for r in kafka_client.read_to_end(auditor, topics.events)]
    return max(envelopes, key=lambda env: env["position"])


def test_reconcile_counts_unpublished_events_and_agrees_once_they_are_relayed(books) -> None:
    app, envs, _topics = books
    report = reconcile(envs, expect=13)
    assert names(report) == ["store_ahead_of_topic"]
    assert f"{events_in(app):,} event(s) not published" in report["mismatches"][0]["message"]

    ledger(envs[RELAY], "relay")
    report = reconcile(envs, expect=0)
    assert report["store"]["events"] == report["relay_state"]["position"] == report["topic"]["last_position"] == \
        events_in(app)
    assert report["store_at_topic_position"]["hash"] == report["topic"]["last_hash"]
    text = ledger(envs[AUDITOR], "audit", "reconcile").stdout
    assert f"agree: the topic holds the store's {events_in(app):,} events, and the relay's state names the last one" \
        in text

    before = events_in(app)
    pay(app, "2024-02")
    report = reconcile(envs, expect=13)
    assert names(report) == ["store_ahead_of_topic"]
    assert f": {events_in(app) - before:,} event(s) not published" in report["mismatches"][0]["message"]


def test_the_relay_refuses_a_saved_state_beyond_the_store_until_it_is_repaired(books, kafka_roles) -> None:
    app, envs, topics = books
    ledger(envs[RELAY], "relay")
    published = events_in(app)
    head = app.recorder.max_notification_id()
    # One record on the state topic moves the relay past the end of the store.
    produce(kafka_roles.admin, topics.state, RELAY_STATE_KEY,
            orjson.dumps({"notification_id": head + 1_000, "position": published}))
    pay(app, "2024-02")

    refused = ledger(envs[RELAY], "relay", expect=12)
    assert (f"says notification {head + 1_000} (position {published}) was published, but the event store's last "
            f"notification is {app.recorder.max_notification_id()}; nothing was published") in refused.stderr
    assert "ledger audit reconcile" in refused.stderr
    error = json.loads(ledger(envs[RELAY], "relay", "--json", expect=12).stdout)["error"]
    assert error["type"] == "RelayStateInvalid"
    assert read_state(kafka_roles.connection(AUDITOR), topics).position == published  # nothing went out

    report = reconcile(envs, expect=13)
    assert names(report) == ["store_ahead_of_topic", "relay_state_beyond_store"]
    assert "relay's state says notification " + str(head + 1_000) in report["mismatches"][1]["message"]

    # The repair docs/kafka.md describes: write the state the topic and the store prove, as kcat would.
    proven = report["state_from_topic"]
    assert proven["position"] == published
    produce(kafka_roles.admin, topics.state, RELAY_STATE_KEY, orjson.dumps(proven))
    assert json.loads(ledger(envs[RELAY], "relay", "--json").stdout)["published"] == events_in(app) - published
    reconcile(envs, expect=0)
    assert json.loads(ledger(envs[AUDITOR], "audit", "verify", "--json").stdout)["ok"] is True


def test_the_relay_refuses_a_state_record_that_is_not_a_state(books, kafka_roles) -> None:
    _app, envs, topics = books
    ledger(envs[RELAY], "relay")
    produce(kafka_roles.admin, topics.state, RELAY_STATE_KEY, b"not a state")
    refused = ledger(envs[RELAY], "relay", expect=12)
    assert "is not a relay state" in refused.stderr and "nothing was published" in refused.stderr
    assert names(reconcile(envs, expect=13)) == ["relay_state_unreadable"]


def test_reconcile_names_records_on_the_topic_that_the_relay_did_not_write(books, kafka_roles) -> None:
    app, envs, topics = books
    ledger(envs[RELAY], "relay")
    last = last_envelope(kafka_roles.connection(AUDITOR), topics)
    extra = {**last, "event_id": f"{last['aggregate_id']}.{last['aggregate_version'] + 1}",
             "aggregate_version": last["aggregate_version"] + 1, "position": last["position"] + 1,
             "prev_hash": last["hash"]}
    produce(kafka_roles.admin, topics.events, last["aggregate_id"].encode(), orjson.dumps(extra),
            record_headers(last["type"], last["version"]))
    report = reconcile(envs, expect=13)
    assert names(report) == ["topic_ahead_of_store", "topic_ahead_of_relay_state"]
    assert report["topic"]["last_position"] == events_in(app) + 1 and report["state_from_topic"] is None


def test_reconcile_names_a_last_record_whose_hash_is_not_the_stores(books, kafka_roles) -> None:
    _app, envs, topics = books
    ledger(envs[RELAY], "relay")
    last = last_envelope(kafka_roles.connection(AUDITOR), topics)
    # The same event at the same position, its amount changed and its hash recomputed: the chain on the topic holds.
    data = {**last["data"], "total": last["data"]["total"] + 1_000}
    forged = {**last, "data": data,
              "hash": chain_hash(last["prev_hash"], aggregate_id=last["aggregate_id"],
                                 aggregate_version=last["aggregate_version"], event_type=last["type"],
                                 version=last["version"], effective_date=last["effective_date"],
                                 branch=last["branch"], data=data)}
    produce(kafka_roles.admin, topics.events, last["aggregate_id"].encode(), orjson.dumps(forged),
            record_headers(last["type"], last["version"]))
    report = reconcile(envs, expect=13)
    assert names(report) == ["topic_last_event_differs_from_store"]
    assert (report["topic"]["last_hash"], report["store_at_topic_position"]["hash"]) == (forged["hash"], last["hash"])


def test_reconcile_names_a_relay_state_moved_back(books, kafka_roles) -> None:
    app, envs, topics = books
    ledger(envs[RELAY], "relay")
    earlier = read_state(kafka_roles.connection(AUDITOR), topics)
    pay(app, "2024-02")
    ledger(envs[RELAY], "relay")
    produce(kafka_roles.admin, topics.state, RELAY_STATE_KEY, earlier.record())
    report = reconcile(envs, expect=13)
    assert names(report) == ["topic_ahead_of_relay_state"]
    assert f"would publish from position {earlier.position + 1:,} again" in report["mismatches"][0]["message"]
    produce(kafka_roles.admin, topics.state, RELAY_STATE_KEY,
            orjson.dumps({"notification_id": earlier.notification_id, "position": earlier.position + 3}))
    assert names(reconcile(envs, expect=13)) == ["relay_state_differs_from_store", "topic_ahead_of_relay_state"]


def test_reconcile_names_a_relay_state_moved_forward_and_a_last_record_that_is_not_an_envelope(books, kafka_roles):
    _app, envs, topics = books
    ledger(envs[RELAY], "relay")
    state = read_state(kafka_roles.connection(AUDITOR), topics)
    produce(kafka_roles.admin, topics.state, RELAY_STATE_KEY,
            orjson.dumps({"notification_id": state.notification_id, "position": state.position + 5}))
    report = reconcile(envs, expect=13)
    assert names(report) == ["relay_state_differs_from_store", "relay_state_ahead_of_topic"]
    assert (f"the relay's state says position {state.position + 5:,}, the topic's last position is "
            f"{state.position:,}") in report["mismatches"][1]["message"]

    produce(kafka_roles.admin, topics.state, RELAY_STATE_KEY, state.record())
    reconcile(envs, expect=0)
    # Into a partition that does not hold the topic's last event: the others still show where the topic ends, so the
    # unreadable record is the one mismatch. (In the partition holding the last event, the readable ends would also
    # fall short of the store and the relay's state, and those are reported too.)
    records = list(kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.events))
    last = max(records, key=lambda r: orjson.loads(r.value)["position"])
    other = next(p for p in sorted({r.partition for r in records}) if p != last.partition)
    produce(kafka_roles.admin, topics.events, b"someone", b"\x00 not an envelope", partition=other)
    assert names(reconcile(envs, expect=13)) == ["topic_last_record_unreadable"]
