"""A witness as docs/audit.md ("Witnesses") runs one: `ledger kafka init --witness`, `ledger keys generate --witness`,
then `ledger audit witness --key FILE --log-key VERIFIER`, once and with --follow, as the witness's own principal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from datetime import date
from pathlib import Path

import pytest

from ledger.publishing import kafka_client
from ledger.publishing.topics import Topics
from ledger.tlog.checkpoint import CosignatureVerifier, open_checkpoint
from ledger.tlog.note import Ed25519Verifier
from tests.support.cli_runner import CLI_TIMEOUT_S, Cli
from tests.support.kafka_roles import AUDITOR, KafkaRoles
from tests.support.signing import log_key, log_verifier_key

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(tmp_path: Path, kafka_roles: KafkaRoles) -> Cli:
    unique = uuid.uuid4().hex[:10]
    cli = Cli(env={**os.environ, "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
                   "LEDGER_KAFKA_TOPIC_PREFIX": f"test-witness-cli-{unique}",
                   "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}"}, folder=tmp_path, kafka=kafka_roles)
    cli("generate", "--employers", "2", "--members", "20", "--bpu", "2", "--months", "2")
    cli.kafka_init()  # with --witness User:witness on a secured broker
    return cli


def witnessed(cli: Cli, kafka_roles: KafkaRoles) -> list:
    topics = Topics.for_prefix(cli.env["LEDGER_KAFKA_TOPIC_PREFIX"])
    return list(kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.witness))


def test_a_witness_made_and_run_as_the_docs_show_cosigns_and_follows(cli: Cli, kafka_roles: KafkaRoles,
                                                                     tmp_path: Path) -> None:
    prefix = cli.env["LEDGER_KAFKA_TOPIC_PREFIX"]
    cli("relay", "--batch", "50")
    key_file = tmp_path / "witness" / "witness.key"
    made = cli("keys", "generate", "--witness", "--name", "audit-board.example/witness", "--out", str(key_file))
    verifier = made.stdout.strip()
    assert verifier.startswith("audit-board.example/witness+") and "PRIVATE" not in made.stdout

    done = cli("audit", "witness", "--key", str(key_file), "--log-key", log_verifier_key())
    found = re.fullmatch(rf"witness audit-board\.example/witness cosigned (\d+) checkpoint\(s\) of "
                         rf"{re.escape(log_key().name)} onto {prefix}\.witness; latest cosigned: size ([\d,]+) "
                         rf"\(offset \d+ of {prefix}\.checkpoints\)\n", done.stdout)
    assert found, done.stdout
    count = int(found.group(1))
    assert count > 1
    records = witnessed(cli, kafka_roles)
    assert len(records) == count
    for record in records:  # every one verifies with the log's key and the verifier key the witness published
        open_checkpoint(record.value, log_key().name, Ed25519Verifier.of(log_verifier_key()),
                        [CosignatureVerifier.of(verifier)], 1)

    again = cli.json("audit", "witness", "--key", str(key_file), "--log-key", log_verifier_key())
    assert (again["cosigned"], again["ok"], again["breach"]) == (0, True, None)

    follow = cli.start("audit", "witness", "--key", str(key_file), "--log-key", log_verifier_key(), "--follow",
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        cli("employer", "register", "--npp", "30000001", "--name", "PT Baru", "--branch", "BEKASI-KOTA", "--kind",
            "company", "--risk", "low", "--registered-on", date(2017, 1, 2).isoformat())
        cli("relay")
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while len(witnessed(cli, kafka_roles)) == count:
            assert time.monotonic() < deadline, "the following witness did not cosign the new checkpoint"
            time.sleep(0.2)
    finally:
        follow.send_signal(signal.SIGTERM)
    output, errors = follow.communicate(timeout=CLI_TIMEOUT_S)
    assert follow.returncode == 0 and "Traceback" not in errors, errors
    assert "cosigned 1 checkpoint(s)" in output


def test_a_witness_refuses_a_log_key_or_a_key_file_that_is_not_one(cli: Cli, tmp_path: Path) -> None:
    key_file = tmp_path / "witness.key"
    cli("keys", "generate", "--witness", "--name", "audit-board.example/witness", "--out", str(key_file))
    refused = cli("audit", "witness", "--key", str(key_file), "--log-key", "not a key", expect=2)
    assert "--log-key" in refused.stderr
    log_file = tmp_path / "log.key"
    cli("keys", "generate", "--name", "bpjs.example/ledger", "--out", str(log_file))
    refused = cli("audit", "witness", "--key", str(log_file), "--log-key", log_verifier_key(), expect=2)
    assert "0x01" in refused.stderr and "0x04" in refused.stderr
