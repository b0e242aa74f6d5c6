"""`ledger audit verify`: the checks a tamperer would have to break.

1. positions are exactly 1..N: nothing lost, nothing duplicated;
2. within each partition, positions increase: nothing reordered;
3. per aggregate, versions are 1, 2, 3, ... and every record's hash is the SHA-256 chain over its predecessor
   (`ledger.events.chain_hash`): nothing altered, removed or inserted in an aggregate's history.
It reports the number of events checked and, on failure, the first breach with its partition, offset and event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ledger.events import (
    GENESIS_HASH,
    chain_hash,
)
from ledger.publishing import kafka_client
from ledger.settings import KafkaConnection

BREACHES_KEPT_MAX = 100


@dataclass
class Breach:
    partition: int
    offset: int
    event_id: str | None
    problem: str

    def __str__(self) -> str:
        return f"partition {self.partition}, offset {self.offset}, event {self.event_id}: {self.problem}"


@dataclass
class VerifyReport:
    topic: str
    events: int = 0
    first_position: int | None = None
    last_position: int | None = None
    breaches: list[Breach] = field(default_factory=list)
    positions_ok: bool = True  # 1..N, no duplicate, increasing within each partition
    chains_ok: bool = True  # every aggregate's versions and hashes follow on

    @property
    def ok(self) -> bool:
        return self.positions_ok and self.chains_ok and not self.breaches

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "events": self.events, "positions": [self.first_position, self.last_position],
                "positions_contiguous": self.positions_ok, "chains_intact": self.chains_ok, "ok": self.ok,
                "first_breach": str(self.breaches[0]) if self.breaches else None, "breaches": len(self.breaches)}

    def breach(self, record: Any, event_id: str | None, problem: str, *, chain: bool = False) -> None:
        if chain:
            self.chains_ok = False
        else:
            self.positions_ok = False
        if len(self.breaches) < BREACHES_KEPT_MAX:
            self.breaches.append(Breach(record.partition, record.offset, event_id, problem))


def verify_records(topic: str, records: Iterable[Any]) -> VerifyReport:
    """Check a topic's records (in partition order, as Kafka returns them)."""
    report = VerifyReport(topic=topic)
    positions_seen: dict[int, tuple[int, int]] = {}  # position -> (partition, offset) where first seen
    last_in_partition: dict[int, int] = {}
    heads: dict[str, tuple[int, str]] = {}  # aggregate id -> (version, hash) of its last event
    for record in records:
        report.events += 1
        try:
            env = orjson.loads(record.value)
            event_id, position = env["event_id"], int(env["position"])
            aggregate, version = env["aggregate_id"], int(env["aggregate_version"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            report.breach(record, None, f"not a ledger envelope ({error})", chain=True)
            continue
        _check_position(report, record, event_id, position, positions_seen, last_in_partition)
        _check_chain(report, record, env, aggregate, version, heads)
    if positions_seen:
        _check_contiguous(report, positions_seen)
    return report


def _check_position(report: VerifyReport, record: Any, event_id: str, position: int,
                    positions_seen: dict[int, tuple[int, int]], last_in_partition: dict[int, int]) -> None:
    if position in positions_seen:
        where = positions_seen[position]
        report.breach(record, event_id,
                      f"position {position} duplicated (first at partition {where[0]}, offset {where[1]})")
    positions_seen.setdefault(position, (record.partition, record.offset))
    if position <= last_in_partition.get(record.partition, 0):
        report.breach(record, event_id, f"position {position} after {last_in_partition[record.partition]}: reordered")
    last_in_partition[record.partition] = max(position, last_in_partition.get(record.partition, 0))


def _check_chain(report: VerifyReport, record: Any, env: dict[str, Any], aggregate: str, version: int,
                 heads: dict[str, tuple[int, str]]) -> None:
    event_id = env["event_id"]
    prev_version, prev_hash = heads.get(aggregate, (0, GENESIS_HASH))
    if version != prev_version + 1:
        report.breach(record, event_id, f"aggregate version {version} follows {prev_version}: an event is missing, "
                                        f"duplicated or reordered", chain=True)
    if env.get("prev_hash") != prev_hash:
        report.breach(record, event_id, "chain broken: prev_hash is not the hash of the aggregate's previous event",
                      chain=True)
    # Hashed as the record holds them: a field it lacks counts as null, which fails the check below instead of
    # stopping the verification.
    held: dict[str, Any] = {key: env.get(key) for key in ("type", "version", "effective_date", "branch", "data")}
    expected = chain_hash(env.get("prev_hash", ""), aggregate_id=aggregate, aggregate_version=version,
                          event_type=held["type"], version=held["version"], effective_date=held["effective_date"],
                          branch=held["branch"], data=held["data"])
    if expected != env.get("hash"):
        report.breach(record, event_id, "chain broken: the hash does not match the event's content (altered)",
                      chain=True)
    heads[aggregate] = (version, env.get("hash", ""))


def _check_contiguous(report: VerifyReport, positions_seen: dict[int, tuple[int, int]]) -> None:
    report.first_position, report.last_position = min(positions_seen), max(positions_seen)
    missing = report.last_position - len(positions_seen) + (report.first_position - 1)
    if report.first_position != 1 or missing:
        report.positions_ok = False
        gaps = [p for p in range(1, report.last_position + 1) if p not in positions_seen][:5]
        report.breaches.insert(0, Breach(-1, -1, None, f"positions not contiguous from 1: missing {gaps}"
                                                      f"{' ...' if missing > len(gaps) else ''}"))


def verify_topic(kafka: KafkaConnection, topic: str) -> VerifyReport:
    return verify_records(topic, kafka_client.read_to_end(kafka, topic))
