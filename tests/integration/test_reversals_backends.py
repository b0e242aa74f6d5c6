"""Whole-payment reversals on each real event store (an SQLite file and PostgreSQL), at the size of the issue that
asked for them: the city government's payment for its 7,000 contract staff, undone in one command instead of 7,000;
and a bill of 7,000 lines settled, the settlement reversed in one command. Everything is read back by a fresh
`Ledger` (a restart) from the store alone."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.commands import CloseBills, EnrollMembers, PayContribution, ReceiveMoney, RegisterEmployer, Reverse
from ledger.domain import ContributionMonth, PayerAccount, contribution_month_id, payer_account_id
from ledger.errors import AlreadyExists
from tests.integration import test_ledger_backends as backends
from tests.integration.test_ledger_backends import BRANCH, NPP, member_row, stored_events

# The fresh store on each backend, and the ledgers opened on it, as test_ledger_backends.py makes them.
store_env = backends.store_env
open_ledger = backends.open_ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

STAFF = 7_000
LINE = 415_800  # 4,500,000 at very-low risk, Jan 2024: JHT 256,500 + JKK 10,800 + JKM 13,500 + JP 135,000


def city_with_staff(app) -> list[str]:
    app.execute(RegisterEmployer(npp=NPP, name="Pemerintah Kota Bekasi", branch=BRANCH, kind="government",
                                 risk_class="very-low", registered_on=date(2017, 9, 1)))
    rows = [member_row(10_000 + i, wage=4_500_000) for i in range(STAFF)]
    app.execute(EnrollMembers(npp=NPP, effective=date(2024, 1, 1), members=rows))
    return [row.kpj for row in rows]


def months_paid(app, kpjs: list[str], months: list[str]) -> int:
    found = app.find_many([contribution_month_id(kpj, month) for kpj in kpjs for month in months])
    return sum(1 for record in found.values() if isinstance(record, ContributionMonth) and record.current)


def test_a_payment_for_7000_members_and_two_months_is_reversed_whole_in_one_command(open_ledger):
    app = open_ledger()
    kpjs = city_with_staff(app)
    paid = app.execute(PayContribution(npp=NPP, month="2024-01", months=2, paid_on=date(2024, 2, 10),
                                       command_id="apbd-2024-02-10"))
    assert (paid["lines"], paid["total"]) == (2 * STAFF, 2 * STAFF * LINE)
    before = stored_events(app)

    result = open_ledger().execute(Reverse(event_id="apbd-2024-02-10", reason="paid twice by the city",
                                           reversed_on=date(2024, 2, 12)))

    assert (result["lines_reversed"], result["amount"]) == (2 * STAFF, 2 * STAFF * LINE)
    assert stored_events(app) == before + 2 * STAFF + 1  # a reversal per line, and the command's record
    fresh = open_ledger()
    assert months_paid(fresh, kpjs, ["2024-01", "2024-02"]) == 0
    with pytest.raises(AlreadyExists, match="every line of payment"):
        fresh.execute(Reverse(event_id=paid["event_id"], reason="again", reversed_on=date(2024, 2, 13)))
    assert stored_events(fresh) == before + 2 * STAFF + 1


def test_a_settlement_of_a_7000_line_bill_is_reversed_in_one_command_and_read_back(open_ledger):
    app = open_ledger()
    kpjs = city_with_staff(app)
    app.execute(CloseBills(month="2024-01", npps=[NPP]))
    app.execute(ReceiveMoney(reference="APBD-240210-1", npp=NPP, amount=STAFF * LINE, received_on=date(2024, 2, 10),
                             payer="institution"))
    assert months_paid(app, kpjs, ["2024-01"]) == STAFF
    (settled,) = open_ledger().find(payer_account_id(NPP, None)).settlements

    result = open_ledger().execute(Reverse(event_id=settled, reason="the bank recalled the transfer",
                                           reversed_on=date(2024, 2, 20)))

    assert (result["lines_reversed"], result["amount"], result["unapplied"]) == (STAFF, STAFF * LINE, STAFF * LINE)
    fresh = open_ledger()
    account: PayerAccount = fresh.find(payer_account_id(NPP, None))
    assert [b.bill.month for b in account.open_bills] == ["2024-01"]
    assert account.open_bills[0].reopened_on == date(2024, 2, 20)
    assert (account.unapplied, account.applied_total) == (STAFF * LINE, 0)
    assert account.settlements[settled].reversed_by == result["event_id"]
    assert months_paid(fresh, kpjs, ["2024-01"]) == 0
