"""Attacks on the signed log's offline parts (no broker): inputs that must be refused cleanly, never crash a command
nor hang it, and never pass. Defects found are marked `xfail(strict=True)` with the reason (see
tests/integration/test_signed_log_attacks.py for the broker-side ones)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import orjson
import pytest

from ledger.audit.proofs import check_proof
from ledger.audit.verify import verify_records
from ledger.errors import TlogInvalid
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, ConsistencyProof, Cosigner, ProofBundle, cosign, sign_checkpoint
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Signer, SignerKey

Record = namedtuple("Record", "partition offset value headers")

LOG = SignerKey.generate("attack.example/log")
WITNESS = SignerKey.generate("attack.example/witness", SIGNATURE_TYPE_COSIGNATURE_V1)


def envelope(position: int, total: int = 1000) -> bytes:
    return orjson.dumps({"event_id": f"e{position}", "type": "ContributionPaid", "version": 1,
                         "aggregate_id": f"a{position}", "aggregate_version": 1, "position": position,
                         "effective_date": "2024-01-10", "branch": "X", "prev_hash": "0", "hash": "0",
                         "data": {"kpj": "1", "month": "2024-01", "total": total}})


def tree_of(values: list[bytes]) -> merkle.Tree:
    return merkle.Tree(b"".join(merkle.leaf_hash(one) for one in values))


def signed_checkpoint(values: list[bytes], signer: SignerKey = LOG) -> bytes:
    root = merkle.root_hash(merkle.leaf_hash(one) for one in values)
    return sign_checkpoint(Checkpoint(signer.name, len(values), root), Ed25519Signer.of(signer))


VALUES = [envelope(p) for p in range(1, 9)]


def receipt(index: int, values: list[bytes] = VALUES, extra: bytes | None = None, checkpoint: bytes | None = None
            ) -> bytes:
    tree = tree_of(values)
    return ProofBundle(index, tuple(tree.inclusion_proof(index, len(values))),
                       checkpoint or signed_checkpoint(values), values[index] if extra is None else extra).format()


def ledger_cli(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=dict(os.environ), capture_output=True,
                          text=True, timeout=timeout_s, check=False)


def log_key() -> str:
    return LOG.verifier_key().format()


# --- check-proof: forged receipts --------------------------------------------------------------------------------

def test_a_receipt_whose_extra_is_another_event_than_its_index_fails() -> None:
    log = Ed25519Signer.of(LOG).verifier()
    assert check_proof(receipt(3), log)["event_id"] == "e4"
    for forged in (receipt(3, extra=VALUES[4]), receipt(3, extra=envelope(4, total=10**12))):
        with pytest.raises(TlogInvalid):
            check_proof(forged, log)


def test_bytes_after_the_checkpoint_or_a_second_checkpoint_fail() -> None:
    log = Ed25519Signer.of(LOG).verifier()
    data = receipt(2)
    for changed in (data + b"\n", data + b"x", data + signed_checkpoint(VALUES[:4])):
        with pytest.raises(TlogInvalid):
            check_proof(changed, log)


def test_a_checkpoint_with_extra_and_extension_lines_is_judged_by_the_logs_signature() -> None:
    """Signature lines of unknown keys are ignored (signed-note); an extension line the log did not sign, or a
    second line under the log's key placed first, fails."""
    log = Ed25519Signer.of(LOG).verifier()
    note = signed_checkpoint(VALUES)
    text, _, sigs = note.decode().partition("\n\n")
    extra_line = receipt(2, checkpoint=(note.decode() + "\u2014 other.example/key AAAAAAAA\n").encode())
    assert check_proof(extra_line, log)["position"] == 3
    extension = (text + "\nextension line\n\n" + sigs).encode()
    with pytest.raises(TlogInvalid):
        check_proof(receipt(2, checkpoint=extension), log)
    first = sigs.split(" ")[-1]
    junk_first = (text + "\n\n" + f"\u2014 {LOG.name} {first[:8]}AAAA{first[12:]}" + sigs).encode()
    with pytest.raises(TlogInvalid):
        check_proof(receipt(2, checkpoint=junk_first), log)


