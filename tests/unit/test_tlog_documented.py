"""The signed log's formats as docs/audit.md documents them ("The signed log's formats"): its examples are the ones
Go's reference packages made (tlog_vectors/go_vectors.json), and its check_proof.py, run as written there, accepts
the receipts our code makes and refuses each one with a changed byte. An outside party has only that text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.tlog import merkle
from ledger.tlog.checkpoint import (
    Checkpoint,
    ConsistencyProof,
    ProofBundle,
    sign_checkpoint,
    verify_consistency_file,
)
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Signer, Ed25519Verifier, SignerKey
from tests.unit.test_documented_hashes import DOCS, docs_snippet
from tests.unit.tlog_vectors.go_crosscheck.python_made import LEAF_INPUTS, LOG_KEY, LOG_NAME, artifacts

OTHER_WITNESS = SignerKey.generate("witness.example/regulator", SIGNATURE_TYPE_COSIGNATURE_V1)
GO = json.loads((Path(__file__).parent / "tlog_vectors" / "go_vectors.json").read_text())


def test_the_documented_examples_are_go_s_vectors():
    section = (DOCS / "audit.md").read_text(encoding="utf-8").split("## The signed log's formats", 1)[1]
    for example in ("log_verifier", "witness_verifier", "signed_checkpoint", "cosigned", "proof_bundle"):
        assert GO[example].rstrip("\n") in section, example


def test_the_documented_program_accepts_go_s_receipt_and_ours():
    check = docs_snippet("audit.md", "check_proof.py")["check"]
    assert check(GO["proof_bundle"].encode(), LOG_NAME, GO["log_verifier"], [GO["witness_verifier"]]).startswith(
        "ok: entry 5 is in bpjs.example/ledger's log of 8 entries")
    made = artifacts()
    bundles = made["bundles"]
    assert isinstance(bundles, list)
    with_extra = [one for one in bundles if ProofBundle.parse(one.encode()).extra is not None]
    assert with_extra
    for one in with_extra:
        assert check(one.encode(), LOG_NAME, made["log_verifier"], [made["witness_verifier"]]).startswith("ok")


def test_the_documented_program_refuses_a_receipt_with_any_byte_changed():
    check = docs_snippet("audit.md", "check_proof.py")["check"]
    data = GO["proof_bundle"].encode()
    for position in range(len(data)):
        changed = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]
        with pytest.raises(Exception):  # noqa: B017, PT011 - the program raises whatever it meets first
            check(changed, LOG_NAME, GO["log_verifier"], [GO["witness_verifier"]])
    with pytest.raises(ValueError, match=r"a checkpoint of bpjs\.example/ledger, not bpjs\.example/other"):
        check(data, "bpjs.example/other", GO["log_verifier"], [GO["witness_verifier"]])
    with pytest.raises(ValueError, match="not signed by"):
        check(data, LOG_NAME, GO["log_verifier"], [GO["witness_verifier"], OTHER_WITNESS.verifier_key().format()])


def test_the_documented_consistency_proof_is_what_ledger_tlog_makes_and_it_verifies():
    section = (DOCS / "audit.md").read_text(encoding="utf-8").split("<!-- consistency example:", 1)[1]
    documented = section.split("```\n", 2)[1].encode()
    log = Ed25519Signer.of(LOG_KEY)
    tree = merkle.Tree.of(merkle.leaf_hash(leaf) for leaf in LEAF_INPUTS)
    old, new = (sign_checkpoint(Checkpoint(LOG_NAME, size, tree.root(size)), log) for size in (5, 8))
    assert documented == ConsistencyProof(old, new, tuple(tree.consistency_proof(5, 8))).format()
    assert new == GO["signed_checkpoint"].encode()  # the newer one is the example checkpoint above, as Go made it
    opened_old, opened_new = verify_consistency_file(ConsistencyProof.parse(documented), LOG_NAME,
                                                     Ed25519Verifier.of(GO["log_verifier"]))
    assert (opened_old.checkpoint.size, opened_new.checkpoint.size) == (5, 8)
