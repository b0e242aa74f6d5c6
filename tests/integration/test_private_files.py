"""Every file and directory the ledger creates is its user's alone: files 0600, directories 0700, whatever the umask.

The commands run for real, in subprocesses, in a fresh directory and under the usual umask 022 (which would give
0644 and 0755): a write command, the relay, the projections (run and a two-worker rebuild), both example consumers
and an audit export. Then the library calls behind them run in this process under umask 022, without the CLI's
umask, with SQLite connections held open so that the -wal and -shm files exist when their modes are read.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from consumers.sdk import ProcessedEvents
from consumers.warehouse import exporter
from ledger.application import Ledger
from ledger.audit.export import write_bundle
from ledger.commands import RegisterEmployer
from ledger.publishing.relay import Relay
from ledger.publishing.topics import Topics, init_topics
from projections.store import ViewStore

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 120
IDLE_EXIT_S = 10


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, for this process and the subprocesses it starts (a child inherits it)."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    """Every file and directory under `root` (not `root` itself), by relative path: its permission bits."""
    found = {}
    for folder, directories, files in os.walk(root):
        for name in directories + files:
            path = Path(folder) / name
            found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def not_private(root: Path) -> dict[str, str]:
    return {name: oct(mode) for name, mode in modes(root).items()
            if mode != (0o700 if (root / name).is_dir() else 0o600)}


def ledger(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=env, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, f"ledger {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_commands_create_every_file_0600_and_every_directory_0700(tmp_path, bootstrap, umask_022) -> None:
    out = tmp_path / "out"  # nothing exists under it yet: every path below is created by the ledger
    unique = uuid.uuid4().hex[:10]
    env = {**os.environ, "LEDGER_SQLITE_PATH": str(out / ".run" / "ledger.db"),
           "LEDGER_PROJECTION_SQLITE_PATH": str(out / ".run" / "views" / "projections.db"),
           "LEDGER_KAFKA_TOPIC_PREFIX": f"test-private-{unique}", "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}",
           "LEDGER_KAFKA_BOOTSTRAP_SERVERS": ",".join(bootstrap), "LEDGER_KAFKA_PARTITIONS": "2"}

    ledger(env, "employer", "register", "--npp", "10012345", "--name", "PT Maju Jaya", "--branch", "BEKASI-KOTA",
           "--kind", "company", "--risk", "low", "--registered-on", "2015-07-01")
    ledger(env, "member", "enroll", "--kpj", "15000000001", "--nik", "3275011505900001", "--name", "Budi Santoso",
           "--birth-date", "1990-05-15", "--npp", "10012345", "--wage", "5000000", "--effective", "2024-03-01")
    ledger(env, "contribution", "pay", "--npp", "10012345", "--month", "2024-03", "--paid-on", "2024-04-10")
    ledger(env, "relay")
    ledger(env, "projections", "run")
    ledger(env, "projections", "rebuild", "branches", "--workers", "2", "--json")
    ledger(env, "consumers", "notifier", "--db", str(out / "notifier" / "notifier.db"), "--start", "beginning",
           "--idle-exit", str(IDLE_EXIT_S))
    ledger(env, "consumers", "warehouse", "--out", str(out / "warehouse"), "--start", "beginning",
           "--idle-exit", str(IDLE_EXIT_S))
    ledger(env, "audit", "export", "--from", "2015-07-01", "--to", "2024-12-31", "--out", str(out / "audit" / "q"))

    created = modes(out)
    assert {".run/ledger.db", ".run/views/projections.db", "notifier/notifier.db", "warehouse/_export.db",
            "audit/q/manifest.json", "audit/q/events.csv"} <= set(created)
    assert any(name.startswith("warehouse/month=2024-04/events-p") for name in created), sorted(created)
    assert not_private(out) == {}


def test_the_library_creates_private_files_without_the_clis_umask(tmp_path, settings, bootstrap, umask_022) -> None:
    out = tmp_path / "out"
    s = settings.model_copy(update={"persistence": "sqlite", "sqlite_path": out / "store" / "ledger.db",
                                    "projection_store": "sqlite",
                                    "projection_sqlite_path": out / "views" / "projections.db"})
    app = Ledger(env=s.eventsourcing_env(), clock=lambda: date(2026, 11, 23), nik_key=None)  # no NIK hashed
    app.execute(RegisterEmployer(npp="10012345", name="PT Maju Jaya", branch="BEKASI-KOTA", kind="company",
                                 risk_class="low", registered_on=date(2015, 7, 1)))
    prefix = f"test-private-{uuid.uuid4().hex[:10]}"
    topics = Topics.for_prefix(prefix)
    init_topics(bootstrap, topics, partitions=1)
    relay = Relay(app.recorder, bootstrap, topics, transactional_id=f"relay-{prefix}")
    assert relay.run() == 1
    relay.close()
    warehouse = exporter(bootstrap, topics.events, out / "warehouse", group_id=f"{prefix}-warehouse",
                         start="beginning")
    assert warehouse.run(idle_timeout_s=IDLE_EXIT_S, handle_signals=False).handled == 1
    views = ViewStore.open(s)
    with views.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
        tx.execute("INSERT INTO probe VALUES (1)")
    processed = ProcessedEvents(out / "consumer" / "state.db")
    processed.process("probe", "event-1", lambda tx: None)
    write_bundle(out / "audit" / "bundle", topics.events, date(2015, 1, 1), date(2015, 12, 31), [])

    created = modes(out)  # the connections are open: SQLite's -wal and -shm files are there
    assert {"store/ledger.db-wal", "store/ledger.db-shm", "views/projections.db-wal", "views/projections.db-shm",
            "consumer/state.db-wal", "warehouse/month=2015-07/events-p0.csv", "audit/bundle/manifest.json",
            "audit/bundle/events.csv"} <= set(created), sorted(created)
    assert not_private(out) == {}
    processed.close()
    views.close()
