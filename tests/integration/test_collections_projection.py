"""The collections read side end to end: a history of bills, money in part, late settlements and a refund, then money
held until matched, payments without a bill and reversals (`record_held_and_unbilled`), written by the ledger (SQLite
event store), relayed to the real Kafka broker, built by the projections' runner (a rebuild in two workers into
SQLite, and the live runner into PostgreSQL), then the arrears report at three dates and the branch's collection
figures, which must add up: billed = settled + outstanding, received = applied + unapplied + refunded, and the held
money and payments without a bill beside them; the auditor's recount from the topic finds no difference."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.application import Ledger
from ledger.audit.recount import as_of_topic
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.settings import Settings
from projections import queries, runner
from projections.api import create_app
from projections.catalog import PROJECTIONS
from projections.store import ViewStore, table_name
from tests.support.access_log import MemoryAccessLog
from tests.support.collections_history import BPU_KPJ, BRANCH, NPP, record_collections, record_held_and_unbilled
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.kafka_roles import RELAY, KafkaRoles
from tests.support.signing import log_signer
from tests.support.tokens import TokenKit
from tests.support.views import TEST_NIK_KEY, project, published

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BILL, BPU_BILL, FINE_3_MONTHS = 1_558_206, 26_800, 93_493  # tests/unit/test_collections_read_side.py derives them
# (as of, [(payer, month, months overdue, amount, fine)], total fine, credit of the payers listed)
ARREARS = (
    (date(2024, 3, 16), [(NPP, "2024-01", 2, BILL, 62_328), (NPP, "2024-02", 1, BILL, 31_164),
                         (BPU_KPJ, "2024-02", 2, BPU_BILL, 0), (BPU_KPJ, "2024-03", 1, BPU_BILL, 0)], 93_492,
     1_000_000),
    (date(2024, 4, 20), [(BPU_KPJ, "2024-02", 3, BPU_BILL, 0), (BPU_KPJ, "2024-03", 2, BPU_BILL, 0),
                         (NPP, "2024-02", 2, BILL, 62_328)], 62_328, 3_000_000 - BILL - FINE_3_MONTHS),
    (date(2024, 6, 30), [(BPU_KPJ, "2024-02", 5, BPU_BILL, 0), (BPU_KPJ, "2024-03", 4, BPU_BILL, 0)], 0, 0),
)


@pytest.fixture(scope="module")
def relayed(tmp_path_factory: pytest.TempPathFactory, settings: Settings, kafka_roles: KafkaRoles) -> Settings:
    """The history written and relayed to topics of its own: the projections' settings for them."""
    root = tmp_path_factory.mktemp("collections")
    prefix = f"test-collections-{uuid.uuid4().hex[:10]}"
    base = settings.model_copy(update={"sqlite_path": root / "ledger.db", "kafka_topic_prefix": prefix,
                                       "projection_sqlite_path": root / "views.db"})
    day = [date(2024, 1, 1)]
    app = Ledger(env=base.eventsourcing_env(), clock=lambda: day[0], nik_key=base.nik_hmac_key_bytes())
    record_collections(app, lambda on: day.__setitem__(0, on))
    record_held_and_unbilled(app, lambda on: day.__setitem__(0, on))
    topics = kafka_roles.provision(prefix, partitions=3)
    relay = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                  transactional_id=f"relay-{prefix}")
    assert relay.run() > 0
    relay.close()
    return kafka_roles.settings(PROJECTIONS_ROLE, base)


def check_arrears(store: ViewStore) -> None:
    for as_of, bills, fine, credit in ARREARS:
        report = queries.arrears(store, BRANCH, as_of)
        assert [(p["npp"] or p["kpj"], b["month"], b["months_overdue"], b["amount"], b["fine"])
                for p in report["payers"] for b in p["bills"]] == bills, as_of
        totals = report["totals"]
        assert (totals["fine"], totals["credit"]) == (fine, credit)
        assert totals["amount"] == sum(bill[3] for bill in bills)
        for field in ("amount", "fine", "total", "credit"):
            assert sum(payer[field] for payer in report["payers"]) == totals[field]
        for field in ("amount", "fine", "total", "bills"):
            assert sum(bucket[field] for bucket in report["buckets"]) == totals[field]


