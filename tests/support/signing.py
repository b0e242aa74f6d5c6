"""The log's signing key in the tests: the one scripts/test makes for the run (LEDGER_LOG_SIGNING_KEY_FILE), which
the CLI's relay reads too, so that a test's relay, in process or not, signs with the key its verifier is given."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from ledger.tlog.note import Ed25519Signer, SignerKey

# Unit tests run without scripts/test's key as well: they get a key of their own for the process.
FALLBACK_NAME = "test.bpjs.example/ledger"


@cache
def log_key() -> SignerKey:
    path = os.environ.get("LEDGER_LOG_SIGNING_KEY_FILE")
    if path:
        return SignerKey.parse(Path(path).read_text(encoding="utf-8").strip())
    return SignerKey.generate(FALLBACK_NAME)


def log_signer() -> Ed25519Signer:
    return Ed25519Signer.of(log_key())


def log_verifier_key() -> str:
    """The log's verifier key, as an auditor gives it to `ledger audit verify --key`."""
    return log_key().verifier_key().format()