def test_a_consistency_file_with_the_notes_swapped_or_a_stale_pair_fails() -> None:
    log = Ed25519Signer.of(LOG).verifier()
    tree = tree_of(VALUES)
    old, new = signed_checkpoint(VALUES[:5]), signed_checkpoint(VALUES)
    proof = tuple(tree.consistency_proof(5, 8))
    assert check_proof(ConsistencyProof(old, new, proof).format(), log)["to_size"] == 8
    for forged in (ConsistencyProof(new, old, proof), ConsistencyProof(old, old, proof),
                   ConsistencyProof(old, signed_checkpoint([*VALUES[:7], envelope(8, total=9)]), proof)):
        with pytest.raises(TlogInvalid):
            check_proof(forged.format(), log)


def test_odd_receipts_are_refused_by_the_command_without_a_traceback(tmp_path: Path) -> None:
    index_huge = receipt(2).replace(b"index 2\n", b"index 18446744073709551615\n")
    index_over = receipt(2).replace(b"index 2\n", b"index 18446744073709551616\n")
    not_json = receipt(0, values=[b"\xff\x00", *VALUES[1:]])
    list_extra = receipt(0, values=[b"[1,2]", *VALUES[1:]])
    for name, data in {"huge": index_huge, "over": index_over, "not-json": not_json,
                       "list": list_extra, "empty": b"", "nul": b"\0" * 100}.items():
        path = tmp_path / name
        path.write_bytes(data)
        done = ledger_cli("audit", "check-proof", str(path), "--key", log_key())
        assert "Traceback" not in done.stderr, (name, done.stderr)
        assert done.returncode in (2, 8), (name, done.returncode, done.stdout)


def test_a_cosignature_dated_far_in_the_future_does_not_crash_check_proof(tmp_path: Path) -> None:
    cosigned = cosign(signed_checkpoint(VALUES), Cosigner.of(WITNESS), 2**62)
    path = tmp_path / "receipt"
    path.write_bytes(receipt(2, checkpoint=cosigned))
    done = ledger_cli("audit", "check-proof", str(path), "--key", log_key(), "--witness",
                      WITNESS.verifier_key().format(), "--witnesses-required", "1")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0 and done.stdout.startswith("VALID"), done.stdout


def test_a_receipt_whose_event_has_a_boolean_or_float_position_fails() -> None:
    log = Ed25519Signer.of(LOG).verifier()
    for odd in (b'"position":true', b'"position":1.0'):
        with pytest.raises(TlogInvalid):
            check_proof(receipt(0, values=[envelope(1).replace(b'"position":1', odd), *VALUES[1:]]), log)


# --- verify's record checks ---------------------------------------------------------------------------------------

def test_a_forged_huge_position_is_a_breach_at_once_not_a_hang() -> None:
    code = ("import orjson, collections\n"
            "from ledger.audit.verify import verify_records\n"
            "R = collections.namedtuple('R', 'partition offset value headers')\n"
            f"values = {[envelope(1), envelope(10**12)]!r}\n"
            "r = verify_records('t', [R(0, i, v, []) for i, v in enumerate(values)])\n"
            "print(r.ok, r.breaches[0])\n")
    try:
        done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                              timeout=20, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail("verify_records did not answer within 20 s for one record at position 10**12")
    assert done.stdout.startswith("False"), done.stdout + done.stderr


def test_null_non_json_boolean_and_negative_positions_are_breaches() -> None:
    records = [Record(0, 0, envelope(1), []), Record(0, 1, None, []), Record(0, 2, b"not json", []),
               Record(0, 3, envelope(1).replace(b'"position":1', b'"position":true'), []),
               Record(0, 4, envelope(1).replace(b'"position":1', b'"position":-1'), []),
               Record(1, 1, b"[]", []), Record(1, 2, b"7", [])]
    report = verify_records("t", records)
    assert not report.ok and len(report.breaches) >= 5, [str(one) for one in report.breaches]


@pytest.mark.parametrize("position", [0, -1])
def test_a_zero_or_negative_position_first_in_its_partition_is_a_breach_not_a_crash(position: int) -> None:
    records = [Record(0, 0, envelope(1), []),
               Record(1, 0, envelope(1).replace(b'"position":1', f'"position":{position}'.encode()), [])]
    report = verify_records("t", records)
    assert not report.ok