def check_figures(store: ViewStore) -> None:
    for as_of, bills, _, _ in ARREARS:
        figures = queries.branch_report(store, BRANCH, as_of)["collections"]
        assert figures["billed"] == figures["settled"] + figures["outstanding"] == 2 * BILL + 2 * BPU_BILL
        assert figures["received"] == figures["applied"] + figures["unapplied"] + figures["refunded"]
        # Every bill of the history is past its due date on these dates: all that is outstanding is in arrears.
        assert figures["outstanding"] == sum(bill[3] for bill in bills)
    last = queries.branch_report(store, BRANCH, date(2024, 6, 30))["collections"]
    assert last == {"billed": 2 * BILL + 2 * BPU_BILL, "settled": 2 * BILL, "outstanding": 2 * BPU_BILL,
                    "fines_applied": 2 * FINE_3_MONTHS, "applied": 2 * (BILL + FINE_3_MONTHS), "received": 3_500_000,
                    "unapplied": 3_500_000 - 2 * (BILL + FINE_3_MONTHS) - 100_000, "refunded": 100_000,
                    "returned": 0, "held": 0, "held_count": 0, "held_matched_later": 0, "paid_without_bill": 0,
                    "paid_without_bill_count": 0, "paid_without_bill_reversed": 0}
    # After it (tests/unit/test_collections_read_side.py derives them): HELD-1 (750,000) and HELD-2 (250,000) held on
    # 07-01, HELD-1 matched on 07-05 (its receipt dated 07-01); March paid without a bill on 07-10 (BILL + 93,493),
    # April on 07-11 (BILL + 62,328) and reversed on 07-15; the February settlement reversed on 07-20.
    later = {as_of: queries.branch_report(store, BRANCH, as_of)["collections"]
             for as_of in (date(2024, 7, 1), date(2024, 7, 11), date(2024, 7, 20))}
    names = ("received", "held", "held_count", "held_matched_later", "paid_without_bill", "paid_without_bill_count",
             "paid_without_bill_reversed")
    assert [tuple(figures[name] for name in names) for figures in later.values()] == [
        (4_250_000, 1_000_000, 2, 750_000, 0, 0, 0),
        (4_250_000, 250_000, 1, 0, 2 * BILL + FINE_3_MONTHS + 62_328, 2, 0),
        (4_250_000, 250_000, 1, 0, BILL + FINE_3_MONTHS, 2, BILL + 62_328)]
    assert later[date(2024, 7, 20)]["settled"] == BILL


def check_recount(settings: Settings, store: ViewStore) -> None:
    """`ledger audit as-of` from the real topic: held money, payments without a bill and arrears aging included."""
    for as_of in (date(2024, 3, 16), date(2024, 7, 1), date(2024, 7, 20)):
        report = as_of_topic(settings.kafka(), runner.events_topic(settings), store, as_of)
        assert (report.ok, report.differences) == (True, []), as_of


