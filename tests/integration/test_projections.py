"""Projections against the real broker and real view databases: exactly once through crashes, rebuilt beside the
live version while queries run, invariants that stop a rebuild, and a branch report checked against an independent
recomputation from the topic."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.audit.recount import Recount
from ledger.errors import InvariantViolation, ProjectionError
from ledger.events import ContributionPaid
from ledger.publishing import kafka_client
from ledger.publishing.envelope import record_headers
from ledger.settings import Settings
from projections import queries, runner
from projections.catalog import PROJECTIONS
from projections.store import ViewStore, table_name
from projections.views import PARKED, JsonRefused
from tests.support.history import HISTORY_PLAN, copy_topic
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.kafka_roles import KafkaRoles

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAN = HISTORY_PLAN
AS_OF_DATES = (date(2016, 12, 31), date(2017, 3, 14), date(2017, 3, 16), date(2017, 6, 30), date(2026, 1, 1))
WAIT_S_MAX = 120


@pytest.fixture(scope="module")
def history(branch_history: dict[str, Any]) -> dict[str, Any]:
    return branch_history


def view_settings(history: dict[str, Any], path: Path, **extra: Any) -> Settings:
    return history["settings"].model_copy(update={"projection_sqlite_path": path, **extra})


def dump(store: ViewStore, name: str) -> dict[str, list[tuple]]:
    """Every row of the live version of a projection, in a canonical order."""
    view = PROJECTIONS[name]
    with store.reading() as tx:
        version = ViewStore.live_version(tx, name)
        return {table.name: sorted(tx.all(f"SELECT * FROM {table_name(name, version, table.name)}"), key=repr)
                for table in view.tables}


def env_for(history: dict[str, Any], kafka_roles: KafkaRoles, views: Path, **extra: str) -> dict[str, str]:
    """The environment of `ledger projections ...`, run as the projections' principal."""
    return {**os.environ, **kafka_roles.env(PROJECTIONS_ROLE),
            "LEDGER_KAFKA_TOPIC_PREFIX": history["settings"].kafka_topic_prefix,
            "LEDGER_PROJECTION_SQLITE_PATH": str(views), **extra}


# --- an independent recomputation, straight from the topic's envelopes ---------------------------------------------

# An oracle: one straight pass over the envelopes, as independent of the projections' code as it can be.
def expected_branch(envelopes: list[dict[str, Any]], branch: str, as_of: date) -> dict[str, Any]:  # noqa: C901
    day = as_of.isoformat()
    enrolled, exits, employer_kinds = {}, {}, {}
    contributions: dict[str, int] = defaultdict(int)
    claims: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    fines = 0
    bpu_paid: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for env in envelopes:
        data, kind = env["data"], env["type"]
        if env["branch"] != branch:
            continue
        if kind == "MemberEnrolled":
            enrolled[data["kpj"]] = data
        elif kind == "MemberExited":
            exits[data["kpj"]] = data["exit_date"]
        elif kind == "EmployerRegistered":
            employer_kinds[data["npp"]] = data["kind"]
        elif kind == "ContributionPaid" and env["effective_date"] <= day:
            for program, share in data["shares"].items():
                contributions[program] += share["employer"] + share["worker"]
            fines += data["fine"]
            if data["segment"] == "BPU":
                bpu_paid[data["kpj"]].append((data["month"], data["paid_on"]))
        elif kind == "ClaimPaid" and env["effective_date"] <= day:
            claims[data["program"]][0] += 1
            claims[data["program"]][1] += data["amount"]

    def active(kpj: str) -> bool:
        return enrolled[kpj]["effective"] <= day and not (kpj in exits and exits[kpj] <= day)

    pu = [k for k, d in enrolled.items() if d["segment"] == "PU" and active(k)]
    # BPU: inactive after 3 consecutive unpaid months that were due by `as_of` (due the 15th of the month itself).
    last_due = (as_of.year * 12 + as_of.month - 1) - (0 if as_of.day > 15 else 1)
    def month_number(text: str) -> int:
        return int(text[:4]) * 12 + int(text[5:7]) - 1
    bpu_active = 0
    for kpj, d in enrolled.items():
        if d["segment"] != "BPU" or not active(kpj):
            continue
        unpaid_run = [m for m in range(last_due - 2, last_due + 1) if m >= month_number(d["effective"][:7])]
        paid = {month_number(m) for m, paid_on in bpu_paid[kpj] if paid_on <= day}
        if len(unpaid_run) < 3 or any(m >= last_due - 2 for m in paid):
            bpu_active += 1
    return {"active_pu_members": len(pu), "active_employers": len({enrolled[k]["npp"] for k in pu}),
            "bpu_members_active": bpu_active, "late_fines": fines,
            "contributions": {p: contributions[p] for p in ("JHT", "JKK", "JKM", "JP")},
            "claims": {p: claims[p] for p in ("JHT", "JKK", "JKM", "JP")}}


