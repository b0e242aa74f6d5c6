"""Every benchmark `scripts/bench` documents in its header is one `scripts/benchmarks.py` accepts, with the options
shown beside it: a merge once left the parser with two positional arguments, and every benchmark refused to start."""

import importlib.util
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _benchmarks_module():
    spec = importlib.util.spec_from_file_location("benchmarks", ROOT / "scripts" / "benchmarks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _documented() -> list[list[str]]:
    """The argument lists of the header's `scripts/bench ...` lines, options given their first choice."""
    header = (ROOT / "scripts" / "bench").read_text().split("\nsource ", 1)[0]
    runs = []
    for line in header.splitlines():
        found = re.match(r"#\s+scripts/bench ([a-z]+)((?: \[[^\]]+\])*)", line)
        if not found or found.group(1) == "setup":  # `setup` is run by scripts/setup_benchmark.py, not this parser
            continue
        args = [found.group(1)]
        for option in re.findall(r"\[(--[a-z]+)(?: ([^\]]+))?\]", found.group(2)):
            name, value = option
            if name == "--plain":  # taken by scripts/bench itself
                continue
            args += [name, *([value.split("|")[0].replace("F", "0.01").replace("N", "1")] if value else [])]
        runs.append(args)
    return runs


def test_every_documented_benchmark_is_accepted_with_its_options() -> None:
    parser = _benchmarks_module().argument_parser()
    runs = _documented()
    assert {run[0] for run in runs} >= {"kafka", "commands", "close", "import", "api"}, runs
    for run in runs:
        args = parser.parse_args(run)
        assert args.which == run[0], shlex.join(run)
