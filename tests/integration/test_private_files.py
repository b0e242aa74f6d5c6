"""Every file and directory the ledger creates is its user's alone: files 0600, directories 0700, whatever the umask.

The commands run for real, in subprocesses, in a fresh directory and under the usual umask 022 (which would give
0644 and 0755): a write command, the relay, the projections (run and a two-worker rebuild), both example consumers
and an audit export. Then the library calls behind them run in this process under umask 022, without the CLI's
umask, with SQLite connections held open so that the -wal and -shm files exist when their modes are read. Each
piece connects to Kafka as its own principal, on topics the administrator made.
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

from consumers.notifier import GROUP_ID as NOTIFIER_GROUP
from consumers.sdk import ProcessedEvents
from consumers.warehouse import GROUP_ID as WAREHOUSE_GROUP
from consumers.warehouse import exporter
from ledger.application import Ledger
from ledger.audit.export import write_bundle
from ledger.commands import RegisterEmployer
from ledger.publishing.relay import Relay
from projections.store import ViewStore
from tests.support.kafka_roles import AUDITOR, PROJECTIONS, RELAY, TEAMS, KafkaRoles
from tests.support.signing import log_signer

pytestmark = pytest.mark.integration

CLI_TIMEOUT_S = 120
IDLE_EXIT_S = 10
NOTIFIER, WAREHOUSE = TEAMS  # the two consumer teams' principals


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
                          check=False, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, f"ledger {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
    return done.stdout


def test_the_commands_create_every_file_0600_and_every_directory_0700(tmp_path, kafka_roles: KafkaRoles,
                                                                      umask_022) -> None:
    out = tmp_path / "out"  # nothing exists under it yet: every path below is created by the ledger
    unique = uuid.uuid4().hex[:10]
    prefix = f"test-private-{unique}"
    env = {**os.environ, "LEDGER_SQLITE_PATH": str(out / ".run" / "ledger.db"),
           "LEDGER_PROJECTION_SQLITE_PATH": str(out / ".run" / "views" / "projections.db"),
           "LEDGER_KAFKA_TOPIC_PREFIX": prefix, "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}"}
    # As the administrator: the topics, and each example consumer's team in its default group.
    for group, team in ((NOTIFIER_GROUP, NOTIFIER), (WAREHOUSE_GROUP, WAREHOUSE)):
        kafka_roles.provision(prefix, partitions=2, teams=[group], team_principal=team,
                              transactional_id=f"relay-{unique}")

    def as_role(role: str) -> dict[str, str]:
        return {**env, **kafka_roles.env(role)}

    ledger(env, "employer", "register", "--npp", "10012345", "--name", "PT Maju Jaya", "--branch", "BEKASI-KOTA",
           "--kind", "company", "--risk", "low", "--registered-on", "2015-07-01")
    ledger(env, "member", "enroll", "--kpj", "15000000001", "--nik", "3275011505900001", "--name", "Budi Santoso",
           "--birth-date", "1990-05-15", "--npp", "10012345", "--wage", "5000000", "--effective", "2024-03-01")
    ledger(env, "contribution", "pay", "--npp", "10012345", "--month", "2024-03", "--paid-on", "2024-04-10")
    ledger(as_role(RELAY), "relay")
    ledger(as_role(PROJECTIONS), "projections", "run")
    ledger(as_role(PROJECTIONS), "projections", "rebuild", "branches", "--workers", "2", "--json")
    ledger(as_role(NOTIFIER), "consumers", "notifier", "--db", str(out / "notifier" / "notifier.db"), "--start",
           "beginning", "--idle-exit", str(IDLE_EXIT_S))
    ledger(as_role(WAREHOUSE), "consumers", "warehouse", "--out", str(out / "warehouse"), "--start", "beginning",
           "--idle-exit", str(IDLE_EXIT_S))
    ledger(as_role(AUDITOR), "audit", "export", "--from", "2015-07-01", "--to", "2024-12-31", "--out",
           str(out / "audit" / "q"))

    created = modes(out)
    assert {".run/ledger.db", ".run/views/projections.db", "notifier/notifier.db", "warehouse/_export.db",
            "audit/q/manifest.json", "audit/q/events.csv"} <= set(created)
    assert any(name.startswith("warehouse/month=2024-04/events-p") for name in created), sorted(created)
    assert not_private(out) == {}


def test_the_library_creates_private_files_without_the_clis_umask(tmp_path, settings, kafka_roles: KafkaRoles,
                                                                    umask_022) -> None:
    out = tmp_path / "out"
    s = settings.model_copy(update={"persistence": "sqlite", "sqlite_path": out / "store" / "ledger.db",
                                    "projection_store": "sqlite",
                                    "projection_sqlite_path": out / "views" / "projections.db"})
    app = Ledger(env=s.eventsourcing_env(), clock=lambda: date(2026, 11, 23), nik_key=None)  # no NIK hashed
    app.execute(RegisterEmployer(npp="10012345", name="PT Maju Jaya", branch="BEKASI-KOTA", kind="company",
                                 risk_class="low", registered_on=date(2015, 7, 1)))
    prefix = f"test-private-{uuid.uuid4().hex[:10]}"
    group = f"{prefix}-warehouse"
    topics = kafka_roles.provision(prefix, partitions=1, teams=[group], team_principal=WAREHOUSE)
    relay = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                  transactional_id=f"relay-{prefix}")
    assert relay.run() == 1
    relay.close()
    warehouse = exporter(kafka_roles.connection(WAREHOUSE), topics.events, out / "warehouse", group_id=group,
                         start="beginning")
    assert warehouse.run(idle_timeout_s=IDLE_EXIT_S, handle_signals=False).handled == 1
    views = ViewStore.open(s)
    with views.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS probe (x INTEGER)")
        tx.execute("INSERT INTO probe VALUES (1)")
    processed = ProcessedEvents(out / "consumer" / "state.db")
    processed.process("probe", "event-1", lambda _tx: None)
    write_bundle(out / "audit" / "bundle", topics.events, date(2015, 1, 1), date(2015, 12, 31), [])

    created = modes(out)  # the connections are open: SQLite's -wal and -shm files are there
    assert {"store/ledger.db-wal", "store/ledger.db-shm", "views/projections.db-wal", "views/projections.db-shm",
            "consumer/state.db-wal", "warehouse/month=2015-07/events-p0.csv", "audit/bundle/manifest.json",
            "audit/bundle/events.csv"} <= set(created), sorted(created)
    assert not_private(out) == {}
    processed.close()
    views.close()
