"""The stored events' encoding: orjson writes the same bytes as the eventsourcing library's own JSON encoder."""

from __future__ import annotations

from datetime import UTC, date

from eventsourcing.persistence import JSONTranscoder

from ledger import events as ev
from ledger.commands import ChangeRiskClass, ChangeWage, HoldMoney, MatchMoney, Reverse
from ledger.generator import BranchPlan, generate_branch
from ledger.persistence import OrjsonTranscoder
from tests.support.collections import bill_pay_late_and_refund, collections_with_reversals, wage_raised_back
from tests.support.scenario import new_ledger, register


def library_transcoder() -> JSONTranscoder:
    """The library's own encoder, with the transcodings the ledger registers."""
    transcoder = JSONTranscoder()
    new_ledger().register_transcodings(transcoder)
    return transcoder


def test_every_kind_of_stored_event_is_encoded_byte_for_byte_as_the_library_would():
    app = new_ledger()
    assert isinstance(app.mapper.transcoder, OrjsonTranscoder)
    # Thirteen months: every kind of event the generator writes, the December yield included; then two reversals.
    generate_branch(app, BranchPlan(employers=4, members=60, bpu_members=8, months=13, seed=7))
    histories = [app.history(kpj=f"{17_100_000_000 + n:011d}") for n in range(1, 40)]
    types = [{r["type"] for r in history} for history in histories]
    claim = next(r for h in histories for r in h if r["type"] == "ClaimPaid")
    contribution = next(r for h, t in zip(histories, types, strict=True) if "ClaimPaid" not in t for r in h
                        if r["type"] == "ContributionPaid")
    for target in (claim, contribution):
        app.execute(Reverse(event_id=target["event_id"], reason="test", reversed_on=date(2026, 1, 5)))
    staying = next(h[0]["data"]["kpj"] for h, t in zip(histories, types, strict=True) if "MemberExited" not in t)
    app.execute(ChangeWage(kpj=staying, wage=7_000_000, effective=date(2018, 2, 1)))
    app.execute(ChangeRiskClass(npp="20000001", risk_class="high", effective=date(2018, 2, 1)))
    # Collections: a payer's account (bills, money, settlements, refunds) and a bill's lines.
    register(app, "39000002", registered_on=date(2024, 1, 2))
    collected = bill_pay_late_and_refund(app, npp="39000002", kpj="15900000002", month="2024-03",
                                         reference="BNI-240520-7")
    # A wage raised back into the settled month: an adjustment bill, settled as a ContributionAdjusted.
    wage_raised_back(app, collected, npp="39000002", kpj="15900000002", month="2024-03", reference="BNI-240520-8")
    collections_with_reversals(app)  # bills, money, settlements, refunds and their reversals
    # Money held until matched, then matched (MoneyUnidentified, MoneyIdentified).
    app.execute(HoldMoney(reference="BNI-1", branch="BEKASI-KOTA", amount=50_000, received_on=date(2018, 2, 2)))
    app.execute(MatchMoney(reference="BNI-1", npp="20000001", identified_on=date(2018, 2, 3)))

    library = library_transcoder()
    stored = app.recorder.select_notifications(start=1, limit=1_000_000)
    kinds, contract_types = set(), set()
    for event in stored:
        state = library.decode(event.state)
        assert event.state == library.encode(state), event.topic
        kinds.add(event.topic)
        if "schema_type" in state:
            contract_types.add(state["schema_type"])
    assert contract_types == set(ev.EVENT_TYPES)
    assert {"ledger.domain:CommandRecord.Accepted"} <= kinds


def test_values_the_library_transcodes_are_written_the_way_it_writes_them():
    from datetime import datetime
    from decimal import Decimal

    value = {"when": datetime(2026, 11, 23, 8, 30, tzinfo=UTC), "rate": Decimal("5.75"), "name": "Ñoño",
             "list": [1, "a", None, True], "nested": {"b": 2, "a": 1}}
    orjson_transcoder = new_ledger().mapper.transcoder
    assert isinstance(orjson_transcoder, OrjsonTranscoder)
    assert orjson_transcoder.encode(value) == library_transcoder().encode(value)
    assert orjson_transcoder.decode(orjson_transcoder.encode(value)) == value
