"""`ledger audit prove` and `ledger audit check-proof`: receipts that anyone checks offline with the log's key.

`prove_event` reads the events topic once (each event's leaf hash by position, as `verify` keeps them), finds the
event, and proves it against the latest checkpoint that covers it and whose root is the events' tree's. It holds the
log's verifier keys (all of them over a rotation) and the witnesses' the reader counts on, and hands out only what
they verify: anyone who may write the checkpoints or witness topic could put a note there, and a receipt carrying a
forged checkpoint or a junk cosignature line fails `check-proof` although a sound one could be written. So a
candidate is a checkpoint signed by one of the log's keys (on the checkpoints topic, or a witness's record of it),
and only the cosignature lines that verify with a given witness's key are merged into it (one per witness; without
witness keys, none). The checkpoint most of the given witnesses cosigned is preferred (the latest such), so that the
receipt carries their cosignatures: a reader who requires k witnesses can check it alone. The receipt is a C2SP
tlog-proof bundle (`ledger.tlog.checkpoint.ProofBundle`): index = position - 1, the inclusion proof, the checkpoint
with the log's signature and those cosignatures, and as `extra` the event record's value bytes, from which the
reader computes the leaf hash itself.

`prove_sizes` writes a consistency proof between two checkpoints (`ConsistencyProof`, bpjs-ledger/consistency-proof@v1,
docs/audit.md), chosen the same way.

`check_proof` needs no Kafka and no store: the file, the log's verifier key and the witnesses' keys the reader
counts on. Every failure is `TlogInvalid`, with the reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.audit.topic import envelope_of, read_topic
from ledger.audit.verify import LeafHashes, roots_at
from ledger.errors import InvalidInput, NotFound, TlogInvalid, Unprovable
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import read_checkpoint_record
from ledger.publishing.topics import Topics
from ledger.settings import KafkaConnection
from ledger.tlog import merkle
from ledger.tlog.checkpoint import (
    CONSISTENCY_HEADER,
    PROOF_HEADER,
    Checkpoint,
    ConsistencyProof,
    CosignatureVerifier,
    OpenedCheckpoint,
    ProofBundle,
    log_key_of,
    open_checkpoint,
    verify_bundle,
    verify_consistency_file,
)
from ledger.tlog.note import Ed25519Verifier, Signature, Verifier, b64encode, format_note, parse_note

PROOF_FILE_BYTES_MAX = 4 * 1_048_576  # a receipt is a few kB; two notes of at most 1 MiB each, with room to spare


@dataclass
class _Candidate:
    """A checkpoint signed by one of the log's keys (that signature verified), with the cosignatures of the given
    witnesses that verified, by witness."""

    checkpoint: Checkpoint
    text: str
    log_signature: Signature
    cosignatures: dict[tuple[str, int], Signature] = field(default_factory=dict)

    def note(self) -> bytes:
        return format_note(self.text, [self.log_signature, *self.cosignatures.values()])


def _log_signed(data: bytes | None, logs: Sequence[Verifier]) -> _Candidate | None:
    """The checkpoint in `data` with the log's signature line, if one of the log's keys signed it; else None."""
    try:
        log = log_key_of(data or b"", logs)
        opened = open_checkpoint(data or b"", log.name, log)
    except TlogInvalid:
        return None
    signature = next(one for one in opened.note.verified if (one.name, one.key_id) == (log.name, log.key_id))
    return _Candidate(opened.checkpoint, opened.note.text, signature)


def _cosignatures(data: bytes, text: str, witnesses: Sequence[CosignatureVerifier]) -> list[Signature]:
    """The cosignature lines in the note `data` (of the checkpoint `text`) that verify with a witness's key, each
    checked alone: a junk line under a witness's name is dropped, not merged, and spoils nothing else."""
    message, lines = text.encode("utf-8"), parse_note(data).signatures
    found = []
    for witness in witnesses:
        for one in lines:
            if (one.name, one.key_id) == (witness.name, witness.key_id) and witness.verify(message, one.signature):
                found.append(one)
                break
    return found


def _candidates(kafka: KafkaConnection, topics: Topics, logs: Sequence[Verifier],
                witnesses: Sequence[CosignatureVerifier]) -> list[_Candidate]:
    """The checkpoints the log signed, one per text, with the given witnesses' cosignatures found on the witness
    topic. A record that is not one is skipped (`verify --key` names it)."""
    merged: dict[str, _Candidate] = {}
    for record in kafka_client.read_to_end(kafka, topics.checkpoints):
        try:
            note = read_checkpoint_record(record.value, record.headers).note
        except TlogInvalid:
            continue
        found = _log_signed(note, logs)
        if found is not None:
            merged.setdefault(found.text, found)
    if not witnesses:
        return list(merged.values())  # no cosignature is merged without a witness's key to check it
    for record in kafka_client.read_to_end(kafka, topics.witness):
        found = _log_signed(record.value, logs)
        if found is None:
            continue
        kept = merged.setdefault(found.text, found)
        for one in _cosignatures(record.value or b"", found.text, witnesses):
            kept.cosignatures.setdefault((one.name, one.key_id), one)
    return list(merged.values())


