"""The journal entry of every event type that posts (`ledger.books`), worked to the rupiah as an accountant writes
it, from a real history written through the ledger (tests/support/books_history.py: one employer, one member at
Rp5,000,000, risk class low); the general-ledger projection books the same legs on the right dates; the event types
that do not post make no entry; and the chart of accounts as dated data."""

from __future__ import annotations

from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.books import (
    ACCOUNTS,
    BY_SLUG,
    CONTRIBUTION_SIGNS,
    JKP_START,
    LEGS,
    NO_PROGRAM,
    NORMAL_SIDE,
    POSTING_TYPES,
    Leg,
    account,
    chart,
    contribution_legs,
    entry_reference,
)
from ledger.events import EVENT_TYPES
from ledger.generator import BranchPlan
from ledger.rules import LEDGER_EPOCH
from projections.catalog import PROJECTIONS
from projections.general_ledger import line_legs
from projections.store import ViewStore, table_name
from tests.support.books_history import BUDI, JANUARY, JANUARY_ADJUSTMENT, MARCH, NPP, books_history
from tests.support.views import project, projected_store, published

Records = list[tuple[dict[str, Any], bytes]]


def dr(code: str, amount: int, program: str = NO_PROGRAM) -> Leg:
    return (code, program, amount)


def cr(code: str, amount: int, program: str = NO_PROGRAM) -> Leg:
    return (code, program, -amount)


@pytest.fixture(scope="module")
def records() -> Records:
    return published(books_history().app)


@pytest.fixture(scope="module")
def store(records: Records, tmp_path_factory: pytest.TempPathFactory) -> ViewStore:
    views = ViewStore("sqlite", sqlite_path=tmp_path_factory.mktemp("books") / "views.db")
    project(views, records)
    return views


def the(records: Records, kind: str, nth: int = 0, **fields: Any) -> dict[str, Any]:
    """The `nth` envelope of type `kind` whose data has `fields`."""
    found = [env for env, _ in records if env["type"] == kind
             and all(env["data"].get(k) == v for k, v in fields.items())]
    return found[nth]


def entry(records: Records, env: dict[str, Any]) -> list[Leg]:
    """The event's entry by the rules of `ledger.books`: a reversal's JKP splits are its payment's."""
    kind, data = env["type"], env["data"]
    if kind not in CONTRIBUTION_SIGNS:
        return LEGS[kind](data)
    paid = data if kind != "ContributionReversed" else next(
        e["data"] for e, _ in records if e["event_id"] == data["reverses"])
    return contribution_legs(data, CONTRIBUTION_SIGNS[kind], paid["jkp_from_jkk"], paid["jkp_from_jkm"])


# The January 2024 line at Rp5,000,000, 3 months late: JHT 5.7% = 285,000; JKK 0.54% (risk low) = 27,000 of which the
# JKP share 0.14% = 7,000; JKM 0.3% = 15,000 of which the JKP share 0.10% = 5,000; JP 3% = 150,000; the fine
# 3 x 2% x 477,000 = 28,620; total 505,620.
JANUARY_FUNDS = [cr("2200", 285_000, "JHT"), cr("3100", 20_000, "JKK"), cr("3410", 7_000, "JKK"),
                 cr("3200", 10_000, "JKM"), cr("3420", 5_000, "JKM"), cr("3300", 150_000, "JP"), cr("4100", 28_620)]

