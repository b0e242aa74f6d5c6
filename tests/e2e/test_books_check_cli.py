"""`ledger books check --as-of DATE [--json]` as docs/cli.md shows it: one line per check and a verdict, exit 0 when
the books tie; a changed row named with its event and exit 10; the JSON object; a bad date (2), projections not
built (9) or not at the same offsets (9) refused with a clear error and nothing on stdout."""

from __future__ import annotations

import json
import os
import re
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from ledger.application import Ledger
from ledger.generator import BranchPlan, generate_branch
from projections.store import ViewStore, table_name
from tests.support.cli_runner import Cli
from tests.support.collections import collections_with_reversals
from tests.support.views import TEST_NIK_KEY, project, published

pytestmark = pytest.mark.e2e

AS_OF = "2024-12-31"
LINE = re.compile(r"^(ok    |FAIL  )(all branches|[A-Z-]+): .+$")


@pytest.fixture(scope="module")
def projected(tmp_path_factory: pytest.TempPathFactory) -> Path:
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: date(2025, 1, 20),
                 nik_key=TEST_NIK_KEY)
    generate_branch(app, BranchPlan(employers=3, members=30, bpu_members=5, months=6, first_month="2024-06",
                                    collections=True, budget_members=3))
    collections_with_reversals(app)
    path = tmp_path_factory.mktemp("books-check") / "projected.db"
    project(ViewStore("sqlite", sqlite_path=path), published(app))
    return path


@pytest.fixture
def cli(projected: Path, tmp_path: Path) -> Cli:
    views = tmp_path / "views.db"
    with sqlite3.connect(projected) as a, sqlite3.connect(views) as b:
        a.backup(b)
    views.chmod(0o600)
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEDGER_PROJECTION")}
    return Cli(env={**env, "LEDGER_PROJECTION_STORE": "sqlite", "LEDGER_PROJECTION_SQLITE_PATH": str(views)},
               folder=tmp_path)


def change(cli: Cli, sql: str) -> None:
    store = ViewStore("sqlite", sqlite_path=Path(cli.env["LEDGER_PROJECTION_SQLITE_PATH"]))
    with store.transaction() as tx:
        tx.execute(sql.format(**{f"{name}_{table}": table_name(name, ViewStore.live_version(tx, name) or 0, table)
                                 for name, table in (("collections", "refunds"), ("general_ledger", "totals"),
                                                     ("balances", "postings"))}))
    store.close()


def test_the_books_tie_one_line_per_check_and_the_verdict(cli: Cli) -> None:
    lines = cli("books", "check", "--as-of", AS_OF).stdout.splitlines()
    assert lines[0] == "ok    all branches: the general ledger's invariants"
    assert lines[1].startswith("ok    all branches: the journal balances: debits = credits: Rp")
    assert lines[2].startswith("ok    all branches: JHT liability (2200) = members' JHT balances: Rp")
    assert all(LINE.match(line) and line.startswith("ok") for line in lines[:-1]), lines
    assert "ok    BEKASI-KOTA: unapplied receipts (2100) = payers' unapplied credit: Rp0" not in lines  # money
    assert lines[-1] == f"the books balance and tie as of {AS_OF}: all {len(lines) - 1} checks hold"
    assert len(lines) - 1 == 2 + 2 + 9 + 3  # invariants, journal; JHT overall and BEKASI-KOTA; flows; collections


def test_a_changed_row_fails_its_check_naming_the_event_exit_10(cli: Cli) -> None:
    change(cli, "UPDATE {collections_refunds} SET amount = amount + 1000 WHERE npp = '39000003'")
    done = cli("books", "check", "--as-of", AS_OF, expect=10)
    failing = [line for line in done.stdout.splitlines() if line.startswith("FAIL")]
    assert len(failing) == 1
    assert re.fullmatch(r"FAIL  BEKASI-KOTA: unapplied receipts \(2100\) = payers' unapplied credit: ledger "
                        r"Rp[\d,]+, collections -?Rp[\d,]+, differs by Rp1,000; first differs on 2016-12-27 "
                        r"\(event [0-9a-f-]+\.\d+\)", failing[0]), failing[0]
    assert done.stdout.splitlines()[-1] == f"the books do not tie as of {AS_OF}: 1 of 16 checks fail"
    result = cli.json("books", "check", "--as-of", AS_OF, expect=10)
    assert (result["ok"], result["failed"], result["as_of"]) == (False, 1, AS_OF)
    (check,) = [c for c in result["checks"] if not c["ok"]]
    assert (check["branch"], check["against"], check["difference"], check["problem"]) == (
        "BEKASI-KOTA", "collections", 1_000, "first differs on 2016-12-27")
    assert check["event_id"] in failing[0]
    # Before the refund, the books tie.
    assert cli.json("books", "check", "--as-of", "2016-12-26")["ok"] is True


def test_the_json_object(cli: Cli) -> None:
    result = cli.json("books", "check", "--as-of", AS_OF)
    assert set(result) == {"as_of", "versions", "ok", "failed", "checks"}
    assert set(result["versions"]) == {"balances", "branches", "collections", "general_ledger"}
    assert set(result["checks"][0]) == {"check", "branch", "program", "ok", "ledger", "against", "other",
                                        "difference", "event_id", "problem"}
    assert (result["ok"], result["failed"]) == (True, 0)


def test_bad_input_and_projections_not_ready_are_refused(cli: Cli, tmp_path: Path) -> None:
    done = cli("books", "check", "--as-of", "2024-13-01", expect=2)
    assert (done.stdout, done.stderr.strip()) == ("", "error: --as-of must be a date YYYY-MM-DD, got '2024-13-01'")
    assert cli("books", "check", expect=2).stdout == ""
    store = ViewStore("sqlite", sqlite_path=Path(cli.env["LEDGER_PROJECTION_SQLITE_PATH"]))
    with store.transaction() as tx:
        for name, offset in (("balances", 7), ("branches", 7), ("collections", 7), ("general_ledger", 6)):
            ViewStore.save_offsets(tx, name, ViewStore.live_version(tx, name) or 0, {("ledger.events", 0): (offset, 1)})
    store.close()
    done = cli("books", "check", "--as-of", AS_OF, expect=9)
    assert done.stdout == ""
    assert done.stderr.strip() == ("error: the projections have not read the same events (general_ledger is behind on "
                                   "ledger.events partition 0): run `ledger projections run` to bring them to the "
                                   "same offsets, then check again")
    empty = cli.with_env(LEDGER_PROJECTION_SQLITE_PATH=str(tmp_path / "none.db"))
    done = empty("books", "check", "--as-of", AS_OF, expect=9)
    assert done.stderr.strip() == ("error: the balances, branches, collections, general_ledger projections have not "
                                   "been built yet: run `ledger projections run`")
    assert json.loads(empty("books", "check", "--as-of", AS_OF, "--json", expect=9).stdout)["error"]["type"] == \
        "NotProjected"
