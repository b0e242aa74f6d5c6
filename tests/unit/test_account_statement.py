"""A payer's account statement (`ledger statement`, `ledger.account_statement`), to the rupiah.

Employer 10012345, two members on Rp5,000,000: Rp954,000 billed a month (due the 15th of the next). January is paid
on time, February a month late (fine 2% = Rp19,080), March is settled from credit, that settlement is reversed and
settled again (a month late: Rp19,080), credit is refunded, more money arrives."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from ledger.account_statement import STATEMENT_WIDTH, account_statement, statement_lines
from ledger.commands import CloseBills, EnrollMember, ReceiveMoney, RefundMoney, Reverse
from ledger.domain import payer_account_id
from ledger.errors import InvalidInput, NotFound, RuleViolation
from tests.support.scenario import NPP, enroll, kpj, new_ledger, register, row

BILL = 954_000
FINE = 19_080


@pytest.fixture(scope="module")
def app():
    app = new_ledger()
    register(app)
    enroll(app, kpj(1))
    enroll(app, kpj(2), serial=2)
    for month in ("2024-01", "2024-02", "2024-03"):
        app.execute(CloseBills.build(month=month, npps=[NPP]))
    for reference, amount, on in (("BNI-240210-001", BILL, date(2024, 2, 10)),
                                  ("BNI-240320-002", 2_000_000, date(2024, 3, 20)),
                                  ("BNI-240405-003", 1_000_000, date(2024, 4, 5))):
        app.execute(ReceiveMoney.build(reference=reference, npp=NPP, amount=amount, received_on=on,
                                       payer_name="Ibu Sri Wahyuni"))
    march = list(app.find(payer_account_id(NPP, None)).settlements)[-1]
    app.execute(Reverse(event_id=march, reason="the bank recalled the transfer", reversed_on=date(2024, 4, 20)))
    app.execute(RefundMoney.build(npp=NPP, amount=100_000, refunded_on=date(2024, 4, 25), reason="overpaid",
                                  command_id="refund-1"))
    app.execute(ReceiveMoney.build(reference="BNI-240426-004", npp=NPP, amount=500_000, received_on=date(2024, 4, 26)))
    return app


def statement(app, start: date, end: date, **payer) -> dict:
    return account_statement(app, **({"npp": NPP, "kpj": None} | payer), start=start, end=end)


def test_every_line_with_its_debit_credit_and_running_balance(app):
    result = statement(app, date(2024, 1, 1), date(2024, 4, 30))
    moves = [(r["date"], r["type"], r["debit"], r["credit"], r["balance"]) for r in result["lines"]]
    assert moves == [
        ("2024-02-01", "BillClosed", BILL, 0, BILL),
        ("2024-02-10", "MoneyReceived", 0, BILL, 0),
        ("2024-02-10", "BillSettled", 0, 0, 0),  # on time: no fine
        ("2024-03-01", "BillClosed", BILL, 0, BILL),
        ("2024-03-20", "MoneyReceived", 0, 2_000_000, BILL - 2_000_000),
        ("2024-03-20", "BillSettled", FINE, 0, BILL - 2_000_000 + FINE),  # one month late
        ("2024-04-01", "BillClosed", BILL, 0, 2 * BILL - 2_000_000 + FINE),
        ("2024-04-01", "BillSettled", 0, 0, 2 * BILL - 2_000_000 + FINE),  # from credit, on time
        ("2024-04-05", "MoneyReceived", 0, 1_000_000, 2 * BILL - 3_000_000 + FINE),
        ("2024-04-20", "SettlementReversed", 0, 0, 2 * BILL - 3_000_000 + FINE),  # its fine was 0
        # settled again when BNI-240426-004 arrived, on the day it was reopened (the money was there): 1 month late
        ("2024-04-20", "BillSettled", FINE, 0, 2 * BILL - 3_000_000 + 2 * FINE),
        ("2024-04-25", "MoneyRefunded", 100_000, 0, 2 * BILL - 2_900_000 + 2 * FINE),
        ("2024-04-26", "MoneyReceived", 0, 500_000, 2 * BILL - 3_400_000 + 2 * FINE),
    ]
    assert result["opening_balance"] == 0
    assert (result["total_debit"], result["total_credit"]) == (3 * BILL + 2 * FINE + 100_000, 4_454_000)
    assert result["closing_balance"] == -1_453_840 == 3 * BILL + 2 * FINE + 100_000 - 4_454_000
    # The closing balance is the outstanding bills minus the credit.
    assert (result["bills_open"], result["outstanding"], result["unapplied"]) == (0, 0, 1_453_840)
    assert result["lines"][1]["reference"] == "BNI-240210-001"
    assert all(r["event_id"].startswith(str(payer_account_id(NPP, None))) for r in result["lines"])


def test_a_period_opens_with_the_balance_carried_and_its_totals_add_up(app):
    result = statement(app, date(2024, 3, 15), date(2024, 4, 19))
    assert result["opening_balance"] == BILL  # February's bill, not yet paid
    assert [r["type"] for r in result["lines"]] == ["MoneyReceived", "BillSettled", "BillClosed", "BillSettled",
                                                    "MoneyReceived"]
    assert (result["total_debit"], result["total_credit"]) == (FINE + BILL, 3_000_000)
    assert result["closing_balance"] == BILL + FINE + BILL - 3_000_000 == -1_072_920
    assert (result["bills_open"], result["outstanding"], result["unapplied"]) == (0, 0, 1_072_920)
    empty = statement(app, date(2024, 5, 1), date(2024, 5, 31))
    assert empty["lines"] == [] and empty["opening_balance"] == empty["closing_balance"] == -1_453_840


def test_the_printed_statement_reads_as_a_statement_and_never_shows_who_paid(app):
    result = statement(app, date(2024, 3, 15), date(2024, 4, 19))
    lines = statement_lines(result)
    assert lines[0] == "ACCOUNT STATEMENT  employer 10012345 (PT Maju Jaya), branch BEKASI-KOTA"
    assert lines[3].split() == ["date", "description", "debit", "credit", "balance"]
    assert lines[5].split() == ["2024-03-15", "opening", "balance", "Rp954,000"]
    assert lines[6].split() == ["2024-03-20", "money", "received", "from", "the", "employer", "Rp2,000,000",
                                "-Rp1,046,000"]
    assert lines[7].strip() == "[BNI-240320-002]"
    assert lines[-4].split() == ["totals", "of", "the", "period", "Rp973,080", "Rp3,000,000"]
    assert lines[-3].split() == ["2024-04-19", "closing", "balance", "-Rp1,072,920"]
    assert lines[-1] == "on 2024-04-19: 0 bill(s) open, outstanding Rp0; unapplied money (credit) Rp1,072,920"
    assert max(len(line) for line in lines[2:-1]) <= STATEMENT_WIDTH
    assert "Wahyuni" not in "\n".join(lines) and "Wahyuni" not in json.dumps(result)


def test_a_self_paying_member_has_a_statement_and_a_member_billed_to_an_employer_is_refused(app):
    member = kpj(9)
    app.execute(EnrollMember(member=row(member, 1_000_000, segment="BPU", programs=["JKK", "JKM"], serial=9),
                             npp=None, branch="BEKASI-KOTA", effective=date(2024, 1, 1)))
    app.execute(CloseBills.build(month="2024-01", kpjs=[member]))  # Rp16,800, due 2024-01-15
    result = statement(app, date(2024, 1, 1), date(2024, 1, 31), npp=None, kpj=member)
    assert result["payer"] == {"kind": "member", "npp": None, "kpj": member, "name": None, "branch": "BEKASI-KOTA"}
    assert [(r["type"], r["debit"], r["balance"]) for r in result["lines"]] == [("BillClosed", 16_800, 16_800)]
    assert statement_lines(result)[0] == f"ACCOUNT STATEMENT  self-paying member {member}, branch BEKASI-KOTA"
    with pytest.raises(RuleViolation, match=f"member {kpj(1)} is billed to employer or paying body {NPP}"):
        statement(app, date(2024, 1, 1), date(2024, 1, 31), npp=None, kpj=kpj(1))


def test_bad_periods_and_unknown_payers_are_refused(app):
    with pytest.raises(InvalidInput, match="--from 2024-02-01 is after --to 2024-01-31"):
        statement(app, date(2024, 2, 1), date(2024, 1, 31))
    with pytest.raises(NotFound, match="no employer with NPP 19999999"):
        statement(app, date(2024, 1, 1), date(2024, 1, 31), npp="19999999")
    # A registered employer never billed nor paid has an empty statement.
    register(app, "10054321", name="CV Sinar")
    quiet = statement(app, date(2024, 1, 1), date(2024, 1, 31), npp="10054321")
    assert quiet["lines"] == [] and quiet["closing_balance"] == 0 and quiet["bills_open"] == 0


def test_the_statement_docs_cli_md_shows_is_the_one_printed(app):
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = text.split("ledger statement --npp 10012345 --from 2024-03-15 --to 2024-04-19\n```\n\nprints", 1)[1]
    block = shown.split("```\n", 2)[1].splitlines()
    assert block == statement_lines(statement(app, date(2024, 3, 15), date(2024, 4, 19)))
