"""Collections through the whole system, on the real broker: bills closed, money received and applied, a refund,
recorded by the ledger, relayed with signed checkpoints, then checked by the auditor's tools (`audit verify --key`,
`audit reconcile`, `audit as-of`), projected and rebuilt (`projections rebuild`), and read by a subscriber of the
SDK. Nothing of it may fail on the new event types, and the balances must include the member lines of every settled
bill (`ContributionPaid` events whose `payment_id` is the bill id). The same story is also written on the PostgreSQL
event store and read back by a restarted ledger.

The story, one employer of three PU workers and one self-paying BPU member, all enrolled 1 January 2024:
- January is paid without a bill (`ledger contribution pay`), on time;
- February and March are closed: two bills for the employer, one February bill for the BPU member;
- the BPU member pays its bill by KPJ on time; the employer pays by the February bill's code on 20 April, enough for
  February with its fine but not for March too, then by NPP on 25 April, which settles March with its fine and
  leaves credit; the credit is refunded.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import date
from typing import Any

import orjson
import pytest

from consumers.sdk import Delivery, Subscriber
from ledger.application import Ledger
from ledger.commands import (
    CloseBills,
    EnrollMember,
    EnrollMembers,
    PayContribution,
    ReceiveMoney,
    RefundMoney,
    RegisterEmployer,
)
from ledger.errors import RuleViolation
from ledger.events import PUBLISHED_EVENT_TYPES
from ledger.rules import Segment
from ledger.settings import Settings
from projections import queries, runner
from projections.catalog import PROJECTIONS
from projections.store import ViewStore
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import TEAMS, KafkaRoles
from tests.support.relayed import postgres_store, relayed_history
from tests.support.scenario import row
from tests.support.signing import log_verifier_key

pytestmark = pytest.mark.integration

CLOCK = date(2026, 11, 23)
NPP, BRANCH = "10012345", "BEKASI-KOTA"
WORKERS = ["15000000101", "15000000102", "15000000103"]
BPU = "15000000201"
COLLECTIONS_TYPES = {"BillClosed", "BillLinesAdded", "MoneyReceived", "BillSettled", "MoneyRefunded"}
BEFORE_SETTLEMENT, AFTER_SETTLEMENT = date(2024, 4, 19), date(2024, 4, 30)
AS_OF_DATES = (date(2024, 2, 29), BEFORE_SETTLEMENT, date(2024, 4, 22), AFTER_SETTLEMENT, CLOCK)
SUBSCRIBER_IDLE_S = 1


def write_collections(app: Ledger) -> dict[str, Any]:
    """The story of the module's docstring; returns the bills (id -> result row) and the refund's amount."""
    app.execute(RegisterEmployer(npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind="company", risk_class="low",
                                 registered_on=date(2023, 12, 1)))
    app.execute(EnrollMembers(npp=NPP, effective=date(2024, 1, 1),
                              members=[row(kpj, 5_000_000 + 1_000_000 * n, serial=1 + n)
                                       for n, kpj in enumerate(WORKERS)]))
    app.execute(EnrollMember(member=row(BPU, 2_000_000, segment=Segment.BPU, serial=9), npp=None, branch=BRANCH,
                             effective=date(2024, 1, 1)))
    app.execute(PayContribution(npp=NPP, month="2024-01", paid_on=date(2024, 2, 10)))
    february = app.execute(CloseBills(month="2024-02", npps=[NPP], kpjs=[BPU]))["first_bills"]
    march = app.execute(CloseBills(month="2024-03", npps=[NPP]))["first_bills"]
    bills = {bill["bill_id"]: bill for bill in [*february, *march]}
    employer_february, member_february = (next(b for b in february if b["bill_id"].startswith(payer))
                                          for payer in (NPP, BPU))
    [employer_march] = march

    paid = app.execute(ReceiveMoney(reference="BPU-240210-01", kpj=BPU, amount=member_february["total"],
                                    received_on=date(2024, 2, 10)))
    assert paid["settled"] == [member_february["bill_id"]] and paid["unapplied"] == 0
    # February two months late (a 4% fine), with a little over: March stays open.
    first = app.execute(ReceiveMoney(reference="BCA-240420-000123", code=employer_february["payment_code"],
                                     amount=employer_february["total"] * 105 // 100, received_on=date(2024, 4, 20),
                                     payer_name="PT Maju Jaya"))
    assert first["settled"] == [employer_february["bill_id"]] and first["open_bills"] == 1
    # March one month late (a 2% fine), with a little over: credit is left.
    second = app.execute(ReceiveMoney(reference="BCA-240425-000456", npp=NPP,
                                      amount=employer_march["total"] * 103 // 100, received_on=date(2024, 4, 25)))
    assert second["settled"] == [employer_march["bill_id"]] and second["open_bills"] == 0
    credit = second["unapplied"]
    assert credit > 0
    app.execute(RefundMoney(npp=NPP, amount=credit, refunded_on=date(2024, 4, 26),
                            reason="overpaid: the change of two late payments"))
    return {"bills": bills, "refunded": credit}


@pytest.fixture(scope="module")
def collected(tmp_path_factory, settings: Settings, kafka_roles: KafkaRoles) -> dict[str, Any]:
    return relayed_history(tmp_path_factory.mktemp("collections"), "collections", settings, kafka_roles, CLOCK,
                           write_collections)


def test_the_relay_publishes_every_collections_event_without_the_payers_name(collected) -> None:
    envelopes, app = collected["envelopes"], collected["app"]
    assert collected["published"] == len(envelopes) == sum(1 for _ in app.stored_contract_notifications())
    types = Counter(env["type"] for env in envelopes)
    assert set(types) >= COLLECTIONS_TYPES
    assert (types["BillClosed"], types["BillSettled"], types["MoneyReceived"], types["MoneyRefunded"]) == (3, 3, 3, 1)
    assert sorted(env["position"] for env in envelopes) == list(range(1, len(envelopes) + 1))
    assert not any("PT Maju Jaya" in orjson.dumps(env["data"]).decode() for env in envelopes
                   if env["type"] == "MoneyReceived")
    assert all("payer_name" not in env["data"] for env in envelopes)
    # Every envelope's data is the published contract of its type and version.
    for env in envelopes:
        PUBLISHED_EVENT_TYPES[env["type"]].model_validate(env["data"])
    # A bill counts from the first day after its month (PU) or of its month (BPU), not the day the close ran.
    closed = {env["data"]["bill_id"]: env for env in envelopes if env["type"] == "BillClosed"}
    assert {bill_id: env["effective_date"] for bill_id, env in closed.items()} == {
        f"{NPP}/2024-02/PU/1": "2024-03-01", f"{NPP}/2024-03/PU/1": "2024-04-01", f"{BPU}/2024-02/BPU/1": "2024-02-01"}
    assert all(env["data"]["closed_on"] == CLOCK.isoformat() for env in closed.values())


def test_a_settled_bill_is_published_as_contribution_lines_that_carry_its_id(collected) -> None:
    envelopes = collected["envelopes"]
    lines = {(line["kpj"], env["data"]["bill_id"]): line for env in envelopes if env["type"] == "BillLinesAdded"
             for line in env["data"]["lines"]}
    paid = {(env["data"]["kpj"], env["data"]["payment_id"]): env for env in envelopes
            if env["type"] == "ContributionPaid" and env["data"]["payment_id"] in collected["bills"]}
    assert set(paid) == set(lines) and len(paid) == 2 * len(WORKERS) + 1
    for settled in (env["data"] for env in envelopes if env["type"] == "BillSettled"):
        mine = [env for key, env in paid.items() if key[1] == settled["bill_id"]]
        assert sum(env["data"]["fine"] for env in mine) == settled["fine"]
        assert sum(env["data"]["total"] for env in mine) == settled["total"]
        assert {env["effective_date"] for env in mine} == {settled["settled_on"]}
        for env in mine:
            assert env["data"]["shares"] == lines[(env["data"]["kpj"], settled["bill_id"])]["shares"]
    late = {env["data"]["month"]: env["data"] for env in envelopes if env["type"] == "BillSettled"
            and env["data"]["npp"] == NPP}
    assert (late["2024-02"]["months_late"], late["2024-03"]["months_late"]) == (2, 1)
    assert late["2024-02"]["fine"] > 0 and late["2024-03"]["fine"] > 0


def test_the_auditor_verifies_and_reconciles_the_topic(collected) -> None:
    cli: Cli = collected["cli"]
    events = len(collected["envelopes"])
    verified = cli.json("audit", "verify", "--key", log_verifier_key())
    assert verified["ok"] and verified["events"] == events and verified["positions"] == [1, events], verified
    assert verified["signed_log"]["unsigned_tail"] == 0, verified
    reconciled = cli.json("audit", "reconcile")
    assert reconciled["ok"] and reconciled["store"]["events"] == events, reconciled
    # The employer's timeline from the topic holds its bills, money, settlements and refund.
    rows = cli.json("audit", "history", "--npp", NPP)
    assert {"BillClosed", "MoneyReceived", "BillSettled", "MoneyRefunded", "ContributionPaid"} <= {
        r["type"] for r in rows}
    text = cli("audit", "history", "--npp", NPP).stdout
    assert len([line for line in text.splitlines() if " BillSettled " in line]) == 2


def test_projections_rebuilt_and_the_recount_agree_and_balances_include_the_settled_lines(collected) -> None:
    cli: Cli = collected["cli"]
    app: Ledger = collected["app"]
    events = len(collected["envelopes"])
    assert runner.run(collected["settings"], list(PROJECTIONS), follow=False) == dict.fromkeys(PROJECTIONS, events)
    for name in PROJECTIONS:
        assert cli.json("projections", "rebuild", name)["events"] == events
    for as_of in AS_OF_DATES:
        report = cli.json("audit", "as-of", as_of.isoformat())
        assert report["ok"] and report["differences_found"] == 0 and report["events"] == events, report

    store = ViewStore.open(collected["settings"])
    settled_jht: Counter[str] = Counter()
    for env in collected["envelopes"]:
        data = env["data"]
        if env["type"] == "ContributionPaid" and data["payment_id"] in collected["bills"] and data["kpj"] in WORKERS:
            settled_jht[data["kpj"]] += data["shares"]["JHT"]["employer"] + data["shares"]["JHT"]["worker"]
    for kpj in WORKERS:
        before = queries.member_balance(store, kpj, BEFORE_SETTLEMENT)
        after = queries.member_balance(store, kpj, AFTER_SETTLEMENT)
        assert before["jht_balance"] == app.jht_balance(kpj, BEFORE_SETTLEMENT) > 0  # January's, paid without a bill
        assert after["jht_balance"] == app.jht_balance(kpj, AFTER_SETTLEMENT)
        assert after["jht_balance"] - before["jht_balance"] == settled_jht[kpj] > 0  # February's and March's lines
        assert after["movements"] == before["movements"] + 2
    # The BPU member chose no JHT: its settled line shows in its contributions, not in a JHT balance.
    bpu = queries.member_balance(store, BPU, AFTER_SETTLEMENT)
    assert bpu["movements"] == 1 and sum(p["contributions"] for p in bpu["programs"].values()) > 0
    report = queries.branch_report(store, BRANCH, AFTER_SETTLEMENT)
    paid = [env["data"] for env in collected["envelopes"] if env["type"] == "ContributionPaid"]
    assert report["late_fines"] == sum(data["fine"] for data in paid) > 0


def test_a_subscriber_of_the_sdk_reads_every_collections_event(collected, kafka_roles: KafkaRoles) -> None:
    group = f"collections-{uuid.uuid4().hex[:8]}"
    topics = collected["topics"]
    kafka_roles.provision(topics.prefix, teams=[group], team_principal=TEAMS[1])
    subscriber = Subscriber(kafka_roles.connection(TEAMS[1]), topic=topics.events, group_id=group, start="beginning")
    seen: Counter[str] = Counter()

    @subscriber.on(*PUBLISHED_EVENT_TYPES.values())
    def count(event: Any, delivery: Delivery) -> None:
        assert delivery.envelope.type == type(event).TYPE
        assert not hasattr(event, "payer_name")
        seen[delivery.envelope.type] += 1

    stats = subscriber.run(idle_timeout_s=SUBSCRIBER_IDLE_S, handle_signals=False)
    assert stats.dead_lettered == 0, stats.dead_letter_reasons
    assert seen == Counter(env["type"] for env in collected["envelopes"])
    assert set(seen) >= COLLECTIONS_TYPES


def test_on_postgresql_a_restarted_ledger_reads_the_payer_accounts_and_bills_back(collected, postgres_settings,
                                                                               settings: Settings) -> None:
    """The same story on the PostgreSQL event store; a second process then finds the accounts as the first left
    them: the receipts known (a repeat writes nothing), no credit left to refund, the balances of the settled lines."""
    with postgres_store(postgres_settings) as env:
        opened = [Ledger(env=dict(env), clock=lambda: CLOCK, nik_key=settings.nik_hmac_key_bytes()) for _ in range(2)]
        try:
            first, restarted = opened
            story = write_collections(first)
            assert story["bills"] == collected["bills"] and story["refunded"] == collected["refunded"]
            stored = [orjson.loads(n.state)["schema_type"] for n in first.stored_contract_notifications()]
            assert Counter(stored) == Counter(env["type"] for env in collected["envelopes"])

            amount = collected["bills"][f"{NPP}/2024-03/PU/1"]["total"] * 103 // 100
            repeat = restarted.execute(ReceiveMoney(reference="BCA-240425-000456", npp=NPP, amount=amount,
                                                    received_on=date(2024, 4, 25)))
            assert repeat["repeated"] is True and repeat["open_bills"] == 0
            with pytest.raises(RuleViolation, match="larger than employer 10012345's credit of Rp0"):
                restarted.execute(RefundMoney(npp=NPP, amount=1, refunded_on=date(2024, 4, 30), reason="probe"))
            assert [restarted.jht_balance(kpj, AFTER_SETTLEMENT) for kpj in WORKERS] == [
                collected["app"].jht_balance(kpj, AFTER_SETTLEMENT) for kpj in WORKERS]
            assert sum(1 for _ in restarted.stored_contract_notifications()) == len(stored)
        finally:
            for app in opened:
                app.close()