# (what, the event: type, nth of its type, data fields), the entry as an accountant writes it.
WORKED = [
    ("a bill, the day it counts from: receivable against billed-not-yet-paid",
     ("BillClosed", 0, {"bill_id": JANUARY}), [dr("1200", 477_000), cr("2300", 477_000)]),
    ("money from the employer: the bank against the payer's credit",
     ("MoneyReceived", 0, {"reference": "REF-1"}), [dr("1110", 600_000), cr("2100", 600_000)]),
    ("the bill settled from the credit, with its fine: the receivable cleared, the payment into clearing",
     ("BillSettled", 0, {"bill_id": JANUARY}),
     [dr("2100", 505_620), dr("2300", 477_000), cr("1200", 477_000), cr("2190", 505_620)]),
    ("the bill's member line empties the clearing account into JHT, the funds (JKP recomposed) and the fine",
     ("ContributionPaid", 0, {"payment_id": JANUARY}), [dr("2190", 505_620), *JANUARY_FUNDS]),
    ("the settlement reversed: the bill is receivable again; what its line owes back is the payer's credit",
     ("SettlementReversed", 0, {"bill_id": JANUARY}),
     [dr("1200", 477_000), dr("2400", 505_620), cr("2300", 477_000), cr("2100", 505_620)]),
    ("the bill's line reversed: the funds debited back (JKP splits of the payment), owed back to the payer",
     ("ContributionReversed", 0, {"month": "2024-01"}),
     [cr("2400", 505_620), *[(code, program, -amount) for code, program, amount in JANUARY_FUNDS]]),
    ("the bill settled again from the credit",
     ("BillSettled", 1, {"bill_id": JANUARY}),
     [dr("2100", 505_620), dr("2300", 477_000), cr("1200", 477_000), cr("2190", 505_620)]),
    ("credit refunded: out of the payer's credit and the bank",
     ("MoneyRefunded", 0, {}), [dr("2100", 84_840), cr("1110", 84_840)]),
    ("a receipt returned whole (the bank's error)",
     ("ReceiptReturned", 0, {"reference": "REF-3"}), [dr("2100", 2_500_000), cr("1110", 2_500_000)]),
    ("money naming no known payer: the bank's unidentified credits against suspense",
     ("MoneyUnidentified", 0, {"reference": "HELD-1"}), [dr("1130", 300_000), cr("2150", 300_000)]),
    ("the held money matched: out of suspense and unidentified (its receipt books the payer's bank and credit)",
     ("MoneyIdentified", 0, {"reference": "HELD-1"}), [dr("2150", 300_000), cr("1130", 300_000)]),
    ("the matched money's receipt, dated the day it arrived",
     ("MoneyReceived", 0, {"reference": "HELD-1"}), [dr("1110", 300_000), cr("2100", 300_000)]),
    ("a payment without a bill (February, 3 months late): the bank against clearing",
     ("ContributionPaymentReceived", 0, {}), [dr("1110", 505_620), cr("2190", 505_620)]),
    ("its member line",
     ("ContributionPaid", 0, {"month": "2024-02"}), [dr("2190", 505_620), *JANUARY_FUNDS]),
    ("the payment reversed whole: its line debits the funds back, owed back to the employer",
     ("ContributionReversed", 0, {"month": "2024-02"}),
     [cr("2400", 505_620), *[(code, program, -amount) for code, program, amount in JANUARY_FUNDS]]),
    ("the adjustment bill (wage raised to Rp6,000,000 back into January: 9.54% of 1,000,000)",
     ("BillClosed", 0, {"bill_id": JANUARY_ADJUSTMENT}), [dr("1200", 95_400), cr("2300", 95_400)]),
    ("its line, 4 months late (fine 4 x 2% x 95,400 = 7,632); the JKP wage is capped at Rp5,000,000: no JKP more",
     ("ContributionAdjusted", 0, {}),
     [dr("2190", 103_032), cr("2200", 57_000, "JHT"), cr("3100", 5_400, "JKK"), cr("3200", 3_000, "JKM"),
      cr("3300", 30_000, "JP"), cr("4100", 7_632)]),
    ("March at the new wage, settled late when the rest of the money came (fine 3 x 2% x 572,400 = 34,344)",
     ("BillSettled", 0, {"bill_id": MARCH}),
     [dr("2100", 606_744), dr("2300", 572_400), cr("1200", 572_400), cr("2190", 606_744)]),
    ("March's line: JHT 342,000, JKK 32,400 (JKP 7,000), JKM 18,000 (JKP 5,000), JP 180,000",
     ("ContributionPaid", 0, {"payment_id": MARCH}),
     [dr("2190", 606_744), cr("2200", 342_000, "JHT"), cr("3100", 25_400, "JKK"), cr("3410", 7_000, "JKK"),
      cr("3200", 13_000, "JKM"), cr("3420", 5_000, "JKM"), cr("3300", 180_000, "JP"), cr("4100", 34_344)]),
    ("a JKK claim paid: the JKK fund's expense, from the benefits bank account",
     ("ClaimPaid", 0, {}), [dr("5200", 1_500_000, "JKK"), cr("1190", 1_500_000, "JKK")]),
    ("the claim reversed", ("ClaimReversed", 0, {}), [cr("5200", 1_500_000, "JKK"), dr("1190", 1_500_000, "JKK")]),
    # Month-ends 2024: April 285,000; May, June 342,000; July to December 684,000: average 422,750; 5% of it is
    # 21,137.5, half up 21,138.
    ("the 2024 yield credited to the member's JHT", ("YieldCredited", 0, {}),
     [dr("5100", 21_138, "JHT"), cr("2200", 21_138, "JHT")]),
]


