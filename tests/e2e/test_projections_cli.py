"""Every documented form of `ledger projections run | status | rebuild` (docs/cli.md, docs/projections.md), with and
without `--json`, with `--workers` and `--follow`, run the two ways users run them: output piped (a script, a cron
job) and on a pseudo-terminal (a person at a terminal, where the rebuild draws its progress bar). Each must exit 0 and
print what the docs say.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli_runner import CLI_TIMEOUT_S, Cli
from tests.support.kafka_roles import KafkaRoles

pytestmark = pytest.mark.e2e

MODES = ("piped", "terminal")


@pytest.fixture(scope="module")
def published(tmp_path_factory, kafka_roles: KafkaRoles) -> tuple[Cli, int]:
    """A small generated branch history, relayed to topics of its own: the CLI on it, and how many events."""
    folder = tmp_path_factory.mktemp("projections-cli")
    unique = uuid.uuid4().hex[:10]
    env = {**os.environ, "LEDGER_SQLITE_PATH": str(folder / "ledger.db"),
           "LEDGER_KAFKA_TOPIC_PREFIX": f"test-proj-cli-{unique}", "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}"}
    cli = Cli(env=env, folder=folder, kafka=kafka_roles)
    cli("generate", "--employers", "3", "--members", "30", "--bpu", "3", "--months", "3")
    cli.kafka_init()
    events = cli.json("relay")["published"]
    assert events > 100
    return cli, events


class User:
    """Runs `ledger projections ...` in one mode and returns what the user reads: stdout when piped (stderr is
    checked to hold no traceback), the whole terminal when on a terminal."""

    def __init__(self, cli: Cli, mode: str) -> None:
        self.cli, self.mode = cli, mode

    def __call__(self, *args: str) -> str:
        if self.mode == "terminal":
            return self.cli.tty("projections", *args)
        return self.cli("projections", *args).stdout

    def json(self, *args: str) -> Any:
        text = self(*args, "--json")
        # On a terminal, the log lines on stderr share the screen: the result is the line that is JSON.
        return json.loads(next(line for line in text.splitlines() if line[:1] in "{["))

    def follow_then_stop(self, *args: str, signum: signal.Signals, caught_up: list[str]) -> str:
        """`projections run --follow ARGS`: wait until every projection in `caught_up` says so, then send `signum`,
        as a user's Ctrl-C or a service manager's stop does; the output, after a clean exit."""
        done = [f"{name}: caught up" for name in caught_up]
        if self.mode == "terminal":
            terminal = self.cli.terminal("projections", "run", *args, "--follow")
            terminal.wait_for(lambda text: all(line in text for line in done))
            terminal.send_signal(signum)
            return terminal.finish()
        log = self.cli.folder / f"follow-{uuid.uuid4().hex[:6]}.log"
        with log.open("w") as stderr:
            process = self.cli.start("projections", "run", *args, "--follow", stdout=subprocess.PIPE, stderr=stderr,
                                     text=True)
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while not all(line in log.read_text() for line in done):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"projections run --follow did not catch up:\n{log.read_text()}")
            time.sleep(0.2)
        process.send_signal(signum)
        stdout, _ = process.communicate(timeout=CLI_TIMEOUT_S)
        assert process.returncode == 0, log.read_text()
        assert "Traceback" not in log.read_text()
        return stdout


@pytest.mark.parametrize("mode", MODES)
def test_every_documented_projections_command_exits_0_and_says_what_the_docs_say(
        published: tuple[Cli, int], tmp_path: Path, mode: str) -> None:
    cli, events = published
    # Views of this test's own: each mode starts from nothing.
    user = User(cli.with_env(tmp_path, LEDGER_PROJECTION_SQLITE_PATH=str(tmp_path / "views.db")), mode)

    before = user("status")
    for name in ("balances", "branches"):  # the lag counts offsets: the events and the transactions' markers
        assert re.search(rf"{name}: version -, 0 events applied, lag [1-9][\d,]*, last update never", before)
    assert [row["live_version"] for row in user.json("status")] == [None, None, None, None]

    assert f"balances: applied {events:,} events" in user("run", "balances")
    assert user.json("run", "branches") == {"applied": {"branches": events}}
    assert (f"balances: applied 0 events; branches: applied 0 events; collections: applied {events:,} events; "
            f"general_ledger: applied {events:,} events") in user("run")
    assert user.json("run", "balances", "branches") == {"applied": {"balances": 0, "branches": 0}}

    status = user("status")
    for name in ("balances", "branches", "collections", "general_ledger"):
        assert f"{name}: version 1, {events:,} events applied, lag 0, last update 20" in status
    assert [(row["name"], row["live_version"], row["events"], row["lag"]) for row in user.json("status")] == \
        [("balances", 1, events, 0), ("branches", 1, events, 0), ("collections", 1, events, 0),
         ("general_ledger", 1, events, 0)]

    rebuilt = user("rebuild", "balances")
    assert f"balances: version 2 built from offset 0 ({events:,} events in " in rebuilt
    assert "invariants hold; readers switched from version 1, which was dropped" in rebuilt
    if mode == "terminal":
        assert "rebuild balances" in rebuilt  # the progress bar was drawn
    assert f"branches: version 2 built from offset 0 ({events:,} events in " in user("rebuild", "branches",
                                                                                    "--workers", "2")
    assert {k: v for k, v in user.json("rebuild", "balances").items() if k in ("name", "version", "replaced", "events")
            } == {"name": "balances", "version": 3, "replaced": 2, "events": events}
    result = user.json("rebuild", "branches", "--workers", "2")
    assert (result["version"], result["replaced"], result["events"]) == (3, 2, events)

    followed = user.follow_then_stop(signum=signal.SIGINT, caught_up=["balances", "branches"])
    assert "balances: applied 0 events; branches: applied 0 events" in followed
    followed = user.follow_then_stop("branches", "--json", signum=signal.SIGTERM, caught_up=["branches"])
    assert json.loads(followed.strip().splitlines()[-1]) == {"applied": {"branches": 0}}
    assert [row["live_version"] for row in user.json("status")] == [3, 3, 1, 1]
