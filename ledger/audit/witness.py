"""A witness: it follows the log's checkpoints and cosigns each one that extends the history it cosigned before.

A witness holds the log to one history. It never reads the events: it reads the checkpoints topic (each record a
checkpoint signed by the log, with the consistency proof from the previous checkpoint in its headers) and writes its
cosignatures to the witness topic. Everyone who requires its cosignature (`ledger audit verify --key ... --witness`,
`ledger audit check-proof`) is then sure that the checkpoint they hold is the one the witness saw, and that the log
showed the witness no other history: a log that signs two histories (a checkpoint whose tree does not extend one it
signed before) is caught by every witness that sees both, and none cosigns the second.

Its state lives in Kafka, not on disk. On start it reads the witness topic and finds its own latest cosignature: a
record keyed by its key's name whose cosignature verifies with its own key. That checkpoint's size and root are
what it holds the log to, and the record's `checkpoint-offset` header (+ 1) is where it resumes on the checkpoints
topic. Of its own records it takes the one of the largest tree (one copied again to the end of the topic does not
wind it back), and of several of that tree the SMALLEST offset: the header is not covered by the cosignature, so
anyone who may write the witness topic can copy the record with another offset, and a later one would make the
witness skip checkpoints. An earlier one only makes it read again what it cosigned (`Unchanged`). A crash between
producing a cosignature and reading on only means the next run cosigns that checkpoint again, which is harmless (the
same statement, a later time).

A larger checkpoint whose consistency proof starts from a size above the one it cosigned last (it missed the
checkpoints between) cannot be checked: it is refused, not cosigned, but it is no breach. One whose proof starts below
that size, or that carries none, is a breach: the relay always proves from the checkpoint before.

The first checkpoint a witness ever sees is trusted on first use: nothing before it can show it false, so it is
cosigned once its signature verifies. What the witness proves is therefore relative to that first checkpoint, which
its operator can compare out of band (with the log's operator or another witness) when the witness starts.

What it decides about each record is `decide`, a pure function of what it holds and the record, tested alone
(tests/unit/test_witness.py); `run_witness` is the I/O around it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import TlogInvalid, TopicUnreadable
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import read_checkpoint_record
from ledger.publishing.topics import Topics
from ledger.settings import KafkaConnection
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, CosignatureVerifier, Cosigner, cosign, open_checkpoint
from ledger.tlog.note import Verifier, open_note

OFFSET_HEADER = "checkpoint-offset"
OFFSET_DIGITS_MAX = 20  # a Kafka offset is a signed 64-bit integer
# The roots of the latest checkpoints cosigned, by size: enough to tell an old checkpoint replayed from one of another
# history (the relay never writes a smaller checkpoint after a larger one, so only a replay or a forgery is smaller).
ROOTS_REMEMBERED_MAX = 10_000
SEND_TIMEOUT_S = 30  # one cosignature acknowledged by all in-sync replicas
POLL_MS = 500  # the longest a following witness waits for a new checkpoint before it looks at its stop signal
READ_ROUNDS_MAX = 600  # empty polls before a catch-up read gives up (5 minutes)
REFUSED_KEPT_MAX = 100  # refusals kept for the report (all are counted, and each is said on stderr as it happens)


@dataclass(frozen=True)
class Cosigned:
    """A checkpoint this witness cosigned: the history it holds the log to."""

    size: int
    root_hash: bytes
    offset: int  # its offset on the checkpoints topic


@dataclass
class Held:
    """What the witness holds: its latest cosigned checkpoint, and the roots of the latest ones by size."""

    last: Cosigned | None = None
    roots: OrderedDict[int, bytes] = field(default_factory=OrderedDict)

    def cosigned(self, checkpoint: Cosigned) -> None:
        # The largest tree is the one it holds the log to: an old record of its own copied to the end of the witness
        # topic (by someone who may write there) does not wind it back. Of that tree's records the smallest offset:
        # a copy with a later `checkpoint-offset` (not covered by the cosignature) would make it skip checkpoints.
        if self.last is None or checkpoint.size > self.last.size or (
                checkpoint.size == self.last.size and checkpoint.offset < self.last.offset):
            self.last = checkpoint
        self.roots[checkpoint.size] = checkpoint.root_hash
        self.roots.move_to_end(checkpoint.size)
        while len(self.roots) > ROOTS_REMEMBERED_MAX:
            self.roots.popitem(last=False)


@dataclass(frozen=True)
class Cosign:
    """A checkpoint to cosign: signed by the log, and consistent with the last one cosigned (or the first seen)."""

    checkpoint: Checkpoint


@dataclass(frozen=True)
class Unchanged:
    """A checkpoint the witness cosigned already (the same size and root): nothing to do."""


@dataclass(frozen=True)
class Refused:
    """Not cosigned, and why. `breach`: the log's key signed it, and it is not one history with what the witness
    cosigned (the log equivocated). Otherwise it is not the log's (a forgery, a malformed record) or cannot be
    checked; the log's history is not in question."""

    offset: int
    reason: str
    breach: bool


