"""ledger/tlog against what Go's reference packages made: golang.org/x/mod's sumdb/note (signed notes, key texts)
and github.com/transparency-dev/formats (Ed25519 cosignatures, tlog-proof bundles), at the versions in
tests/unit/tlog_vectors/go_crosscheck/go.mod.

tlog_vectors/go_vectors.json was written once by `go run . vectors` in that folder (building it downloads the Go
modules, so the suite does not run it; the opposite check, Go reading what our code makes, is `go run . check`, see
its main.go). From the same keys, our code must read each artifact and make the same bytes: Ed25519 signatures are
deterministic, and the cosignature's timestamp is read from Go's.
"""

from __future__ import annotations

import json
from pathlib import Path

from ledger.tlog import merkle
from ledger.tlog.checkpoint import (
    Checkpoint,
    Cosigner,
    ProofBundle,
    cosign,
    open_checkpoint,
    sign_checkpoint,
    verify_bundle,
)
from ledger.tlog.note import Ed25519Signer, Ed25519Verifier, SignerKey, VerifierKey, parse_note
from tests.unit.tlog_vectors.go_crosscheck.python_made import LEAF_INPUTS, LOG_KEY, LOG_NAME, WITNESS_KEY, artifacts

GO = json.loads((Path(__file__).parent / "tlog_vectors" / "go_vectors.json").read_text())


def test_our_keys_from_the_same_seeds_are_go_s_key_texts():
    assert LOG_KEY.format() == GO["log_signer"]
    assert LOG_KEY.verifier_key().format() == GO["log_verifier"]
    assert SignerKey.parse(GO["log_signer"]) == LOG_KEY
    assert VerifierKey.parse(GO["log_verifier"]) == LOG_KEY.verifier_key()
    # transparency-dev/formats made the witness's type-0x04 verifier key from its type-0x01 one (VKeyToCosignatureV1).
    assert WITNESS_KEY.verifier_key().format() == GO["witness_verifier"]
    assert SignerKey.parse(GO["witness_signer_01"]).seed == WITNESS_KEY.seed


def test_we_sign_the_checkpoint_exactly_as_go_does():
    checkpoint = Checkpoint.parse(GO["checkpoint_text"])
    assert checkpoint == Checkpoint(LOG_NAME, 8, merkle.root_hash(merkle.leaf_hash(leaf) for leaf in LEAF_INPUTS))
    assert sign_checkpoint(checkpoint, Ed25519Signer.of(LOG_KEY)).decode() == GO["signed_checkpoint"]


def test_we_open_go_s_cosigned_checkpoint_and_cosign_it_exactly_as_go_does():
    cosigned = GO["cosigned"].encode()
    log, witness = Ed25519Verifier.of(GO["log_verifier"]), Cosigner.of(WITNESS_KEY).verifier()
    opened = open_checkpoint(cosigned, LOG_NAME, log, [witness], 1)
    timestamp = opened.cosignatures[0].timestamp
    assert parse_note(cosigned).signatures[1].signature[:8] == timestamp.to_bytes(8, "big")
    assert cosign(GO["signed_checkpoint"].encode(), Cosigner.of(WITNESS_KEY), timestamp) == cosigned


def test_we_read_go_s_proof_bundle_verify_it_and_write_it_back_byte_for_byte():
    data = GO["proof_bundle"].encode()
    bundle = ProofBundle.parse(data)
    assert (bundle.index, bundle.extra, bundle.checkpoint) == (5, LEAF_INPUTS[5], GO["cosigned"].encode())
    assert bundle.format() == data
    witness = Cosigner.of(WITNESS_KEY).verifier()
    assert bundle.extra is not None
    log = Ed25519Verifier.of(GO["log_verifier"])
    verify_bundle(bundle, merkle.leaf_hash(bundle.extra), LOG_NAME, log, [witness], 1)


def test_what_we_give_go_to_check_is_well_formed():
    made = artifacts()
    assert made["log_verifier"] == GO["log_verifier"]
    assert made["witness_verifier"] == GO["witness_verifier"]
    notes, bundles = made["notes"], made["bundles"]
    assert isinstance(notes, list) and isinstance(bundles, list)
    assert len(notes) == 10 and len(bundles) == 8
    for one in bundles:
        ProofBundle.parse(one.encode())
