"""What a witness decides about each checkpoints-topic record (ledger/audit/witness.py, `decide`): cosign one that
extends the history it cosigned, leave alone one it cosigned, refuse a forgery (and go on), and refuse as a breach a
checkpoint the log signed that is not one history with what it cosigned. Checkpoint records are made here exactly as
the relay makes them (`ledger.publishing.checkpoints.checkpoint_record`)."""

from __future__ import annotations

from ledger.audit.witness import (
    OFFSET_HEADER,
    ROOTS_REMEMBERED_MAX,
    Cosign,
    Cosigned,
    Held,
    Refused,
    Unchanged,
    checkpoint_offset,
    decide,
    own_record,
)
from ledger.publishing.checkpoints import FROM_HEADER, PROOF_HEADER, checkpoint_record
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, Cosigner, cosign, sign_checkpoint
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Signer, SignerKey, b64encode

ORIGIN = "witness-test.bpjs.example/ledger"
LOG = Ed25519Signer.of(SignerKey.generate(ORIGIN))
OTHER = Ed25519Signer.of(SignerKey.generate(ORIGIN))  # the same name, another key: a forger's
WITNESS = Cosigner.of(SignerKey.generate("audit-board.example", SIGNATURE_TYPE_COSIGNATURE_V1))
LEAVES = [merkle.leaf_hash(f"event {i}".encode()) for i in range(40)]


def frontier(size: int, leaves: list[bytes] = LEAVES) -> merkle.Frontier:
    tree = merkle.Frontier()
    tree.extend(leaves[:size])
    return tree


def record(old: int, new: int, signer: Ed25519Signer = LOG) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The relay's checkpoint record for the tree of `new` leaves, after the one of `old`."""
    proof = merkle.consistency_proof(LEAVES, old, new) if old else []
    _, value, headers = checkpoint_record(signer, frontier(old), frontier(new), proof)
    return value, headers


def held_at(*sizes: int) -> Held:
    held = Held()
    for offset, size in enumerate(sizes):
        held.cosigned(Cosigned(size, frontier(size).root(), offset))
    return held


def judge(held: Held, value: bytes | None, headers: list[tuple[str, bytes]] | None, offset: int = 7):
    return decide(held, offset, value, headers, LOG.verifier(), ORIGIN)


def test_the_first_checkpoint_ever_seen_is_trusted_on_first_use():
    decision = judge(Held(), *record(10, 20))  # even one whose proof it has nothing to check against
    assert decision == Cosign(Checkpoint(ORIGIN, 20, frontier(20).root()))


def test_a_checkpoint_that_extends_the_last_cosigned_is_cosigned():
    assert judge(held_at(5), *record(5, 12)) == Cosign(Checkpoint(ORIGIN, 12, frontier(12).root()))


def test_the_checkpoint_cosigned_last_or_an_earlier_one_cosigned_needs_nothing():
    held = held_at(5, 12)
    assert judge(held, *record(5, 12)) == Unchanged()
    assert judge(held, *record(0, 5)) == Unchanged()


def test_a_record_not_signed_by_the_logs_key_is_refused_without_a_breach_naming_its_offset():
    for value, headers in (record(5, 12, signer=OTHER), (b"not a note", []), (None, []),
                           (record(5, 12)[0], [(FROM_HEADER, b"05"), (PROOF_HEADER, b"")])):
        decision = judge(held_at(5), value, headers, offset=31)
        assert isinstance(decision, Refused) and not decision.breach
        assert "checkpoints offset 31" in decision.reason and "not signed by the log's key" in decision.reason


def test_a_checkpoint_of_another_log_is_refused():
    other_log = Ed25519Signer.of(SignerKey.generate("other.example/log"))
    value = sign_checkpoint(Checkpoint("other.example/log", 3, frontier(3).root()), other_log)
    decision = decide(held_at(2), 4, value, [], other_log.verifier(), ORIGIN)
    assert isinstance(decision, Refused) and not decision.breach


def test_the_same_size_with_another_root_is_a_breach():
    value = sign_checkpoint(Checkpoint(ORIGIN, 12, merkle.leaf_hash(b"another history")), LOG)
    decision = judge(held_at(5, 12), value, [])
    assert isinstance(decision, Refused) and decision.breach and "two histories" in decision.reason


def test_an_older_size_with_another_root_than_the_one_cosigned_is_a_breach():
    value = sign_checkpoint(Checkpoint(ORIGIN, 5, merkle.leaf_hash(b"another history")), LOG)
    decision = judge(held_at(5, 12), value, [])
    assert isinstance(decision, Refused) and decision.breach


