"""`scripts/test` runs the unit tests alone: when every path it is given lies in tests/unit, it starts neither Kafka nor
PostgreSQL (README.md, "Tests"). Which runs those are is read from pytest's arguments by pytest itself
(tests/support/unit_only.py), so options and their values never pass for paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PROBE_S_MAX = 60
# A unit run takes seconds; the static checks scripts/test runs first take longer on a busy machine.
RUN_S_MAX = 600
NOT_STARTED = "unit tests only: Kafka and PostgreSQL are not started"

UNIT_ONLY = [
    ["tests/unit"],
    ["tests/unit/"],
    ["tests/unit/test_rules.py", "-k", "month", "-x", "-q", "--durations", "5"],
    ["-k", "tests/integration", "tests/unit/test_rules.py::test_x"],  # an option's value is not a path
    ["--timeout", "60", "-m", "integration", "tests/unit"],           # a plugin's option with its value
    ["./tests/unit/test_rules.py::test_y[1]", "tests/unit/test_chain.py"],
]
NOT_UNIT_ONLY = [
    [],                                                # testpaths: the whole suite
    ["-q", "-x"],
    ["tests"],
    ["tests/unit", "tests/integration/test_relay.py"],
    ["tests/e2e/test_cli.py", "-k", "tests/unit"],
    ["--pyargs", "tests.unit"],                        # module names, not paths: not sure
    ["--no-such-option", "tests/unit"],                # pytest refuses the arguments: not sure
]


@pytest.mark.parametrize("args", UNIT_ONLY + NOT_UNIT_ONLY, ids=lambda args: " ".join(args) or "(none)")
def test_a_run_is_unit_only_when_every_path_pytest_reads_is_in_tests_unit(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "tests.support.unit_only", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=PROBE_S_MAX, check=False)
    assert done.returncode == (0 if args in UNIT_ONLY else 1), done.stdout + done.stderr


def test_scripts_test_runs_unit_tests_without_starting_kafka_or_postgresql(tmp_path: Path) -> None:
    # Where the broker and the database would keep their data is a file, not a folder: starting either fails at once.
    # Nothing of this run's services is passed on either.
    blocked = tmp_path / "services-would-write-here"
    blocked.write_text("")
    env = {name: value for name, value in os.environ.items()
           if not name.startswith("LEDGER_") or name in {"LEDGER_VENV", "LEDGER_CACHE_DIR"}}
    env.update(LEDGER_RUN_DIR=str(blocked), TMPDIR=str(blocked))
    done = subprocess.run([str(ROOT / "scripts" / "test"), "tests/unit/test_rules.py", "-q", "-x", "--durations", "3"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_S_MAX, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert NOT_STARTED in done.stderr
    assert " passed" in done.stdout and " failed" not in done.stdout