def test_a_rebuild_in_two_workers_answers_arrears_and_figures_that_add_up(relayed: Settings) -> None:
    result = runner.rebuild(relayed, "collections", workers=2)
    assert result.events > 0
    runner.rebuild(relayed, "branches")  # the branch report's other figures
    store = ViewStore.open(relayed)
    check_arrears(store)
    check_figures(store)
    runner.rebuild(relayed, "balances")  # as-of compares every projection
    runner.rebuild(relayed, "general_ledger")
    check_recount(relayed, store)
    # The documented commands print the same reports.
    env = {**os.environ, "LEDGER_PROJECTION_SQLITE_PATH": str(relayed.projection_sqlite_path),
           "LEDGER_ACCESS_LOG_SQLITE_PATH": str(relayed.projection_sqlite_path.with_name("access-log.db"))}
    printed = subprocess.run([sys.executable, "-m", "ledger.cli", "report", "arrears", "--branch", BRANCH,
                              "--as-of", "2024-03-16", "--json"], env=env, cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=60)
    assert json.loads(printed.stdout) == queries.arrears(store, BRANCH, date(2024, 3, 16))
    table = subprocess.run([sys.executable, "-m", "ledger.cli", "report", "arrears", "--branch", BRANCH, "--as-of",
                            "2024-03-16"], env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert f"  employer {NPP}" in table.stdout and f"  member {BPU_KPJ}" in table.stdout
    branch = subprocess.run([sys.executable, "-m", "ledger.cli", "report", "branch", BRANCH, "--as-of", "2024-06-30"],
                            env=env, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
    assert f"collections: billed Rp{2 * BILL + 2 * BPU_BILL:,} = settled Rp{2 * BILL:,}" in branch.stdout


def test_postgresql_builds_the_same_collections_view(relayed: Settings, postgres_settings: Settings) -> None:
    import psycopg

    suffix = uuid.uuid4().hex[:8]
    pg = relayed.model_copy(update={
        "projection_store": "postgres", "postgres_host": postgres_settings.postgres_host,
        "postgres_port": postgres_settings.postgres_port, "postgres_user": postgres_settings.postgres_user,
        "postgres_dbname": postgres_settings.postgres_dbname})
    with psycopg.connect(pg.postgres_conninfo(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA views_{suffix}")
    store = ViewStore("postgres", conninfo=pg.postgres_conninfo() + f" options=-csearch_path=views_{suffix}")
    try:
        topic = runner.events_topic(pg)
        for name in ("branches", "collections"):  # the branch report reads both
            live = runner.Runner(pg, store, PROJECTIONS[name], runner.ensure_live(store, PROJECTIONS[name]),
                                 sorted(kafka_client.end_offsets(pg.kafka(), topic)))
            live.catch_up(kafka_client.end_offsets(pg.kafka(), topic))
            live.close()
        view = PROJECTIONS["collections"]
        with store.reading() as tx:
            view.check(tx, 1)
            rows: dict[str, Any] = {t.name: sorted(tx.all(f"SELECT * FROM {table_name('collections', 1, t.name)}"),
                                                   key=repr) for t in view.tables}
        assert rows["settlements"] and rows["bill_amounts"] and rows["refunds"] and rows["held_matches"]
        assert rows["unbilled_payments"] and rows["contribution_reversals"]
        check_arrears(store)
        check_figures(store)
    finally:
        store.close()
        with psycopg.connect(pg.postgres_conninfo(), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA views_{suffix} CASCADE")


def test_the_arrears_endpoint_checks_scope_and_logs_each_bpu_member_it_lists(tmp_path: Path) -> None:
    """`GET /branches/{branch}/arrears` in process (FastAPI's TestClient) over a view store built from the history
    without Kafka: the refusals of the other branch endpoints, the answer `ledger report arrears --json` gives, and one
    access-log entry per BPU member listed."""
    day = [date(2024, 1, 1)]
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: day[0], nik_key=TEST_NIK_KEY)
    record_collections(app, lambda on: day.__setitem__(0, on))
    store = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    project(store, published(app))
    kit = TokenKit.create(tmp_path / "token-keys")
    log = MemoryAccessLog()
    api = TestClient(create_app(kit.settings(Settings(projection_sqlite_path=tmp_path / "unused.db")), store,
                                access_log=log, clock=lambda: date(2024, 6, 30)))
    path = f"/branches/{BRANCH}/arrears"
    assert api.get(f"{path}?as_of=2024-03-16").status_code == 401
    for token, status in ((kit.headers("branch-staff", "staff-ani", branches=("BOGOR",)), 403),
                          (kit.headers("member-service", "portal", kpj=BPU_KPJ), 403),
                          (kit.headers("operator", "ops"), 403)):
        assert api.get(f"{path}?as_of=2024-03-16", headers=token).status_code == status
    assert api.get("/branches/NOWHERE/arrears", headers=kit.headers("auditor", "auditor-ani")).status_code == 404
    assert api.get(f"{path}?as_of=2024-13-16", headers=kit.headers("auditor", "auditor-ani")).status_code == 422
    assert log.entries == []  # nothing answered, nothing logged
    staff = kit.headers("branch-staff", "staff-budi", branches=(BRANCH,))
    answer = api.get(f"{path}?as_of=2024-03-16", headers=staff)
    assert answer.status_code == 200 and answer.json() == queries.arrears(store, BRANCH, date(2024, 3, 16))
    today = api.get(path, headers=staff).json()  # as_of omitted: the API's today, 2024-06-30
    assert today == queries.arrears(store, BRANCH, date(2024, 6, 30))
    assert [(e.subject, e.kpj, e.endpoint) for e in log.entries] == [
        ("staff-budi", BPU_KPJ, "GET /branches/{branch}/arrears")] * 2
    spec = api.get("/openapi.json").json()
    operation = spec["paths"]["/branches/{branch}/arrears"]["get"]
    assert {"200", "401", "403", "404", "422", "429", "503"} <= set(operation["responses"])
    assert "Arrears" in spec["components"]["schemas"]
    log.unavailable = "the access log's disk is full"
    assert api.get(f"{path}?as_of=2024-03-16", headers=staff).status_code == 503
    store.close()