def report_figures(report: dict[str, Any]) -> dict[str, Any]:
    return {"active_pu_members": report["active_pu_members"], "active_employers": report["active_employers"],
            "bpu_members_active": report["bpu_members_active"], "late_fines": report["late_fines"],
            "contributions": {p: v["total"] for p, v in report["contributions"].items()},
            "claims": {p: [v["count"], v["amount"]] for p, v in report["claims"].items()}}


# --- tests -----------------------------------------------------------------------------------------------------------

def test_projected_figures_equal_the_write_side_and_an_independent_recount(history, tmp_path) -> None:
    s = view_settings(history, tmp_path / "views.db")
    applied = runner.run(s, list(PROJECTIONS), follow=False)
    assert applied == dict.fromkeys(PROJECTIONS, len(history["envelopes"]))
    store = ViewStore.open(s)
    for as_of in AS_OF_DATES:
        report = queries.branch_report(store, PLAN.branch, as_of)
        assert report_figures(report) == expected_branch(history["envelopes"], PLAN.branch, as_of), as_of
        assert report["contributions_total"] == sum(v["total"] for v in report["contributions"].values())
    assert report["bpu_members_active"] == 0  # 2026: every BPU member of a history that ended in 2017 has lapsed
    mid = queries.branch_report(store, PLAN.branch, date(2017, 6, 30))
    assert mid["active_pu_members"] > 300 and 0 < mid["bpu_members_active"] < PLAN.bpu_members
    assert mid["late_fines"] > 0 and mid["claims"]["JHT"]["count"] > 0 and mid["claims"]["JP"]["count"] > 0

    app: Ledger = history["app"]
    members = sorted({e["data"]["kpj"] for e in history["envelopes"] if e["type"] == "MemberEnrolled"})
    for kpj in random.Random(3).sample(members, 25):
        for as_of in AS_OF_DATES:
            assert queries.member_balance(store, kpj, as_of)["jht_balance"] == app.jht_balance(kpj, as_of), (kpj, as_of)
    for row in runner.status(s):
        assert row["lag"] == 0 and row["events"] == len(history["envelopes"]) and row["live_version"] == 1

    # Run again: nothing new, nothing applied twice.
    assert runner.run(s, list(PROJECTIONS), follow=False) == dict.fromkeys(PROJECTIONS, 0)
    assert queries.branch_report(store, PLAN.branch, AS_OF_DATES[-1]) == report


def test_sigkill_at_random_points_then_restart_equals_a_clean_rebuild(history, kafka_roles, tmp_path) -> None:
    views = tmp_path / "views.db"
    env = env_for(history, kafka_roles, views, LEDGER_PROJECTION_BATCH_MAX="150")
    rng = random.Random(11)
    for _ in range(4):
        process = subprocess.Popen([sys.executable, "-m", "ledger.cli", "projections", "run", "--follow"], env=env,
                                   cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.0, 3.0))  # start-up takes about a second; then batches of 150 records
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=WAIT_S_MAX)
    finished = subprocess.run([sys.executable, "-m", "ledger.cli", "projections", "run", "--json"], env=env, cwd=ROOT,
                              capture_output=True, text=True, check=False, timeout=WAIT_S_MAX)
    assert finished.returncode == 0, finished.stderr
    s = view_settings(history, views)
    store = ViewStore.open(s)
    crashed = {name: dump(store, name) for name in PROJECTIONS}
    for name in PROJECTIONS:
        assert runner.status(s)[list(PROJECTIONS).index(name)]["events"] == len(history["envelopes"])
        result = runner.rebuild(s, name)
        assert (result.version, result.replaced) == (2, 1)
        assert dump(store, name) == crashed[name], f"{name}: crashed-and-resumed differs from a clean rebuild"
    assert sum(len(rows) for rows in crashed["balances"].values()) > len(history["envelopes"])


