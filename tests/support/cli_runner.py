"""Runs the real `ledger` CLI in a subprocess and checks what a user would see. Shared by the end-to-end tests and
the integration tests of the auditor's tools.

`Cli(...)` runs a command with its output piped, as a script or a cron job would; `Cli.terminal(...)` runs it on a
pseudo-terminal, as a user at a terminal does, where libraries such as rich draw progress bars and colours.

Each command runs as its own principal, as a deployment runs each piece (docs/kafka.md, "Principals and ACLs"): the
role is chosen from the command itself (`role_of`), and the command gets that role's `LEDGER_KAFKA_*` settings from
the `KafkaRoles` the Cli holds, in place of any in its environment: `kafka ...` and `demo` as the administrator,
`relay` as the relay, `projections ...` as the projections, `audit ...` as an auditor, `serve` and `api
publish-access` as the API (it publishes its access log), `consumers notifier` and `consumers warehouse` as their
teams. A command that does not talk to Kafka (the clerks' commands, `history`, `balance`, `report`, `generate`,
`audit verify-export`, `audit check-proof`) gets no Kafka credentials at
all, and an address where nothing listens, so that one which did reach for Kafka would fail rather than find a
broker. A test that proves a refusal runs a command as another role (`as_role=`); a Cli without `KafkaRoles` runs the
commands that talk to Kafka with its environment as given, for tests that set the connection themselves.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import resource
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.support.kafka_roles import ADMIN, API, AUDITOR, PROJECTIONS, RELAY, TEAMS, WITNESS, KafkaRoles

CLI_TIMEOUT_S = 120
TERMINAL_ROWS, TERMINAL_COLUMNS = 40, 120
TERMINAL_READ_BYTES = 65_536
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")

NO_KAFKA = "no Kafka"  # the "role" of a command that does not talk to Kafka: no Kafka credentials at all
# Who runs each command, by its first words (the longest match wins); every other command does not talk to Kafka.
COMMAND_ROLES: dict[tuple[str, ...], str] = {
    ("kafka",): ADMIN,  # creating topics and granting ACLs: nobody else may
    ("demo",): ADMIN,  # the demo plays every part, creating its topics first
    ("relay",): RELAY,
    ("projections",): PROJECTIONS,
    ("audit",): AUDITOR,
    ("audit", "verify-export"): NO_KAFKA,  # checks an export's files only
    ("audit", "check-proof"): NO_KAFKA,  # checks a receipt offline
    ("audit", "witness"): WITNESS,  # a witness is its own principal: it reads the checkpoints, never the events
    ("consumers", "notifier"): TEAMS[0],
    ("consumers", "warehouse"): TEAMS[1],
    ("serve",): API,  # the HTTP API publishes its access log
    ("api", "publish-access"): API,
}
# The settings that say where Kafka is and who connects (docs/kafka.md, "Connecting as a principal"): a command gets
# its role's, never the environment's. The topics' settings (prefix, partitions, replication factor) and the relay's
# transactional id stay the test's own, unless the role's file sets them (the administrator's replication factor).
CONNECTION_VARIABLES = frozenset(f"LEDGER_KAFKA_{name}" for name in (
    "BOOTSTRAP_SERVERS", "SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE",
    "SSL_CERTFILE", "SSL_KEYFILE"))
# Where a command without Kafka settings would look for a broker: a port nothing listens on (not the default 9092,
# where a developer's own broker may run), so reaching for Kafka fails at once.
NOWHERE = "127.0.0.1:1"


def role_of(args: Sequence[str]) -> str:
    """The role `ledger ARGS` runs as: a key of `KafkaRoles`, or NO_KAFKA."""
    for length in (2, 1):
        role = COMMAND_ROLES.get(tuple(args[:length]))
        if role is not None:
            return role
    return NO_KAFKA


@dataclass
class Cli:
    env: dict[str, str]
    folder: Path
    kafka: KafkaRoles | None = None  # each role's Kafka settings (tests/support/kafka_roles.py)
    cwd: Path | None = None  # where the commands run (default: the test's); relative paths and `.run/` resolve there

    def env_for(self, args: Sequence[str], as_role: str | None = None) -> dict[str, str]:
        """The environment of `ledger ARGS`: this Cli's, with the Kafka settings of the command's role (`role_of`), or
        of `as_role` when given."""
        role = as_role or role_of(args)
        if role != NO_KAFKA and self.kafka is None:
            return dict(self.env)
        env = {name: value for name, value in self.env.items() if name not in CONNECTION_VARIABLES}
        if role == NO_KAFKA:
            return {**env, "LEDGER_KAFKA_BOOTSTRAP_SERVERS": NOWHERE}
        assert self.kafka is not None
        return {**env, **self.kafka.env(role)}

    def with_env(self, folder: Path | None = None, **variables: str) -> Cli:
        """The same CLI (and roles) with more variables, and another folder for its files if given."""
        return replace(self, env={**self.env, **variables}, folder=folder or self.folder)

    def __call__(self, *args: str, expect: int = 0, timeout_s: float = CLI_TIMEOUT_S,
                 memory_max_bytes: int | None = None, as_role: str | None = None
                 ) -> subprocess.CompletedProcess[str]:
        """Run `ledger ARGS`; `memory_max_bytes` caps the process's address space, for inputs that could exhaust the
        machine's memory if the CLI failed to bound its reads."""
        def limit() -> None:
            assert memory_max_bytes is not None
            resource.setrlimit(resource.RLIMIT_AS, (memory_max_bytes, memory_max_bytes))

        done = subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=self.env_for(args, as_role),
                              cwd=self.cwd, capture_output=True, text=True, timeout=timeout_s, check=False,
                              preexec_fn=None if memory_max_bytes is None else limit)
        assert done.returncode == expect, f"ledger {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def json(self, *args: str, expect: int = 0, as_role: str | None = None) -> Any:
        return json.loads(self(*args, "--json", expect=expect, as_role=as_role).stdout)

    def start(self, *args: str, **popen: Any) -> subprocess.Popen[Any]:
        """Start `ledger ARGS` in the background, as its role (`subprocess.Popen` options in `popen`)."""
        return subprocess.Popen([sys.executable, "-m", "ledger.cli", *args], env=self.env_for(args),
                                **{"cwd": self.cwd, **popen})

    def terminal(self, *args: str, as_role: str | None = None) -> Terminal:
        """Start `ledger ARGS` on a pseudo-terminal (stdin, stdout and stderr); see `Terminal`."""
        return Terminal(self.env_for(args, as_role), args)

    def tty(self, *args: str, expect: int = 0, as_role: str | None = None) -> str:
        """Run `ledger ARGS` on a pseudo-terminal to its end; what the terminal showed, without escape sequences."""
        return self.terminal(*args, as_role=as_role).finish(expect=expect)

    def kafka_init(self, consumers: Mapping[str, str] | None = None) -> Any:
        """`ledger kafka init` as the administrator: this Cli's topics, and each team's dead-letter topic
        (`consumers`: group id -> the team's role); on a secured broker also every role's ACLs, the relay's on this
        Cli's `LEDGER_RELAY_TRANSACTIONAL_ID`, the API's on its `LEDGER_ACCESS_LOG_TRANSACTIONAL_ID`. A plain broker
        has no authorizer to hold ACLs."""
        assert self.kafka is not None, "a Cli without KafkaRoles: give it the kafka_roles fixture"
        roles = self.kafka
        grants: list[str] = []
        if roles.secured:
            grants = ["--relay", roles.principal(RELAY), "--projections", roles.principal(PROJECTIONS),
                      "--auditor", roles.principal(AUDITOR), "--witness", roles.principal(WITNESS),
                      "--api", roles.principal(API)]
        for group, role in (consumers or {}).items():
            grants += ["--consumer", f"{group}={roles.principal(role)}" if roles.secured else group]
        return self.json("kafka", "init", *grants)

    def history(self, option: str, value: str) -> list[dict[str, Any]]:
        return self.json("history", option, value)

    def file(self, name: str, lines: list[str]) -> str:
        path = self.folder / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return str(path)

    def jsonl(self, name: str, commands: list[dict[str, Any]]) -> str:
        return self.file(name, [json.dumps(command) for command in commands])


