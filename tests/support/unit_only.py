"""Whether a pytest command line runs unit tests only, in which case `scripts/test` starts neither Kafka nor PostgreSQL.

    python -m tests.support.unit_only [PYTEST ARGUMENTS]    exit 0: unit tests only; 1: not, or not sure

pytest itself reads the arguments, with every option its plugins add, so that the value of an option (`-k EXPR`,
`--durations 15`, `--timeout 60`) is never taken for a path; a hook stops it before it collects or configures
anything. What it leaves in `config.args` are the paths the run collects (`testpaths` of pyproject.toml when none is
given); the run is a unit run when every one of them, without its `::test` part, lies in `tests/unit`. Anything else
(no path, a path elsewhere, `--pyargs`, a usage error) is not sure, and the services start as for a full run: a wrong
"unit only" would fail integration tests for want of a broker, a wrong "not unit only" only costs their start.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

UNIT_TESTS = Path(__file__).resolve().parents[1] / "unit"


class _Paths:
    """A pytest plugin that records the paths of the run and ends it before collection."""

    def __init__(self) -> None:
        self.paths: list[Path] | None = None

    @pytest.hookimpl(tryfirst=True)
    def pytest_cmdline_main(self, config: pytest.Config) -> int:
        if not config.option.pyargs:  # with --pyargs, the arguments are module names, not paths
            here = config.invocation_params.dir
            self.paths = [(here / arg.split("::", 1)[0]).resolve() for arg in config.args]
        return 0  # the first answer ends the hook: pytest stops here


def unit_only(args: list[str]) -> bool:
    probe = _Paths()
    code = pytest.main([*args, "-p", "no:cacheprovider"], plugins=[probe])
    if code != 0 or not probe.paths:
        return False
    return all(path.is_relative_to(UNIT_TESTS) for path in probe.paths)


if __name__ == "__main__":
    sys.exit(0 if unit_only(sys.argv[1:]) else 1)