@dataclass
class _Read:
    leaves: LeafHashes
    candidates: list[_Candidate]
    target: tuple[int, bytes, dict[str, Any]] | None = None  # the event's position, value and envelope


def _read(kafka: KafkaConnection, topics: Topics, event_id: str | None, logs: Sequence[Verifier],
          witnesses: Sequence[CosignatureVerifier]) -> _Read:
    # The events first, then the checkpoints: every event read was committed with a checkpoint covering it.
    for name in (topics.events, topics.checkpoints):
        if not kafka_client.topic_partitions(kafka, name):
            raise NotFound(f"topic {name} does not exist on Kafka at {kafka.servers}, or {kafka.principal} may not "
                           f"read it")
    ends = kafka_client.end_offsets(kafka, topics.events)
    leaves = LeafHashes(sum(ends.values()))
    target = None
    for value, env in read_topic(kafka, topics.events):
        position = env["position"]
        if not isinstance(position, int):
            continue
        leaves.add(position, value, env["event_id"])
        if env["event_id"] == event_id and target is None:
            target = (position, value, env)
    return _Read(leaves, _candidates(kafka, topics, logs, witnesses), target)


def _matching(read: _Read, size_min: int) -> tuple[list[_Candidate], dict[int, bytes]]:
    """The candidates of size at least `size_min` within the events read whose root is the events' tree's."""
    roots = roots_at(read.leaves, (one.checkpoint.size for one in read.candidates), read.leaves.size)
    return [one for one in read.candidates if size_min <= one.checkpoint.size <= read.leaves.size
            and roots.get(one.checkpoint.size) == one.checkpoint.root_hash], roots


@dataclass(frozen=True)
class Receipt:
    data: bytes
    summary: dict[str, Any]


def prove_event(kafka: KafkaConnection, topics: Topics, event_id: str, logs: Sequence[Ed25519Verifier],
                witnesses: Sequence[CosignatureVerifier] = ()) -> Receipt:
    """A receipt for the event, against a checkpoint one of `logs` (the log's keys) signed, carrying the cosignatures
    of `witnesses` that verify."""
    read = _read(kafka, topics, event_id, logs, witnesses)
    if read.target is None:
        raise NotFound(f"event {event_id} is not on {topics.events}")
    position, value, env = read.target
    matching, _ = _matching(read, position)
    if not matching:
        signed = max((one.checkpoint.size for one in read.candidates), default=0)
        if signed < position:
            raise Unprovable(f"event {event_id} at position {position} is in no checkpoint signed by the log's key "
                             f"{_keys_text(logs)} (it signed up to {signed}): an unsigned tail, which the relay never "
                             f"writes; `ledger audit verify --key` names it")
        raise Unprovable(f"no checkpoint covering position {position} has the root of the events on {topics.events}: "
                         f"`ledger audit verify --key` names the breach")
    # The latest of those most of the given witnesses cosigned: a receipt with cosignatures stands on its own.
    chosen = max(matching, key=lambda one: (len(one.cosignatures), one.checkpoint.size))
    size = chosen.checkpoint.size
    tree = merkle.Tree(bytes(read.leaves.hashes[:size * merkle.HASH_SIZE]))
    bundle = ProofBundle(position - 1, tuple(tree.inclusion_proof(position - 1, size)), chosen.note(), value)
    return Receipt(bundle.format(), {
        "event_id": event_id, "type": env["type"], "position": position, "index": position - 1,
        "checkpoint_size": size, "root": b64encode(chosen.checkpoint.root_hash),
        "signatures": [chosen.log_signature.name, *(one.name for one in chosen.cosignatures.values())],
        "cosigned_by": [one.name for one in chosen.cosignatures.values()]})


