"""Prints notes and proof bundles that ledger/tlog makes, for Go's reference packages to check (`go run . check`,
see main.go). Run by hand from the repository root: python -m tests.unit.tlog_vectors.go_crosscheck.python_made"""

from __future__ import annotations

import hashlib
import json

from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, Cosigner, ProofBundle, cosign, sign_checkpoint
from ledger.tlog.note import (
    SIGNATURE_TYPE_COSIGNATURE_V1,
    SIGNATURE_TYPE_ED25519,
    Ed25519Signer,
    SignerKey,
    sign_note,
)

LOG_NAME = "bpjs.example/ledger"
WITNESS_NAME = "witness.example/audit-board"
LEAF_INPUTS = [bytes.fromhex(h) for h in
               ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]]


def fixed_key(name: str, signature_type: int, phrase: str) -> SignerKey:
    """The key main.go derives from the same phrase (its seed is the phrase's SHA-256)."""
    return SignerKey.of(name, signature_type, hashlib.sha256(phrase.encode()).digest())


LOG_KEY = fixed_key(LOG_NAME, SIGNATURE_TYPE_ED25519, "bpjs-ledger test log key")
WITNESS_KEY = fixed_key(WITNESS_NAME, SIGNATURE_TYPE_COSIGNATURE_V1, "bpjs-ledger test witness key")


def artifacts() -> dict[str, object]:
    log, witness = Ed25519Signer.of(LOG_KEY), Cosigner.of(WITNESS_KEY)
    hashes = [merkle.leaf_hash(leaf) for leaf in LEAF_INPUTS]
    tree = merkle.Tree.of(hashes)
    notes, bundles = [], []
    for size in (0, 1, 5, 8):
        signed = sign_checkpoint(Checkpoint(LOG_NAME, size, tree.root(size)), log)
        notes += [signed, cosign(signed, witness, 1_700_000_000 + size)]
    notes.append(sign_checkpoint(Checkpoint(LOG_NAME, 8, tree.root(), ("extension line", "another one")), log))
    notes.append(sign_note("Jaminan Hari Tua \u2014 Bekasi\n\nwith an empty line\n", [log]))
    cosigned = cosign(sign_checkpoint(Checkpoint(LOG_NAME, 8, tree.root()), log), witness, 1_700_000_008)
    for index in range(8):
        proof = tuple(tree.inclusion_proof(index, 8))
        bundles.append(ProofBundle(index, proof, cosigned, LEAF_INPUTS[index] if index % 2 else None).format())
    return {"log_verifier": LOG_KEY.verifier_key().format(), "witness_verifier": WITNESS_KEY.verifier_key().format(),
            "notes": [one.decode() for one in notes], "bundles": [one.decode() for one in bundles]}


if __name__ == "__main__":
    print(json.dumps(artifacts(), indent=2, ensure_ascii=False))
