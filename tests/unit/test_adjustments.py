"""Changes dated back into billed months (issue 17: "a roster or wage change recorded for an already closed month
makes an adjustment bill, never an edit"). A bill is never edited. A lower wage or a lower risk class dated back into
a month already billed would leave the payer owed money, which the ledger cannot record yet: it is refused, naming
the bill and the first date the change may take effect, and nothing is written. A higher one is recorded and leaves
the bill as it was (the adjustment bill for the difference is not built yet).

The scenario of `test_collections`: employer 10012345 (risk class low) employs Budi (15000000001) at Rp5,000,000 a
month from January 2024; Sari (15000000002) is a self-paying BPU member declaring Rp1,000,000.
"""

from __future__ import annotations

from datetime import date

import pytest

from ledger.commands import ChangeRiskClass, ChangeWage
from ledger.errors import RuleViolation
from ledger.rules import RiskClass
from tests.support.scenario import NPP, register
from tests.unit.test_collections import BUDI, MONTH_DUES, SARI, Books, budi_employed, sari_self_paying


def _wage(books: Books, kpj_: str, wage: int, effective: date) -> dict[str, object]:
    return books.app.execute(ChangeWage.build(kpj=kpj_, wage=wage, effective=effective))


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
    assert (f"({RiskClass.VERY_LOW.value}) is lower than the low billed for 2024-02 in bill {NPP}/2024-02/PU/1"
            in str(refused.value))
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