Decision = Cosign | Unchanged | Refused


def decide(held: Held, offset: int, value: bytes | None, headers: Sequence[tuple[str, bytes]] | None,
           log: Verifier, origin: str) -> Decision:
    """What the witness does with the checkpoints-topic record at `offset`, given what it holds."""
    # 1. The log's: a record not signed by the log's key is refused, and says nothing about the log.
    try:
        record = read_checkpoint_record(value, headers)
        checkpoint = open_checkpoint(record.note, origin, log).checkpoint
    except TlogInvalid as error:
        return Refused(offset, f"checkpoints offset {offset}: not signed by the log's key {log.name} ({error}): "
                               f"not cosigned", breach=False)
    last = held.last
    said = f"checkpoints offset {offset}: the checkpoint of size {checkpoint.size:,}"
    # 2. The first checkpoint ever seen is trusted on first use.
    if last is None:
        return Cosign(checkpoint)
    # 3. One it cosigned, or an older one: the same size must have the same root.
    if checkpoint.size <= last.size:
        known = held.roots.get(checkpoint.size)
        if known == checkpoint.root_hash:
            return Unchanged()
        if known is not None:
            return Refused(offset, f"{said} has another root than the one it cosigned at that size: the log signed "
                                   f"two histories", breach=True)
        return Refused(offset, f"{said} is older than the one it cosigned at size {last.size:,}, and not one it "
                               f"remembers: it cannot be checked, and is not cosigned", breach=False)
    # 4. A larger one must carry the proof that its tree extends the one cosigned last.
    if last.size == 0:
        return Cosign(checkpoint)  # the empty tree is a prefix of every tree
    if record.from_size is not None and record.from_size > last.size:
        return Refused(offset, f"{said} carries a consistency proof from size {record.from_size:,}, above the one it "
                               f"cosigned at size {last.size:,} (it missed the checkpoints between): it cannot be "
                               f"checked, and is not cosigned", breach=False)
    if record.from_size != last.size:
        carried = "no consistency proof" if record.from_size is None else \
            f"a consistency proof from size {record.from_size:,}"
        return Refused(offset, f"{said} carries {carried}: it is not shown consistent with the one it cosigned at "
                               f"size {last.size:,}", breach=True)
    if not merkle.verify_consistency(last.size, checkpoint.size, last.root_hash, checkpoint.root_hash, record.proof):
        return Refused(offset, f"{said} is inconsistent with the one it cosigned at size {last.size:,} (its "
                               f"consistency proof fails): the log signed two histories", breach=True)
    return Cosign(checkpoint)


def checkpoint_offset(headers: Sequence[tuple[str, bytes]] | None) -> int | None:
    """The `checkpoint-offset` header of a witness-topic record, or None if it has none that is an offset."""
    raw = dict(headers or []).get(OFFSET_HEADER)
    if raw is None or len(raw) > OFFSET_DIGITS_MAX:
        return None
    text = raw.decode("ascii", "replace")
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0"):
        return None
    return int(text)


def own_record(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None, own: CosignatureVerifier,
               origin: str) -> Cosigned | None:
    """The checkpoint a witness-topic record says this witness cosigned, or None when its cosignature (by this
    witness's key) is absent or does not verify, or it is of another log."""
    offset = checkpoint_offset(headers)
    if value is None or offset is None:
        return None
    try:
        checkpoint = Checkpoint.parse(open_note(value, [own]).text)
    except TlogInvalid:
        return None
    if checkpoint.origin != origin:
        return None
    return Cosigned(checkpoint.size, checkpoint.root_hash, offset)


