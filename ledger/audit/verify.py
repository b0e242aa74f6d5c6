"""`ledger audit verify`: the checks a tamperer would have to break.

1. positions are exactly 1..N: nothing lost, nothing duplicated;
2. within each partition, positions increase: nothing reordered;
3. per aggregate, versions are 1, 2, 3, ... and every record's hash is the SHA-256 chain over its predecessor
   (`ledger.events.chain_hash`): nothing altered, removed or inserted in an aggregate's history.
It reports the number of events checked and, on failure, the first breach with its partition, offset and event.

Those checks stop a careless tamperer only: anyone who can write to the topic can compute a valid chain. With the
log's verifier key (`verify_topic(..., log=...)`, `ledger audit verify --key`), the signed log is checked too, which
nobody without the signing key can pass:
4. every record of the checkpoints topic is a checkpoint signed by that key, of the log that key names, and the
   tree sizes strictly increase (a replayed or old checkpoint is a breach);
5. the RFC 9162 root over the events in position order (leaf i = the value bytes of the record at position i + 1,
   exactly as read) at each checkpoint's size is that checkpoint's root: an event changed, dropped, added, duplicated
   or reordered anywhere below it changes the root. Two checkpoints whose roots both match the tree over the same
   events are consistent with each other, so this check also holds each checkpoint to the earlier ones;
6. no event lies beyond the last checkpoint: the relay writes each checkpoint in the same transaction as its
   events, so an unsigned tail was not written by the relay (a forger's record at the next position);
7. with witnesses' keys: up to which size the checkpoints are cosigned by the witnesses (each cosigned checkpoint's
   root must be the events' tree's too, or the log showed a witness another history), and events beyond the size
   that the required number of them cosigned fail.

Speed: one SHA-256 per event, kept in one bytearray indexed by position (32 bytes each, no object per record); the
roots at the checkpoints' sizes from the tree's levels, each hashed once (`roots_at`). The checkpoints topic is read
before the events (to know which events may form a tail, and keep their ids to name them) and again after (so that
events published meanwhile, each in a transaction with its checkpoint, are covered). A checkpoint read before the
events, or cosigned by a witness then, covers only events committed before the events were read: one beyond them
means events lost or removed; one read only after is of events published meanwhile, and is checked for its
signature only. Reading and parsing the events is most of the time (kafka-python decodes in
Python): `workers` processes share the partitions (`verify_in_workers`).
"""

from __future__ import annotations

import gc
import hashlib
import multiprocessing
import pickle
import queue
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from ledger.errors import NotFound, TlogInvalid
from ledger.events import (
    GENESIS_HASH,
    chain_hash,
)
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import read_checkpoint_record
from ledger.settings import KafkaConnection
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, CosignatureVerifier, log_key_of, open_checkpoint
from ledger.tlog.note import Ed25519Verifier

BREACHES_KEPT_MAX = 100
GAPS_NAMED_MAX = 5  # missing positions a breach names
TAIL_NAMED_MAX = BREACHES_KEPT_MAX  # events of an unsigned tail whose ids are kept to name them
LIVE_POSITIONS_MAX = 10_000_000  # events published while `verify --key` reads the topic (320 MB of leaf hashes)
LEAVES_GROWTH_MIN = 65_536  # positions added at least when the leaf hashes grow
VERIFY_WORKERS_DEFAULT = 2  # `ledger audit verify --workers`: 1.5 x one worker with --key on 2 cores (benchmarks.md)
VERIFY_WORKERS_MAX = 16  # more processes than partitions, or than cores, only wait for each other
VERIFY_WORKERS_MIN_RECORDS = 100_000  # below, starting the processes (a second each) costs more than they save
VERIFY_CHUNK_RECORDS = 5_000  # records a worker sends at a time
VERIFY_CHUNKS_QUEUED_MAX = 4  # per worker: a worker ahead of the checks here waits rather than fill the memory
VERIFY_WORKER_WAIT_S = 1.0  # between looks at whether a silent worker has died


@dataclass
class Breach:
    partition: int
    offset: int
    event_id: str | None
    problem: str
    topic: str | None = None  # named when it is not the events topic (the checkpoints or the witness topic)

    def __str__(self) -> str:
        where = f"{self.topic} " if self.topic else ""
        return f"{where}partition {self.partition}, offset {self.offset}, event {self.event_id}: {self.problem}"