@pytest.mark.parametrize(("what", "event", "expected"), WORKED, ids=[w[0][:50] for w in WORKED])
def test_the_entry_of_each_event_to_the_rupiah(records: Records, what: str, event: tuple[str, int, dict[str, Any]],
                                               expected: list[Leg]) -> None:
    kind, nth, fields = event
    env = the(records, kind, nth, **fields)
    legs = entry(records, env)
    assert Counter(legs) == Counter(expected), what
    assert sum(amount for _, _, amount in legs) == 0
    assert sum(a for _, _, a in legs if a > 0) == -sum(a for _, _, a in legs if a < 0) > 0
    assert all(code in ACCOUNTS for code, _, _ in legs)
    assert all(amount != 0 for _, _, amount in legs)


def test_the_worked_examples_cover_every_posting_type() -> None:
    assert {kind for _, (kind, _, _), _ in WORKED} == POSTING_TYPES


def test_the_projection_books_each_worked_entry_on_its_day(records: Records, store: ViewStore) -> None:
    journal = _journal(store)
    for what, (kind, nth, fields), expected in WORKED:
        env = the(records, kind, nth, **fields)
        booked = journal.pop(env["event_id"])
        assert Counter(leg for leg, _ in booked) == Counter(expected), what
        # A match is booked on the day its money arrived, every other entry on its event's effective date.
        days = {on for _, on in booked}
        assert days == {"2024-06-03" if kind == "MoneyIdentified" else env["effective_date"]}, what
    # The entries not among the worked examples are of the same kinds: they balance too.
    assert all(sum(amount for (_, _, amount), _ in legs) == 0 for legs in journal.values())
    posting = [env for env, _ in records if env["type"] in POSTING_TYPES]
    assert len(journal) + len(WORKED) == len(posting)


