"""An adjustment bill through the whole system, on the real broker: a wage raised back into a month already billed
and settled, the month closed again (an adjustment bill of the difference), paid late, relayed, then projected,
rebuilt and recounted by the auditor (`audit as-of`: no difference on any date), with the member's balance in the
projections including the `ContributionAdjusted`.

The story: one employer (risk class low) of two PU workers on Rp5,000,000 from 1 January 2024. January is closed and
paid on 10 February. On 1 March the first worker's wage is raised to Rp6,000,000 from 1 January and the employer's
risk class to medium from 1 January: January closed again bills, for the first worker, Rp95,400 + the JKK difference
at his new wage, and for the second the JKK difference alone; it is paid on 20 March (2 months late: due
15 February), so the adjustment lines carry a fine on the difference only.
"""

from __future__ import annotations

from collections import Counter
from datetime import date
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.commands import ChangeRiskClass, ChangeWage, CloseBills, EnrollMembers, ReceiveMoney, RegisterEmployer
from ledger.rules import late_fine
from ledger.settings import Settings
from projections import queries, runner
from projections.catalog import PROJECTIONS
from projections.store import ViewStore
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import KafkaRoles
from tests.support.relayed import relayed_history
from tests.support.scenario import row

pytestmark = pytest.mark.integration

CLOCK = date(2024, 3, 31)
NPP, BRANCH = "10012345", "BEKASI-KOTA"
RAISED, OTHER = "15000000101", "15000000102"
FIRST_PAID, ADJUSTMENT_PAID = date(2024, 2, 10), date(2024, 3, 20)
AS_OF_DATES = (date(2024, 2, 9), FIRST_PAID, date(2024, 3, 19), ADJUSTMENT_PAID, CLOCK)
# Rp6,000,000 at risk class medium: JHT 342,000 + JKK 53,400 + JKM 18,000 + JP 180,000 = 593,400, was 477,000.
RAISED_DIFFERENCE = 593_400 - 477_000
OTHER_DIFFERENCE = 44_500 - 27_000  # JKK 0.89% of Rp5,000,000, was 0.54%


def write_story(app: Ledger) -> dict[str, Any]:
    app.execute(RegisterEmployer(npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind="company", risk_class="low",
                                 registered_on=date(2023, 12, 1)))
    app.execute(EnrollMembers(npp=NPP, effective=date(2024, 1, 1),
                              members=[row(kpj, 5_000_000, serial=1 + n) for n, kpj in enumerate((RAISED, OTHER))]))
    [first] = app.execute(CloseBills(month="2024-01", npps=[NPP]))["first_bills"]
    paid = app.execute(ReceiveMoney(reference="BCA-240210-000001", code=first["payment_code"], amount=first["total"],
                                    received_on=FIRST_PAID))
    assert paid["settled"] == [first["bill_id"]]
    app.execute(ChangeWage(kpj=RAISED, wage=6_000_000, effective=date(2024, 1, 1)))
    app.execute(ChangeRiskClass(npp=NPP, risk_class="medium", effective=date(2024, 1, 1)))
    [adjustment] = app.execute(CloseBills(month="2024-01", npps=[NPP]))["first_bills"]
    assert adjustment["total"] == RAISED_DIFFERENCE + OTHER_DIFFERENCE
    fines = [late_fine(amount, 2, date(2024, 2, 15)) for amount in (RAISED_DIFFERENCE, OTHER_DIFFERENCE)]
    settled = app.execute(ReceiveMoney(reference="BCA-240320-000002", npp=NPP,
                                       amount=adjustment["total"] + sum(fines), received_on=ADJUSTMENT_PAID))
    assert settled["settled"] == [adjustment["bill_id"]] and settled["unapplied"] == 0
    return {"adjustment": adjustment, "fines": fines}


@pytest.fixture(scope="module")
def adjusted(tmp_path_factory, settings: Settings, kafka_roles: KafkaRoles) -> dict[str, Any]:
    return relayed_history(tmp_path_factory.mktemp("adjustments"), "adjustments", settings, kafka_roles, CLOCK,
                           write_story)


def test_the_adjustment_is_published_as_contribution_adjusted_not_a_second_payment(adjusted) -> None:
    envelopes = adjusted["envelopes"]
    assert adjusted["published"] == len(envelopes)
    types = Counter(env["type"] for env in envelopes)
    assert (types["BillClosed"], types["BillSettled"], types["ContributionPaid"], types["ContributionAdjusted"]) == (
        2, 2, 2, 2)
    changes = {env["data"]["kpj"]: env for env in envelopes if env["type"] == "ContributionAdjusted"}
    raised, other = changes[RAISED]["data"], changes[OTHER]["data"]
    assert (raised["payment_id"], raised["paid_on"], changes[RAISED]["effective_date"]) == (
        adjusted["adjustment"]["bill_id"], "2024-03-20", "2024-03-20")
    assert (raised["wage"], raised["months_late"], raised["fine"], raised["total"]) == (
        6_000_000, 2, adjusted["fines"][0], RAISED_DIFFERENCE + adjusted["fines"][0])
    assert other["shares"] == {"JKK": {"employer": OTHER_DIFFERENCE, "worker": 0}}
    assert other["total"] == OTHER_DIFFERENCE + adjusted["fines"][1]
    lines = [line for env in envelopes if env["type"] == "BillLinesAdded"
             and env["data"]["bill_id"] == adjusted["adjustment"]["bill_id"] for line in env["data"]["lines"]]
    assert sorted((line["kpj"], line["adjustment"], line["amount"]) for line in lines) == [
        (RAISED, True, RAISED_DIFFERENCE), (OTHER, True, OTHER_DIFFERENCE)]


def test_projections_rebuilt_and_the_recount_agree_and_balances_include_the_adjustment(adjusted) -> None:
    cli: Cli = adjusted["cli"]
    app: Ledger = adjusted["app"]
    events = len(adjusted["envelopes"])
    assert runner.run(adjusted["settings"], list(PROJECTIONS), follow=False) == dict.fromkeys(PROJECTIONS, events)
    for name in PROJECTIONS:
        assert cli.json("projections", "rebuild", name)["events"] == events
    for as_of in AS_OF_DATES:
        report = cli.json("audit", "as-of", as_of.isoformat())
        assert report["ok"] and report["differences_found"] == 0 and report["events"] == events, report

    store = ViewStore.open(adjusted["settings"])
    before = queries.member_balance(store, RAISED, date(2024, 3, 19))
    after = queries.member_balance(store, RAISED, ADJUSTMENT_PAID)
    assert before["jht_balance"] == app.jht_balance(RAISED, date(2024, 3, 19)) == 285_000
    assert after["jht_balance"] == app.jht_balance(RAISED, ADJUSTMENT_PAID) == 342_000
    report = queries.branch_report(store, BRANCH, CLOCK)
    assert report["late_fines"] == sum(adjusted["fines"])
