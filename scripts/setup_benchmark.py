"""Fresh clone to first passing test: the install before the lock file (pip) and after it (uv + uv.lock), side by side.

Run through `scripts/bench setup [--before REF] [--after REF] [--rounds N] [--test PATH]`. Standard library only, so it
runs with the machine's Python and needs no virtualenv of its own.

Each round clones this repository twice into fresh temporary directories, one at each commit, and times in each:
  1. `git clone` and `git checkout REF`;
  2. `ensure_venv` from that commit's `scripts/lib.sh`: the virtualenv made and every package downloaded and installed
     (before: `pip install -e .[test]`; after: uv bootstrapped with pip, then `uv sync --frozen` from uv.lock);
  3. pytest on one unit test file with the new virtualenv's Python.
The Kafka broker and PostgreSQL that `scripts/test` starts are left out: neither install changes them, and their start
would only add the same seconds to both sides. Every package cache starts empty: pip's is off (`PIP_NO_CACHE_DIR`),
uv's (`UV_CACHE_DIR`) and the project's (`LEDGER_CACHE_DIR`, where uv is bootstrapped) are new directories per clone,
so each side downloads everything, as on a fresh machine. The two sides alternate within a round, so a slow minute of
the network or of the shared machine falls on both; the table gives the medians over the rounds, of the
whole and of each step.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 2
TEST_PATH = "tests/unit/test_rules.py"
STEP_TIMEOUT_S = 1_800  # one step of one side: far above a slow install, so only a hung download stops the run
LOG_TAIL_CHARS = 3_000


def git(*args: str, cwd: Path = ROOT) -> str:
    # git from the PATH, as the developer runs it, with an argument list (no shell).
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,  # noqa: S603, S607
                          text=True).stdout.strip()


def default_before() -> str:
    """The commit before uv.lock first appeared: the last install that had no lock file."""
    added = git("log", "--diff-filter=A", "--format=%H", "--", "uv.lock").splitlines()
    if not added:
        sys.exit("no commit adds uv.lock yet: pass --before and --after")
    return f"{added[-1]}^"


def clean_env(scratch: Path) -> dict[str, str]:
    # The caller's own settings for the scripts and uv stay out of the clone, and so does a local folder of wheels for
    # pip (PIP_FIND_LINKS), which would be a cache: both sides download everything.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("LEDGER_", "UV_")) and k not in ("VIRTUAL_ENV", "PIP_FIND_LINKS")}
    env.update({
        "PIP_NO_CACHE_DIR": "1",
        "UV_CACHE_DIR": str(scratch / "uv-cache"),
        "LEDGER_CACHE_DIR": str(scratch / "ledger-cache"),
        # A fresh random key: the tests refuse to run without one (docs/cli.md).
        "LEDGER_NIK_HMAC_KEY": secrets.token_hex(32),
    })
    return env


def timed(command: list[str], cwd: Path, env: dict[str, str], what: str) -> float:
    started = time.perf_counter()
    # The steps below, as argument lists (no shell); the exit code is checked after the timing.
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True,  # noqa: S603
                            timeout=STEP_TIMEOUT_S, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write((result.stdout + result.stderr)[-LOG_TAIL_CHARS:])
        sys.exit(f"{what} failed (exit {result.returncode})")
    return elapsed


def fresh_setup(ref: str, test_path: str) -> dict[str, float]:
    """Seconds per step of one fresh clone at `ref`, in a temporary directory removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="ledger-setup-bench-"))
    try:
        env = clean_env(scratch)
        clone = scratch / "clone"
        seconds = {"clone": timed(["bash", "-c", ('git clone --quiet --no-hardlinks "$0" "$1" && '
                                                 'git -C "$1" checkout --quiet "$2"'), str(ROOT), str(clone), ref],
                                  scratch, env, f"clone at {ref}")}
        seconds["install"] = timed(["bash", "-c", "source scripts/lib.sh && ensure_venv"], clone, env,
                                   f"ensure_venv at {ref}")
        seconds["test"] = timed([str(clone / ".venv/bin/python"), "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                 test_path], clone, env, f"pytest {test_path} at {ref}")
        seconds["total"] = sum(seconds.values())
        return seconds
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", help="commit installed with pip (default: the one before uv.lock was added)")
    parser.add_argument("--after", default="HEAD", help="commit installed from uv.lock (default: HEAD, as committed)")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--test", default=TEST_PATH, help="the unit test file run once the virtualenv is ready")
    args = parser.parse_args()

    sides = {"before": git("rev-parse", "--short", args.before or default_before()),
             "after": git("rev-parse", "--short", args.after)}
    samples: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for round_no in range(1, args.rounds + 1):
        for side, ref in sides.items():
            seconds = fresh_setup(ref, args.test)
            samples[side].append(seconds)
            print(f"  round {round_no}, {side} ({ref}): " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()),
                  file=sys.stderr)

    median = {side: {step: statistics.median(s[step] for s in runs) for step in runs[0]}
              for side, runs in samples.items()}
    labels = {"before": "pip, no lock", "after": "uv + uv.lock"}
    for side, m in median.items():
        print(f"| {side} ({labels[side]}, commit {sides[side]}) | **{m['total']:.1f} s**: clone {m['clone']:.1f} s, "
              f"install {m['install']:.1f} s, `{args.test}` {m['test']:.1f} s (each a median of {args.rounds}) |")
    before, after = median["before"]["total"], median["after"]["total"]
    print(f"| after / before | {after / before:.2f} x the time ({before / after:.1f} x faster); install alone "
          f"{median['after']['install'] / median['before']['install']:.2f} x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