@dataclass
class WitnessCount:
    """One witness's cosignatures found on the witness topic: the largest tree size it cosigned (of the events read,
    with the events' root)."""

    name: str
    key_id: int
    cosigned_size: int = 0


@dataclass
class SignedLogReport:
    """What `verify --key` found of the signed log (checks 4 to 7 of the module's docstring)."""

    checkpoints_topic: str
    log_key: str
    checkpoints: int = 0  # records on the checkpoints topic
    checkpoints_ok: bool = True  # every one signed by the key, sizes increasing, roots the events' tree's
    signed_size: int = 0  # the largest checkpoint's size among the events read
    unsigned_tail: int = 0  # events after it
    checkpoints_ahead: int = 0  # checkpoints beyond the events read (published while they were read)
    witnesses: list[WitnessCount] = field(default_factory=list)
    witnesses_required: int = 0
    witness_topic: str | None = None

    @property
    def cosigned_size(self) -> int | None:
        """The largest size cosigned by `witnesses_required` of the witnesses (all of them when none is required)."""
        if not self.witnesses:
            return None
        sizes = sorted((one.cosigned_size for one in self.witnesses), reverse=True)
        return sizes[(self.witnesses_required or len(sizes)) - 1]

    def as_dict(self) -> dict[str, Any]:
        return {"checkpoints_topic": self.checkpoints_topic, "log_key": self.log_key,
                "checkpoints": self.checkpoints, "checkpoints_ok": self.checkpoints_ok,
                "signed_size": self.signed_size, "unsigned_tail": self.unsigned_tail,
                "checkpoints_ahead": self.checkpoints_ahead, "witness_topic": self.witness_topic,
                "witnesses": [{"name": one.name, "key_id": f"{one.key_id:08x}", "cosigned_size": one.cosigned_size}
                              for one in self.witnesses],
                "witnesses_required": self.witnesses_required, "cosigned_size": self.cosigned_size}


@dataclass
class VerifyReport:
    topic: str
    events: int = 0
    first_position: int | None = None
    last_position: int | None = None
    breaches: list[Breach] = field(default_factory=list)
    positions_ok: bool = True  # 1..N, no duplicate, increasing within each partition
    chains_ok: bool = True  # every aggregate's versions and hashes follow on
    signed: SignedLogReport | None = None  # None: the signed log was not checked (no verifier key given)

    @property
    def ok(self) -> bool:
        return self.positions_ok and self.chains_ok and not self.breaches

    def as_dict(self) -> dict[str, Any]:
        return {"topic": self.topic, "events": self.events, "positions": [self.first_position, self.last_position],
                "positions_contiguous": self.positions_ok, "chains_intact": self.chains_ok, "ok": self.ok,
                "first_breach": str(self.breaches[0]) if self.breaches else None, "breaches": len(self.breaches),
                "signed_log_checked": self.signed is not None,
                "signed_log": self.signed.as_dict() if self.signed is not None else None,
                "breach_list": [str(one) for one in self.breaches]}

    def add_breach(self, breach: Breach) -> None:
        if len(self.breaches) < BREACHES_KEPT_MAX:
            self.breaches.append(breach)

    def breach(self, record: Any, event_id: str | None, problem: str, *, chain: bool = False) -> None:
        if chain:
            self.chains_ok = False
        else:
            self.positions_ok = False
        if len(self.breaches) < BREACHES_KEPT_MAX:
            self.breaches.append(Breach(record.partition, record.offset, event_id, problem))


HASH_SIZE = merkle.HASH_SIZE
ZERO_HASH = bytes(HASH_SIZE)  # where a position was read twice: no real leaf hash, so no root over it matches


