"""A branch's collections history, written through the ledger's own commands: two months billed to an employer, money
that arrives in part, bills settled late with their fines, a refund, and a self-paying BPU member who never pays.
Shared by the unit tests of the collections read side (a view store built without Kafka) and its integration test
(relayed to the real Kafka and projected by the runner)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

from ledger.commands import (
    CloseBills,
    EnrollMember,
    EnrollMembers,
    HoldMoney,
    MatchMoney,
    PayContribution,
    ReceiveMoney,
    RefundMoney,
    RegisterEmployer,
    Reverse,
)
from ledger.domain import payer_account_id

BRANCH = "BEKASI-KOTA"
NPP = "12345678"
BPU_KPJ = "19000000009"
# Wages chosen so that the late fine rounded per member line differs from the fine of the bill's total.
WAGES = (4_900_017, 5_100_050, 6_333_333)
NIK = "3201014501900001"  # a made-up NIK of someone born 1990-01-05
# (date, what happened): the dates the history is written on.
STEPS = (
    (date(2024, 2, 1), "close 2024-01 (PU: counts from 2024-02-01, due 2024-02-15) and BPU 2024-02"),
    (date(2024, 3, 1), "close 2024-02 (PU) and BPU 2024-03; REF-1 Rp1,000,000 received (not enough for a bill)"),
    (date(2024, 4, 20), "REF-2 Rp2,000,000: the January bill settled 3 months late; February not yet"),
    (date(2024, 6, 10), "REF-3 Rp500,000: the February bill settled 3 months late"),
    (date(2024, 6, 20), "Rp100,000 of the credit refunded"),
)


def record_collections(app: Any, today: Callable[[date], None]) -> dict[str, Any]:
    """Write the history into `app` (a `Ledger` whose clock `today(day)` sets). Returns the close results."""
    today(date(2024, 1, 1))
    app.execute(RegisterEmployer.build(npp=NPP, name="PT Contoh", branch=BRANCH, kind="company", risk_class="low",
                                       registered_on=date(2024, 1, 1)))
    app.execute(EnrollMembers.build(npp=NPP, effective=date(2024, 1, 1), members=[
        {"kpj": f"1900000000{i}", "nik": NIK, "name": "Peserta", "birth_date": date(1990, 1, 5), "wage": wage}
        for i, wage in enumerate(WAGES, start=1)]))
    app.execute(EnrollMember.build(member={"kpj": BPU_KPJ, "nik": NIK, "name": "Peserta", "birth_date":
                                           date(1990, 1, 5), "wage": 2_000_000, "segment": "BPU"},
                                   branch=BRANCH, effective=date(2024, 1, 1)))
    closes = {}
    today(date(2024, 2, 1))
    closes["2024-01"] = app.execute(CloseBills.build(month="2024-01", npps=[NPP]))
    closes["BPU 2024-02"] = app.execute(CloseBills.build(month="2024-02", kpjs=[BPU_KPJ]))
    today(date(2024, 3, 1))
    closes["2024-02"] = app.execute(CloseBills.build(month="2024-02", npps=[NPP]))
    closes["BPU 2024-03"] = app.execute(CloseBills.build(month="2024-03", kpjs=[BPU_KPJ]))
    code = closes["2024-01"]["first_bills"][0]["payment_code"]
    app.execute(ReceiveMoney.build(reference="REF-1", code=code, amount=1_000_000, received_on=date(2024, 3, 1),
                                   payer_name="Bu Siti Rahayu"))
    today(date(2024, 4, 20))
    app.execute(ReceiveMoney.build(reference="REF-2", npp=NPP, amount=2_000_000, received_on=date(2024, 4, 20)))
    today(date(2024, 6, 10))
    app.execute(ReceiveMoney.build(reference="REF-3", npp=NPP, amount=500_000, received_on=date(2024, 6, 10)))
    today(date(2024, 6, 20))
    app.execute(RefundMoney.build(npp=NPP, amount=100_000, refunded_on=date(2024, 6, 20), reason="overpaid"))
    return closes


# After the history above (none of it changes a figure on or before 2024-06-30): money held until matched, and
# payments without a bill. (date, what happened):
LATER_STEPS = (
    (date(2024, 7, 1), "HELD-1 Rp750,000 and HELD-2 Rp250,000 credited to the branch, naming no known payer: held"),
    (date(2024, 7, 5), "HELD-1 matched to the employer (its receipt dated 2024-07-01, the day it arrived)"),
    (date(2024, 7, 10), "the employer pays 2024-03 without a bill (ledger contribution pay), 3 lines"),
    (date(2024, 7, 11), "the employer pays 2024-04 without a bill, 3 lines"),
    (date(2024, 7, 15), "the 2024-04 payment reversed, all its lines"),
    (date(2024, 7, 20), "the February bill's settlement reversed: its lines too, which were not paid without a bill"),
)
HELD = {"HELD-1": 750_000, "HELD-2": 250_000}


def record_held_and_unbilled(app: Any, today: Callable[[date], None]) -> dict[str, Any]:
    """Write `LATER_STEPS` into `app`, after `record_collections`. Returns the two payments' results (their
    `payment_id`, `event_id` and `total`)."""
    today(date(2024, 7, 1))
    for reference, amount in HELD.items():
        app.execute(HoldMoney.build(reference=reference, branch=BRANCH, amount=amount, received_on=date(2024, 7, 1),
                                    description=f"TRF {reference} DARI PAK BUDI SANTOSO", payer_name="Budi Santoso"))
    today(date(2024, 7, 5))
    app.execute(MatchMoney.build(reference="HELD-1", npp=NPP, identified_on=date(2024, 7, 5)))
    payments = {}
    today(date(2024, 7, 10))
    payments["2024-03"] = app.execute(PayContribution.build(npp=NPP, month="2024-03", paid_on=date(2024, 7, 10),
                                                            payer_name="Bu Siti Rahayu"))
    today(date(2024, 7, 11))
    payments["2024-04"] = app.execute(PayContribution.build(npp=NPP, month="2024-04", paid_on=date(2024, 7, 11)))
    today(date(2024, 7, 15))
    payments["reversal"] = app.execute(Reverse.build(event_id=payments["2024-04"]["event_id"], reason="paid twice",
                                                     reversed_on=date(2024, 7, 15)))
    today(date(2024, 7, 20))
    account = app.find(payer_account_id(NPP, None))
    (settled_id,) = [event for event, settlement in account.settlements.items()
                     if settlement.settled.bill_id == f"{NPP}/2024-02/PU/1"]
    payments["settlement reversal"] = app.execute(Reverse.build(event_id=settled_id, reason="bank recalled it",
                                                                reversed_on=date(2024, 7, 20)))
    return payments
