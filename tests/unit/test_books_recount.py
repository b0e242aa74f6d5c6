"""The auditor's recount of the trial balance (`ledger.audit.recount.Recount.trial_balance`, in `ledger audit as-of`):
from the envelopes alone, with code of its own, compared per branch and account with the general-ledger projection's,
on generated histories (collections on and off, with reversals of lines, claims and settlements, refunds) and on the
collections history with money held and matched later, payments without a bill and their reversal
(`tests/support/collections_history.py`). The view stores are built without Kafka (`tests/support/views.py`)."""

from __future__ import annotations

import random
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.audit.recount import Difference, Recount, compare_as_of
from ledger.books import ACCOUNTS
from ledger.commands import HoldMoney, MatchMoney, RefundMoney, Reverse
from ledger.errors import NotProjected
from ledger.generator import BranchPlan, generate_branch
from projections.store import ViewStore
from tests.support.collections import bill_pay_late_and_refund, collections_with_reversals, wage_raised_back
from tests.support.collections_history import BRANCH, HELD, NPP, record_collections, record_held_and_unbilled
from tests.support.scenario import register
from tests.support.views import TEST_NIK_KEY, project, published

TODAY = date(2026, 1, 20)
BEKASI = BranchPlan(employers=5, members=120, bpu_members=15, months=14, first_month="2024-06", collections=True,
                    budget_members=5)
# Before and after the JKP recomposition (Feb 2021): lines without and with JKP splits, paid without a bill.
DEPOK = BranchPlan(branch="DEPOK", employers=3, members=40, bpu_members=5, months=6, first_month="2020-11", seed=3,
                   first_npp=20_100_001, first_kpj=17_200_000_001)
TOPIC = "books-recount"
ADJUSTED_NPP, ADJUSTED_KPJ = "39000002", "15900000002"


def ledger_at(today: list[date]) -> Ledger:
    return Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: today[0], nik_key=TEST_NIK_KEY)


def store_of(app: Ledger, path: Path) -> tuple[ViewStore, list[dict[str, Any]]]:
    records = published(app)
    store = ViewStore("sqlite", sqlite_path=path)
    project(store, records)
    return store, [env for env, _ in records]


def recount(envelopes: list[dict[str, Any]], on: date) -> Recount:
    counted = Recount(on)
    for env in envelopes:
        counted.add(env)
    counted.finish()
    return counted


def corrections(app: Ledger) -> dict[str, dict[str, Any]]:
    """Reversals of every kind on the generated history: a line paid without a bill after Feb 2021 (JKP splits), a
    BPU line, a JHT claim and a bill's settlement; and a refund of a payer's credit."""
    envelopes = [env for env, _ in published(app)]
    reversed_ = {
        "pu": next(e for e in envelopes if e["type"] == "ContributionPaid" and e["branch"] == DEPOK.branch
                   and e["data"]["segment"] == "PU" and e["data"]["jkp_from_jkk"] > 0),
        "bpu": next(e for e in envelopes if e["type"] == "ContributionPaid" and e["data"]["segment"] == "BPU"
                    and e["branch"] == DEPOK.branch),
        "claim": next(e for e in envelopes if e["type"] == "ClaimPaid" and e["data"]["program"] == "JHT"),
        "settlement": [e for e in envelopes if e["type"] == "BillSettled" and e["data"]["npp"]][-1],
    }
    for days, env in enumerate(reversed_.values(), start=3):
        app.execute(Reverse(event_id=env["event_id"], reason="books recount test",
                            reversed_on=date.fromisoformat(env["effective_date"]) + timedelta(days=days)))
    app.execute(RefundMoney.build(npp=reversed_["settlement"]["data"]["npp"], amount=1_000,
                                  refunded_on=date(2025, 12, 30), reason="books recount test"))
    # Another payer: a bill paid late and its change refunded, then an adjustment bill (ContributionAdjusted lines,
    # with JKP splits of their own); a settlement reversed and settled again, a receipt returned; money held and
    # matched later (counted as the payer's from the day it arrived).
    register(app, ADJUSTED_NPP, registered_on=date(2024, 1, 2))
    collected = bill_pay_late_and_refund(app, npp=ADJUSTED_NPP, kpj=ADJUSTED_KPJ, month="2024-03",
                                         reference="BNI-240520-7")
    wage_raised_back(app, collected, npp=ADJUSTED_NPP, kpj=ADJUSTED_KPJ, month="2024-03", reference="BNI-240520-8")
    collections_with_reversals(app)
    app.execute(HoldMoney(reference="BNI-1", branch=BEKASI.branch, amount=50_000, received_on=date(2024, 8, 2)))
    app.execute(MatchMoney(reference="BNI-1", npp=ADJUSTED_NPP, identified_on=date(2024, 9, 3)))
    app.execute(HoldMoney(reference="BNI-2", branch=DEPOK.branch, amount=70_000, received_on=date(2021, 5, 2)))
    return reversed_


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    app = ledger_at([TODAY])
    generate_branch(app, BEKASI)
    generate_branch(app, DEPOK)
    reversed_ = corrections(app)
    path = tmp_path_factory.mktemp("books-recount") / "views.db"
    store, envelopes = store_of(app, path)
    return {"store": store, "envelopes": envelopes, "path": path, "reversed": reversed_}


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    today = [date(2024, 1, 1)]
    app = ledger_at(today)
    record_collections(app, lambda on: today.__setitem__(0, on))
    payments = record_held_and_unbilled(app, lambda on: today.__setitem__(0, on))
    store, envelopes = store_of(app, tmp_path_factory.mktemp("books-collected") / "views.db")
    return {"store": store, "envelopes": envelopes, "payments": payments}