class LeafHashes:
    """Each event's leaf hash (SHA-256(0x00 || value)) at (position - 1) x 32 in one bytearray. It is sized for the
    positions expected (the topic's end offsets, taken before the read, add up to at least its records then) and grows
    for the events published while the topic is read, up to LIVE_POSITIONS_MAX more: a forged position far beyond
    is not stored (it is a breach of the positions anyway) rather than exhaust memory. A position read twice or never
    holds 32 zero bytes, which no real leaf hash is: every checkpoint covering it fails. The ids of the events after
    `tail_after` are kept (the first TAIL_NAMED_MAX) to name them if they turn out to be an unsigned tail."""

    __slots__ = ("_seen", "hashes", "positions_max", "size", "tail_after", "tail_ids")

    def __init__(self, positions_expected: int, tail_after: int = 0) -> None:
        self.positions_max = positions_expected + LIVE_POSITIONS_MAX
        self.hashes = bytearray(positions_expected * merkle.HASH_SIZE)
        self._seen = bytearray(positions_expected + 1)
        self.size = 0  # the largest position stored
        self.tail_after = tail_after
        self.tail_ids: dict[int, str] = {}

    def add(self, position: int, value: bytes, event_id: str) -> None:
        self.add_hash(position, hashlib.sha256(b"\0" + value).digest(), event_id)

    def add_hash(self, position: int, leaf_hash: bytes, event_id: str) -> None:
        """`add`, given the leaf hash already taken (by a worker process of `verify_topic`)."""
        if not 0 < position <= self.positions_max:
            return
        seen = self._seen
        if position >= len(seen):
            self._grow(position)
            seen = self._seen
        start = (position - 1) * HASH_SIZE
        if seen[position]:
            # Held twice: the tree has no one leaf there, so no checkpoint covering it can match (32 zero bytes).
            self.hashes[start:start + HASH_SIZE] = ZERO_HASH
            return
        seen[position] = 1
        self.hashes[start:start + HASH_SIZE] = leaf_hash
        if position > self.size:
            self.size = position
        if position > self.tail_after and len(self.tail_ids) < TAIL_NAMED_MAX:
            self.tail_ids[position] = event_id

    def _grow(self, position: int) -> None:
        held = len(self._seen) - 1
        wanted = min(self.positions_max, max(position, held + held // 4 + LEAVES_GROWTH_MIN))
        self._seen.extend(bytes(wanted - held))
        self.hashes.extend(bytes((wanted - held) * merkle.HASH_SIZE))

    def leaf(self, position: int) -> bytes:
        start = (position - 1) * merkle.HASH_SIZE
        return bytes(self.hashes[start:start + merkle.HASH_SIZE])


def verify_records(topic: str, records: Iterable[Any], leaves: LeafHashes | None = None,
                   where: dict[int, tuple[int, int]] | None = None) -> VerifyReport:
    """Check a topic's records (in partition order, as Kafka returns them). With `leaves`, each event's leaf hash is
    kept by position too; `where` receives position -> (partition, offset) of the first record of each position."""
    report = VerifyReport(topic=topic)
    positions_seen: dict[int, tuple[int, int]] = {} if where is None else where  # position -> where first seen
    add_leaf = leaves.add if leaves is not None else None
    with _collector_paused():
        _verify_each(report, records, add_leaf, positions_seen)
    if positions_seen:
        _check_contiguous(report, positions_seen)
    return report


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a topic is read and checked: the check keeps millions of objects
    for its whole run (each position's first place, each aggregate's head), which every full collection would walk
    again (9 % of `verify --key`'s time, measured); the check makes no reference cycles of its own. It is turned
    back on, if it was on, as soon as the records are read."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _verify_each(report: VerifyReport, records: Iterable[Any], add_leaf: Callable[[int, bytes, str], None] | None,
                 positions_seen: dict[int, tuple[int, int]]) -> None:
    last_in_partition: dict[int, int] = {}
    heads: dict[str, tuple[int, str]] = {}  # aggregate id -> (version, hash) of its last event
    # Per record, this loop is the auditor's own cost beside kafka-python's decoding (docs/benchmarks.md): the names
    # it uses are bound once.
    loads, not_json = orjson.loads, orjson.JSONDecodeError
    for record in records:
        report.events += 1
        value = record.value
        try:
            env = loads(value)
            event_id, position = env["event_id"], int(env["position"])
            aggregate, version = env["aggregate_id"], int(env["aggregate_version"])
        except (not_json, KeyError, TypeError, ValueError) as error:
            report.breach(record, None, f"not a ledger envelope ({error})", chain=True)
            continue
        _check_position(report, record.partition, record.offset, event_id, position, positions_seen,
                        last_in_partition)
        if add_leaf is not None:
            add_leaf(position, value, event_id)
        _check_chain(report, record, env, aggregate, version, heads)


class _Place(NamedTuple):
    """Where a record is, for a breach found without the record at hand (`verify_topic`'s workers)."""

    partition: int
    offset: int


def _check_position(report: VerifyReport, partition: int, offset: int, event_id: str, position: int,
                    positions_seen: dict[int, tuple[int, int]], last_in_partition: dict[int, int]) -> None:
    first = positions_seen.get(position)
    if first is None:
        positions_seen[position] = (partition, offset)
    else:
        report.breach(_Place(partition, offset), event_id,
                      f"position {position} duplicated (first at partition {first[0]}, offset {first[1]})")
    last = last_in_partition.get(partition, 0)
    if position > last:
        last_in_partition[partition] = position
    else:
        report.breach(_Place(partition, offset), event_id, f"position {position} after {last}: reordered")


def _check_chain(report: VerifyReport, record: Any, env: dict[str, Any], aggregate: str, version: int,
                 heads: dict[str, tuple[int, str]]) -> None:
    get: Callable[..., Any] = env.get
    head = heads.get(aggregate)
    prev_version, prev_hash = head if head is not None else (0, GENESIS_HASH)
    if version != prev_version + 1:
        report.breach(record, env["event_id"], f"aggregate version {version} follows {prev_version}: an event is "
                                               f"missing, duplicated or reordered", chain=True)
    if get("prev_hash") != prev_hash:
        report.breach(record, env["event_id"], "chain broken: prev_hash is not the hash of the aggregate's previous "
                                               "event", chain=True)
    # Hashed as the record holds them: a field it lacks counts as null, which fails the check below instead of
    # stopping the verification.
    claimed = get("hash")
    if chain_hash(get("prev_hash", ""), aggregate_id=aggregate, aggregate_version=version, event_type=get("type"),
                  version=get("version"), effective_date=get("effective_date"), branch=get("branch"),
                  data=get("data")) != claimed:
        report.breach(record, env["event_id"], "chain broken: the hash does not match the event's content (altered)",
                      chain=True)
    heads[aggregate] = (version, get("hash", ""))


def verify_in_workers(kafka: KafkaConnection, topic: str, workers: int, leaves: LeafHashes | None = None,
                      where: dict[int, tuple[int, int]] | None = None) -> VerifyReport:
    """`verify_records` over the whole topic, its partitions shared among `workers` processes (1: this one alone).

    An aggregate's events all lie in one partition (the record key is its id), so each worker reads its partitions,
    parses each event and checks the chains (3) on its own. What spans partitions stays here: each worker sends, per
    record, its partition, offset, position, event id and leaf hash, in chunks, and this process checks the positions
    (1, 2) and keeps the leaf hashes exactly as `verify_records` does; the chains' breaches come with the chunks.
    Kafka returns records of different partitions interleaved in any case, so the breaches' order is not the same
    from run to run with one worker either; the checks and the breaches found are. An event whose chain continues in
    another partition than its predecessor's is a breach with one worker too (the relay keys records by aggregate).
    """
    shares = _shares(kafka, topic, workers)
    if len(shares) <= 1:
        return verify_records(topic, kafka_client.read_to_end(kafka, topic), leaves, where)
    report = VerifyReport(topic=topic)
    positions_seen: dict[int, tuple[int, int]] = {} if where is None else where
    last_in_partition: dict[int, int] = {}
    add_hash = leaves.add_hash if leaves is not None else None
    with _collector_paused(), _workers(kafka, topic, shares, leaves is not None) as chunks:
        for events, partitions, offsets, positions, event_ids, hashes, breaches in chunks:
            report.events += events
            for breach in breaches:
                report.chains_ok = False
                report.add_breach(breach)
            for i, position in enumerate(positions):
                _check_position(report, partitions[i], offsets[i], event_ids[i], position, positions_seen,
                                last_in_partition)
                if add_hash is not None:
                    add_hash(position, hashes[i * HASH_SIZE:(i + 1) * HASH_SIZE], event_ids[i])
    if positions_seen:
        _check_contiguous(report, positions_seen)
    return report


def _shares(kafka: KafkaConnection, topic: str, workers: int) -> list[list[int]]:
    """The topic's partitions dealt out to the workers (one share or none: this process reads the topic alone)."""
    if workers <= 1 or not kafka_client.topic_partitions(kafka, topic):
        return []
    ends = kafka_client.end_offsets(kafka, topic)
    if sum(ends.values()) < VERIFY_WORKERS_MIN_RECORDS:
        return []
    numbers = sorted(ends)
    return [numbers[i::workers] for i in range(min(workers, len(numbers)))]


@contextmanager
def _workers(kafka: KafkaConnection, topic: str, shares: list[list[int]], keyed: bool
             ) -> Iterator[Iterator[tuple[Any, ...]]]:
    """One process per share (`_verify_share`), and their chunks as they come, until each worker is done; a worker's
    error is raised here. Every worker is stopped on the way out."""
    context = multiprocessing.get_context("spawn")  # no copy of this process's Kafka clients or threads
    chunks = context.Queue(maxsize=VERIFY_CHUNKS_QUEUED_MAX * len(shares))
    processes = [context.Process(target=_verify_share, args=(kafka, topic, share, keyed, chunks), daemon=True)
                 for share in shares]
    for process in processes:
        process.start()

    def each() -> Iterator[tuple[Any, ...]]:
        running = len(processes)
        while running:
            kind, *payload = _next_message(chunks, processes)
            if kind == "done":
                running -= 1
            else:
                yield tuple(payload)

    try:
        yield each()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def _next_message(chunks: Any, processes: list[Any]) -> tuple[Any, ...]:
    """A worker's next chunk, or its "done"; a worker's error is raised here."""
    while True:
        try:
            message: tuple[Any, ...] = chunks.get(timeout=VERIFY_WORKER_WAIT_S)
        except queue.Empty:
            # A worker killed, or gone without its last word: what it read will not come.
            exits = [one.exitcode for one in processes]
            if any(code not in (None, 0) for code in exits) or None not in exits:
                raise RuntimeError(f"a verify worker stopped before its partitions were read (exit codes "
                                   f"{exits})") from None
            continue
        if message[0] == "error":
            raise message[1]
        return message


def _verify_share(kafka: KafkaConnection, topic: str, partitions: list[int], keyed: bool, chunks: Any) -> None:
    """A worker of `verify_in_workers`: its partitions read, each event parsed and its chain checked, the rest sent
    on (the first error too, to be raised by the parent)."""
    try:
        report = VerifyReport(topic=topic)  # the chains' breaches since the last chunk sent
        heads: dict[str, tuple[int, str]] = {}
        loads, not_json, sha256 = orjson.loads, orjson.JSONDecodeError, hashlib.sha256
        sent = 0
        part: list[int] = []
        offsets: list[int] = []
        positions: list[int] = []
        event_ids: list[str] = []
        hashes = bytearray()

        def send() -> None:
            nonlocal sent
            chunks.put(("chunk", report.events - sent, part[:], offsets[:], positions[:], event_ids[:],
                        bytes(hashes), report.breaches))
            sent, report.breaches = report.events, []
            for held in (part, offsets, positions, event_ids, hashes):
                del held[:]

        with _collector_paused():
            for record in kafka_client.read_to_end(kafka, topic, partitions=partitions):
                report.events += 1
                value = record.value
                try:
                    env = loads(value)
                    event_id, position = env["event_id"], int(env["position"])
                    aggregate, version = env["aggregate_id"], int(env["aggregate_version"])
                except (not_json, KeyError, TypeError, ValueError) as error:
                    report.breach(record, None, f"not a ledger envelope ({error})", chain=True)
                    continue
                part.append(record.partition)
                offsets.append(record.offset)
                positions.append(position)
                event_ids.append(event_id)
                if keyed:
                    hashes += sha256(b"\0" + value).digest()
                _check_chain(report, record, env, aggregate, version, heads)
                if len(positions) >= VERIFY_CHUNK_RECORDS:
                    send()
        send()
        chunks.put(("done",))
    except Exception as error:  # noqa: BLE001 - handed to the parent, which raises it as one process would
        try:
            pickle.dumps(error)
        except Exception:  # noqa: BLE001 - an error that cannot cross to the parent: its name and message do
            error = RuntimeError(f"{type(error).__name__}: {error}")
        chunks.put(("error", error))


def _first_gaps(positions: Iterable[int], count: int) -> list[int]:
    """The first `count` positions from 1 up that are missing: from the positions held, in order, never from a range
    up to the largest one (a forged position of 10**12 would take hours to walk to)."""
    gaps: list[int] = []
    expected = 1
    for position in sorted(positions):
        if position >= expected:
            gaps.extend(range(expected, min(position, expected + count - len(gaps))))
            if len(gaps) >= count:
                break
            expected = position + 1
    return gaps


def _check_contiguous(report: VerifyReport, positions_seen: dict[int, tuple[int, int]]) -> None:
    report.first_position, report.last_position = min(positions_seen), max(positions_seen)
    missing = report.last_position - len(positions_seen) + (report.first_position - 1)
    if report.first_position != 1 or missing:
        report.positions_ok = False
        gaps = _first_gaps(positions_seen, GAPS_NAMED_MAX)
        report.breaches.insert(0, Breach(-1, -1, None, f"positions not contiguous from 1: missing {gaps}"
                                                      f"{' ...' if missing > len(gaps) else ''}"))


def verify_topic(kafka: KafkaConnection, topic: str, *, log: Ed25519Verifier | Sequence[Ed25519Verifier] | None = None,
                 checkpoints_topic: str | None = None, witnesses: list[CosignatureVerifier] | None = None,
                 witness_topic: str | None = None, witnesses_required: int = 0, workers: int = 1) -> VerifyReport:
    """Checks 1 to 3 of the module's docstring; with the log's verifier key `log`, 4 to 6 over `checkpoints_topic`;
    with `witnesses`, 7 over `witness_topic`. `log` may be the log's keys over time, one per rotation
    (`ledger.tlog.checkpoint.log_key_of`): each checkpoint must be signed by one of them. With `workers` > 1, the
    events' partitions are read and their chains checked by that many processes (`verify_in_workers`)."""
    if log is None:
        return verify_in_workers(kafka, topic, workers)
    logs = [log] if isinstance(log, Ed25519Verifier) else list(log)
    assert checkpoints_topic is not None, "the signed log is checked against its checkpoints topic"
    witnesses = witnesses or []
    assert not witnesses or witness_topic is not None, "cosignatures are read from the witness topic"
    for name in (topic, checkpoints_topic):
        if not kafka_client.topic_partitions(kafka, name):
            raise NotFound(f"topic {name} does not exist on Kafka at {kafka.servers}, or {kafka.principal} may not "
                           f"read it")
    # 1. The checkpoints and cosignatures so far. A checkpoint is committed in the same transaction as its events, so
    # every event a checkpoint read now covers is in the events read next (read_committed, to the end as of then):
    # one beyond them means events lost or removed, not events published meanwhile. The events beyond the last of them
    # may be a tail, whose ids are kept to name them.
    before = _checkpoints(kafka, checkpoints_topic, logs)
    cosigned = _cosigned(kafka, witness_topic, logs, witnesses) if witnesses else _Cosigned()
    ends_before = kafka_client.end_offsets(kafka, topic)
    # 2. The events, with their leaf hashes by position (the end offsets bound the positions a contiguous topic has).
    leaves = LeafHashes(sum(ends_before.values()),
                        tail_after=max((one.checkpoint.size for one in before.valid), default=0))
    where: dict[int, tuple[int, int]] = {}
    report = verify_in_workers(kafka, topic, workers, leaves, where)
    # 3. The checkpoints again, to cover the events published while they were read.
    found = _checkpoints(kafka, checkpoints_topic, logs)
    covered = max((one.checkpoint.size for one in before.valid), default=0)
    signed = SignedLogReport(checkpoints_topic=checkpoints_topic,
                             log_key=", ".join(f"{one.name}+{one.key_id:08x}" for one in logs),
                             checkpoints=found.records, witness_topic=witness_topic if witnesses else None,
                             witnesses=[WitnessCount(one.name, one.key_id) for one in witnesses],
                             witnesses_required=witnesses_required)
    report.signed = signed
    for breach in [*found.breaches, *cosigned.breaches]:
        signed.checkpoints_ok = False
        report.add_breach(breach)
    _check_roots(report, signed, leaves, found, cosigned, covered)
    _check_tail(report, signed, leaves, where, topic)
    return report


@dataclass(frozen=True)
class _Valid:
    """A checkpoint that opened with the log's key: its place on the checkpoints (or witness) topic."""

    checkpoint: Checkpoint
    partition: int
    offset: int
    cosigners: tuple[int, ...] = ()  # indices of the given witnesses that cosigned it


@dataclass
class _Checkpoints:
    records: int = 0
    valid: list[_Valid] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)


def _checkpoints(kafka: KafkaConnection, topic: str, logs: Sequence[Ed25519Verifier]) -> _Checkpoints:
    """The checkpoints topic's records, each opened with the log's key: those that open with increasing sizes are
    kept, every other one is a breach naming its offset. With the log's keys over time (oldest first), a checkpoint
    signed by a key after one by a later key signed is a breach: a retired key signs nothing more."""
    found = _Checkpoints()
    last_size = 0
    newest = 0  # the index in `logs` of the latest key that signed a checkpoint
    for record in kafka_client.read_to_end(kafka, topic):
        found.records += 1
        try:
            note = read_checkpoint_record(record.value, record.headers).note
            key = log_key_of(note, logs)
            opened = open_checkpoint(note, logs[0].name, key)
        except TlogInvalid as error:
            found.breaches.append(Breach(record.partition, record.offset, None,
                                         f"not a checkpoint signed by the log's key: {error}", topic))
            continue
        index = logs.index(key)
        if index < newest:
            retired, later = logs[index], logs[newest]
            found.breaches.append(Breach(record.partition, record.offset, None,
                                         f"a checkpoint signed by the retired key {retired.name}+"
                                         f"{retired.key_id:08x} after {later.name}+{later.key_id:08x} signed one "
                                         f"(the keys are given oldest first)", topic))
            continue
        newest = index
        size = opened.checkpoint.size
        if size <= last_size:
            found.breaches.append(Breach(record.partition, record.offset, None,
                                         f"a checkpoint of size {size} after one of size {last_size}: replayed or "
                                         f"old (the relay's checkpoints only grow)", topic))
            continue
        last_size = size
        found.valid.append(_Valid(opened.checkpoint, record.partition, record.offset))
    return found


@dataclass
class _Cosigned:
    valid: list[_Valid] = field(default_factory=list)
    breaches: list[Breach] = field(default_factory=list)


def _cosigned(kafka: KafkaConnection, topic: str | None, logs: Sequence[Ed25519Verifier],
              witnesses: list[CosignatureVerifier]) -> _Cosigned:
    """The witness topic's checkpoints cosigned by any of the given witnesses. A record the log did not sign, or whose
    cosignature by a given witness fails, is a breach; cosignatures by other witnesses are ignored."""
    assert topic is not None
    found = _Cosigned()
    for record in kafka_client.read_to_end(kafka, topic):
        try:
            opened = open_checkpoint(record.value or b"", logs[0].name, log_key_of(record.value or b"", logs),
                                     witnesses)
        except TlogInvalid as error:
            found.breaches.append(Breach(record.partition, record.offset, None, f"not a checkpoint of the log "
                                         f"cosigned by the given witnesses: {error}", topic))
            continue
        by_key = {(one.name, one.key_id) for one in opened.cosignatures}
        cosigners = tuple(i for i, one in enumerate(witnesses) if (one.name, one.key_id) in by_key)
        if cosigners:
            found.valid.append(_Valid(opened.checkpoint, record.partition, record.offset, cosigners))
    return found


def _check_roots(report: VerifyReport, signed: SignedLogReport, leaves: LeafHashes, found: _Checkpoints,
                 cosigned: _Cosigned, covered: int) -> None:
    """Check 5 (and 7's roots): the root of the events' tree at each size a checkpoint or a cosignature names must be
    theirs."""
    size_read = report.last_position or 0
    roots = roots_at(leaves, {*(one.checkpoint.size for one in found.valid),
                              *(one.checkpoint.size for one in cosigned.valid)}, size_read)
    matched = 0
    for one in found.valid:
        size = one.checkpoint.size
        if size > size_read:
            if size <= covered:  # committed before the events were read, with its events: they are not there
                signed.checkpoints_ok = False
                report.add_breach(Breach(one.partition, one.offset, None, f"the checkpoint of size {size} covers "
                                         f"events the topic does not hold (it ends at position {size_read}): lost "
                                         f"or removed", signed.checkpoints_topic))
            else:
                signed.checkpoints_ahead += 1
            continue
        signed.signed_size = size
        if roots.get(size) != one.checkpoint.root_hash:
            signed.checkpoints_ok = False
            report.add_breach(Breach(one.partition, one.offset, None, f"the checkpoint of size {size} does not match "
                                     f"the events: the tree over positions 1..{size} has another root, so an event "
                                     f"at positions {matched + 1}..{size} was changed, dropped, added, duplicated or "
                                     f"reordered", signed.checkpoints_topic))
        else:
            matched = size
    _count_cosignatures(report, signed, roots, cosigned, size_read)


def roots_at(leaves: LeafHashes, sizes: Iterable[int], size_max: int) -> dict[int, bytes]:
    """The root of the tree over the first n leaves, for each n of `sizes` up to `size_max`.

    The tree's levels are hashed once, each in one pass over the one below (level k holds the roots of the aligned
    perfect subtrees of 2**k leaves); the root at n folds, right to left, the subtrees that n's binary digits name
    from the left, which is RFC 9162's split (as `merkle.Frontier.root`). Each interior node is hashed once, as a
    frontier walking the leaves would, but without a Python call per leaf: 4 x quicker over a branch-year."""
    step = merkle.HASH_SIZE
    size_max = min(size_max, len(leaves.hashes) // step)  # beyond, no leaf was stored: no root matches there
    wanted = sorted(one for one in set(sizes) if one <= size_max)
    if not wanted or wanted[-1] == 0:
        return dict.fromkeys(wanted, merkle.EMPTY_ROOT)
    sha256, node = hashlib.sha256, b"\x01"  # merkle.node_hash: SHA-256(0x01 || left || right)
    levels: list[Any] = [memoryview(leaves.hashes)[:wanted[-1] * step]]
    while len(levels[-1]) >= 2 * step:
        below = levels[-1]
        levels.append(b"".join([sha256(node + below[i:i + 2 * step]).digest()
                                for i in range(0, len(below) - 2 * step + 1, 2 * step)]))
    roots = {}
    for size in wanted:
        subtrees, start = [], 0
        for level in range(size.bit_length() - 1, -1, -1):
            if size >> level & 1:
                index = start >> level
                subtrees.append(bytes(levels[level][index * step:(index + 1) * step]))
                start += 1 << level
        folded = subtrees[-1] if subtrees else merkle.EMPTY_ROOT
        for left in reversed(subtrees[:-1]):
            folded = sha256(node + left + folded).digest()
        roots[size] = folded
    return roots


def _count_cosignatures(report: VerifyReport, signed: SignedLogReport, roots: dict[int, bytes], cosigned: _Cosigned,
                        size_read: int) -> None:
    """The cosigned checkpoints (read before the events, so every event they cover was committed before the events
    were read): each one's root must be the events' tree's, and none may be beyond the events read."""
    for one in cosigned.valid:
        size = one.checkpoint.size
        if size > size_read:
            # The witnesses saw a larger tree than the topic holds: events were lost, or the topics were rebuilt from
            # an older prefix of the history, whose own checkpoints all verify (a truncation).
            signed.checkpoints_ok = False
            report.add_breach(Breach(one.partition, one.offset, None, f"witnesses cosigned the log's tree of size "
                                     f"{size}, but the topic ends at position {size_read}: events lost or removed",
                                     signed.witness_topic))
            continue
        if roots.get(size) != one.checkpoint.root_hash:
            signed.checkpoints_ok = False
            report.add_breach(Breach(one.partition, one.offset, None, f"a checkpoint of size {size} signed by the log "
                                     f"and cosigned by witnesses, whose root is not the events' tree's: the log "
                                     f"showed them another history", signed.witness_topic))
            continue
        for index in one.cosigners:
            witness = signed.witnesses[index]
            witness.cosigned_size = max(witness.cosigned_size, size)


def _check_tail(report: VerifyReport, signed: SignedLogReport, leaves: LeafHashes,
                where: dict[int, tuple[int, int]], topic: str) -> None:
    """Check 6, and 7's requirement: every event after the last checkpoint (or the size cosigned as required) is
    named."""
    size_read = report.last_position or 0
    signed.unsigned_tail = max(0, size_read - signed.signed_size)
    for position in range(signed.signed_size + 1, min(size_read, signed.signed_size + TAIL_NAMED_MAX) + 1):
        partition, offset = where.get(position, (-1, -1))
        report.add_breach(Breach(partition, offset, leaves.tail_ids.get(position), f"position {position} is in no "
                                 f"checkpoint signed by the log (signed up to {signed.signed_size}): an unsigned tail, "
                                 f"which the relay never writes"))
    cosigned = signed.cosigned_size
    if signed.witnesses_required and cosigned is not None and size_read > cosigned:
        report.add_breach(Breach(-1, -1, None, f"positions {cosigned + 1}..{size_read} are not cosigned by "
                                 f"{signed.witnesses_required} of the {len(signed.witnesses)} witnesses given (they "
                                 f"cosigned up to size {cosigned})", topic))
