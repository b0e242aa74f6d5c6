"""A collections story written through the ledger's commands, for tests that need every collections event: one
worker joins an employer, the month is closed (a bill), the employer pays it late by transfer with more than enough
(the bill is settled with its fine, its lines become `ContributionPaid` events), and the change is refunded.

`wage_raised_back`: after that story, the worker's wage is raised back into the settled month: the month closed
again bills the difference in an adjustment bill, settled late as a `ContributionAdjusted`, the change refunded.

`collections_with_reversals`: an employer of its own is billed, pays, has the settlement reversed, has money
returned as a bank error and refunded: every collections event type, the reversals' included, on any ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.application import Ledger
from ledger.commands import (
    ChangeWage,
    CloseBills,
    EnrollMember,
    MemberRow,
    ReceiveMoney,
    RefundMoney,
    RegisterEmployer,
    Reverse,
)
from ledger.domain import month_start, payer_account_id
from ledger.rules import Segment, bill_due_date
from tests.support.scenario import row

PAID_OVER_BILL_PERCENT = 10  # the payer sends the bill plus 10%: more than a fine of a few months (2% a month)


@dataclass(frozen=True)
class Collected:
    bill_id: str
    bill_total: int
    received: int  # what arrived
    refunded: int  # the change paid back
    settled_on: date

    @property
    def applied(self) -> int:
        """What settled the bill: its total and its late fine."""
        return self.received - self.refunded


def bill_pay_late_and_refund(app: Any, *, npp: str, kpj: str, month: str, reference: str,
                             payer_name: str = "Koperasi Kopi Café") -> Collected:
    """The story above for `month` (a month the employer owes nothing else for), paid on the 20th of the month after
    the due date's month: at least one month late, so a PU bill carries a fine."""
    start = month_start(month)
    app.execute(EnrollMember(member=row(kpj, 5_000_000), npp=npp, effective=start))
    closed = app.execute(CloseBills(month=month, npps=[npp]))
    [bill] = closed["first_bills"]
    due = bill_due_date(Segment.PU, start)
    received_on = date(due.year + due.month // 12, due.month % 12 + 1, 20)
    amount = bill["total"] * (100 + PAID_OVER_BILL_PERCENT) // 100
    receipt = app.execute(ReceiveMoney(reference=reference, code=bill["payment_code"], amount=amount,
                                       received_on=received_on, payer_name=payer_name))
    assert receipt["settled"] == [bill["bill_id"]], receipt
    change = receipt["unapplied"]
    app.execute(RefundMoney(npp=npp, amount=change, refunded_on=received_on,
                            reason="overpaid: the change of a late payment"))
    return Collected(bill_id=bill["bill_id"], bill_total=bill["total"], received=amount, refunded=change,
                     settled_on=received_on)


RAISED_WAGE = 6_000_000  # from 5,000,000: a PU month costs 9.54% of it, Rp95,400 more


def wage_raised_back(app: Any, collected: Collected, *, npp: str, kpj: str, month: str,
                     reference: str) -> Collected:
    """After `bill_pay_late_and_refund` of `month`: the wage raised to RAISED_WAGE from the month's first day, the
    month closed again (an adjustment bill of the difference), paid with a fine on the day the first bill was, and
    the change refunded."""
    app.execute(ChangeWage(kpj=kpj, wage=RAISED_WAGE, effective=month_start(month)))
    closed = app.execute(CloseBills(month=month, npps=[npp]))
    [bill] = closed["first_bills"]
    amount = bill["total"] * (100 + PAID_OVER_BILL_PERCENT) // 100
    receipt = app.execute(ReceiveMoney(reference=reference, code=bill["payment_code"], amount=amount,
                                       received_on=collected.settled_on))
    assert receipt["settled"] == [bill["bill_id"]], receipt
    change = receipt["unapplied"]
    app.execute(RefundMoney(npp=npp, amount=change, refunded_on=collected.settled_on,
                            reason="overpaid: the change of a late payment"))
    return Collected(bill_id=bill["bill_id"], bill_total=bill["total"], received=amount, refunded=change,
                     settled_on=collected.settled_on)


NPP = "39000003"  # the reversals' own payer
KPJ = "39000000031"
MONTH = "2016-11"


def collections_with_reversals(app: Ledger) -> None:
    app.execute(RegisterEmployer.build(npp=NPP, name="CV Tagihan Contoh", branch="BEKASI-KOTA", kind="company",
                                       risk_class="low", registered_on=date(2016, 11, 1)))
    app.execute(EnrollMember(member=MemberRow(kpj=KPJ, nik="3275011505900009", name="Rina Wati",
                                              birth_date=date(1990, 5, 15), wage=5_000_000),
                             npp=NPP, effective=date(2016, 11, 1)))
    app.execute(CloseBills.build(month=MONTH, npps=[NPP]))  # Rp477,000, due 2016-12-15
    app.execute(ReceiveMoney.build(reference="REF-39-1", npp=NPP, amount=477_000, received_on=date(2016, 12, 10)))
    (settled,) = app.find(payer_account_id(NPP, None)).settlements
    app.execute(Reverse.build(event_id=settled, reason="the bank recalled the transfer",
                              reversed_on=date(2016, 12, 20)))
    # Settled again with REF-39-1's money back and the fine of one month late (2% of Rp477,000).
    app.execute(ReceiveMoney.build(reference="REF-39-2", npp=NPP, amount=9_540, received_on=date(2016, 12, 21)))
    wrong = app.execute(ReceiveMoney.build(reference="REF-39-3", npp=NPP, amount=2_500_000,
                                           received_on=date(2016, 12, 22)))
    app.execute(Reverse.build(event_id=wrong["event_id"], reason="credited to the wrong account by the bank",
                              reversed_on=date(2016, 12, 23)))
    app.execute(ReceiveMoney.build(reference="REF-39-4", npp=NPP, amount=1_000, received_on=date(2016, 12, 24)))
    app.execute(RefundMoney.build(npp=NPP, amount=1_000, refunded_on=date(2016, 12, 27), reason="overpaid"))
    account = app.find(payer_account_id(NPP, None))
    assert (account.applied_total, account.returned_total, account.unapplied) == (486_540, 2_500_000, 0)
