# Shared by the scripts in this folder: where things live, and the idempotent setup steps.
# Sourced, not run. Every path a script writes is below .run/ (state) or the cache (downloads), both outside git.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${LEDGER_VENV:-$ROOT/.venv}"
RUN_DIR="${LEDGER_RUN_DIR:-$ROOT/.run}"
CACHE_DIR="${LEDGER_CACHE_DIR:-$HOME/.cache/bpjs-ledger}"
PYTHON_MIN="3.11"
APT_UPDATED=""

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

apt_install() {
  # Debian's packages, installed only when missing. apt-get update runs at most once per script run.
  command -v apt-get >/dev/null || die "cannot install $* : no apt-get here; install it by hand"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
  if [ -z "$APT_UPDATED" ]; then $sudo apt-get update -qq >/dev/null; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
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

ensure_venv() {
  # Creates the virtualenv, then (re)installs the project whenever pyproject.toml changed since the last install.
  local stamp="$VENV/.installed-pyproject"
  if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$(find_python)" -m venv "$VENV" || { apt_install python3-venv; "$(find_python)" -m venv "$VENV"; }
  fi
  if ! cmp -s "$ROOT/pyproject.toml" "$stamp"; then
    log "installing the project and its test extras into $VENV"
    mkdir -p "$RUN_DIR"
    { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -e "$ROOT[test]"; } \
      > "$RUN_DIR/pip-install.log" 2>&1 || { tail -30 "$RUN_DIR/pip-install.log" >&2; die "pip install failed"; }
    cp "$ROOT/pyproject.toml" "$stamp"
  fi
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