def test_an_older_size_it_does_not_remember_is_refused_without_a_breach():
    decision = judge(held_at(12), *record(0, 5))
    assert isinstance(decision, Refused) and not decision.breach and "older" in decision.reason


def test_a_larger_checkpoint_with_another_history_is_a_breach_with_a_forged_proof_or_none():
    other = [merkle.leaf_hash(f"other {i}".encode()) for i in range(40)]
    value = sign_checkpoint(Checkpoint(ORIGIN, 20, frontier(20, other).root()), LOG)
    forged = "\n".join(b64encode(one) for one in merkle.consistency_proof(LEAVES, 12, 20)).encode()
    for headers in ([(FROM_HEADER, b"12"), (PROOF_HEADER, forged)], []):
        decision = judge(held_at(5, 12), value, headers)
        assert isinstance(decision, Refused) and decision.breach
        assert "the one it cosigned at size 12" in decision.reason


def test_a_true_extension_whose_proof_starts_elsewhere_is_not_shown_consistent():
    # The log's own checkpoint of 20, but its proof is from 5: the witness cosigned 12 since, so it is refused.
    decision = judge(held_at(5, 12), *record(5, 20))
    assert isinstance(decision, Refused) and decision.breach and "from size 5" in decision.reason


def test_a_larger_checkpoint_whose_proof_starts_above_the_last_cosigned_cannot_be_checked_and_is_no_breach():
    # The log's own checkpoint of 20, proved from 15: the witness cosigned 12 last and missed 15, so it cannot check.
    decision = judge(held_at(5, 12), *record(15, 20))
    assert isinstance(decision, Refused) and not decision.breach
    assert "from size 15" in decision.reason and "cannot be checked" in decision.reason


def test_of_its_records_of_the_largest_tree_it_resumes_after_the_smallest_offset():
    # The checkpoint-offset header is not cosigned: a copy of its last record with a later offset (written by anyone
    # who may write the witness topic) must not make it skip checkpoints; an earlier one only makes it read again.
    root = frontier(12).root()
    for offsets in ((9, 30), (30, 9), (9, 9)):
        held = held_at(5)
        for offset in offsets:
            held.cosigned(Cosigned(12, root, offset))
        assert held.last == Cosigned(12, root, 9)
    held.cosigned(Cosigned(20, frontier(20).root(), 31))  # a larger tree is held, whatever its offset
    assert held.last == Cosigned(20, frontier(20).root(), 31)


def test_held_remembers_a_bounded_number_of_roots_and_the_last():
    held = Held()
    for size in range(1, ROOTS_REMEMBERED_MAX + 3):
        held.cosigned(Cosigned(size, bytes(32), size))
    assert len(held.roots) == ROOTS_REMEMBERED_MAX and 1 not in held.roots
    assert held.last == Cosigned(ROOTS_REMEMBERED_MAX + 2, bytes(32), ROOTS_REMEMBERED_MAX + 2)
    held.cosigned(Cosigned(ROOTS_REMEMBERED_MAX, bytes(32), 3))  # an old record of its own, copied again
    assert held.last == Cosigned(ROOTS_REMEMBERED_MAX + 2, bytes(32), ROOTS_REMEMBERED_MAX + 2)


def test_its_own_witness_records_are_read_back_and_others_are_not_its_own():
    value, _ = record(5, 12)
    mine = cosign(value, WITNESS, timestamp=1_700_000_000)
    headers = [(OFFSET_HEADER, b"41")]
    assert own_record(mine, headers, WITNESS.verifier(), ORIGIN) == Cosigned(12, frontier(12).root(), 41)
    stranger = Cosigner.of(SignerKey.generate("audit-board.example", SIGNATURE_TYPE_COSIGNATURE_V1))
    assert own_record(cosign(value, stranger, timestamp=1), headers, WITNESS.verifier(), ORIGIN) is None
    assert own_record(value, headers, WITNESS.verifier(), ORIGIN) is None  # the log's signature alone
    assert own_record(mine, [], WITNESS.verifier(), ORIGIN) is None
    assert own_record(mine, headers, WITNESS.verifier(), "other.example/log") is None
    assert [checkpoint_offset([(OFFSET_HEADER, raw)]) for raw in (b"0", b"17", b"017", b"-1", b"x", b"9" * 21)] == \
        [0, 17, None, None, None, None]
