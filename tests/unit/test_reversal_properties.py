"""No sequence of collections commands and their reversals, valid or refused, breaks a payer's books.

Hypothesis draws sequences over one employer of two members and the first half of 2024: month closes, money received
on random days in random amounts, refunds, and reversals of random settlements and receipts (twice, early, late).
Refused commands (`LedgerError`) are part of the game. After each sequence the account is read back from the store,
and its figures are checked three ways: the account itself, its statement (`ledger.account_statement`), and the
auditor's recount from the published envelopes (`ledger.audit.recount.PayerBooks`).
"""

from __future__ import annotations

import contextlib
from datetime import date, timedelta

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledger.account_statement import account_statement
from ledger.application import Ledger
from ledger.audit.recount import Recount
from ledger.commands import CloseBills, ReceiveMoney, RefundMoney, Reverse
from ledger.domain import (
    INTERNAL_EVENT_TOPICS,
    BillLines,
    ContributionMonth,
    PayerAccount,
    bill_lines_id,
    contribution_month_id,
    payer_account_id,
)
from ledger.errors import LedgerError
from ledger.publishing.envelope import envelope
from tests.support.scenario import NPP, TODAY, enroll, kpj, new_ledger, register

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
FIRST_DAY = date(2024, 1, 1)
DAYS = 240  # to the end of August 2024

# A reversal is dated this many days after the event it reverses (negative: before it, and refused).
offset = st.integers(min_value=-5, max_value=60)
day = st.integers(min_value=0, max_value=DAYS).map(lambda n: FIRST_DAY + timedelta(days=n))
close = st.tuples(st.just("close"), st.sampled_from(MONTHS))
# A month's bill is Rp1,192,500 (wages of Rp5,000,000 and Rp7,500,000): amounts near it and its multiples settle
# bills; any amount may arrive.
amount = st.one_of(st.sampled_from([1_192_500, 1_216_350, 2_400_000, 3_600_000, 7_300_000]),
                   st.integers(min_value=1, max_value=3_000_000))
receive = st.tuples(st.just("receive"), amount, day)
actions = st.one_of(
    close, close, receive, receive,
    st.tuples(st.just("refund"), st.integers(min_value=1, max_value=1_000_000), day),
    st.tuples(st.just("reverse-settlement"), st.integers(min_value=0, max_value=9), offset),
    st.tuples(st.just("reverse-settlement"), st.integers(min_value=0, max_value=9), offset),
    st.tuples(st.just("return-receipt"), st.integers(min_value=0, max_value=9), offset),
)


def run(app: Ledger, action: tuple, step: int) -> None:
    kind = action[0]
    account: PayerAccount | None = app.find(payer_account_id(NPP, None))
    if kind == "close":
        command = CloseBills.build(month=action[1], npps=[NPP])
    elif kind == "receive":
        command = ReceiveMoney.build(reference=f"REF-{step}", npp=NPP, amount=action[1], received_on=action[2])
    elif kind == "refund":
        command = RefundMoney.build(npp=NPP, amount=action[1], refunded_on=action[2], reason="overpaid")
    else:
        if account is None:
            return
        known: dict[str, date] = ({i: s.settled.settled_on for i, s in account.settlements.items()}
                                  if kind == "reverse-settlement" else
                                  {i: r.received.received_on for i, r in account.receipts.items()})
        if not known:
            return
        target = list(known)[action[1] % len(known)]
        on = min(TODAY, known[target] + timedelta(days=action[2]))
        command = Reverse(event_id=target, reason="property test", reversed_on=on)
    with contextlib.suppress(LedgerError):
        app.execute(command)


def check_account(app: Ledger, account: PayerAccount) -> None:
    live = [s for s in account.settlements.values() if s.reversed_by is None]
    assert account.received_total == (account.applied_total + account.unapplied + account.refunded_total
                                      + account.returned_total)
    assert account.applied_total == sum(s.settled.total for s in live)
    assert all(lot[1] > 0 for lot in account.lots)
    settled_bills = [s.settled.bill_id for s in live]
    open_bills = [b.bill.bill_id for b in account.open_bills]
    assert len(set(settled_bills)) == len(settled_bills) and not set(settled_bills) & set(open_bills)
    billed = {bill for ids in account.bills_by_month.values() for bill in ids}
    assert set(settled_bills) | set(open_bills) == billed
    # A member's month is paid exactly when the bill that holds it is settled and not reversed.
    for settlement in account.settlements.values():
        lines: BillLines = app.find(bill_lines_id(settlement.settled.bill_id))
        for line in lines.lines:
            record: ContributionMonth = app.find(contribution_month_id(line.kpj, settlement.settled.month))
            paid = record.current is not None and record.current.payment_id == settlement.settled.bill_id
            assert paid == (settlement.settled.bill_id in settled_bills), (line.kpj, settlement.settled.bill_id)


def check_statement_and_recount(app: Ledger, account: PayerAccount) -> None:
    outstanding = sum(b.bill.total for b in account.open_bills)
    statement = account_statement(app, npp=NPP, kpj=None, start=FIRST_DAY, end=TODAY)
    assert (statement["outstanding"], statement["unapplied"], statement["bills_open"]) == (
        outstanding, account.unapplied, len(account.open_bills))
    assert statement["closing_balance"] == outstanding - account.unapplied
    stored = [n for n in app.recorder.select_notifications(start=1, limit=100_000)
              if n.topic not in INTERNAL_EVENT_TOPICS]
    recount = Recount(TODAY)
    for position, notification in enumerate(stored, start=1):
        recount.add(orjson.loads(envelope(notification, position)[1]))
    recount.finish()
    figures = recount.payers.figures()[f"npp:{NPP}"]
    assert (figures["outstanding"], figures["unapplied"], figures["bills_open"]) == (
        outstanding, account.unapplied, len(account.open_bills))
    assert (figures["received"], figures["applied"], figures["refunded"], figures["returned"]) == (
        account.received_total, account.applied_total, account.refunded_total, account.returned_total)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, min_size=1, max_size=20))
def test_no_sequence_of_collections_and_reversals_breaks_a_payers_books(sequence):
    app = new_ledger()
    register(app)
    enroll(app, kpj(1))
    enroll(app, kpj(2), serial=2, wage=7_500_000)
    for step, action in enumerate(sequence):
        run(app, action, step)
    account: PayerAccount | None = app.find(payer_account_id(NPP, None))
    if account is None:
        return
    event(f"settlements reversed: {min(3, sum(s.reversed_by is not None for s in account.settlements.values()))}")
    event(f"receipts returned: {min(2, sum(r.returned_by is not None for r in account.receipts.values()))}")
    event(f"bills open: {min(2, len(account.open_bills))}")
    check_account(app, account)
    check_statement_and_recount(app, account)
