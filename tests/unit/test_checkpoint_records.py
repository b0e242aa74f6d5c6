"""The checkpoints topic's records (ledger.publishing.checkpoints): what the relay writes reads back, and a record
whose headers are not a consistency proof is refused rather than half-read."""

from __future__ import annotations

import pytest

from ledger.errors import TlogInvalid
from ledger.publishing.checkpoints import (
    CHECKPOINT_KEY,
    FROM_HEADER,
    PROOF_HEADER,
    checkpoint_record,
    read_checkpoint_record,
)
from ledger.tlog import merkle
from ledger.tlog.checkpoint import open_checkpoint
from ledger.tlog.note import Ed25519Signer, SignerKey

SIGNER = Ed25519Signer.of(SignerKey.of("bpjs.example/ledger", 1, bytes(range(32))))


def grown(before: merkle.Frontier, count: int) -> tuple[merkle.Frontier, list[bytes]]:
    leaves = [merkle.leaf_hash(b"event %d" % (before.size + i)) for i in range(count)]
    after = before.copy()
    after.extend(leaves)
    return after, leaves


def test_the_first_checkpoint_carries_no_proof_and_later_ones_prove_they_extend_the_last() -> None:
    empty = merkle.Frontier()
    first, leaves = grown(empty, 7)
    key, value, headers = checkpoint_record(SIGNER, empty, first, merkle.consistency_proof_extending(empty, leaves))
    assert (key, headers) == (CHECKPOINT_KEY, [])
    opened = open_checkpoint(value, SIGNER.name, SIGNER.verifier()).checkpoint
    assert (opened.size, opened.root_hash) == (7, first.root())
    assert read_checkpoint_record(value, headers) == read_checkpoint_record(value, None)

    second, more = grown(first, 12)
    _, value2, headers2 = checkpoint_record(SIGNER, first, second, merkle.consistency_proof_extending(first, more))
    record = read_checkpoint_record(value2, headers2)
    assert record.from_size == 7 and record.note == value2
    assert merkle.verify_consistency(7, 19, first.root(), second.root(), record.proof)


@pytest.mark.parametrize("headers", [
    [(FROM_HEADER, b"7")],
    [(PROOF_HEADER, b"")],
    [(FROM_HEADER, b"07"), (PROOF_HEADER, b"")],
    [(FROM_HEADER, b"0"), (PROOF_HEADER, b"")],
    [(FROM_HEADER, b"-7"), (PROOF_HEADER, b"")],
    [(FROM_HEADER, b"7" * 21), (PROOF_HEADER, b"")],
    [(FROM_HEADER, b"7"), (PROOF_HEADER, b"not base64")],
    [(FROM_HEADER, b"7"), (PROOF_HEADER, b"AAAA")],
    [(FROM_HEADER, b"7"), (PROOF_HEADER, b"A" * 100_000)],
], ids=["size only", "proof only", "leading zero", "zero", "negative", "too long", "not base64", "short hash",
        "huge"])
def test_headers_that_are_not_a_consistency_proof_are_refused(headers) -> None:
    with pytest.raises(TlogInvalid):
        read_checkpoint_record(b"note", headers)


def test_a_record_without_a_value_is_refused() -> None:
    with pytest.raises(TlogInvalid, match="without a value"):
        read_checkpoint_record(None, [])
