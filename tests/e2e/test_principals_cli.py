"""Every command that talks to Kafka, run by the wrong principal or with connection settings that do not fit
(docs/kafka.md, "Principals and ACLs" and "Connecting as a principal").

- Settings that do not fit together (here: a password sent over SASL_PLAINTEXT outside development mode) stop every
  such command before it connects: exit 2, the setting named, the password never shown, no traceback.
- On the secured test broker, a command run as a principal without the rights its role has is refused by the
  cluster: exit 14 (`KafkaRefused`) naming the principal, and nothing is written.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from ledger.publishing import kafka_client
from tests.support.cli_runner import CONNECTION_VARIABLES, Cli
from tests.support.kafka_roles import API, AUDITOR, PROJECTIONS, RELAY, TEAMS, KafkaRoles

pytestmark = pytest.mark.e2e

PASSWORD = "pw-of-the-e2e-relay-4d1c"  # noqa: S105 - a test's, which must never be printed
KPJ = "17100000001"  # the generator's first KPJ
DOCUMENTED_LOG_KEY = "bpjs.example/ledger+d50cc87c+ATKR2+uqR6TG6tfLbN+rMTRmX1BjoiHoDOrqYeoV8Uza"  # docs/audit.md's


def kafka_commands(folder: Path) -> dict[str, tuple[str, ...]]:
    """Every command that connects to Kafka, as an operator, an auditor or a consumer team runs it."""
    return {
        "relay": ("relay",),
        "kafka init": ("kafka", "init", "--relay", "User:relay"),
        "kafka acls": ("kafka", "acls"),
        "projections run": ("projections", "run"),
        "projections status": ("projections", "status"),
        "projections rebuild": ("projections", "rebuild", "balances"),
        "audit verify": ("audit", "verify"),
        "audit prove": ("audit", "prove", "00000000-0000-0000-0000-000000000000.1", "--key", DOCUMENTED_LOG_KEY),
        "audit reconcile": ("audit", "reconcile"),
        "audit history": ("audit", "history", "--kpj", KPJ),
        "audit as-of": ("audit", "as-of", "2017-03-31"),
        "audit export": ("audit", "export", "--from", "2017-01-01", "--to", "2017-03-31", "--out",
                         str(folder / "export")),
        "consumers notifier": ("consumers", "notifier", "--db", str(folder / "outbox.db"), "--idle-exit", "1"),
        "consumers warehouse": ("consumers", "warehouse", "--out", str(folder / "warehouse"), "--idle-exit", "1"),
        "audit access": ("audit", "access", "--kpj", KPJ),
        "api publish-access": ("api", "publish-access"),
    }


@pytest.mark.parametrize("command", kafka_commands(Path("/")).keys())
def test_a_password_over_plaintext_stops_every_kafka_command_naming_the_setting(tmp_path: Path, command: str) -> None:
    env = {name: value for name, value in os.environ.items()
           if name not in CONNECTION_VARIABLES and name != "LEDGER_DEVELOPMENT_MODE"}
    env.update(LEDGER_SQLITE_PATH=str(tmp_path / "ledger.db"), LEDGER_PROJECTION_SQLITE_PATH=str(tmp_path / "v.db"),
               LEDGER_ACCESS_LOG_SQLITE_PATH=str(tmp_path / "access-log.db"),
               LEDGER_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", LEDGER_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
               LEDGER_KAFKA_SASL_USERNAME="relay", LEDGER_KAFKA_SASL_PASSWORD=PASSWORD)
    cli = Cli(env=env, folder=tmp_path)  # without KafkaRoles: the connection settings are this test's own

    args = kafka_commands(tmp_path)[command]
    for done in (cli(*args, expect=2), cli(*args, "--json", expect=2)):
        printed = done.stdout + done.stderr
        assert "LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT sends the password" in printed, printed
        assert PASSWORD not in printed
    assert not (tmp_path / "access-log.db").exists()  # stopped before anything was created


UNAVAILABLE = {  # commands of every role that talk to Kafka first thing; run side by side (each waits ~30 s)
    "projections status": (("projections", "status"), False),
    "audit verify": (("audit", "verify"), False),
    "kafka acls": (("kafka", "acls"), True),
    "consumers warehouse": (("consumers", "warehouse", "--idle-exit", "1", "--out", "warehouse"), False),
}


def test_a_cluster_that_does_not_answer_gets_exit_15_naming_the_address_and_no_traceback(tmp_path: Path) -> None:
    env = {name: value for name, value in os.environ.items() if name not in CONNECTION_VARIABLES}
    env.update(LEDGER_SQLITE_PATH=str(tmp_path / "ledger.db"), LEDGER_PROJECTION_SQLITE_PATH=str(tmp_path / "v.db"),
               LEDGER_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", LEDGER_KAFKA_SECURITY_PROTOCOL="PLAINTEXT",
               LEDGER_DEVELOPMENT_MODE="true")  # port 1: nothing listens, as when every broker is down
    cli = Cli(env=env, folder=tmp_path)
    started = {name: cli.start(*args, *(["--json"] if as_json else []), cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for name, (args, as_json) in UNAVAILABLE.items()}
    for name, process in started.items():
        out, err = process.communicate(timeout=120)
        assert process.returncode == 15, (name, process.returncode, err[-2000:])
        assert "Traceback" not in out + err, name
        if UNAVAILABLE[name][1]:
            error = json.loads(out)["error"]
            assert error["type"] == "KafkaUnavailable", name
            message = error["message"]
        else:
            message = err
        assert "the Kafka cluster at 127.0.0.1:1 did not answer" in message, (name, message)
        assert "LEDGER_KAFKA_BOOTSTRAP_SERVERS" in message, name
    assert not (tmp_path / "warehouse").exists() or not any((tmp_path / "warehouse").rglob("*.csv"))


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory, kafka_roles: KafkaRoles) -> Cli:
    """A small branch history published to topics of its own, every role granted on them; secured brokers only."""
    # scripts/test always starts the secured broker: a plain one (every principal may do everything) is a failure.
    assert kafka_roles.secured, "run with scripts/test: the refusals need the secured broker"
    folder = tmp_path_factory.mktemp("principals")
    unique = uuid.uuid4().hex[:10]
    cli = Cli(env={**os.environ, "LEDGER_SQLITE_PATH": str(folder / "ledger.db"),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(folder / "views.db"),
                   "LEDGER_ACCESS_LOG_SQLITE_PATH": str(folder / "access-log.db"),
                   "LEDGER_ACCESS_LOG_TRANSACTIONAL_ID": f"a-{unique}",
                   "LEDGER_KAFKA_TOPIC_PREFIX": f"test-principals-{unique}",
                   "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}"}, folder=folder, kafka=kafka_roles)
    cli("generate", "--employers", "2", "--members", "10", "--bpu", "1", "--months", "1")
    cli.kafka_init({"claims-notifier": TEAMS[0], "warehouse-exporter": TEAMS[1]})
    cli("relay")
    cli("employer", "register", "--npp", "30000001", "--name", "PT Baru", "--branch", "BEKASI-KOTA", "--kind",
        "company", "--risk", "low", "--registered-on", "2017-01-02")  # one event left for a relay to publish
    return cli


# The command, and the principal that runs it without its role's rights.
REFUSALS = {
    "the projections publish": (("relay",), PROJECTIONS),
    "an auditor publishes": (("relay",), AUDITOR),
    "a consumer team publishes": (("relay",), TEAMS[0]),
    "an auditor consumes in the projections' groups": (("projections", "run"), AUDITOR),
    "an auditor publishes the access log": (("api", "publish-access"), AUDITOR),
    "the API publishes events": (("relay",), API),
    "the relay reads the access log": (("audit", "access", "--kpj", KPJ), RELAY),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_principal_without_the_right_is_refused_and_nothing_is_written(secured: Cli, kafka_roles: KafkaRoles,
                                                                          case: str) -> None:
    args, role = REFUSALS[case]
    events = f"{secured.env['LEDGER_KAFKA_TOPIC_PREFIX']}.events"
    before = kafka_client.end_offsets(kafka_roles.admin, events)

    for done in (secured(*args, expect=14, as_role=role), secured(*args, "--json", expect=14, as_role=role)):
        assert_refused(done, role)

    assert kafka_client.end_offsets(kafka_roles.admin, events) == before
    assert secured.json("relay")["published"] in (0, 1)  # the relay itself still may: the last event, once


def test_a_team_cannot_consume_as_another_team(secured: Cli) -> None:
    # The SDK checks its dead-letter topic first; another team's is hidden from it, as if missing (exit 3).
    other = ("consumers", "warehouse", "--idle-exit", "1", "--out", str(secured.folder / "warehouse-of-another"))
    refused = secured(*other, expect=3, as_role=TEAMS[0]).stderr
    assert f"{TEAMS[1]}.dead-letters does not exist on Kafka at " in refused
    assert f"or User:{TEAMS[0]} may not see it" in refused
    assert not (secured.folder / "warehouse-of-another").exists() or \
        not any((secured.folder / "warehouse-of-another").rglob("*.csv"))


def test_only_the_administrator_creates_topics(secured: Cli, kafka_roles: KafkaRoles) -> None:
    elsewhere = secured.with_env(LEDGER_KAFKA_TOPIC_PREFIX=f"test-not-created-{uuid.uuid4().hex[:10]}",
                                 LEDGER_KAFKA_REPLICATION_FACTOR="1", LEDGER_DEVELOPMENT_MODE="true")
    for role in (RELAY, PROJECTIONS, AUDITOR, *TEAMS):
        assert_refused(elsewhere("kafka", "init", expect=14, as_role=role), role)
    assert kafka_client.topic_partitions(kafka_roles.admin, f"{elsewhere.env['LEDGER_KAFKA_TOPIC_PREFIX']}.events") \
        == []


def test_only_the_administrator_lists_the_acls(secured: Cli) -> None:
    for role in (RELAY, PROJECTIONS, AUDITOR, TEAMS[0]):
        for done in (secured("kafka", "acls", expect=14, as_role=role),
                     secured("kafka", "acls", "--json", expect=14, as_role=role)):
            printed = done.stdout + done.stderr
            assert f"refused to list its ACLs to User:{role}" in printed and "only the administrator" in printed
    assert "User:relay" in secured("kafka", "acls").stdout  # the control: the administrator sees the relay's grants


def assert_refused(done: subprocess.CompletedProcess[str], role: str) -> None:
    printed = done.stdout + done.stderr
    assert f"refused User:{role}" in printed, printed
    assert "docs/kafka.md" in printed
