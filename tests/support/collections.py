"""A small collections history for the tests that need every kind of event (the stored encoding, the documented hash
program): an employer of its own is billed, pays, has the settlement reversed, has money returned as a bank error
and refunded. It writes every collections event type, the reversals' included, on any ledger."""

from __future__ import annotations

from datetime import date

from ledger.application import Ledger
from ledger.commands import CloseBills, EnrollMember, MemberRow, ReceiveMoney, RefundMoney, RegisterEmployer, Reverse
from ledger.domain import payer_account_id

NPP = "39000002"
KPJ = "39000000021"
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