def test_rebuild_with_two_workers_switches_readers_at_once_while_queries_run(history, tmp_path) -> None:
    s = view_settings(history, tmp_path / "views.db", projection_batch_max=400)
    runner.run(s, list(PROJECTIONS), follow=False)
    store = ViewStore.open(s)
    kpj = next(e["data"]["kpj"] for e in history["envelopes"] if e["type"] == "MemberEnrolled")
    before = (queries.branch_report(store, PLAN.branch, date(2017, 6, 30)),
              queries.member_balance(store, kpj, date(2017, 6, 30)))
    failures: list[BaseException] = []
    answers: list[tuple] = []
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                answers.append((queries.branch_report(store, PLAN.branch, date(2017, 6, 30)),
                                queries.member_balance(store, kpj, date(2017, 6, 30))))
            except BaseException as error:  # noqa: BLE001 - any failure at all is what this test looks for
                failures.append(error)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        first = runner.rebuild(s, "branches", workers=2)
        second = runner.rebuild(s, "balances", workers=2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=WAIT_S_MAX)
    assert not failures, failures[:3]
    assert len(answers) > 10 and all(answer == before for answer in answers)
    assert (first.version, first.replaced, second.version, second.replaced) == (2, 1, 2, 1)
    with store.reading() as tx:  # readers use version 2 now; version 1 is gone
        assert ViewStore.live_version(tx, "branches") == 2
        assert not tx.table_exists(table_name("branches", 1, "flows"))
        assert tx.table_exists(table_name("branches", 2, "flows"))
    assert (queries.branch_report(store, PLAN.branch, date(2017, 6, 30)),
            queries.member_balance(store, kpj, date(2017, 6, 30))) == before


def test_an_invariant_violation_stops_the_rebuild_and_names_the_event(history, tmp_path, kafka_roles) -> None:
    claim = next(e for e in history["envelopes"] if e["type"] == "ClaimPaid" and e["data"]["program"] == "JHT")
    forged = {**claim, "event_id": "forged-claim.1", "aggregate_id": "forged-claim",
              "position": len(history["envelopes"]) + 1,
              "data": {**claim["data"], "claim_id": "forged", "amount": 999_999_999}}
    s = copy_topic(history, kafka_roles, [(orjson.dumps(forged), [])]).model_copy(
        update={"projection_sqlite_path": tmp_path / "views.db"})
    with pytest.raises(InvariantViolation) as caught:
        runner.rebuild(s, "balances")
    assert caught.value.event_id == "forged-claim.1"
    assert f"member {claim['data']['kpj']}" in caught.value.problem and "below zero" in caught.value.problem
    store = ViewStore.open(s)
    with store.reading() as tx:  # nothing switched, and the half-built version is gone
        assert ViewStore.live_version(tx, "balances") is None
        assert not tx.table_exists(table_name("balances", 1, "postings"))


def test_a_record_that_is_not_an_event_stops_the_runner_and_says_where(history, tmp_path, kafka_roles) -> None:
    s = copy_topic(history, kafka_roles, [(b"\x00 not json", [])]).model_copy(
        update={"projection_sqlite_path": tmp_path / "views.db"})
    with pytest.raises(ProjectionError, match=r"partition \d+ offset \d+ is not a ledger event"):
        runner.run(s, ["branches"], follow=False)


