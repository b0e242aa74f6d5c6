"""The auditor's programs of the docs, run as an outsider runs them: `check_chain.py` (docs/kafka.md) fed by the
documented kcat command from the real topic, and `check_bundle.py` (docs/audit.md) on a bundle written by
`ledger audit export`. Each is saved to a file exactly as the docs print it; nothing of the ledger's code is used to
check, so a formula in the docs that is off by one byte fails here. Both read as the auditor's principal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.publishing.envelope import record_headers
from tests.support.cli_runner import Cli
from tests.support.history import copy_topic
from tests.support.kafka_roles import AUDITOR, KafkaRoles

pytestmark = pytest.mark.integration

DOCS = Path(__file__).resolve().parents[2] / "docs"
RUN_S_MAX = 120


def documented_program(document: str, name: str, folder: Path) -> Path:
    """The Python block after the marker `<!-- NAME: ...-->` in docs/DOCUMENT, saved as folder/NAME."""
    text = (DOCS / document).read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(name)}:.*?-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, f"docs/{document} has no ```python block after a <!-- {name}: ... --> marker"
    path = folder / name
    path.write_text(found.group(1), encoding="utf-8")
    return path


def kcat_into(program: Path, kafka_roles: KafkaRoles, topic: str) -> subprocess.CompletedProcess[str]:
    """`kcat ... -f '%s\\n' | python3 PROGRAM`, as docs/kafka.md shows it, kcat connecting as the auditor."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: scripts/test installs it from Debian's packages"
    with subprocess.Popen([kcat, "-C", *kafka_roles.kcat(AUDITOR), "-t", topic, "-o", "beginning", "-e", "-q",
                           "-X", "isolation.level=read_committed", "-f", "%s\n"], stdout=subprocess.PIPE) as reader:
        done = subprocess.run([sys.executable, str(program)], stdin=reader.stdout, capture_output=True, text=True,
                              check=False, timeout=RUN_S_MAX)
        assert reader.wait(timeout=RUN_S_MAX) == 0
    return done


def test_check_chain_recomputes_every_hash_of_the_real_topic(branch_history: dict[str, Any], kafka_roles: KafkaRoles,
                                                             tmp_path: Path) -> None:
    program = documented_program("kafka.md", "check_chain.py", tmp_path)
    done = kcat_into(program, kafka_roles, branch_history["topics"].events)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{len(branch_history['envelopes'])} events, 0 broken\n",
                                                           "")


def test_check_chain_names_an_altered_event_on_the_topic(branch_history: dict[str, Any], kafka_roles: KafkaRoles,
                                                        tmp_path: Path) -> None:
    program = documented_program("kafka.md", "check_chain.py", tmp_path)
    original = next(env for env in branch_history["envelopes"] if env["type"] == "ContributionPaid")
    altered = {**original, "data": {**original["data"], "total": original["data"]["total"] + 1}}
    copy = copy_topic(branch_history, kafka_roles, extra=[(orjson.dumps(altered),
                                                         record_headers(altered["type"], altered["version"]))])

    done = kcat_into(program, kafka_roles, f"{copy.kafka_topic_prefix}.events")
    assert done.returncode == 1
    assert done.stdout == f"{len(branch_history['envelopes']) + 1} events, 1 broken\n  {original['event_id']}\n"


def test_check_bundle_and_check_chain_verify_an_export_and_name_an_altered_file(
        branch_history: dict[str, Any], kafka_roles: KafkaRoles, tmp_path: Path) -> None:
    cli = Cli(env={**os.environ, **kafka_roles.env(AUDITOR),
                   "LEDGER_KAFKA_TOPIC_PREFIX": branch_history["topics"].prefix}, folder=tmp_path)
    bundle = tmp_path / "bundle"
    exported = cli.json("audit", "export", "--from", "2000-01-01", "--to", "2026-11-23", "--out", str(bundle))
    assert exported["events"] == len(branch_history["envelopes"])  # from position 1: every link is in the bundle
    check_bundle = documented_program("audit.md", "check_bundle.py", tmp_path)
    check_chain = documented_program("kafka.md", "check_chain.py", tmp_path)

    def run(program: Path, *args: str, stdin: Path | None = None) -> tuple[int, str]:
        with (stdin or Path(os.devnull)).open("rb") as source:
            done = subprocess.run([sys.executable, str(program), *args], stdin=source, capture_output=True,
                                  text=True, check=False, timeout=RUN_S_MAX)
        assert done.stderr == ""
        return done.returncode, done.stdout

    assert run(check_bundle, str(bundle), exported["manifest_sha256"]) == (0, "ok\n")
    assert run(check_chain, stdin=bundle / "events.jsonl") == (0, f"{exported['events']} events, 0 broken\n")

    assert run(check_bundle, str(bundle), "0" * 64) == (1, "manifest.json: its SHA-256 is not the one recorded\n")
    totals = bundle / "totals.csv"
    totals.write_bytes(totals.read_bytes().replace(b",", b";", 1))
    assert run(check_bundle, str(bundle), exported["manifest_sha256"]) == \
        (1, "totals.csv: missing, or not the bytes the manifest lists\n")
    events = bundle / "events.jsonl"
    first, second, *rest = events.read_bytes().splitlines(keepends=True)
    events.write_bytes(b"".join([second, first, *rest]))
    code, found = run(check_bundle, str(bundle), exported["manifest_sha256"])
    assert (code, set(found.splitlines())) == (1, {"events.jsonl: missing, or not the bytes the manifest lists",
                                                   "totals.csv: missing, or not the bytes the manifest lists",
                                                   "events.jsonl: its chain head is not the manifest's"})
