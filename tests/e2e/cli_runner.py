"""Runs the real `ledger` CLI in a subprocess and checks what a user would see. Shared by the end-to-end tests."""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLI_TIMEOUT_S = 120


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
                              text=True, timeout=timeout_s, preexec_fn=None if memory_max_bytes is None else limit)
        assert done.returncode == expect, f"ledger {' '.join(args)}: exit {done.returncode}\n{done.stdout}{done.stderr}"
        assert "Traceback" not in done.stderr, done.stderr
        return done

    def json(self, *args: str, expect: int = 0) -> Any:
        return json.loads(self(*args, "--json", expect=expect).stdout)

    def history(self, option: str, value: str) -> list[dict[str, Any]]:
        return self.json("history", option, value)

    def file(self, name: str, lines: list[str]) -> str:
        path = self.folder / name
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        return str(path)

    def jsonl(self, name: str, commands: list[dict[str, Any]]) -> str:
        return self.file(name, [json.dumps(command) for command in commands])