def test_a_runner_whose_consumer_stops_fetching_replaces_it_and_applies_every_event_once(history, tmp_path,
                                                                                         kafka_roles) -> None:
    # kafka-python 3.0 can stop fetching a partition after its leader moves (kafka_client.StallWatch): every poll
    # returns nothing, with no error. A paused consumer behaves the same way, which is how this test wedges it.
    s = copy_topic(history, kafka_roles).model_copy(update={"projection_sqlite_path": tmp_path / "views.db"})
    topic = runner.events_topic(s)
    store = ViewStore.open(s)
    said: list[str] = []
    view = PROJECTIONS["balances"]
    live = runner.Runner(s, store, view, runner.ensure_live(store, view), sorted(kafka_client.end_offsets(s.kafka(),
                         topic)), log=said.append, stall_interval_s=1.0)
    try:
        total = len(history["envelopes"])
        assert live.catch_up(kafka_client.end_offsets(s.kafka(), topic)) == total
        live.client.pause(*live.client.assignment())  # the consumer in use now stops fetching
        later = [{**e, "event_id": f"later-{i}.1", "aggregate_id": f"later-{i}", "position": total + 1 + i}
                 for i, e in enumerate(e for e in history["envelopes"] if e["type"] == "ContributionPaid")][:40]
        producer = kafka_client.producer(kafka_roles.admin)
        for e in later:
            producer.send(topic, key=e["aggregate_id"].encode(), value=orjson.dumps(e))
        producer.flush()
        producer.close()
        applied_before_reopening = 0
        deadline = time.monotonic() + WAIT_S_MAX
        while sum(live.positions().values()) < sum(kafka_client.end_offsets(s.kafka(), topic).values()):
            assert time.monotonic() < deadline, f"not caught up within {WAIT_S_MAX}s: {said}"
            applied = live.step()
            if not said:
                applied_before_reopening += applied
        assert applied_before_reopening == 0  # the paused consumer was wedged until the watch replaced it
        assert len(said) == 1 and "reopening the consumer" in said[0], said
    finally:
        live.close()
    with store.reading() as tx:
        count = tx.one(f"SELECT COUNT(*) FROM {table_name('balances', 1, 'postings')} WHERE event_id LIKE 'later-%'")
        assert count[0] == len(later)
    assert sum(row["events"] for row in runner.status(s) if row["name"] == "balances") == total + len(later)


def test_a_following_runner_that_cannot_learn_a_position_says_so_and_starts_over(history, tmp_path, kafka_roles,
                                                                                 monkeypatch) -> None:
    # A partition without a reachable leader: here one the topic does not have, so its position is never known.
    # kafka-python's position() would wait for it forever; the runner's wait is bounded, and a following runner
    # drops the consumer, says why, and carries on (its next step opens a new one).
    monkeypatch.setattr(kafka_client, "POSITION_TIMEOUT_S", 2)
    s = view_settings(history, tmp_path / "views.db")
    store = ViewStore.open(s)
    view = PROJECTIONS["balances"]
    partitions = sorted(kafka_client.end_offsets(s.kafka(), runner.events_topic(s)))
    said: list[str] = []
    live = runner.Runner(s, store, view, runner.ensure_live(store, view), [*partitions, partitions[-1] + 50],
                         log=said.append)
    try:
        assert runner._follow_step(live) == 0
        assert live.client is None  # dropped: the next step opens a new consumer
        assert len(said) == 1 and f"partition {partitions[-1] + 50} of" in said[0], said
        assert "is not known after 2s" in said[0] and "trying again with a new consumer" in said[0]
    finally:
        live.close()


# --- balances' JSON path (SQLite): the same rows as the ordinary path, and a record that is not what its headers say
# sends the batch down the ordinary path ----------------------------------------------------------------------------

JSON_PATH_BATCH_MAX = 40  # small batches: many take the JSON path, the one holding the odd record does not


def json_path_spy(monkeypatch) -> dict[str, int]:
    """Counts what `Balances.apply_json` took and refused."""
    seen = {"values": 0, "refused": 0}
    view = PROJECTIONS["balances"]
    real = type(view).apply_json

    def spy(self, tx, version, values):
        try:
            real(self, tx, version, values)
        except JsonRefused:
            seen["refused"] += 1
            raise
        seen["values"] += len(values)

    monkeypatch.setattr(type(view), "apply_json", spy)
    return seen


