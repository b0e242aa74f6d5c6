"""Changes dated back into billed months (issue 17: "a roster or wage change recorded for an already closed month
makes an adjustment bill, never an edit"). A bill is never edited. A lower wage or a lower risk class dated back into
a month already billed would leave the payer owed money, which the ledger cannot record yet: it is refused, naming
the bill and the first date the change may take effect, and nothing is written. A higher one is recorded and leaves
the bill as it was; the month's next close bills the difference in an adjustment bill, whose settlement records a
`ContributionAdjusted` on the month (never a second `ContributionPaid`), counted in the member's balances.

At Rp6,000,000 Budi's month costs JHT 342,000 + JKK 32,400 + JKM 18,000 + JP 180,000 = Rp572,400: Rp95,400 more
(JHT 57,000 = 37,000 employer + 20,000 worker, JKK 5,400, JKM 3,000, JP 30,000 = 20,000 + 10,000).

The scenario of `test_collections`: employer 10012345 (risk class low) employs Budi (15000000001) at Rp5,000,000 a
month from January 2024; Sari (15000000002) is a self-paying BPU member declaring Rp1,000,000.
"""

from __future__ import annotations

from datetime import date

import pytest

from ledger import events as ev
from ledger.commands import ChangeRiskClass, ChangeWage, Reverse
from ledger.domain import bill_lines_id
from ledger.errors import RuleViolation
from ledger.rules import Program, RiskClass, late_fine
from tests.support.scenario import NPP, events_of, register
from tests.unit.test_collections import BUDI, MONTH_DUES, SARI, Books, budi_employed, sari_self_paying


def _wage(books: Books, kpj_: str, wage: int, effective: date) -> dict[str, object]:
    return books.app.execute(ChangeWage.build(kpj=kpj_, wage=wage, effective=effective))


def _jht(books: Books, as_of: date | None = None) -> int:
    return books.app.jht_balance(BUDI, as_of or books.today)


def _risk(books: Books, risk: RiskClass, effective: date) -> dict[str, object]:
    return books.app.execute(ChangeRiskClass.build(npp=NPP, risk_class=risk, effective=effective))


def test_a_lower_wage_dated_back_into_a_billed_month_is_refused_naming_the_bill_and_nothing_is_written() -> None:
    books = budi_employed(date(2024, 3, 4))
    books.close("2024-01")
    books.close("2024-02")
    before = books.contract_events()
    with pytest.raises(RuleViolation) as refused:
        _wage(books, BUDI, 4_000_000, date(2024, 2, 10))
    message = str(refused.value)
    assert f"lower than the Rp5,000,000 billed for 2024-02 in bill {NPP}/2024-02/PU/1" in message
    assert "date the change 2024-03-01 or later" in message
    assert books.contract_events() == before
    assert books.app.member(BUDI).wage_on(date(2024, 2, 29)) == 5_000_000
    # Dated after the last billed month, it is recorded; March is billed at the new wage.
    _wage(books, BUDI, 4_000_000, date(2024, 3, 1))
    books.today = date(2024, 4, 2)
    assert books.close("2024-03")["total"] < MONTH_DUES


def test_a_lower_wage_dated_into_an_unbilled_month_or_a_higher_one_into_a_billed_month_is_recorded() -> None:
    books = budi_employed(date(2024, 3, 4))
    books.close("2024-01")
    # February is not billed: a lower wage from February is recorded and priced by its close.
    _wage(books, BUDI, 4_000_000, date(2024, 2, 1))
    # A higher wage dated back into billed January is recorded; January's bill is not edited.
    _wage(books, BUDI, 6_000_000, date(2024, 1, 15))
    [bill] = books.account_events("BillClosed")
    assert (bill.month, bill.total) == ("2024-01", MONTH_DUES)


def test_a_wage_change_overridden_by_a_later_one_before_the_billed_month_ends_is_recorded() -> None:
    books = budi_employed(date(2024, 3, 4))
    _wage(books, BUDI, 5_000_000, date(2024, 1, 20))
    books.close("2024-01")
    # January is priced at its end by the change of 20 January: one of 10 January does not reach it.
    _wage(books, BUDI, 4_000_000, date(2024, 1, 10))
    [bill] = books.account_events("BillClosed")
    assert bill.total == MONTH_DUES


