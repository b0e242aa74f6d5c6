"""`ledger relay [--follow]` and `ledger audit reconcile` as users run them: piped, and on a pseudo-terminal where
Ctrl-C (SIGINT) stops a follow. A stopped relay finishes the transaction in hand, prints its summary and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from datetime import date
from pathlib import Path

import orjson
import pytest

from ledger.publishing import kafka_client
from ledger.publishing.relay import RELAY_STATE_KEY, read_state
from ledger.publishing.topics import Topics
from ledger.settings import KafkaConnection
from tests.support.cli_runner import CLI_TIMEOUT_S, Cli
from tests.support.kafka_roles import AUDITOR, KafkaRoles

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(tmp_path: Path, kafka_roles: KafkaRoles) -> Cli:
    unique = uuid.uuid4().hex[:10]
    cli = Cli(env={**os.environ, "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
                   "LEDGER_KAFKA_TOPIC_PREFIX": f"test-relay-cli-{unique}",
                   "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}"}, folder=tmp_path, kafka=kafka_roles)
    cli("generate", "--employers", "2", "--members", "20", "--bpu", "2", "--months", "2")
    cli.kafka_init()
    return cli


def wait_for_position(kafka: KafkaConnection, cli: Cli, position: int) -> None:
    topics = Topics.for_prefix(cli.env["LEDGER_KAFKA_TOPIC_PREFIX"])
    deadline = time.monotonic() + CLI_TIMEOUT_S
    while read_state(kafka, topics).position != position:
        assert time.monotonic() < deadline, f"the relay did not reach position {position}"
        time.sleep(0.2)


def register(cli: Cli, npp: str) -> None:
    cli("employer", "register", "--npp", npp, "--name", "PT Baru", "--branch", "BEKASI-KOTA", "--kind", "company",
        "--risk", "low", "--registered-on", date(2017, 1, 2).isoformat())


@pytest.mark.parametrize("mode", ["piped", "terminal"])
def test_relay_follow_publishes_what_comes_and_stops_cleanly_on_a_signal(cli: Cli, kafka_roles: KafkaRoles,
                                                                          mode: str) -> None:
    events = cli.json("relay")["published"]
    if mode == "terminal":
        follow = cli.terminal("relay", "--follow")
    else:
        follow = cli.start("relay", "--follow", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        register(cli, "30000001")  # written while the relay follows: it publishes it
        wait_for_position(kafka_roles.connection(AUDITOR), cli, events + 1)
    finally:
        if mode == "terminal":
            follow.send_signal(signal.SIGINT)  # Ctrl-C
        else:
            follow.send_signal(signal.SIGTERM)  # a service manager's stop
    if mode == "terminal":
        output = follow.finish()
    else:
        output, errors = follow.communicate(timeout=CLI_TIMEOUT_S)
        assert follow.returncode == 0 and "Traceback" not in errors, errors
    assert f"published 1 events to {cli.env['LEDGER_KAFKA_TOPIC_PREFIX']}.events; last position {events + 1:,}" \
        in output


@pytest.mark.parametrize("mode", ["piped", "terminal"])
def test_reconcile_and_a_refused_relay_read_as_the_docs_show(cli: Cli, kafka_admin: KafkaConnection,
                                                             mode: str) -> None:
    def run(*args: str, expect: int = 0) -> str:
        """What the user reads: the terminal, or stdout and then stderr."""
        if mode == "terminal":
            return cli.tty(*args, expect=expect)
        done = cli(*args, expect=expect)
        return done.stdout + done.stderr

    assert "1 mismatch(es):\n  store_ahead_of_topic: the store holds " in run("audit", "reconcile", expect=13)
    cli("relay")
    assert "agree: the topic holds the store's " in run("audit", "reconcile")

    topics = Topics.for_prefix(cli.env["LEDGER_KAFKA_TOPIC_PREFIX"])
    state = read_state(kafka_admin, topics)
    producer = kafka_client.producer(kafka_admin)  # as the administrator: the one other principal that may write it
    producer.send(topics.state, key=RELAY_STATE_KEY, value=orjson.dumps(
        {"notification_id": state.notification_id + 500, "position": state.position})).get(timeout=30)
    producer.close()
    refused = run("relay", expect=12)
    assert f"error: the relay's saved state on {topics.state} says notification {state.notification_id + 500}" \
        in refused
    assert "relay_state_beyond_store: " in run("audit", "reconcile", expect=13)