def test_the_event_types_that_do_not_post_make_no_entry(records: Records, store: ViewStore,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    not_posting = set(EVENT_TYPES) - POSTING_TYPES
    assert not_posting == {"EmployerRegistered", "EmployerRiskClassChanged", "WorkersJoined", "MemberEnrolled",
                           "MemberWageChanged", "MemberExited", "BillLinesAdded"}
    assert set(EVENT_TYPES) >= POSTING_TYPES
    assert not (not_posting & (set(LEGS) | set(CONTRIBUTION_SIGNS)))
    ids = {env["event_id"] for env, _ in records if env["type"] in not_posting}
    assert {env["type"] for env, _ in records if env["event_id"] in ids} == {
        "EmployerRegistered", "WorkersJoined", "MemberEnrolled", "MemberWageChanged", "BillLinesAdded"}
    assert not ids & set(_journal(store))
    # Those events alone, applied to the general ledger: every table of the books stays empty.
    alone = ViewStore("sqlite", sqlite_path=tmp_path_factory.mktemp("books-none") / "views.db")
    view = PROJECTIONS["general_ledger"]
    with alone.transaction() as tx:
        view.create(tx, 1, indexes=True)
        view.apply(tx, 1, [env for env, _ in records if env["event_id"] in ids])
        view.check(tx, 1)
        for table in ("lines", "legs", "totals", "clearing", "held"):
            assert tx.all(f"SELECT * FROM {table_name('general_ledger', 1, table)}") == [], table


def test_the_trial_balance_after_the_history(store: ViewStore) -> None:
    """Every account's balance at the end, from the worked entries: what the history leaves."""
    with store.reading() as tx:
        balances = dict(tx.all(f"SELECT account, SUM(debit) - SUM(credit) FROM "
                               f"{table_name('general_ledger', 1, 'totals')} GROUP BY account "
                               f"HAVING SUM(debit) != SUM(credit)"))
    money_in = 600_000 + 100_000 + 2_500_000 + 300_000 + 100_000 + 250_000 + 505_620  # receipts and the payment
    money_out = 84_840 + 2_500_000  # refunded, returned
    # Zero, so absent: every bill settled (receivable, billed), the held money matched (1130, 2150), every payment's
    # lines in (clearing), the claim reversed (1190, 5200), January's line owed back moved to the credit (2400).
    assert balances == {
        "1110": money_in - money_out,
        "2100": -49_764,  # the credit left after March: 656,508 - 606,744
        "2200": -(285_000 + 57_000 + 342_000 + 21_138),
        "2400": -505_620,  # the payment without a bill reversed: owed back to the employer
        "3100": -(20_000 + 5_400 + 25_400),
        "3410": -(7_000 + 7_000),
        "3200": -(10_000 + 3_000 + 13_000),
        "3420": -(5_000 + 5_000),
        "3300": -(150_000 + 30_000 + 180_000),
        "4100": -(28_620 + 7_632 + 34_344),
        "5100": 21_138,
    }
    assert sum(balances.values()) == 0


def test_hand_built_events_a_self_paying_member_a_jht_claim_a_line_before_jkp() -> None:
    received = EVENT_TYPES["MoneyReceived"](reference="BCA-9", npp=None, kpj=BUDI, branch="BEKASI-KOTA",
                                            payer="member", amount=36_800, received_on=date(2024, 3, 1))
    assert LEGS["MoneyReceived"](received.model_dump(mode="json")) == [dr("1120", 36_800), cr("2100", 36_800)]
    refunded = EVENT_TYPES["MoneyRefunded"](refund_id="R-1", npp=None, kpj=BUDI, branch="BEKASI-KOTA", amount=800,
                                            refunded_on=date(2024, 3, 2), reason="overpaid")
    assert LEGS["MoneyRefunded"](refunded.model_dump(mode="json")) == [dr("2100", 800), cr("1120", 800)]
    claim = EVENT_TYPES["ClaimPaid"](claim_id="C-1", kpj=BUDI, branch="BEKASI-KOTA", program="JHT", kind="full",
                                     incident_date=date(2025, 7, 31), paid_on=date(2025, 8, 31),
                                     beneficiary="self", amount=2_052_000, statutory_amount=None)
    # A JHT claim pays the member's own balance out: the JHT liability, not an expense.
    assert LEGS["ClaimPaid"](claim.model_dump(mode="json")) == [dr("2200", 2_052_000, "JHT"),
                                                                cr("1190", 2_052_000, "JHT")]
    assert entry_reference("ClaimPaid", claim.model_dump(mode="json")) == "C-1"
    # November 2016 at Rp5,000,000 (no JKP yet), paid on time: no JKP legs, no fine leg.
    line = EVENT_TYPES["ContributionPaid"](
        kpj=BUDI, npp=NPP, branch="BEKASI-KOTA", segment="PU", month="2016-11", paid_on=date(2016, 12, 10),
        payer="employer", payment_id="P-1", wage=5_000_000,
        shares={"JHT": {"employer": 185_000, "worker": 100_000}, "JKK": {"employer": 27_000, "worker": 0},
                "JKM": {"employer": 15_000, "worker": 0}, "JP": {"employer": 100_000, "worker": 50_000}},
        months_late=0, fine=0, total=477_000).model_dump(mode="json")
    legs = contribution_legs(line, 1, line["jkp_from_jkk"], line["jkp_from_jkm"])
    assert legs == [dr("2190", 477_000), cr("2200", 285_000, "JHT"), cr("3100", 27_000, "JKK"),
                    cr("3200", 15_000, "JKM"), cr("3300", 150_000, "JP")]
    # The projection's row of the line expands to the same legs.
    amounts = {"jht": 285_000, "jkk": 27_000, "jkp_jkk": 0, "jkm": 15_000, "jkp_jkm": 0, "jp": 150_000, "fine": 0,
               "total": 477_000}
    assert line_legs("ContributionPaid", amounts) == legs
    assert line_legs("ContributionReversed", amounts) == [
        (code if code != "2190" else "2400", program, -amount) for code, program, amount in legs]


# --- the chart ---------------------------------------------------------------------------------------------------

def test_the_chart_opens_the_jkp_accounts_with_the_recomposition() -> None:
    before, after = chart(date(2021, 1, 31)), chart(JKP_START)
    assert date(2021, 2, 1) == JKP_START
    assert {a.code for a in after} - {a.code for a in before} == {"3410", "3420"}
    assert {a.code for a in before} <= {a.code for a in after}
    assert [a.code for a in after] == sorted(a.code for a in after)
    assert chart(date(2030, 1, 1)) == after
    # Before the ledger's first day: the first chart.
    assert chart(date(2000, 1, 1)) == chart(LEDGER_EPOCH) == before
    assert len(before) == 19 and len(after) == 21


def test_accounts_by_code_or_slug_and_an_unknown_one_is_named() -> None:
    assert account("2200") is account("jht") is account(" JHT ") is ACCOUNTS["2200"]
    assert account("jkp-from-jkk").code == "3410" and account("claims-jkk").code == "5200"
    assert len(BY_SLUG) == len(ACCOUNTS)
    for code, acct in ACCOUNTS.items():
        assert account(code) is account(acct.slug) is acct
        assert acct.kind in NORMAL_SIDE and acct.normal_side in {"debit", "credit"} and acct.fed_by
    assert account("1200").normal_side == "debit" and account("2100").normal_side == "credit"
    for text in ("9999", "cash", ""):
        with pytest.raises(ValueError, match=f"unknown account {text!r}"):
            account(text)


def _journal(store: ViewStore) -> dict[str, list[tuple[Leg, str]]]:
    """Every entry the projection booked, by event id: its legs with their date."""
    journal: dict[str, list[tuple[Leg, str]]] = {}
    with store.reading() as tx:
        for event_id, on, account_code, program, amount in tx.all(
                f"SELECT event_id, on_date, account, program, amount FROM "
                f"{table_name('general_ledger', 1, 'legs')}"):
            journal.setdefault(event_id, []).append(((account_code, program, int(amount)), on))
        for event_id, on, kind, *amounts in tx.all(
                f"SELECT event_id, on_date, type, jht, jkk, jkp_jkk, jkm, jkp_jkm, jp, fine, total FROM "
                f"{table_name('general_ledger', 1, 'lines')}"):
            keys = ("jht", "jkk", "jkp_jkk", "jkm", "jkp_jkm", "jp", "fine", "total")
            for leg in line_legs(kind, dict(zip(keys, map(int, amounts), strict=True))):
                journal.setdefault(event_id, []).append((leg, on))
    return journal


# --- a v1 reversal (no employer of its own) ----------------------------------------------------------------------

def _as_v1(env: dict[str, Any]) -> dict[str, Any]:
    if env["type"] != "ContributionReversed":
        return env
    return {**env, "version": 1, "data": {k: v for k, v in env["data"].items() if k not in ("npp", "segment")}}


@pytest.mark.parametrize(("batch", "indexes"), [(1_000, True), (1, True), (1, False)],
                         ids=["its payment in the batch", "its payment found by the index", "waiting for complete"])
def test_a_v1_reversal_books_like_its_v2_twin_tagged_with_its_payments_employer(
        records: Records, tmp_path_factory: pytest.TempPathFactory, batch: int, indexes: bool) -> None:
    view = PROJECTIONS["general_ledger"]
    dumps = []
    for feed in ([env for env, _ in records], [_as_v1(env) for env, _ in records]):
        views = ViewStore("sqlite", sqlite_path=tmp_path_factory.mktemp("v1") / "views.db")
        with views.transaction() as tx:
            view.create(tx, 1, indexes=indexes)
        for start in range(0, len(feed), batch):
            with views.transaction() as tx:
                view.apply(tx, 1, feed[start:start + batch])
        with views.transaction() as tx:
            view.create_indexes(tx, 1)
            view.complete(tx, 1)
            view.check(tx, 1)
            dumps.append({t.name: sorted(tx.all(f"SELECT * FROM {table_name('general_ledger', 1, t.name)}"), key=repr)
                          for t in view.tables})
    assert dumps[1] == dumps[0]
    reversed_lines = [row for row in dumps[1]["lines"] if row[7] == "ContributionReversed"]
    assert len(reversed_lines) == 2 and {row[5] for row in reversed_lines} == {NPP}


def test_no_leg_posts_to_an_account_before_the_chart_opens_it(tmp_path: Path) -> None:
    """A branch across the JKP recomposition (November 2020 to April 2021, late payments of earlier months after
    it): every day's legs go to accounts open that day (`chart`), and the JKP accounts do get legs from February."""
    plan = BranchPlan(branch="DEPOK", employers=2, members=12, bpu_members=3, months=6, first_month="2020-11",
                      collections=True, budget_members=2, seed=3)
    store = projected_store(tmp_path / "views.db", [plan], date(2026, 1, 20))
    with store.reading() as tx:
        used = tx.all(f"SELECT DISTINCT on_date, account FROM {table_name('general_ledger', 1, 'totals')}")
    assert used
    closed = [(on, code) for on, code in used if code not in {a.code for a in chart(date.fromisoformat(on))}]
    assert closed == []
    assert {code for on, code in used if on >= JKP_START.isoformat()} >= {"3410", "3420"}