def balances_both_ways(s: Settings, tmp_path: Path, monkeypatch) -> tuple[dict, dict, dict[str, int]]:
    """Balances from the topic of `s` with the JSON path, then without it: both dumps and what the JSON path saw."""
    with_json, plain = (s.model_copy(update={"projection_batch_max": JSON_PATH_BATCH_MAX,
                                             "projection_sqlite_path": tmp_path / name})
                        for name in ("json.db", "plain.db"))
    seen = json_path_spy(monkeypatch)
    runner.run(with_json, ["balances"], follow=False)
    with monkeypatch.context() as m:
        m.setattr(PROJECTIONS["balances"], "json_types", ())
        runner.run(plain, ["balances"], follow=False)
    return dump(ViewStore.open(with_json), "balances"), dump(ViewStore.open(plain), "balances"), seen


def test_balances_json_path_writes_the_rows_the_ordinary_path_writes(history, tmp_path, kafka_roles,
                                                                        monkeypatch) -> None:
    s = copy_topic(history, kafka_roles)
    with_json, plain, seen = balances_both_ways(s, tmp_path, monkeypatch)
    assert with_json == plain and len(plain["postings"]) > 100
    paid = sum(1 for e in history["envelopes"] if e["type"] == "ContributionPaid")
    assert seen == {"values": paid, "refused": 0}


def test_a_record_not_what_its_headers_say_is_applied_the_ordinary_way(history, tmp_path, kafka_roles,
                                                                       monkeypatch) -> None:
    credited = next(e for e in history["envelopes"] if e["type"] == "YieldCredited")
    odd = {**credited, "event_id": "odd-yield.1", "aggregate_id": "odd-yield",
           "position": len(history["envelopes"]) + 1}
    s = copy_topic(history, kafka_roles,
                   [(orjson.dumps(odd), record_headers("ContributionPaid", ContributionPaid.VERSION))])
    with_json, plain, seen = balances_both_ways(s, tmp_path, monkeypatch)
    assert with_json == plain
    assert seen["refused"] == 1 and seen["values"] > 0
    assert [p[3] for p in with_json["postings"] if p[0] == "odd-yield.1"] == ["yield"]  # once, as what it is


@pytest.mark.parametrize("bad", ["not-json", "no-fine"])
def test_a_bad_record_labelled_as_a_contribution_stops_the_runner_and_writes_nothing(history, tmp_path, kafka_roles,
                                                                                     bad) -> None:
    paid = next(e for e in history["envelopes"] if e["type"] == "ContributionPaid")
    value = b"\x00 not json" if bad == "not-json" else orjson.dumps(
        {**paid, "event_id": "no-fine.1", "data": {k: v for k, v in paid["data"].items() if k != "fine"}})
    # One partition and one batch for the whole topic: the batch holds good contributions and the bad record.
    headers = record_headers("ContributionPaid", ContributionPaid.VERSION)
    s = copy_topic(history, kafka_roles, [(value, headers)], partitions=1).model_copy(
        update={"projection_sqlite_path": tmp_path / "views.db", "projection_batch_max": 1_000_000})
    expected = r"partition 0 offset \d+ is not a ledger event" if bad == "not-json" else r"could not apply.*'fine'"
    with pytest.raises(ProjectionError, match=expected):
        runner.run(s, ["balances"], follow=False)
    with ViewStore.open(s).reading() as tx:
        assert tx.one(f"SELECT COUNT(*) FROM {table_name('balances', 1, 'postings')}") == (0,)
        assert tx.one(f"SELECT COUNT(*) FROM {table_name('balances', 1, 'accounts')}") == (0,)
        assert ViewStore.offsets(tx, "balances", 1) == {}