def prove_sizes(kafka: KafkaConnection, topics: Topics, old_size: int, new_size: int,
                logs: Sequence[Ed25519Verifier], witnesses: Sequence[CosignatureVerifier] = ()) -> Receipt:
    """A consistency proof between the checkpoints of the two sizes that one of `logs` signed, each carrying the
    cosignatures of `witnesses` that verify."""
    if not 0 < old_size < new_size:
        raise InvalidInput(f"--from-size {old_size} must be above 0 and below --to-size {new_size}")
    read = _read(kafka, topics, None, logs, witnesses)
    matching, _ = _matching(read, 1)
    sizes = sorted({one.checkpoint.size for one in matching})
    for size, option in ((old_size, "--from-size"), (new_size, "--to-size")):
        if size not in sizes:
            nearest = sorted(sizes, key=lambda one: abs(one - size))[:2]
            raise InvalidInput(f"{option} {size} is not the size of a checkpoint of the events on {topics.events} "
                               f"signed by the log's key {_keys_text(logs)}; "
                               f"the nearest: {', '.join(map(str, sorted(nearest))) or 'none'}")

    def best(size: int) -> _Candidate:
        return max((one for one in matching if one.checkpoint.size == size), key=lambda one: len(one.cosignatures))

    tree = merkle.Tree(bytes(read.leaves.hashes[:new_size * merkle.HASH_SIZE]))
    old, new = best(old_size), best(new_size)
    proof = ConsistencyProof(old.note(), new.note(), tuple(tree.consistency_proof(old_size, new_size)))
    return Receipt(proof.format(), {"from_size": old_size, "to_size": new_size,
                                    "from_root": b64encode(old.checkpoint.root_hash),
                                    "to_root": b64encode(new.checkpoint.root_hash), "hashes": len(proof.proof)})


# --- Offline. --------------------------------------------------------------------------------------------------------

def _key_text(key: Verifier) -> str:
    return f"{key.name}+{key.key_id:08x}"


def _keys_text(keys: Sequence[Verifier]) -> str:
    return " or ".join(_key_text(one) for one in keys)


def _cosigners(opened: OpenedCheckpoint) -> list[dict[str, Any]]:
    return [{"name": one.name, "key_id": f"{one.key_id:08x}", "timestamp": one.timestamp}
            for one in opened.cosignatures]


def check_proof(data: bytes, log: Ed25519Verifier | Sequence[Ed25519Verifier],
                witnesses: Sequence[CosignatureVerifier] = (), witnesses_required: int = 0) -> dict[str, Any]:
    """What a receipt or a consistency proof proves, once checked; `TlogInvalid` with the reason otherwise. `log` may
    be the log's keys over time (a rotation): each checkpoint must be signed by one of them."""
    logs = [log] if isinstance(log, Ed25519Verifier) else list(log)
    if data.startswith(PROOF_HEADER.encode() + b"\n"):
        return _check_receipt(data, logs, witnesses, witnesses_required)
    if data.startswith(CONSISTENCY_HEADER.encode() + b"\n"):
        proof = ConsistencyProof.parse(data)
        old, new = verify_consistency_file(proof, logs[0].name, logs, witnesses, witnesses_required)
        return {"kind": "consistency", "from_size": old.checkpoint.size, "to_size": new.checkpoint.size,
                "from_signed_by": _key_text(log_key_of(proof.old, logs)),
                "to_signed_by": _key_text(log_key_of(proof.new, logs)),
                "from_root": b64encode(old.checkpoint.root_hash), "to_root": b64encode(new.checkpoint.root_hash),
                "from_cosigned_by": _cosigners(old), "to_cosigned_by": _cosigners(new)}
    raise TlogInvalid(f"neither a receipt ({PROOF_HEADER}) nor a consistency proof ({CONSISTENCY_HEADER})")


def _check_receipt(data: bytes, logs: Sequence[Ed25519Verifier], witnesses: Sequence[CosignatureVerifier],
                   witnesses_required: int) -> dict[str, Any]:
    bundle = ProofBundle.parse(data)
    log = log_key_of(bundle.checkpoint, logs)
    if bundle.extra is None:
        raise TlogInvalid("the bundle holds no entry (no extra line): a receipt proves the event it carries")
    # 1. The leaf hash, from the entry itself; 2-4. the log's signature, the cosignatures, the inclusion proof.
    opened = verify_bundle(bundle, merkle.leaf_hash(bundle.extra), log.name, log, witnesses, witnesses_required)
    env = envelope_of(bundle.extra)
    if env is None:
        raise TlogInvalid("the entry is not a ledger event's envelope")
    # An int, not a bool nor a float: True and 1.0 equal 1 in Python, but are not the position the relay writes.
    position = env["position"]
    if not isinstance(position, int) or isinstance(position, bool) or position != bundle.index + 1:
        raise TlogInvalid(f"the entry says position {env['position']!r}, but the proof is of index {bundle.index} "
                          f"(position {bundle.index + 1})")
    return {"kind": "inclusion", "event_id": env["event_id"], "type": env["type"], "position": env["position"],
            "effective_date": env["effective_date"], "branch": env["branch"], "aggregate_id": env["aggregate_id"],
            "data": env["data"], "checkpoint_size": opened.checkpoint.size, "signed_by": _key_text(log),
            "root": b64encode(opened.checkpoint.root_hash), "cosigned_by": _cosigners(opened)}