@dataclass
class WitnessReport:
    witness: str
    log: str
    checkpoints_topic: str
    witness_topic: str
    cosigned: int = 0
    unchanged: int = 0
    refused_count: int = 0
    refused: list[Refused] = field(default_factory=list)
    breach: Refused | None = None
    last: Cosigned | None = None

    @property
    def ok(self) -> bool:
        return self.breach is None and self.refused_count == 0

    def as_dict(self) -> dict[str, Any]:
        return {"witness": self.witness, "log": self.log, "checkpoints_topic": self.checkpoints_topic,
                "witness_topic": self.witness_topic, "cosigned": self.cosigned, "unchanged": self.unchanged,
                "refused": self.refused_count,
                "refusals": [{"offset": one.offset, "reason": one.reason} for one in self.refused],
                "breach": None if self.breach is None else {"offset": self.breach.offset,
                                                            "reason": self.breach.reason},
                "last_cosigned": None if self.last is None else {"size": self.last.size,
                                                                 "offset": self.last.offset},
                "ok": self.ok}


def held_from_topic(kafka: KafkaConnection, topic: str, own: CosignatureVerifier, origin: str,
                    log: Callable[[str], None]) -> Held:
    """What this witness cosigned before, read back from the witness topic (read_committed, no group)."""
    held = Held()
    name = own.name.encode("utf-8")
    for record in kafka_client.read_to_end(kafka, topic, rounds_max=READ_ROUNDS_MAX, poll_ms=POLL_MS):
        if record.key != name:
            continue  # another witness's
        mine = own_record(record.value, record.headers, own, origin)
        if mine is None:
            log(f"witness topic offset {record.offset}: keyed {own.name} but not cosigned by its key (or not of "
                f"this log): ignored")
            continue
        held.cosigned(mine)
    return held


def run_witness(kafka: KafkaConnection, topics: Topics, cosigner: Cosigner, log_verifier: Verifier, *,
                follow: bool = False, stop: Callable[[], bool] = lambda: False,
                clock: Callable[[], float] = time.time, log: Callable[[str], None] = lambda _: None
                ) -> WitnessReport:
    """Cosign every new checkpoint that extends the history this witness cosigned; stop at the first that shows the
    log signed two histories (`report.breach`). Without `follow`, it stops at the checkpoints topic's end as of now."""
    origin = log_verifier.name
    own = cosigner.verifier()
    report = WitnessReport(cosigner.name, origin, topics.checkpoints, topics.witness)
    try:
        held = held_from_topic(kafka, topics.witness, own, origin, log)
        report.last = held.last
        producer = kafka_client.producer(kafka)
        try:
            start = 0 if held.last is None else held.last.offset + 1
            for records in kafka_client.read_partition(kafka, topics.checkpoints, 0, start, follow=follow, stop=stop,
                                                       rounds_max=READ_ROUNDS_MAX, poll_ms=POLL_MS):
                for record in records:
                    decision = decide(held, record.offset, record.value, record.headers, log_verifier, origin)
                    match decision:
                        case Cosign(checkpoint):
                            # 1. Cosign and produce, acknowledged by every in-sync replica; 2. only then hold the
                            # log to it. A crash between the two cosigns it again on restart: harmless.
                            note = cosign(record.value, cosigner, timestamp=int(clock()))
                            producer.send(topics.witness, key=cosigner.name.encode("utf-8"), value=note,
                                          headers=[(OFFSET_HEADER, str(record.offset).encode("ascii"))]
                                          ).get(timeout=SEND_TIMEOUT_S)
                            cosigned = Cosigned(checkpoint.size, checkpoint.root_hash, record.offset)
                            held.cosigned(cosigned)
                            report.cosigned += 1
                            report.last = cosigned
                        case Unchanged():
                            report.unchanged += 1
                        case Refused(breach=True):
                            report.breach = decision
                            return report
                        case Refused():
                            log(f"refused: {decision.reason}")
                            report.refused_count += 1
                            if len(report.refused) < REFUSED_KEPT_MAX:
                                report.refused.append(decision)
        finally:
            producer.close(timeout=SEND_TIMEOUT_S)
    except (kafka_client.AuthorizationError, kafka_client.SaslAuthenticationFailedError, kafka_client.RetriableError):
        raise  # said once by the command line: the principal and its ACLs, or a cluster that did not answer
    except (kafka_client.KafkaError, TimeoutError) as error:
        raise TopicUnreadable(f"the witness could not read {topics.witness} and {topics.checkpoints} or write "
                              f"{topics.witness} on Kafka at {kafka.servers} as {kafka.principal}: "
                              f"{type(error).__name__}: {error}") from None
    return report
