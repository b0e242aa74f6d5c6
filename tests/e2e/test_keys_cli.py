"""`ledger keys generate` as docs/cli.md and docs/audit.md show it: a new private file, the verifier key alone on
stdout, never an overwrite, and a name the note format can carry."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, SIGNATURE_TYPE_ED25519, SignerKey, VerifierKey
from tests.support.cli_runner import Cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(env={**os.environ}, folder=tmp_path)


@pytest.mark.parametrize(("options", "kind"), [((), SIGNATURE_TYPE_ED25519),
                                               (("--witness",), SIGNATURE_TYPE_COSIGNATURE_V1)])
def test_generate_writes_a_private_key_and_prints_its_verifier_key(cli: Cli, tmp_path: Path, options, kind) -> None:
    out = tmp_path / "keys" / "log.key"
    done = cli("keys", "generate", "--name", "bpjs.example/ledger", "--out", str(out), *options)
    verifier = VerifierKey.parse(done.stdout.strip())
    assert done.stdout == verifier.format() + "\n"  # stdout is the verifier key alone: `$(ledger keys generate ...)`
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and stat.S_IMODE(out.parent.stat().st_mode) == 0o700
    signer = SignerKey.parse(out.read_text().strip())
    assert signer.verifier_key() == verifier and (signer.signature_type, signer.name) == (kind, "bpjs.example/ledger")
    # The secret is never printed: the base64 after PRIVATE+KEY+name+key id (it may hold a "+" itself).
    secret = signer.format().split("+", 4)[4]
    assert len(secret) > 40 and secret not in done.stdout + done.stderr


def test_an_existing_key_is_never_overwritten(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "log.key"
    cli("keys", "generate", "--name", "bpjs.example/ledger", "--out", str(out))
    before = out.read_bytes()
    refused = cli("keys", "generate", "--name", "bpjs.example/ledger", "--out", str(out), expect=4)
    assert f"error: {out} exists: a signing key is never overwritten" in refused.stderr
    assert out.read_bytes() == before


@pytest.mark.parametrize("name", ["", "a b", "a+b", "x" * 201, "tab\there"])
def test_a_name_the_note_format_cannot_carry_is_refused_and_nothing_is_written(cli: Cli, tmp_path: Path,
                                                                                name: str) -> None:
    out = tmp_path / "log.key"
    refused = cli("keys", "generate", "--name", name, "--out", str(out), expect=2)
    assert "--name" in refused.stderr and not out.exists()


def test_json_names_the_file_the_kind_and_the_verifier_key(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "w.key"
    result = cli.json("keys", "generate", "--name", "witness.example/audit-board", "--out", str(out), "--witness",
                      "--json")
    assert result == {"verifier_key": SignerKey.parse(out.read_text().strip()).verifier_key().format(),
                      "signing_key_file": str(out), "name": "witness.example/audit-board", "kind": "witness"}