def test_a_self_paying_members_lower_income_dated_back_into_a_billed_month_is_refused() -> None:
    books = Books(date(2024, 2, 5))
    register(books.app)
    sari_self_paying(books)
    _wage(books, SARI, 2_000_000, date(2024, 1, 1))
    books.close("2024-02", npps=(), kpjs=(SARI,))
    with pytest.raises(RuleViolation, match=rf"Rp2,000,000 billed for 2024-02 in bill {SARI}/2024-02/BPU/1: "
                                            r".* date the change 2024-03-01 or later"):
        _wage(books, SARI, 1_000_000, date(2024, 2, 1))


def test_a_lower_risk_class_dated_back_into_a_billed_month_is_refused_a_higher_one_recorded() -> None:
    books = budi_employed(date(2024, 3, 4))
    books.close("2024-01")
    books.close("2024-02")
    before = books.contract_events()
    with pytest.raises(RuleViolation) as refused:
        _risk(books, RiskClass.VERY_LOW, date(2024, 2, 1))
    assert (f"({RiskClass.VERY_LOW.value}) would price member {BUDI}'s JKK for 2024-02 below what bill "
            f"{NPP}/2024-02/PU/1 billed" in str(refused.value))
    assert "date the change 2024-03-01 or later" in str(refused.value)
    assert books.contract_events() == before
    # Dated after February's first day, it reaches March only, which is not billed.
    _risk(books, RiskClass.VERY_LOW, date(2024, 2, 2))
    # A higher class dated back is recorded; the bills are not edited.
    _risk(books, RiskClass.HIGH, date(2024, 1, 1))
    assert [bill.total for bill in books.account_events("BillClosed")] == [MONTH_DUES, MONTH_DUES]


def test_the_refusal_reads_as_docs_cli_md_quotes_it() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    with pytest.raises(RuleViolation) as refused:
        _wage(books, BUDI, 4_000_000, date(2024, 1, 10))
    with open("docs/cli.md", encoding="utf-8") as docs:
        documented = " ".join(docs.read().split())
    assert f"`{refused.value}`" in documented


RAISE = 95_400  # what Rp6,000,000 costs more than Rp5,000,000 a month
RAISED_SHARES = {"JHT": {"employer": 37_000, "worker": 20_000}, "JKK": {"employer": 5_400, "worker": 0},
                 "JKM": {"employer": 3_000, "worker": 0}, "JP": {"employer": 20_000, "worker": 10_000}}


def test_a_raise_dated_back_into_a_settled_month_is_billed_by_its_next_close_and_settled_as_an_adjustment() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    books.today = date(2024, 2, 10)
    books.receive("BCA-240210-001", MONTH_DUES)
    assert _jht(books) == 285_000
    _wage(books, BUDI, 6_000_000, date(2024, 1, 1))
    assert books.close("2024-01")["total"] == RAISE  # closed again the same day: before the due date, no fine
    _first, adjustment = books.account_events("BillClosed")
    assert (adjustment.bill_id, adjustment.kind, adjustment.total, adjustment.due_date) == (
        f"{NPP}/2024-01/PU/2", ev.BillKind.ADJUSTMENT, RAISE, date(2024, 2, 15))
    [line] = books.app.find(bill_lines_id(adjustment.bill_id)).lines
    assert (line.kpj, line.wage, line.amount, line.adjustment) == (BUDI, 6_000_000, RAISE, True)
    assert {p.value: s.model_dump() for p, s in line.shares.items()} == RAISED_SHARES

    books.receive("BCA-240210-002", RAISE)
    [paid] = events_of(books.app, "ContributionPaid", kpj_=BUDI)  # the month is paid once
    [adjusted] = events_of(books.app, "ContributionAdjusted", kpj_=BUDI)
    assert paid["data"]["payment_id"] == f"{NPP}/2024-01/PU/1"
    data = adjusted["data"]
    assert (data["month"], data["payment_id"], data["paid_on"], data["wage"], data["shares"], data["fine"],
            data["total"]) == ("2024-01", adjustment.bill_id, "2024-02-10", 6_000_000, RAISED_SHARES, 0, RAISE)
    assert _jht(books) == 342_000 == 285_000 + 57_000
    assert books.app.program_balance(books.app.member(BUDI), Program.JP, date(2024, 2, 10)) == 180_000
    # Closed again with nothing changed: nothing more to bill.
    assert books.close("2024-01")["bills"] == 0


