"""A collections story written through the ledger's commands, for tests that need every collections event: one
worker joins an employer, the month is closed (a bill), the employer pays it late by transfer with more than enough
(the bill is settled with its fine, its lines become `ContributionPaid` events), and the change is refunded."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.commands import CloseBills, EnrollMember, ReceiveMoney, RefundMoney
from ledger.domain import month_start
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
