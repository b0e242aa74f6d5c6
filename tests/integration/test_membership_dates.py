"""One rule for exit and enrollment dates, everywhere: what the write side bills, what the projections count as active
and what the auditor's recount counts agree on the days around an exit (`ledger.rules.employed_on`, `month_owed`).

The exit date is the first day no longer employed: an exit on 1 July is active up to 30 June and owes nothing for
July; an exit on 2 July is active on 1 July and owes July; an enrollment on 31 July owes July.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.audit.recount import Recount
from ledger.commands import (
    EnrollMember,
    ExitMember,
    MemberRow,
    PayContribution,
    RegisterEmployer,
)
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.rules import employed_on, month_owed
from ledger.settings import Settings
from projections import queries, runner
from projections.catalog import PROJECTIONS
from projections.store import ViewStore
from tests.support.kafka_roles import AUDITOR, RELAY, KafkaRoles
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.signing import log_signer

pytestmark = pytest.mark.integration

BRANCH, NPP = "BEKASI-KOTA", "10012345"
# kpj -> (enrolled on, exit date)
MEMBERS = {
    "15000000001": (date(2024, 1, 1), date(2024, 7, 1)),  # exit on the 1st
    "15000000002": (date(2024, 1, 1), date(2024, 7, 2)),  # exit on the 2nd
    "15000000003": (date(2024, 1, 1), date(2024, 7, 31)),  # exit on the last day
    "15000000004": (date(2024, 7, 31), None),  # enrolled on the last day
    "15000000005": (date(2024, 1, 1), date(2024, 8, 1)),  # exit on the 1st of the next month
}


@pytest.fixture(scope="module")
def around_exits(tmp_path_factory, settings: Settings, kafka_roles: KafkaRoles) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("membership-dates")
    prefix = f"test-dates-{uuid.uuid4().hex[:10]}"
    s = kafka_roles.settings(PROJECTIONS_ROLE, settings.model_copy(update={  # what the projections run with
        "sqlite_path": root / "ledger.db", "kafka_topic_prefix": prefix, "projection_sqlite_path": root / "views.db"}))
    app = Ledger(env=s.eventsourcing_env(), clock=lambda: date(2026, 11, 23), nik_key=s.nik_hmac_key_bytes())
    app.execute(RegisterEmployer(npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind="company", risk_class="low",
                                 registered_on=date(2015, 7, 1)))
    for serial, (kpj, (enrolled, exited)) in enumerate(MEMBERS.items(), start=1):
        row = MemberRow(kpj=kpj, nik=f"327501150590{serial:04d}", name="Budi Santoso", birth_date=date(1990, 5, 15),
                        wage=5_000_000)
        app.execute(EnrollMember(member=row, npp=NPP, effective=enrolled))
        if exited is not None:
            app.execute(ExitMember(kpj=kpj, reason="resignation", exit_date=exited))
    app.execute(PayContribution(npp=NPP, month="2024-06", months=3, paid_on=date(2024, 9, 10)))
    topics = kafka_roles.provision(prefix, partitions=2)
    relay = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                  transactional_id=f"relay-{prefix}",
                  batch_max=500)
    relay.run()
    relay.close()
    envelopes = [orjson.loads(r.value) for r in kafka_client.read_to_end(kafka_roles.connection(AUDITOR),
                                                                         topics.events)]
    runner.run(s, list(PROJECTIONS), follow=False)
    return {"envelopes": envelopes, "store": ViewStore.open(s)}


def test_the_months_billed_are_the_months_with_an_active_day(around_exits) -> None:
    billed = {(e["data"]["kpj"], e["data"]["month"]) for e in around_exits["envelopes"]
              if e["type"] == "ContributionPaid"}
    expected = {(kpj, month) for kpj, (enrolled, exited) in MEMBERS.items()
                for month in ("2024-06", "2024-07", "2024-08") if month_owed(month, enrolled, exited)}
    assert billed == expected
    july = {kpj for kpj, month in billed if month == "2024-07"}
    assert july == {"15000000002", "15000000003", "15000000004", "15000000005"}  # not the exit on 1 July


def test_projections_and_the_auditors_recount_count_the_active_members_by_the_same_rule(around_exits) -> None:
    counted = {}
    day = date(2024, 6, 29)
    while day <= date(2024, 8, 2):
        recount = Recount(day)
        for env in around_exits["envelopes"]:
            recount.add(env)
        by_rule = sum(employed_on(day, enrolled, exited) for enrolled, exited in MEMBERS.values())
        projected = queries.branch_report(around_exits["store"], BRANCH, day)["active_pu_members"]
        recounted = recount.branch_reports()[BRANCH]["active_pu_members"]
        assert projected == recounted == by_rule, day
        counted[day.isoformat()] = projected
        day += timedelta(days=1)
    # The boundaries, spelled out: 30 June all four enrolled in January; 1 July the exit on the 1st is gone;
    # 2 July the exit on the 2nd too; 31 July the exit on the 31st is gone and the new member counts.
    assert (counted["2024-06-30"], counted["2024-07-01"], counted["2024-07-02"]) == (4, 3, 2)
    assert (counted["2024-07-30"], counted["2024-07-31"], counted["2024-08-01"]) == (2, 2, 1)
