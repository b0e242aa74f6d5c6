"""Installs come from uv.lock only (README.md, "Installs are locked"): when pyproject.toml asks for something the lock
does not pin (a dependency added by hand, or a lock edited to match something else), the scripts refuse to install,
name the fix, and leave no virtualenv behind; they never re-resolve on their own."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
RUN_S_MAX = 300  # uv is already bootstrapped by the scripts/test that runs this; its lock check reads no index


def _copy_of_the_project(target: Path) -> Path:
    """The project's pyproject.toml, uv.lock and scripts, as a fresh clone has them (the package itself is not
    needed: the lock is checked before anything is built)."""
    target.mkdir()
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        (target / name).write_bytes((ROOT / name).read_bytes())
    (target / "scripts").mkdir()
    (target / "scripts" / "lib.sh").write_bytes((ROOT / "scripts" / "lib.sh").read_bytes())
    return target


def _ensure_venv(project: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LEDGER_VENV": str(project / ".venv"), "LEDGER_RUN_DIR": str(project / ".run")}
    bash = shutil.which("bash")
    assert bash is not None
    return subprocess.run([bash, "-c", "source scripts/lib.sh && ensure_venv"], cwd=project, env=env,
                          capture_output=True, text=True, timeout=RUN_S_MAX, check=False)


def test_a_dependency_the_lock_does_not_pin_is_refused_and_nothing_is_installed(tmp_path: Path) -> None:
    project = _copy_of_the_project(tmp_path / "project")
    pyproject = project / "pyproject.toml"
    text = pyproject.read_text()
    assert '    "rich>=13",\n' in text  # the last base dependency, after which one is added by hand
    pyproject.write_text(text.replace('    "rich>=13",\n', '    "rich>=13",\n    "six>=1.16",\n', 1))

    done = _ensure_venv(project)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "uv.lock does not match pyproject.toml: run scripts/lock (then scripts/test) and commit uv.lock" \
        in done.stderr
    assert not (project / ".venv" / ".installed-lock").exists()
    assert '\nname = "six"\n' not in (project / "uv.lock").read_text()  # the lock was not re-resolved


def test_a_missing_lock_is_named(tmp_path: Path) -> None:
    project = _copy_of_the_project(tmp_path / "project")
    (project / "uv.lock").unlink()

    done = _ensure_venv(project)

    assert done.returncode == 1
    assert "uv.lock is missing: run scripts/lock and commit uv.lock" in done.stderr
