"""The hash chain as documented: the program in docs/kafka.md, run exactly as written there, recomputes the hash of
every envelope the ledger publishes, of every event type. An outside auditor has nothing but that text, so a formula
in the docs that differs from `ledger.events.chain_hash` by a single byte fails here.
(tests/integration/test_auditor_programs.py runs the same program on a real topic, as a command.)"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ledger.commands import ChangeRiskClass, ChangeWage, HoldMoney, MatchMoney, RegisterEmployer, Reverse
from ledger.domain import INTERNAL_EVENT_TOPICS
from ledger.events import PUBLISHED_EVENT_TYPES
from ledger.generator import BranchPlan, generate_branch
from ledger.publishing.envelope import envelope
from tests.support.collections import bill_pay_late_and_refund, collections_with_reversals, wage_raised_back
from tests.support.scenario import new_ledger

DOCS = Path(__file__).resolve().parents[2] / "docs"
PLAN = BranchPlan(employers=3, members=40, bpu_members=6, first_month="2016-11", months=3, seed=7)


def docs_snippet(document: str, name: str) -> dict[str, Any]:
    """Run the Python block that follows the marker `<!-- NAME: ...-->` in docs/DOCUMENT; return its globals."""
    text = (DOCS / document).read_text(encoding="utf-8")
    found = re.search(rf"<!-- {re.escape(name)}:.*?-->\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, f"docs/{document} has no ```python block after a <!-- {name}: ... --> marker"
    namespace: dict[str, Any] = {"__name__": name}  # not "__main__": define, do not run the command-line part
    exec(compile(found.group(1), f"docs/{document}:{name}", "exec"), namespace)  # noqa: S102 - our own docs
    return namespace


def published_envelopes() -> list[dict[str, Any]]:
    """Every event of a small branch history as the relay publishes it, in store order, parsed back from its bytes.
    The generator writes neither wage nor risk-class changes nor reversals nor collections, so one of each is added,
    and an employer whose name is not ASCII."""
    app = new_ledger()
    generate_branch(app, PLAN)
    app.execute(RegisterEmployer.build(npp="39000001", name="Koperasi Kopi Café — Bekasi \"Ø\"/\\",
                                       branch="BEKASI-KOTA", kind="company", risk_class="low",
                                       registered_on=date(2016, 11, 1)))
    app.execute(ChangeRiskClass.build(npp="39000001", risk_class="high", effective=date(2017, 1, 1)))
    stored = [n for n in app.recorder.select_notifications(start=1, limit=100_000)
              if n.topic not in INTERNAL_EVENT_TOPICS]
    values = [orjson.loads(envelope(n, position)[1]) for position, n in enumerate(stored, start=1)]
    paid = next(v for v in values if v["type"] == "ContributionPaid")
    claim = next(v for v in values if v["type"] == "ClaimPaid")
    app.execute(ChangeWage.build(kpj=paid["data"]["kpj"], wage=7_654_321, effective=date(2017, 1, 1)))
    app.execute(Reverse.build(event_id=paid["event_id"], reason="paid for the wrong member",
                              reversed_on=date(2017, 2, 1)))
    app.execute(Reverse.build(event_id=claim["event_id"], reason="paid twice", reversed_on=date(2017, 3, 1)))
    # Collections: a bill, the money that settles it late (with its fine), the change refunded.
    collected = bill_pay_late_and_refund(app, npp="39000001", kpj="15900000001", month="2017-01",
                                         reference="BRI-170320-0001")
    wage_raised_back(app, collected, npp="39000001", kpj="15900000001", month="2017-01", reference="BRI-170320-0002")
    collections_with_reversals(app)  # bills, money, settlements, refunds and their reversals
    app.execute(HoldMoney.build(reference="BNI-1", branch="BEKASI-KOTA", amount=50_000, received_on=date(2017, 3, 2),
                                description="TRANSFER \"Ø\"/\\", payer_name="Koperasi Kopi Café"))
    app.execute(MatchMoney.build(reference="BNI-1", npp="39000001", identified_on=date(2017, 3, 3)))
    stored = [n for n in app.recorder.select_notifications(start=1, limit=100_000)
              if n.topic not in INTERNAL_EVENT_TOPICS]
    return [orjson.loads(envelope(n, position)[1]) for position, n in enumerate(stored, start=1)]


def test_the_documented_program_recomputes_every_published_hash_of_every_event_type() -> None:
    check = docs_snippet("kafka.md", "check_chain.py")
    envelopes = published_envelopes()
    assert {env["type"] for env in envelopes} == set(PUBLISHED_EVENT_TYPES)  # every type's data is hashed

    for env in envelopes:
        assert check["event_hash"](env) == env["hash"], env["event_id"]
    assert check["check"](envelopes) == (len(envelopes), [])


def test_the_documented_program_finds_an_altered_a_dropped_and_a_reordered_event() -> None:
    check = docs_snippet("kafka.md", "check_chain.py")["check"]
    envelopes = published_envelopes()
    seconds = [i for i, env in enumerate(envelopes) if env["aggregate_version"] == 2]  # events that link to another
    altered, second = seconds[0], seconds[1]
    first = next(i for i, env in enumerate(envelopes) if env["aggregate_id"] == envelopes[second]["aggregate_id"])

    tampered = [dict(env) for env in envelopes]
    tampered[altered]["data"] = {**tampered[altered]["data"], "tampered": 1}
    assert check(tampered) == (len(envelopes), [envelopes[altered]["event_id"]])
    without_first = [env for i, env in enumerate(envelopes) if i != first]
    assert check(without_first)[1] == [envelopes[second]["event_id"]]  # it no longer links to the genesis value
    swapped = [*envelopes]
    swapped[first], swapped[second] = swapped[second], swapped[first]
    assert check(swapped)[1][0] == envelopes[second]["event_id"]
