"""`ledger audit verify --workers N` against the real broker: the partitions read by N processes find exactly what one
process finds, on an intact signed log and on a tampered copy, whether the breach is a worker's (a chain) or the
parent's (positions, roots).

Topics of a test are small, so the threshold below which verify reads alone (VERIFY_WORKERS_MIN_RECORDS) is set to 0.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ledger.audit import verify
from ledger.audit.verify import VerifyReport
from ledger.publishing import kafka_client
from tests.integration.test_signed_log import Signed, signed  # noqa: F401 - the fixture of a relayed, signed log
from tests.support.kafka_roles import ADMIN, AUDITOR
from tests.support.signing import log_verifier_key

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def workers_for_any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "VERIFY_WORKERS_MIN_RECORDS", 0)


def same(one: VerifyReport, other: VerifyReport) -> dict[str, Any]:
    """The two reports' dicts are equal, but for the order of the breaches (records of different partitions come
    interleaved in any order, with one process too)."""
    mine, theirs = one.as_dict(), other.as_dict()
    for found in (mine, theirs):
        found["breach_list"] = sorted(found["breach_list"])
        found.pop("first_breach")
    assert mine == theirs
    return mine


def test_two_workers_verify_an_intact_signed_log_as_one_does(signed: Signed) -> None:  # noqa: F811
    found = same(signed.verify(), signed.verify(workers=2))
    assert found["ok"] is True and found["signed_log"]["signed_size"] == found["events"] > 0
    plain = verify.verify_topic(signed.roles.connection(AUDITOR), signed.topics.events, workers=3)
    assert plain.ok and plain.events == found["events"]
    report = signed.cli.json("audit", "verify", "--key", log_verifier_key(), "--workers", "2")
    assert report["ok"] is True and report["events"] == found["events"]
    signed.cli("audit", "verify", "--workers", "0", expect=2)
    signed.cli("audit", "verify", "--workers", str(verify.VERIFY_WORKERS_MAX + 1), expect=2)


def test_breaches_found_by_a_worker_and_by_the_parent_are_those_one_process_finds(signed: Signed) -> None:  # noqa: F811
    """A copy of the events on two partitions (each aggregate in one, as the relay keys them), tampered: one event's
    data changed without its hash (the chain: a worker's finding), one record that is no envelope (a worker's), one
    event sent again at its partition's end (duplicated and reordered: the parent's), and the checkpoints' roots."""
    records = sorted(signed.records(), key=lambda r: orjson.loads(r.value)["position"])
    topic = signed.roles.provision(f"{signed.topics.prefix}.copy", partitions=2).events
    envelopes = [orjson.loads(r.value) for r in records]
    altered = next(e for e in envelopes if "total" in e["data"] and e["position"] > 10)
    values = [orjson.dumps(dict(e, data={**e["data"], "total": e["data"]["total"] + 1}))
              if e is altered else r.value for e, r in zip(envelopes, records, strict=True)]
    producer = kafka_client.producer(signed.roles.connection(ADMIN))
    for env, value in zip(envelopes, values, strict=True):
        producer.send(topic, key=env["aggregate_id"].encode(), value=value, partition=hash_partition(env))
    again = envelopes[3]
    producer.send(topic, key=b"x", value=b"not json", partition=0)
    producer.send(topic, key=again["aggregate_id"].encode(), value=values[3], partition=hash_partition(again))
    producer.flush(timeout=30)
    producer.close()

    found = same(signed.verify(topic), signed.verify(topic, workers=2))
    assert found["ok"] is False and found["events"] == len(records) + 2
    problems = found["breach_list"]
    assert any(f"event {altered['event_id']}: chain broken: the hash does not match" in one for one in problems)
    assert any("not a ledger envelope" in one for one in problems), problems
    assert any(f"position {again['position']} duplicated" in one for one in problems), problems
    assert any(f"position {again['position']} after" in one and "reordered" in one for one in problems), problems
    assert any("does not match the events" in one for one in problems), problems
    same(verify.verify_topic(signed.roles.connection(AUDITOR), topic),
         verify.verify_topic(signed.roles.connection(AUDITOR), topic, workers=2))


def hash_partition(env: dict[str, Any]) -> int:
    """Each aggregate's events in one of the two partitions, by its id, as the relay's keys place them."""
    return sum(env["aggregate_id"].encode()) % 2