def test_a_raise_before_the_first_bill_is_settled_is_billed_apart_and_both_settle_oldest_first() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    _wage(books, BUDI, 6_000_000, date(2024, 1, 31))
    assert books.close("2024-01")["total"] == RAISE
    [first] = books.account_events("BillClosed")[:1]
    assert first.total == MONTH_DUES  # never edited
    books.today = date(2024, 2, 12)
    received = books.receive("BCA-240212-001", MONTH_DUES + RAISE)
    assert received["settled"] == [f"{NPP}/2024-01/PU/1", f"{NPP}/2024-01/PU/2"] and received["unapplied"] == 0
    [paid] = events_of(books.app, "ContributionPaid", kpj_=BUDI)
    [adjusted] = events_of(books.app, "ContributionAdjusted", kpj_=BUDI)
    assert (paid["data"]["total"], adjusted["data"]["total"]) == (MONTH_DUES, RAISE)
    assert _jht(books) == 342_000


def test_an_adjustment_bill_settled_late_carries_the_fine_on_the_difference_only() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    books.today = date(2024, 2, 10)
    books.receive("BCA-240210-001", MONTH_DUES)
    books.today = date(2024, 4, 20)
    _wage(books, BUDI, 6_000_000, date(2024, 1, 1))
    books.close("2024-01")
    # Due 15 February like the month's first bill: on 20 April 3 months late, 3 x 2% x 95,400 = 5,724.
    fine = late_fine(RAISE, 3, date(2024, 2, 15))
    assert fine == 5_724
    short = books.receive("BCA-240420-001", RAISE)
    assert short["bills_settled"] == 0 and short["unapplied"] == RAISE
    rest = books.receive("BCA-240420-002", fine)
    assert rest["bills_settled"] == 1 and rest["unapplied"] == 0
    [settled] = [s for s in books.account_events("BillSettled") if s.bill_id.endswith("/2")]
    assert (settled.months_late, settled.amount, settled.fine, settled.total) == (3, RAISE, fine, RAISE + fine)
    [adjusted] = events_of(books.app, "ContributionAdjusted", kpj_=BUDI)
    assert (adjusted["data"]["months_late"], adjusted["data"]["fine"], adjusted["data"]["total"]) == (
        3, 5_724, 101_124)
    assert _jht(books, date(2024, 4, 19)) == 285_000 and _jht(books, date(2024, 4, 20)) == 342_000


def test_a_higher_risk_class_dated_back_bills_the_jkk_difference() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    _risk(books, RiskClass.MEDIUM, date(2024, 1, 1))  # JKK 0.89% of 5,000,000 = 44,500, was 27,000
    closed = books.close("2024-01")
    assert closed["total"] == 17_500
    [line] = books.app.find(bill_lines_id(closed["first_bills"][0]["bill_id"])).lines
    assert {p.value: (s.employer, s.worker) for p, s in line.shares.items()} == {"JKK": (17_500, 0)}


def test_a_settlement_of_an_adjustment_bill_is_not_reversed() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    _wage(books, BUDI, 6_000_000, date(2024, 1, 1))
    books.close("2024-01")
    books.today = date(2024, 2, 10)
    books.receive("BCA-240210-001", MONTH_DUES + RAISE)
    settlements = books.account().settlements
    adjustment_settlement = next(i for i, s in settlements.items() if s.settled.bill_id.endswith("/2"))
    before = books.contract_events()
    with pytest.raises(RuleViolation, match=rf"adjustment bill {NPP}/2024-01/PU/2, whose 1 adjustment line"):
        books.app.execute(Reverse.build(event_id=adjustment_settlement, reason="recalled",
                                        reversed_on=date(2024, 2, 10)))
    [adjusted] = events_of(books.app, "ContributionAdjusted", kpj_=BUDI)
    with pytest.raises(RuleViolation, match=r"is a ContributionAdjusted; only"):
        books.app.execute(Reverse.build(event_id=adjusted["event_id"], reason="recalled",
                                        reversed_on=date(2024, 2, 10)))
    assert books.contract_events() == before


def test_a_risk_class_raised_and_not_billed_yet_may_be_lowered_back() -> None:
    books = budi_employed(date(2024, 3, 4))
    books.close("2024-01")
    _risk(books, RiskClass.HIGH, date(2024, 1, 1))  # a typo: January is not closed again yet
    _risk(books, RiskClass.LOW, date(2024, 1, 1))  # corrected: January's bill priced low, nothing to adjust
    assert books.close("2024-01")["bills"] == 0
    _risk(books, RiskClass.MEDIUM, date(2024, 1, 1))
    assert books.close("2024-01")["total"] == 17_500  # billed at medium now
    with pytest.raises(RuleViolation, match="below what bill"):
        _risk(books, RiskClass.LOW, date(2024, 1, 1))
