"""The records of the checkpoints topic: the log's signed checkpoints of the Merkle tree over the events.

The tree (ledger.tlog.merkle, RFC 9162) has one leaf per published event, in position order: leaf i (from 0) is the
value of the event record at position i + 1, the envelope's bytes exactly as the relay wrote them to the events topic
(and as any Kafka client reads them back). With every transaction that publishes events, the relay appends one record
here, in the same transaction:

- key `checkpoint`;
- value: the signed checkpoint, a C2SP signed note whose text is the tlog-checkpoint body (the origin, which is the
  log key's name; the tree size, i.e. the last position published; the base64 root hash), signed by the log's key;
- headers `consistency-from` (the previous checkpoint's tree size, decimal) and `consistency-proof` (the RFC 9162
  consistency proof from that tree to this one, one base64 hash a line), so that a witness, which never reads the
  events, can check that the new tree extends the old one. Both are absent on the log's first checkpoint.

The value alone is the published format: a reader with the log's verifier key needs nothing else to trust it. The
headers are untrusted input, checked by whoever uses them (`ledger.tlog.merkle.verify_consistency`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.errors import TlogInvalid
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, sign_checkpoint
from ledger.tlog.note import Ed25519Signer, b64decode, b64encode

CHECKPOINT_KEY = b"checkpoint"
FROM_HEADER = "consistency-from"
PROOF_HEADER = "consistency-proof"
PROOF_HASHES_MAX = 2 * 64  # a consistency proof in a tree of at most 2^64 - 1 leaves has at most 2 x 64 hashes
HEADER_BYTES_MAX = PROOF_HASHES_MAX * 45  # base64 of 32 bytes is 44 characters, and a newline
SIZE_DIGITS_MAX = 20  # 2^64 - 1 in decimal


def checkpoint_record(signer: Ed25519Signer, before: merkle.Frontier, after: merkle.Frontier,
                      proof: Sequence[bytes]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Key, value and headers of the checkpoint of the tree `after`, which extends `before` by the proof given."""
    note = sign_checkpoint(Checkpoint(signer.name, after.size, after.root()), signer)
    headers: list[tuple[str, bytes]] = []
    if before.size:
        headers = [(FROM_HEADER, str(before.size).encode("ascii")),
                   (PROOF_HEADER, "\n".join(b64encode(one) for one in proof).encode("ascii"))]
    return CHECKPOINT_KEY, note, headers


@dataclass(frozen=True)
class CheckpointRecord:
    """A checkpoints-topic record as read: the signed note (not yet checked) and the consistency proof it carries."""

    note: bytes
    from_size: int | None
    proof: tuple[bytes, ...]


def read_checkpoint_record(value: bytes | None, headers: Sequence[tuple[str, bytes]] | None) -> CheckpointRecord:
    """The record's parts, or `TlogInvalid` when its headers are not a consistency proof's (the note is checked by
    whoever opens it, with the keys they trust)."""
    named = dict(headers or [])
    if value is None:
        raise TlogInvalid("a checkpoint record without a value")
    if FROM_HEADER not in named and PROOF_HEADER not in named:
        return CheckpointRecord(value, None, ())
    raw_from, raw_proof = named.get(FROM_HEADER), named.get(PROOF_HEADER)
    if raw_from is None or raw_proof is None or len(raw_from) > SIZE_DIGITS_MAX or len(raw_proof) > HEADER_BYTES_MAX:
        raise TlogInvalid(f"a checkpoint record has both headers {FROM_HEADER} and {PROOF_HEADER}, or neither")
    text = raw_from.decode("ascii", "replace")
    if not (text.isascii() and text.isdigit()) or (len(text) > 1 and text[0] == "0") or int(text) == 0:
        raise TlogInvalid(f"the header {FROM_HEADER} is a tree size in decimal, not {text[:30]!r}")
    proof = []
    for line in raw_proof.decode("ascii", "replace").split("\n") if raw_proof else []:
        one = b64decode(line)
        if one is None or len(one) != merkle.HASH_SIZE:
            raise TlogInvalid(f"each line of the header {PROOF_HEADER} is the base64 of 32 bytes, not {line[:60]!r}")
        proof.append(one)
    return CheckpointRecord(value, int(text), tuple(proof))
