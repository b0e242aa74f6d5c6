"""`ledger audit access`: who looked at a member, or what a person looked at, from the access topic.

The access log (projections.access_log) is read as the auditor reads the events: read_committed, no consumer group,
from the beginning. Every record is checked as the next link of one chain: its shape, seq 1, 2, 3, ... without gap or
repeat, its prev_hash the hash of the record before, and its hash recomputed from its content; a record that fails
is a breach, named by its offset and seq. The check goes on past a breach from the record's own seq and hash, so one
bad record is reported once or twice (itself, and the record after it), not for every record that follows. The reads
asked for are listed with the rest; those at or after the first breach are marked unverified, since the chain no
longer vouches for them.

What the chain cannot tell: the hash is unkeyed, so a principal that may write the topic (the API's, or the
administrator) can append a record that chains correctly. The next entry the API publishes then repeats its seq,
which is a breach here, and the publisher itself refuses to go on from a last record that is not its store's
(docs/audit.md, "The access log").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ledger.errors import NotFound, TopicUnreadable
from ledger.publishing import kafka_client
from ledger.settings import KafkaConnection
from projections.access_log import GENESIS_HASH, AccessRecordInvalid, LoggedEntry, chain_problems

READS_LISTED_MAX = 100_000  # reads listed in one answer; beyond, they are counted
BREACHES_KEPT_MAX = 100  # breaches described in one answer; beyond, they are counted


@dataclass(frozen=True)
class AccessBreach:
    offset: int
    seq: int | None  # None: the record is not an entry at all
    problem: str

    def __str__(self) -> str:
        return f"offset {self.offset}" + (f" (seq {self.seq})" if self.seq is not None else "") + f": {self.problem}"


@dataclass
class AccessReport:
    topic: str
    kpj: str | None
    subject: str | None
    start: date | None
    end: date | None
    records: int = 0  # records read from the topic
    last_seq: int = 0
    breaches: list[AccessBreach] = field(default_factory=list)
    breaches_found: int = 0
    reads: list[dict[str, Any]] = field(default_factory=list)
    reads_found: int = 0

    @property
    def ok(self) -> bool:
        return self.breaches_found == 0

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "kpj": self.kpj, "subject": self.subject,
                "from": self.start.isoformat() if self.start else None,
                "to": self.end.isoformat() if self.end else None,
                "records": self.records, "last_seq": self.last_seq, "intact": self.ok,
                "breaches_found": self.breaches_found,
                "breaches": [{"offset": b.offset, "seq": b.seq, "problem": b.problem} for b in self.breaches],
                "reads_found": self.reads_found, "reads": self.reads}

    def breach(self, one: AccessBreach) -> None:
        self.breaches_found += 1
        if len(self.breaches) < BREACHES_KEPT_MAX:
            self.breaches.append(one)


def _wanted(entry: LoggedEntry, kpj: str | None, subject: str | None, start: date | None, end: date | None) -> bool:
    day = entry.at[:10]  # the UTC day of the read
    return ((kpj is None or entry.kpj == kpj) and (subject is None or entry.subject == subject)
            and (start is None or day >= start.isoformat()) and (end is None or day <= end.isoformat()))


def _checked(report: AccessReport, record: Any, head: tuple[int, str]) -> tuple[LoggedEntry | None, tuple[int, str]]:
    """The record as an entry (None: it is not one), checked as the link after `head`, its breach noted in `report`;
    and the head after it: the record's own seq and hash, so the check goes on from it (see the module's docstring)."""
    try:
        entry = LoggedEntry.parse(record.value)
    except AccessRecordInvalid as error:
        report.breach(AccessBreach(record.offset, None, f"not an access log entry: {error}"))
        return None, head
    problems = chain_problems(entry, *head)
    if record.key != entry.subject.encode("utf-8"):
        problems.append("its key is not its subject")
    if problems:
        report.breach(AccessBreach(record.offset, entry.seq, "; ".join(problems)))
    report.last_seq = entry.seq
    return entry, (entry.seq + 1, entry.hash)


def access_topic(kafka: KafkaConnection, topic: str, *, kpj: str | None = None, subject: str | None = None,
                 start: date | None = None, end: date | None = None) -> AccessReport:
    """Check the access topic's chain from seq 1 and list the reads of member `kpj` or by `subject` (exactly one),
    made on a UTC day within [start, end] (either bound may be open)."""
    assert (kpj is None) != (subject is None), "a member or a subject"
    report = AccessReport(topic=topic, kpj=kpj, subject=subject, start=start, end=end)
    partitions: list[int] = []
    try:
        partitions = kafka_client.topic_partitions(kafka, topic)
        if len(partitions) > 1:
            report.breach(AccessBreach(0, None, f"the topic has {len(partitions)} partitions: the access log is one "
                                                f"chain, on partition 0, which alone is read"))
        head = (1, GENESIS_HASH)  # the seq due next, and the hash it links to
        # Partition 0 by name: a topic this principal may not see is then refused by the broker, not taken as absent.
        for batch in kafka_client.read_partition(kafka, topic, 0, 0):
            for record in batch:
                report.records += 1
                entry, head = _checked(report, record, head)
                if entry is not None and _wanted(entry, kpj, subject, start, end):
                    report.reads_found += 1
                    if len(report.reads) < READS_LISTED_MAX:
                        report.reads.append({**entry.body(), "offset": record.offset, "verified": report.ok})
    except (kafka_client.KafkaError, TimeoutError) as error:
        if isinstance(error, (kafka_client.SaslAuthenticationFailedError, kafka_client.AuthorizationError)):
            raise  # refused: exit 14 (ledger.cli.main)
        if not partitions:
            raise NotFound(f"topic {topic} does not exist on Kafka at {kafka.servers}: the administrator creates it "
                           f"with `ledger kafka init` (docs/kafka.md)") from None
        raise TopicUnreadable(f"could not read {topic} from Kafka at {kafka.servers} as {kafka.principal}: "
                              f"{type(error).__name__}: {error}") from None
    return report
