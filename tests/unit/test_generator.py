"""The generated histories follow the ledger's rules: they are written through its commands, so a history that
breaks a rule stops with the ledger's refusal instead of being written."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.domain import payer_account_id
from ledger.generator import BranchPlan, generate_branch
from ledger.rules import month_owed
from tests.support.scenario import new_ledger

# One worker per employer over four years: some employers lose their only worker (1.2% a month), and one of them
# on the 1st of a month (seed found by trying). Hires follow the staff left, so such an employer stays empty.
ONE_WORKER_EACH = BranchPlan(employers=40, members=40, bpu_members=0, first_month="2017-01", months=48, seed=2)


def test_an_employer_whose_last_worker_left_is_billed_only_the_months_someone_owes():
    app = new_ledger()

    counts = generate_branch(app, ONE_WORKER_EACH)

    events = [row for n in range(ONE_WORKER_EACH.employers)
              for row in app.history(kpj=f"{ONE_WORKER_EACH.first_kpj + n:011d}")]
    exits = {row["data"]["kpj"]: date.fromisoformat(row["data"]["exit_date"]) for row in events
             if row["type"] == "MemberExited"}
    enrolled = {row["data"]["kpj"]: date.fromisoformat(row["data"]["effective"]) for row in events
                if row["type"] == "MemberEnrolled"}
    billed = [(row["data"]["kpj"], row["data"]["month"]) for row in events if row["type"] == "ContributionPaid"]
    assert counts["exits"] >= len(exits) >= 3 and any(day.day == 1 for day in exits.values())
    assert billed and all(month_owed(month, enrolled[kpj], exits.get(kpj)) for kpj, month in billed)


# --- Collections (`ledger generate --collections`) ---------------------------------------------------------------

COLLECTING = BranchPlan(employers=14, members=280, bpu_members=12, first_month="2017-01", months=8, seed=5,
                        collections=True, budget_members=6)
CITY = f"{COLLECTING.first_npp:08d}"  # the first employer: the city government, paid for by its regional budget
COLLECTION_TYPES = {"BillClosed", "MoneyReceived", "BillSettled", "MoneyRefunded"}


def collection_events(app: Ledger) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Every payer's collection events as stored (type, data), in order, by payer (NPP, or KPJ of a BPU member)."""
    payers: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for note in app.stored_contract_notifications():
        stored = orjson.loads(note.state)
        if stored["schema_type"] in COLLECTION_TYPES:
            data = stored["data"]
            payers[data["npp"] or data["kpj"]].append((stored["schema_type"], data))
    return dict(payers)


def of(events: list[tuple[str, dict[str, Any]]], kind: str) -> list[dict[str, Any]]:
    return [data for type_, data in events if type_ == kind]


