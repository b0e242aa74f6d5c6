"""The books' read side (projections/queries.py, "the books") on a generated history of two branches with bills,
money and claims, in a real SQLite view store built without Kafka (tests/support/views.py): the three answers agree
with each other (the trial balance is the journal's legs summed, an account's closing balance its trial-balance
line), and the journal reads the same whatever the size of the chunks it streams in, or the pages it is asked in."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger import books
from ledger.errors import InvalidInput, NotFound, NotProjected
from ledger.generator import BranchPlan
from projections import queries
from projections.store import ViewStore
from tests.support.views import projected_store

FIRST, LAST = date(2024, 6, 1), date(2025, 3, 31)
DEPOK = "DEPOK"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> ViewStore:
    return projected_store(tmp_path_factory.mktemp("books") / "views.db", [
        BranchPlan(employers=3, members=40, bpu_members=6, months=10, first_month="2024-06", collections=True,
                   budget_members=3),
        BranchPlan(branch=DEPOK, employers=2, members=20, bpu_members=3, months=8, first_month="2024-07", seed=3,
                   first_npp=20_100_001, first_kpj=17_200_000_001)], date(2025, 4, 20))


def entries(store: ViewStore, **options: Any) -> list[dict[str, Any]]:
    return list(queries.journal(store, FIRST, LAST, **options))


def test_the_trial_balance_is_the_journals_legs_summed(store: ViewStore) -> None:
    for branch in (None, "BEKASI-KOTA", DEPOK):
        sums: dict[str, int] = defaultdict(int)
        for entry in queries.journal(store, date(2000, 1, 1), LAST, branch=branch):
            assert sum(leg["debit"] - leg["credit"] for leg in entry["legs"]) == 0, entry
            for leg in entry["legs"]:
                sums[leg["account"]] += leg["debit"] - leg["credit"]
        report = queries.trial_balance(store, LAST, branch)
        assert {row["code"]: row["debit"] - row["credit"] for row in report["accounts"]} == \
            {code: sums.get(code, 0) for code in (row["code"] for row in report["accounts"])}
        assert report["balanced"] and report["totals"]["debit"] > 0


def test_an_accounts_closing_balance_is_its_trial_balance_line(store: ViewStore) -> None:
    for code in ("1110", "2100", "2200", "4100"):
        account = books.account(code)
        activity = queries.account_activity(store, account, FIRST, LAST, DEPOK)
        before = queries.trial_balance(store, FIRST - timedelta(days=1), DEPOK)
        after = queries.trial_balance(store, LAST, DEPOK)

        def line(report: dict[str, Any], account: books.Account = account) -> int:
            row = next(r for r in report["accounts"] if r["code"] == account.code)
            return queries.normal_balance(account, row["debits"], row["credits"])

        assert (activity["opening"], activity["closing"]) == (line(before), line(after))
        assert activity["closing"] == activity["opening"] + queries.normal_balance(
            account, activity["debits"], activity["credits"])


@pytest.mark.parametrize("options", [{}, {"branch": DEPOK}, {"account": books.account("fines")},
                                     {"account": books.account("bank-npp"), "branch": "BEKASI-KOTA"},
                                     {"account": books.account("clearing")}])
def test_the_journal_reads_the_same_in_any_chunks_and_pages(store: ViewStore, monkeypatch: pytest.MonkeyPatch,
                                                            options: dict[str, Any]) -> None:
    whole = entries(store, **options)
    assert whole and [(e["date"], e["position"]) for e in whole] == sorted({(e["date"], e["position"]) for e in whole})
    if "account" in options:
        assert all(any(leg["account"] == options["account"].code for leg in e["legs"]) for e in whole)
    if "branch" in options:
        assert {e["branch"] for e in whole} == {options["branch"]}
    monkeypatch.setattr(queries, "JOURNAL_CHUNK_ENTRIES", 7)
    assert entries(store, **options) == whole
    paged: list[dict[str, Any]] = []
    after = None
    while True:
        page = list(itertools.islice(queries.journal(store, FIRST, LAST, after=after, **options), 25))
        paged += page
        if len(page) < 25:
            break
        after = queries.parse_journal_cursor(queries.journal_cursor((page[-1]["date"], page[-1]["position"])))
    assert paged == whole


def test_bad_questions_are_refused(store: ViewStore, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="from 2025-01-02 is after to 2025-01-01"):
        queries.journal(store, date(2025, 1, 2), date(2025, 1, 1))
    with pytest.raises(InvalidInput, match="is after"):
        queries.account_activity(store, books.JHT, date(2025, 1, 2), date(2025, 1, 1))
    with pytest.raises(NotFound, match="unknown branch"):
        queries.trial_balance(store, LAST, "NOWHERE")
    with pytest.raises(NotFound, match="unknown branch"):
        next(queries.journal(store, FIRST, LAST, branch="NOWHERE"))
    for text in ("2025-01-01", "2025-01-01.", "2025-01-01.x", "x.1", "2025-01-01.1234567890123456789"):
        with pytest.raises(ValueError, match=r"a cursor DATE\.POSITION"):
            queries.parse_journal_cursor(text)
    empty = ViewStore("sqlite", sqlite_path=tmp_path / "empty.db")
    with pytest.raises(NotProjected, match="general_ledger projection has not been built"):
        queries.trial_balance(empty, LAST)
