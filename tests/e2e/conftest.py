"""The end-to-end tests' report: where the console's browser tests left their screenshots, for a reviewer to look at
(tests/e2e/test_console_browser.py). Listed at the end of the run, also when the tests ran in worker processes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

SCREENSHOTS = Path(__file__).resolve().parents[2] / ".run" / "test-output" / "console"
_started = time.time()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    made = sorted(path for path in SCREENSHOTS.glob("*.png") if path.stat().st_mtime >= _started)
    if made:
        terminalreporter.write_sep("-", "console screenshots")
        for path in made:
            terminalreporter.write_line(str(path))