def test_the_collections_plan_is_deterministic_and_has_every_kind_of_payer():
    app, again = new_ledger(), new_ledger()

    counts = generate_branch(app, COLLECTING)
    payers = collection_events(app)

    assert generate_branch(again, COLLECTING) == counts
    assert collection_events(again) == payers  # the same seed: the same bills, money and refunds, event for event
    assert counts["payments"] == 0 and counts["budget_members"] == 6  # no `contribution pay`: bills and money only
    employers = [f"{COLLECTING.first_npp + i:08d}" for i in range(COLLECTING.employers)]
    settled = {payer: of(events, "BillSettled") for payer, events in payers.items()}
    # Most employers pay every bill by its due date, quoting its payment code.
    on_time = [npp for npp in employers[1:] if settled[npp] and all(s["months_late"] == 0 for s in settled[npp])
               and all(r["payment_code"] for r in of(payers[npp], "MoneyReceived"))]
    assert len(on_time) >= COLLECTING.employers // 2
    # Some pay 1-3 months after the due date, with the fine (2% a month), and still owe the last months at the end.
    late = [npp for npp in employers[1:] if settled[npp] and all(s["months_late"] >= 1 and s["fine"] > 0
                                                                 for s in settled[npp])]
    assert late and all(of(payers[npp], "BillClosed")[-1]["bill_id"] not in {s["bill_id"] for s in settled[npp]}
                        for npp in late)
    # Some pay short for a few months: their bills are then settled by two transfers or more, late, with the fine.
    short = [npp for npp in employers[1:] if any(len(s["references"]) >= 2 and s["fine"] > 0 for s in settled[npp])]
    assert short and all(npp not in late for npp in short)
    # ... and catch up: by the end they owe nothing but the last month's bill, if that.
    assert all(len(of(payers[npp], "BillClosed")) - len(settled[npp]) <= 1 for npp in short)
    # One pays a bill twice by mistake; the second transfer is refunded, and the refund names it.
    refunds = [(payer, r) for payer, events in payers.items() for r in of(events, "MoneyRefunded")]
    assert len(refunds) == 1
    twice, refund = refunds[0]
    received = of(payers[twice], "MoneyReceived")
    at = next(i for i, r in enumerate(received) if r["reference"] in refund["reason"])
    first, duplicate = received[at - 1], received[at]
    assert duplicate["amount"] == first["amount"] == refund["amount"]
    assert duplicate["payment_code"] == first["payment_code"] and duplicate["received_on"] > first["received_on"]
    assert refund["refunded_on"] > duplicate["received_on"]
    # The regional budget pays the city government's dues a half-year at a time, in advance, in one transfer each.
    budget = [r for r in of(payers[CITY], "MoneyReceived") if r["payer"] == "institution"]
    assert budget and len(of(payers[CITY], "MoneyReceived")) == len(budget) == 1 + COLLECTING.months // 6
    first = budget[0]["reference"]
    months_paid = {s["month"] for s in settled[CITY] if first in s["references"]}
    assert len(months_paid) >= 6 and {s["segment"] for s in of(payers[CITY], "BillClosed")} == {"PU", "BPU"}
    # Self-paying BPU members pay their month by the 15th; some skip or lapse, and their bills stay open.
    members = [payer for payer in payers if payer not in employers]
    assert len(members) == COLLECTING.bpu_members
    assert any(len(of(payers[kpj], "BillClosed")) > len(settled[kpj]) for kpj in members)
    assert sum(len(settled[kpj]) for kpj in members) > sum(len(of(payers[kpj], "BillClosed")) for kpj in members) // 2


def test_every_payers_money_adds_up_at_the_end():
    app = new_ledger()

    counts = generate_branch(app, COLLECTING)

    payers = collection_events(app)
    totals = dict.fromkeys(("billed", "received", "applied", "refunded", "unapplied", "outstanding"), 0)
    for payer, events in payers.items():
        npp, kpj = (payer, None) if len(payer) == 8 else (None, payer)  # an NPP has 8 digits, a KPJ 11
        account = app.find(payer_account_id(npp, kpj))
        received = sum(r["amount"] for r in of(events, "MoneyReceived"))
        applied = sum(s["total"] for s in of(events, "BillSettled"))
        refunded = sum(r["amount"] for r in of(events, "MoneyRefunded"))
        assert received == applied + account.unapplied + refunded, payer
        billed = sum(b["total"] for b in of(events, "BillClosed"))
        outstanding = sum(b.bill.total for b in account.open_bills)
        assert billed == sum(s["amount"] for s in of(events, "BillSettled")) + outstanding, payer
        for key, value in (("billed", billed), ("received", received), ("applied", applied), ("refunded", refunded),
                           ("unapplied", account.unapplied), ("outstanding", outstanding)):
            totals[key] += value
    # The generator's own summary is the payers' sums, and the branch's money adds up too.
    assert {key: counts[key] for key in totals} == totals
    assert counts["received"] == counts["applied"] + counts["unapplied"] + counts["refunded"] > 0
    assert counts["bills"] == sum(len(of(events, "BillClosed")) for events in payers.values())


def test_budget_members_come_with_collections_only():
    with pytest.raises(ValueError, match="collections only"):
        BranchPlan(budget_members=5)
