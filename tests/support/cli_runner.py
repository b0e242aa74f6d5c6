"""Runs the real `ledger` CLI in a subprocess and checks what a user would see. Shared by the end-to-end tests and
the integration tests of the auditor's tools.

`Cli(...)` runs a command with its output piped, as a script or a cron job would; `Cli.terminal(...)` runs it on a
pseudo-terminal, as a user at a terminal does, where libraries such as rich draw progress bars and colours.
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLI_TIMEOUT_S = 120
TERMINAL_ROWS, TERMINAL_COLUMNS = 40, 120
TERMINAL_READ_BYTES = 65_536
ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


@dataclass
class Cli:
    env: dict[str, str]
    folder: Path

    def __call__(self, *args: str, expect: int = 0, timeout_s: float = CLI_TIMEOUT_S,
                 memory_max_bytes: int | None = None) -> subprocess.CompletedProcess[str]:
        """Run `ledger ARGS`; `memory_max_bytes` caps the process's address space, for inputs that could exhaust the
        machine's memory if the CLI failed to bound its reads."""
        def limit() -> None:
            assert memory_max_bytes is not None
            resource.setrlimit(resource.RLIMIT_AS, (memory_max_bytes, memory_max_bytes))

        done = subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout_s, check=False,
                              preexec_fn=None if memory_max_bytes is None else limit)
        assert done.returncode == expect, f"ledger {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def json(self, *args: str, expect: int = 0) -> Any:
        return json.loads(self(*args, "--json", expect=expect).stdout)

    def terminal(self, *args: str) -> Terminal:
        """Start `ledger ARGS` on a pseudo-terminal (stdin, stdout and stderr); see `Terminal`."""
        return Terminal(self.env, args)

    def tty(self, *args: str, expect: int = 0) -> str:
        """Run `ledger ARGS` on a pseudo-terminal to its end; what the terminal showed, without escape sequences."""
        return self.terminal(*args).finish(expect=expect)

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