def test_postgresql_views_equal_sqlite_views(history, tmp_path, postgres_settings) -> None:
    sqlite = view_settings(history, tmp_path / "views.db")
    runner.run(sqlite, list(PROJECTIONS), follow=False)
    suffix = uuid.uuid4().hex[:8]
    pg = history["settings"].model_copy(update={
        "projection_store": "postgres", "postgres_host": postgres_settings.postgres_host,
        "postgres_port": postgres_settings.postgres_port, "postgres_user": postgres_settings.postgres_user,
        "postgres_dbname": postgres_settings.postgres_dbname})
    # A schema of this test's own keeps its tables apart from any other test's.
    import psycopg

    with psycopg.connect(pg.postgres_conninfo(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA views_{suffix}")
    pg = pg.model_copy(update={"postgres_dbname": pg.postgres_dbname})
    store = ViewStore("postgres", conninfo=pg.postgres_conninfo() + f" options=-csearch_path=views_{suffix}")
    try:
        for name in PROJECTIONS:
            view_runner = runner.Runner(pg, store, PROJECTIONS[name], runner.ensure_live(store, PROJECTIONS[name]),
                                        sorted(kafka_client.end_offsets(pg.kafka(), runner.events_topic(pg))))
            view_runner.catch_up(kafka_client.end_offsets(pg.kafka(), runner.events_topic(pg)))
            view_runner.close()
            with store.reading() as tx:
                PROJECTIONS[name].check(tx, 1)
        lite = ViewStore.open(sqlite)
        for as_of in AS_OF_DATES:
            assert queries.branch_report(store, PLAN.branch, as_of) == queries.branch_report(lite, PLAN.branch, as_of)
        assert {n: dump(store, n) for n in PROJECTIONS} == {n: dump(lite, n) for n in PROJECTIONS}
    finally:
        with psycopg.connect(pg.postgres_conninfo(), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA views_{suffix} CASCADE")


def test_a_following_runner_moves_to_the_rebuilt_version_and_keeps_applying_new_events(history, tmp_path,
                                                                                       kafka_roles) -> None:
    s = copy_topic(history, kafka_roles).model_copy(update={"projection_sqlite_path": tmp_path / "views.db"})
    env = {**env_for(history, kafka_roles, tmp_path / "views.db"), "LEDGER_KAFKA_TOPIC_PREFIX": s.kafka_topic_prefix}
    follower = subprocess.Popen([sys.executable, "-m", "ledger.cli", "projections", "run", "--follow"], env=env,
                                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    total = len(history["envelopes"])

    def applied(version: int) -> int | None:
        rows = {row["name"]: row for row in runner.status(s)}
        row = rows["balances"]
        return row["events"] if row["live_version"] == version and row["lag"] == 0 else None

    def wait_for(version: int, events: int) -> None:
        deadline = time.monotonic() + WAIT_S_MAX
        while applied(version) != events and time.monotonic() < deadline:
            time.sleep(0.3)
        assert applied(version) == events, runner.status(s)

    try:
        wait_for(1, total)
        result = runner.rebuild(s, "balances")  # while the follower runs
        assert (result.version, result.replaced) == (2, 1)
        later = [{**e, "event_id": f"later-{i}.1", "aggregate_id": f"later-{i}", "position": total + 1 + i}
                 for i, e in enumerate(e for e in history["envelopes"] if e["type"] == "ContributionPaid")][:40]
        producer = kafka_client.producer(kafka_roles.admin)  # written straight to the topic, as copy_topic does
        for e in later:
            producer.send(f"{s.kafka_topic_prefix}.events", key=e["aggregate_id"].encode(), value=orjson.dumps(e))
        producer.flush()
        producer.close()
        wait_for(2, total + len(later))  # the follower moved to version 2 and applied the new events there
        store = ViewStore.open(s)
        with store.reading() as tx:
            count = tx.one(f"SELECT COUNT(*) FROM {table_name('balances', 2, 'postings')} "
                           f"WHERE event_id LIKE 'later-%'")[0]
            assert count == len(later) and not tx.table_exists(table_name("balances", 1, "postings"))
        assert follower.poll() is None, follower.stderr.read() if follower.stderr else ""
    finally:
        follower.send_signal(signal.SIGTERM)
        assert follower.wait(timeout=WAIT_S_MAX) == 0  # a graceful stop


# --- reversals published at v1, before they named their payment's account (issue 12) -------------------------------

def _scenario_envelopes() -> list[dict[str, Any]]:
    """A small history written by the ledger and enveloped as the relay publishes it: an employer payment, a BPU
    member's own payment, and a reversal of each."""
    from ledger.commands import (
        EnrollMember,
        MemberRow,
        PayContribution,
        RegisterEmployer,
        Reverse,
    )
    from ledger.domain import INTERNAL_EVENT_TOPICS
    from ledger.publishing.envelope import envelope

    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: date(2026, 11, 23),
                 nik_key=b"integration-tests-only-nik-hmac-key-0123")  # in memory, never published
    app.execute(RegisterEmployer(npp="10012345", name="PT Maju Jaya", branch="BEKASI-KOTA", kind="company",
                                 risk_class="low", registered_on=date(2015, 7, 1)))
    app.execute(EnrollMember(npp="10012345", effective=date(2016, 1, 1), member=MemberRow(
        kpj="15000000001", nik="3275011505900001", name="Budi", birth_date=date(1990, 5, 15), wage=5_000_000)))
    app.execute(EnrollMember(branch="BEKASI-KOTA", effective=date(2016, 1, 1), member=MemberRow(
        kpj="15000000002", nik="3275011505900002", name="Ani", birth_date=date(1990, 5, 15), wage=2_000_000,
        segment="BPU")))
    for kw in ({"npp": "10012345"}, {"kpj": "15000000002"}):
        app.execute(PayContribution(month="2016-01", paid_on=date(2016, 1, 10), **kw))
    for row in [r for kpj in ("15000000001", "15000000002") for r in app.history(kpj=kpj)
                if r["type"] == "ContributionPaid"]:
        app.execute(Reverse(event_id=row["event_id"], reason="wrong month", reversed_on=date(2016, 1, 20)))
    notifications = [n for n in app.recorder.select_notifications(start=1, limit=100)
                     if n.topic not in INTERNAL_EVENT_TOPICS]
    return [orjson.loads(envelope(n, position)[1]) for position, n in enumerate(notifications, start=1)]


def _as_v1(env: dict[str, Any]) -> dict[str, Any]:
    if env["type"] != "ContributionReversed":
        return env
    data = {k: v for k, v in env["data"].items() if k not in ("npp", "segment")}
    return {**env, "version": 1, "data": data}


# The projections that read contributions and their reversals, and so park a v1 reversal (collections reads neither).
@pytest.mark.parametrize("name", sorted(name for name, view in PROJECTIONS.items() if PARKED in view.tables))
def test_a_v1_reversal_waits_for_its_member_and_books_like_its_v2_twin(name, tmp_path) -> None:
    envelopes = _scenario_envelopes()
    v1 = [_as_v1(env) for env in envelopes]
    reversals = [env for env in v1 if env["type"] == "ContributionReversed"]
    assert len(reversals) == 2 and all("npp" not in env["data"] for env in reversals)
    view, rows = PROJECTIONS[name], []
    for order in ("v2 in order", "v1 reversals first"):
        store = ViewStore("sqlite", sqlite_path=tmp_path / f"{name}-{len(rows)}.db")
        with store.transaction() as tx:
            view.create(tx, ViewStore.new_version(tx, name), indexes=True)
            ViewStore.switch(tx, name, 1)
        if order == "v2 in order":
            with store.transaction() as tx:
                view.apply(tx, 1, envelopes)
        else:
            # A worker that owns the reversals' partition applies them before another applies the enrollments.
            with store.transaction() as tx:
                view.apply(tx, 1, reversals)
                with pytest.raises(InvariantViolation, match="was never enrolled, but an event of theirs needs"):
                    view.check(tx, 1)
            with store.transaction() as tx:
                view.apply(tx, 1, [env for env in v1 if env["type"] != "ContributionReversed"])
        with store.transaction() as tx:
            view.check(tx, 1)
        rows.append(dump(store, name))
    assert rows[0]["parked"] == rows[1]["parked"] == []
    if name == "branches":
        # The employer's account and the BPU member's own account each take their reversal back, to zero.
        totals = {row[0]: row[3] for row in rows[1]["account_totals"] if row[2] == "2016-01-20"}
        assert totals["npp:10012345"] < 0 and totals["kpj:15000000002"] < 0
        assert "kpj:15000000001" not in totals
    assert rows[0] == rows[1]


def test_the_auditors_recount_takes_a_v1_reversal_to_its_payments_account() -> None:

    envelopes = _scenario_envelopes()
    for feed in (envelopes, [_as_v1(env) for env in reversed(envelopes)]):
        recount = Recount(date(2016, 1, 31))
        for env in feed:
            recount.add(env)
        recount.finish()
        accounts = recount.account_totals()
        assert accounts["npp:10012345"]["contributions"] == accounts["kpj:15000000002"]["contributions"] == 0
        assert "kpj:15000000001" not in accounts and recount.events == len(envelopes)