def month_ends(first: date, last: date) -> list[date]:
    ends, on = [], first
    while on <= last:
        following = date(on.year + on.month // 12, on.month % 12 + 1, 1)
        ends.append(following - timedelta(days=1))
        on = following
    return ends


def test_the_recount_agrees_with_the_general_ledger_at_every_month_end(generated: dict[str, Any]) -> None:
    store, envelopes = generated["store"], generated["envelopes"]
    for on in [*month_ends(date(2016, 10, 1), date(2025, 12, 31)), TODAY]:
        report = compare_as_of(recount(envelopes, on), store, TOPIC)
        assert (report.ok, report.differences, report.books_problems) == (True, [], []), on
    assert report.trial_balances == 2
    # The figures compared are not trivially zero: every kind of account is reached.
    books = compare_as_of(recount(envelopes, TODAY), store, TOPIC).books
    reached = {code for balances in books.values() for code in balances}
    assert reached >= {"1110", "1120", "1130", "1190", "1200", "2100", "2150", "2200", "2300", "2400", "3100", "3200",
                       "3300", "3410", "3420", "4100", "5100", "5200", "5400"}, reached
    assert "ContributionAdjusted" in {env["type"] for env in envelopes}
    assert books[DEPOK.branch]["2150"] == books[DEPOK.branch]["1130"] == 70_000  # BNI-2, never matched
    pu = generated["reversed"]["pu"]
    assert books[DEPOK.branch]["2400"] >= pu["data"]["total"] > 0  # owed back: lines paid without a bill, reversed


def test_a_reversal_takes_back_its_lines_jkp_splits(generated: dict[str, Any]) -> None:
    """`ContributionReversed` does not carry the splits: the recount remembers them by the line's event id."""
    pu = generated["reversed"]["pu"]
    (reversal,) = [e for e in generated["envelopes"]
                   if e["type"] == "ContributionReversed" and e["data"]["reverses"] == pu["event_id"]]
    on = date.fromisoformat(reversal["effective_date"])
    before, after = (recount(generated["envelopes"], day).trial_balance()[DEPOK.branch]
                     for day in (on - timedelta(days=1), on))
    assert before["3410"] - after["3410"] == pu["data"]["jkp_from_jkk"] > 0
    assert before["3420"] - after["3420"] == pu["data"]["jkp_from_jkm"]
    assert before["2200"] - after["2200"] == sum(pu["data"]["shares"]["JHT"].values())
    assert after["2400"] - before["2400"] == pu["data"]["total"]
    for day in (on - timedelta(days=1), on):
        assert compare_as_of(recount(generated["envelopes"], day), generated["store"], TOPIC).ok


def test_the_order_of_the_envelopes_does_not_change_the_trial_balance(generated: dict[str, Any]) -> None:
    envelopes = list(generated["envelopes"])
    expected = recount(envelopes, TODAY).trial_balance()
    random.Random(18).shuffle(envelopes)
    assert recount(envelopes, TODAY).trial_balance() == expected


def test_held_money_counts_until_matched_from_the_day_it_arrived(collected: dict[str, Any]) -> None:
    """HELD-1 and HELD-2 arrive on 07-01, HELD-1 is matched on 07-05 (its receipt dated 07-01): in the books HELD-1 is
    the employer's from 07-01, so only HELD-2 is ever in suspense."""
    store, envelopes = collected["store"], collected["envelopes"]
    payments = collected["payments"]
    unbilled = payments["2024-04"]["total"]
    expected = {  # date: suspense (and bank: unidentified), owed back
        date(2024, 6, 30): (0, 0), date(2024, 7, 1): (HELD["HELD-2"], 0), date(2024, 7, 5): (HELD["HELD-2"], 0),
        date(2024, 7, 14): (HELD["HELD-2"], 0), date(2024, 7, 15): (HELD["HELD-2"], unbilled),
        date(2024, 7, 20): (HELD["HELD-2"], unbilled), date(2024, 12, 31): (HELD["HELD-2"], unbilled)}
    for on, (held, owed) in expected.items():
        report = compare_as_of(recount(envelopes, on), store, TOPIC)
        assert (report.ok, report.differences) == (True, []), on
        books = report.books.get(BRANCH, {})
        assert (books.get("2150", 0), books.get("1130", 0), books.get("2400", 0)) == (held, held, owed), on
        assert books.get("2190", 0) == 0 and books["1200"] == books["2300"], on
    # The February settlement reversed on 07-20: its bill is receivable again, its money the employer's credit.
    before, after = (compare_as_of(recount(envelopes, on), store, TOPIC).books[BRANCH]
                     for on in (date(2024, 7, 19), date(2024, 7, 20)))
    assert after["1200"] - before["1200"] == after["2300"] - before["2300"] > 0
    assert after["2100"] - before["2100"] > after["1200"] - before["1200"]  # the bill and its fine
    assert before.get("2400", 0) == after.get("2400", 0)  # a bill's lines are not owed back: the credit has them
    assert NPP  # the employer of the history


def test_a_tampered_ledger_total_is_named_with_its_branch_and_account(generated: dict[str, Any],
                                                                     tmp_path: Path) -> None:
    path = tmp_path / "views.db"
    with sqlite3.connect(generated["path"]) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    store = ViewStore("sqlite", sqlite_path=path)
    on = date(2025, 6, 30)
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT live_version FROM projection_registry WHERE name = 'general_ledger'").fetchone()[0]
        totals = f"general_ledger_v{version}_totals"
        db.execute(f"UPDATE {totals} SET credit = credit + 1234 WHERE rowid = (SELECT MIN(rowid) FROM {totals} "
                   f"WHERE branch = ? AND account = '2200' AND credit > 0 AND on_date <= ?)",
                   (DEPOK.branch, on.isoformat()))
    counted = recount(generated["envelopes"], on)
    jht = counted.trial_balance()[DEPOK.branch]["2200"]
    report = compare_as_of(counted, store, TOPIC)
    assert not report.ok and report.differences_found == 1
    assert report.differences == [Difference(f"branch {DEPOK.branch}", "books.2200 (jht)", jht, jht + 1234)]
    assert str(report.differences[0]) == (f"branch {DEPOK.branch}: books.2200 (jht): topic {jht:,}, projection "
                                          f"{jht + 1234:,}")
    assert ACCOUNTS["2200"].slug == "jht"


def test_a_general_ledger_not_built_is_named(generated: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "views.db"
    with sqlite3.connect(generated["path"]) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM projection_registry WHERE name = 'general_ledger'")
    with pytest.raises(NotProjected, match="the general_ledger projection has not been built yet"):
        compare_as_of(recount(generated["envelopes"], TODAY), ViewStore("sqlite", sqlite_path=path), TOPIC)


def test_an_unbalanced_recount_is_a_problem() -> None:
    books = {"A": dict.fromkeys(ACCOUNTS, 0), "B": dict.fromkeys(ACCOUNTS, 0)}
    books["A"]["1110"], books["B"]["2100"] = 1_000, 1_000  # money in one branch, the payer's credit in another
    assert Recount.unbalanced(books) == []
    books["B"]["2100"] = 999
    assert Recount.unbalanced(books) == [
        "the trial balance recounted from the topic does not balance: debits 1,000, credits 999"]
