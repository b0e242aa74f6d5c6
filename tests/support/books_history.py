"""A small history with every event that posts to the books (`ledger.books.POSTING_TYPES`), written through the
ledger's own commands, one employer and one member at Rp5,000,000 (risk class low): the worked examples of
tests/unit/test_books_entries.py and the histories of tests/integration/test_general_ledger.py.

Every figure of the books follows from these steps; `STEPS` says what each day does. The January 2024 bill is
Rp477,000 (JHT 285,000, JKK 27,000 of which JKP 7,000, JKM 15,000 of which JKP 5,000, JP 150,000), due 2024-02-15.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from ledger.application import Ledger
from ledger.commands import (
    ChangeWage,
    CloseBills,
    CreditYield,
    EnrollMember,
    HoldMoney,
    MatchMoney,
    PayClaim,
    PayContribution,
    ReceiveMoney,
    RefundMoney,
    RegisterEmployer,
    Reverse,
)
from ledger.domain import payer_account_id
from tests.support.scenario import TEST_NIK_KEY, kpj, row

BRANCH = "BEKASI-KOTA"
NPP = "10012345"
BUDI = kpj(1)
JANUARY, JANUARY_ADJUSTMENT, MARCH = f"{NPP}/2024-01/PU/1", f"{NPP}/2024-01/PU/2", f"{NPP}/2024-03/PU/1"
# (day written, what happens): each step is written on its day (the ledger refuses a date after its clock's).
STEPS = (
    (date(2024, 2, 1), "January closed: bill JANUARY Rp477,000, counts from 2024-02-01, due 2024-02-15"),
    (date(2024, 4, 20), "REF-1 Rp600,000: JANUARY settled 3 months late (fine 3 x 2% x 477,000 = 28,620)"),
    (date(2024, 4, 25), "the settlement reversed: its line too; JANUARY open again, Rp600,000 the payer's credit"),
    (date(2024, 5, 20), ("REF-2 Rp100,000: the credit is applied: JANUARY settled again, dated 2024-04-25 (the day "
                         "the money back was enough), the fine still 28,620")),
    (date(2024, 5, 21), "Rp84,840 of the credit refunded"),
    (date(2024, 5, 22), "REF-3 Rp2,500,000 received"),
    (date(2024, 5, 23), "REF-3 returned whole: the bank's error"),
    (date(2024, 6, 3), "HELD-1 Rp300,000 arrives naming no known payer: held"),
    (date(2024, 6, 10), "HELD-1 matched to the employer: its receipt dated 2024-06-03, the day it arrived"),
    (date(2024, 6, 12), "February paid without a bill, 3 months late: Rp505,620"),
    (date(2024, 6, 14), "that payment reversed whole: Rp505,620 owed back"),
    (date(2024, 6, 20), ("the wage raised to Rp6,000,000 from 2024-01-01; January closed again: an adjustment bill of "
                         "Rp95,400, settled from the credit dated 2024-05-20, 4 months late (fine 7,632)")),
    (date(2024, 7, 3), ("March closed: bill MARCH Rp572,400 at the new wage (due 2024-04-15); the credit "
                        "(Rp306,508) is short of it")),
    (date(2024, 7, 5), "REF-4 Rp100,000: still short"),
    (date(2024, 7, 10), ("REF-5 Rp250,000: the rest: MARCH settled 3 months late (fine 3 x 11,448 = 34,344), "
                         "Rp49,764 left in credit")),
    (date(2024, 7, 11), "a JKK claim (care) of Rp1,500,000 paid"),
    (date(2024, 7, 12), "the claim reversed"),
    (date(2025, 1, 2), "the 2024 yield credited at 5% on 2024-12-31"),
)


@dataclass
class BooksHistory:
    app: Ledger
    ids: dict[str, str] = field(default_factory=dict)  # what the steps returned: event and payment ids by name


def new_books_ledger(env: dict[str, str] | None = None) -> tuple[Ledger, Callable[[date], None]]:
    day = [STEPS[0][0]]
    app = Ledger(env=dict(env or {"PERSISTENCE_MODULE": "eventsourcing.popo"}), clock=lambda: day[0],
                 nik_key=TEST_NIK_KEY)
    return app, lambda on: day.__setitem__(0, on)


def record_books_history(app: Ledger, today: Callable[[date], None]) -> dict[str, str]:
    """Write `STEPS` into `app` (a `Ledger` whose clock `today(day)` sets). Returns ids by step name."""
    ids: dict[str, str] = {}
    today(date(2024, 1, 1))
    app.execute(RegisterEmployer.build(npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind="company",
                                       risk_class="low", registered_on=date(2023, 12, 1)))
    app.execute(EnrollMember(member=row(BUDI, 5_000_000), npp=NPP, effective=date(2024, 1, 1)))
    today(date(2024, 2, 1))
    app.execute(CloseBills.build(month="2024-01", npps=[NPP]))
    today(date(2024, 4, 20))
    app.execute(ReceiveMoney.build(reference="REF-1", npp=NPP, amount=600_000, received_on=date(2024, 4, 20)))
    today(date(2024, 4, 25))
    (settled,) = app.find(payer_account_id(NPP, None)).settlements
    ids["settlement"] = settled
    app.execute(Reverse.build(event_id=settled, reason="the bank recalled the transfer", reversed_on=date(2024, 4, 25)))
    today(date(2024, 5, 20))
    app.execute(ReceiveMoney.build(reference="REF-2", npp=NPP, amount=100_000, received_on=date(2024, 5, 20)))
    today(date(2024, 5, 21))
    app.execute(RefundMoney.build(npp=NPP, amount=84_840, refunded_on=date(2024, 5, 21), reason="overpaid"))
    today(date(2024, 5, 22))
    wrong = app.execute(ReceiveMoney.build(reference="REF-3", npp=NPP, amount=2_500_000,
                                           received_on=date(2024, 5, 22)))
    today(date(2024, 5, 23))
    app.execute(Reverse.build(event_id=wrong["event_id"], reason="credited to the wrong account by the bank",
                              reversed_on=date(2024, 5, 23)))
    today(date(2024, 6, 3))
    app.execute(HoldMoney.build(reference="HELD-1", branch=BRANCH, amount=300_000, received_on=date(2024, 6, 3),
                                description="TRF HELD-1 DARI PAK BUDI SANTOSO", payer_name="Budi Santoso"))
    today(date(2024, 6, 10))
    app.execute(MatchMoney.build(reference="HELD-1", npp=NPP, identified_on=date(2024, 6, 10)))
    today(date(2024, 6, 12))
    paid = app.execute(PayContribution.build(npp=NPP, month="2024-02", paid_on=date(2024, 6, 12)))
    ids["payment"], ids["payment_event"] = paid["payment_id"], paid["event_id"]
    today(date(2024, 6, 14))
    app.execute(Reverse.build(event_id=paid["event_id"], reason="paid twice", reversed_on=date(2024, 6, 14)))
    today(date(2024, 6, 20))
    app.execute(ChangeWage.build(kpj=BUDI, wage=6_000_000, effective=date(2024, 1, 1)))
    app.execute(CloseBills.build(month="2024-01", npps=[NPP]))
    today(date(2024, 7, 3))
    app.execute(CloseBills.build(month="2024-03", npps=[NPP]))
    today(date(2024, 7, 5))
    app.execute(ReceiveMoney.build(reference="REF-4", npp=NPP, amount=100_000, received_on=date(2024, 7, 5)))
    today(date(2024, 7, 10))
    app.execute(ReceiveMoney.build(reference="REF-5", npp=NPP, amount=250_000, received_on=date(2024, 7, 10)))
    today(date(2024, 7, 11))
    claim = app.execute(PayClaim.build(kpj=BUDI, program="JKK", kind="care", incident_date=date(2024, 7, 1),
                                       paid_on=date(2024, 7, 11), amount=1_500_000))
    ids["claim_event"] = claim["event_id"]
    today(date(2024, 7, 12))
    app.execute(Reverse.build(event_id=claim["event_id"], reason="paid to the wrong member",
                              reversed_on=date(2024, 7, 12)))
    today(date(2025, 1, 2))
    app.execute(CreditYield.build(year=2024, rate_percent=Decimal(5)))
    return ids


def books_history(env: dict[str, str] | None = None, more: Callable[[Ledger, Callable[[date], None]], Any] | None
                  = None) -> BooksHistory:
    """A new ledger (in memory unless `env` says otherwise) holding the history; then whatever `more` writes."""
    app, today = new_books_ledger(env)
    history = BooksHistory(app, record_books_history(app, today))
    if more is not None:
        more(app, today)
    return history