class Terminal:
    """A `ledger` process whose stdin, stdout and stderr are one pseudo-terminal of 120 x 40 characters.

    `output` is what the terminal has shown so far (stdout and stderr together, as a user sees them); `plain` is the
    same without escape sequences. Every wait is bounded by `CLI_TIMEOUT_S`.
    """

    def __init__(self, env: dict[str, str], args: tuple[str, ...]) -> None:
        self.args = args
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", TERMINAL_ROWS, TERMINAL_COLUMNS, 0, 0))
        self.process = subprocess.Popen([sys.executable, "-m", "ledger.cli", *args],
                                        env={**env, "TERM": "xterm-256color"}, stdin=slave, stdout=slave, stderr=slave)
        os.close(slave)  # the child holds it now; the master reads EOF (EIO) once the child is gone
        self.output = ""
        self.closed = False

    @property
    def plain(self) -> str:
        return ESCAPES.sub("", self.output)

    def _read(self, deadline: float) -> None:
        ready, _, _ = select.select([self.master], [], [], max(0.0, min(deadline - time.monotonic(), 0.5)))
        if not ready:
            return
        try:
            chunk = os.read(self.master, TERMINAL_READ_BYTES)
        except OSError:  # EIO: every copy of the terminal's other side is closed
            chunk = b""
        if chunk:
            self.output += chunk.decode(errors="replace")
        else:
            self.closed = True

    def wait_for(self, condition: Callable[[str], bool], timeout_s: float = CLI_TIMEOUT_S) -> None:
        """Read until `condition(plain output)` holds; fail after `timeout_s` or if the process ends first."""
        deadline = time.monotonic() + timeout_s
        while not condition(self.plain):
            if self.closed or time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"ledger {' '.join(self.args)}: not seen within {timeout_s}s:\n{self.plain}")
            self._read(deadline)

    def send_signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def finish(self, expect: int = 0) -> str:
        """Read to the end, check the exit code and that no traceback was shown; the plain output."""
        deadline = time.monotonic() + CLI_TIMEOUT_S
        while not self.closed and time.monotonic() < deadline:
            self._read(deadline)
        try:
            code = self.process.wait(timeout=max(1.0, deadline - time.monotonic()))
        finally:
            os.close(self.master)
        text = self.plain
        assert code == expect, f"ledger {' '.join(self.args)} in a terminal: exit {code}\n{text}"
        assert "Traceback" not in text, text
        return text
