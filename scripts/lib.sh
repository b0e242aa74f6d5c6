# Shared by the scripts in this folder: where things live, and the idempotent setup steps.
# Sourced, not run. Every path a script writes is below .run/ (state) or the cache (downloads), both outside git.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEDGER_VENV:-$ROOT/.venv}"
RUN_DIR="${LEDGER_RUN_DIR:-$ROOT/.run}"
CACHE_DIR="${LEDGER_CACHE_DIR:-$HOME/.cache/bpjs-ledger}"
PYTHON_MIN="3.11"
APT_UPDATED=""

# Compiled bytecode, kept below .run/, for every script (test, demo, bench): they start the CLI in fresh Python
# processes (the tests about 1,000 of them, a benchmark's command once per run), and each one compiles every module it
# imports from source when no .pyc can be read or written (a caller's PYTHONDONTWRITEBYTECODE=1, as container images
# often set, or a read-only tree): about 1 s of CPU per process. The first process to import a module writes its .pyc
# here and every later one reads it; the source tree and the virtualenv get no __pycache__ folders, and a changed
# source file is recompiled (its .pyc records the source's mtime).
export PYTHONPYCACHEPREFIX="$RUN_DIR/pycache"
unset PYTHONDONTWRITEBYTECODE

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

apt_install() {
  # Debian's packages, installed only when missing. apt-get update runs at most once per script run.
  command -v apt-get >/dev/null || die "cannot install $* : no apt-get here; install it by hand"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "$APT_UPDATED" ]; then $sudo apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

ensure_chromium() {
  # The console's browser tests (tests/e2e/test_console_browser.py) drive Debian's headless Chromium through
  # Playwright's `executable_path`: the package is installed when missing (Playwright's own browser download is never
  # run). Idempotent: a machine that has it installs nothing.
  [ -x /usr/bin/chromium ] || { log "installing Debian's chromium for the browser tests"; apt_install chromium; }
}

find_python() {
  local p
  for p in python3.13 python3.12 python3.11 python3; do
    if command -v "$p" >/dev/null && "$p" -c "import sys; sys.exit(sys.version_info < (3, 11))" 2>/dev/null; then
      echo "$p"; return 0
    fi
  done
  die "Python >= $PYTHON_MIN is required"
}

# uv installs the packages from uv.lock. Pinned, because the lock file's format and what `uv lock` resolves are uv's:
# every machine installs and refreshes the lock with this same version. Move it on purpose, then run scripts/lock.
UV_VERSION="0.13.9"
UV="$CACHE_DIR/uv-$UV_VERSION/bin/uv"

ensure_uv() {
  # A fresh machine has Python and nothing else: uv is bootstrapped once per version, with pip, into a folder of its
  # own in the cache (not into the project's virtualenv: uv sync removes from it whatever the lock does not name).
  # Several clones share the cache and may run at once, so one installs while the others wait on a lock file, and a
  # copy counts as installed only when its uv runs.
  local dir="$CACHE_DIR/uv-$UV_VERSION" log="$RUN_DIR/uv-bootstrap.log"
  if "$UV" --version >/dev/null 2>&1; then return 0; fi
  mkdir -p "$CACHE_DIR" "$RUN_DIR"
  (
    flock 9
    if "$UV" --version >/dev/null 2>&1; then exit 0; fi
    log "bootstrapping uv $UV_VERSION into $dir"
    local py; py="$(find_python)"
    rm -rf "$dir"
    # The machine's pip, where its Python has one, puts uv there as plain files (3 s quicker than a virtualenv);
    # Debian's Python comes without pip, and then a small virtualenv of uv's own brings one.
    if ! "$py" -m pip install --quiet --disable-pip-version-check --target "$dir" "uv==$UV_VERSION" > "$log" 2>&1; then
      rm -rf "$dir"
      "$py" -m venv "$dir" >> "$log" 2>&1 || { apt_install python3-venv; rm -rf "$dir"; "$py" -m venv "$dir"; }
      "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION" >> "$log" 2>&1 \
        || { tail -30 "$log" >&2; rm -rf "$dir"; die "installing uv $UV_VERSION failed"; }
    fi
  ) 9> "$CACHE_DIR/uv-$UV_VERSION.lock"
  "$UV" --version >/dev/null 2>&1 || die "uv $UV_VERSION is not usable in $dir"
}

uv_run() {
  # uv for this project: the virtualenv at $VENV, the machine's Python (uv downloads none), no configuration files
  # of the user's, so every machine resolves and installs alike.
  ensure_uv
  UV_PROJECT_ENVIRONMENT="$VENV" UV_PYTHON_DOWNLOADS=never UV_NO_CONFIG=1 "$UV" "$@"
}

ensure_venv() {
  # Installs exactly what uv.lock pins (the project editable, with its test and dev extras) into $VENV, whenever
  # uv.lock, pyproject.toml or the uv version changed since the last install; otherwise does nothing.
  local stamp="$VENV/.installed-lock" want
  [ -f "$ROOT/uv.lock" ] || die "uv.lock is missing: run scripts/lock and commit uv.lock"
  want="$(printf 'uv %s\n' "$UV_VERSION"; sha256sum "$ROOT/pyproject.toml" "$ROOT/uv.lock" | cut -d' ' -f1)"
  if [ -x "$VENV/bin/python" ] && [ "$want" = "$(cat "$stamp" 2>/dev/null)" ]; then return 0; fi
  mkdir -p "$RUN_DIR"
  ensure_uv
  # The lock must answer pyproject.toml as it is now; an install never re-resolves on its own.
  if ! (cd "$ROOT" && uv_run lock --check --python "$(find_python)") > "$RUN_DIR/uv-install.log" 2>&1; then
    tail -5 "$RUN_DIR/uv-install.log" >&2
    die "uv.lock does not match pyproject.toml: run scripts/lock (then scripts/test) and commit uv.lock"
  fi
  log "installing the locked packages into $VENV"
  (cd "$ROOT" && uv_run sync --frozen --all-extras --python "$(find_python)") >> "$RUN_DIR/uv-install.log" 2>&1 \
    || { tail -30 "$RUN_DIR/uv-install.log" >&2; die "installing from uv.lock failed"; }
  printf '%s\n' "$want" > "$stamp"
}

static_checks() {
  # The checks that need neither Kafka nor a database, run before any test: ruff (lint), mypy (types) and
  # lint-imports (the layer contracts), each configured in pyproject.toml; seconds in all. Each runs, and prints
  # what it finds only when it fails; if any failed, the run stops here, naming them, before any test starts.
  local failed="" check output
  for check in "ruff check" "mypy" "lint-imports"; do
    # $check unquoted on purpose: "ruff check" is a program and its subcommand.
    # shellcheck disable=SC2086
    if ! output="$("$VENV/bin/"$check 2>&1)"; then
      printf '%s\n' "$output" >&2
      failed="${failed:+$failed, }$check"
    fi
  done
  [ -z "$failed" ] || die "static checks failed: $failed; no test ran. Each runs alone from the repository root:" \
    ".venv/bin/ruff check, .venv/bin/mypy, .venv/bin/lint-imports"
  log "static checks passed: ruff check, mypy, lint-imports"
}

free_port() {
  "$(find_python)" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
