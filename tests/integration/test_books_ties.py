"""The books' ties (`ledger books check`, `queries.books_ties`): the general ledger against the members' balances, the
branch totals and the collections, on view stores projected from generated histories (a branch billed with money and
the regional budget's members, a branch paying without bills, an employer whose settlement is reversed, money
returned and refunded; and the collections history with money held and matched, payments without a bill and their
reversal). The ties hold at every month-end; a row changed in any projection is found, and named by its event; and
projections that have not read the same offsets are refused, by the command and by a rebuild's check."""

from __future__ import annotations

import re
import sqlite3
import uuid
from calendar import monthrange
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.errors import InvariantViolation, NotProjected
from ledger.generator import BranchPlan, generate_branch
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay
from ledger.settings import Settings
from projections import queries, runner
from projections.catalog import PROJECTIONS
from projections.store import ViewStore, table_name
from tests.support.collections import collections_with_reversals
from tests.support.collections_history import record_collections, record_held_and_unbilled
from tests.support.kafka_roles import PROJECTIONS as PROJECTIONS_ROLE
from tests.support.kafka_roles import RELAY, KafkaRoles
from tests.support.signing import log_signer
from tests.support.views import TEST_NIK_KEY, project, published

pytestmark = pytest.mark.integration

TODAY = date(2026, 1, 20)
TOPIC = "test.events"
PLANS = (BranchPlan(employers=5, members=120, bpu_members=15, months=14, first_month="2024-06", collections=True,
                    budget_members=5),
         BranchPlan(branch="DEPOK", employers=3, members=40, bpu_members=5, months=6, first_month="2020-11", seed=3,
                    first_npp=20_100_001, first_kpj=17_200_000_001))


def month_ends(first: date, last: date) -> Iterator[date]:
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        yield date(year, month, monthrange(year, month)[1])
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The generated branches (collections on and off) with an employer's reversals, projected (and checked)."""
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: TODAY, nik_key=TEST_NIK_KEY)
    for plan in PLANS:
        generate_branch(app, plan)
    collections_with_reversals(app)
    path = tmp_path_factory.mktemp("books-ties") / "generated.db"
    project(ViewStore("sqlite", sqlite_path=path), published(app))
    return path


@pytest.fixture(scope="module")
def held(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The collections history with money held and matched, payments without a bill and reversals, projected."""
    day = [date(2024, 1, 1)]
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: day[0], nik_key=TEST_NIK_KEY)
    record_collections(app, lambda on: day.__setitem__(0, on))
    record_held_and_unbilled(app, lambda on: day.__setitem__(0, on))
    path = tmp_path_factory.mktemp("books-ties") / "held.db"
    project(ViewStore("sqlite", sqlite_path=path), published(app))
    return path


def copy(source: Path, tmp_path: Path) -> ViewStore:
    """A copy of a projected store, to change rows in."""
    target = tmp_path / "views.db"
    with sqlite3.connect(source) as a, sqlite3.connect(target) as b:
        a.backup(b)
    return ViewStore("sqlite", sqlite_path=target)


def failed(result: dict[str, Any]) -> list[tuple[str, str | None, int | None, str | None]]:
    return [(c["check"], c["branch"], c["difference"], c["event_id"]) for c in result["checks"] if not c["ok"]]


def live(store: ViewStore, name: str, table: str) -> str:
    with store.reading() as tx:
        version = ViewStore.live_version(tx, name)
        assert version is not None
        return table_name(name, version, table)


def test_the_ties_hold_at_every_month_end_of_the_generated_branches(generated: Path) -> None:
    store = ViewStore("sqlite", sqlite_path=generated)
    branches = {"BEKASI-KOTA", "DEPOK"}
    for on in month_ends(date(2016, 11, 1), TODAY):
        result = queries.check_books(store, on)
        assert failed(result) == [], on
        assert {c["branch"] for c in result["checks"]} == {None, *branches}
    # Something to tie: every kind of figure is there by the end.
    final = {(c["check"], c["branch"]): c["ledger"] for c in queries.check_books(store, TODAY)["checks"]}
    for check in ("JHT liability (2200) = members' JHT balances", "contributions JKK (3100 + 3410) = branch flows",
                  "late fines (4100) = branch flows", "claims JHT (2200) = branch flows"):
        assert final[(check, "BEKASI-KOTA")] and final[(check, "DEPOK")], check
    assert final[("receivable (1200) = outstanding bills", "BEKASI-KOTA")] > 0
    assert final[("unapplied receipts (2100) = payers' unapplied credit", "BEKASI-KOTA")] > 0


def test_the_ties_hold_through_money_held_matched_payments_without_a_bill_and_reversals(held: Path) -> None:
    store = ViewStore("sqlite", sqlite_path=held)
    days = [*month_ends(date(2024, 1, 1), date(2024, 8, 1)), date(2024, 7, 1), date(2024, 7, 4), date(2024, 7, 5),
            date(2024, 7, 15), date(2024, 7, 20)]
    for on in days:
        assert failed(queries.check_books(store, on)) == [], on
    at = {c["check"]: c["ledger"] for c in queries.check_books(store, date(2024, 7, 4))["checks"]
          if c["branch"] == "BEKASI-KOTA"}
    assert at["money held (2150) = held, not matched"] == 250_000  # HELD-1 is the employer's from the day it arrived


def test_a_members_jht_changed_in_balances_is_found_and_named_by_the_members_latest_event(generated: Path,
                                                                                           tmp_path: Path) -> None:
    store = copy(generated, tmp_path)
    postings = live(store, "balances", "postings")
    with store.transaction() as tx:
        event_id, kpj, on = tx.one(f"SELECT event_id, kpj, on_date FROM {postings} WHERE kind = 'contribution' "
                                   f"AND kpj LIKE '172%' ORDER BY position LIMIT 1 OFFSET 50")
        tx.execute(f"UPDATE {postings} SET jht_worker = jht_worker + 1 WHERE event_id = ?", (event_id,))
        latest = tx.one(f"SELECT event_id FROM {postings} WHERE kpj = ? ORDER BY position DESC LIMIT 1", (kpj,))[0]
    assert failed(queries.check_books(store, date.fromisoformat(on) - timedelta(days=1))) == []
    result = queries.check_books(store, TODAY)
    name = "JHT liability (2200) = members' JHT balances"
    assert failed(result) == [(name, None, -1, latest), (name, "DEPOK", -1, latest)]
    assert {c["problem"] for c in result["checks"] if not c["ok"]} == {f"member {kpj} differs first"}


def test_a_branch_flow_changed_is_found_and_named_by_the_ledgers_event_of_that_day(generated: Path,
                                                                                   tmp_path: Path) -> None:
    store = copy(generated, tmp_path)
    flows, totals = live(store, "branches", "flows"), live(store, "general_ledger", "totals")
    with store.transaction() as tx:
        on, month = tx.one(f"SELECT on_date, month FROM {flows} WHERE branch = 'DEPOK' AND program = '-' "
                           f"AND fines > 0 ORDER BY on_date LIMIT 1")
        tx.execute(f"UPDATE {flows} SET fines = fines + 5 WHERE branch = 'DEPOK' AND on_date = ? AND month = ? "
                   f"AND program = '-'", (on, month))
        event = tx.one(f"SELECT last_event_id FROM {totals} WHERE branch = 'DEPOK' AND account = '4100' "
                       f"AND on_date = ? ORDER BY last_position DESC LIMIT 1", (on,))[0]
    result = queries.check_books(store, TODAY)
    assert failed(result) == [("late fines (4100) = branch flows", "DEPOK", -5, event)]
    assert [c["problem"] for c in result["checks"] if not c["ok"]] == [f"first differs on {on}"]
    assert failed(queries.check_books(store, date.fromisoformat(on) - timedelta(days=1))) == []


def test_a_receipt_changed_in_collections_is_found_and_named_by_the_ledgers_event_of_that_day(generated: Path,
                                                                                              tmp_path: Path) -> None:
    store = copy(generated, tmp_path)
    receipts, totals = live(store, "collections", "receipts"), live(store, "general_ledger", "totals")
    with store.transaction() as tx:
        reference, on = tx.one(f"SELECT reference, received_on FROM {receipts} WHERE branch = 'BEKASI-KOTA' "
                               f"AND received_on >= '2024-09-01' ORDER BY received_on, reference LIMIT 1")
        tx.execute(f"UPDATE {receipts} SET amount = amount + 7 WHERE reference = ?", (reference,))
        event = tx.one(f"SELECT last_event_id FROM {totals} WHERE branch = 'BEKASI-KOTA' AND account = '2100' "
                       f"AND on_date = ? ORDER BY last_position DESC LIMIT 1", (on,))[0]
    result = queries.check_books(store, TODAY)
    assert failed(result) == [("unapplied receipts (2100) = payers' unapplied credit", "BEKASI-KOTA", -7, event)]
    assert [c["problem"] for c in result["checks"] if not c["ok"]] == [f"first differs on {on}"]


def test_a_general_ledger_changed_breaks_its_invariants_and_the_tie_it_touches(generated: Path,
                                                                               tmp_path: Path) -> None:
    store = copy(generated, tmp_path)
    lines, totals = live(store, "general_ledger", "lines"), live(store, "general_ledger", "totals")
    with store.transaction() as tx:
        line = tx.one(f"SELECT event_id FROM {lines} ORDER BY position LIMIT 1 OFFSET 10")[0]
        tx.execute(f"UPDATE {lines} SET jht = jht + 1 WHERE event_id = ?", (line,))
    result = queries.check_books(store, TODAY)
    assert failed(result) == [("the general ledger's invariants", None, None, line)]
    with store.transaction() as tx:
        tx.execute(f"UPDATE {lines} SET jht = jht - 1 WHERE event_id = ?", (line,))
        on = tx.one(f"SELECT on_date FROM {totals} WHERE branch = 'DEPOK' AND account = '3300' "
                    f"AND source = 'ContributionPaid' ORDER BY on_date LIMIT 1 OFFSET 2")[0]
        tx.execute(f"UPDATE {totals} SET credit = credit + 3 WHERE branch = 'DEPOK' AND account = '3300' "
                   f"AND source = 'ContributionPaid' AND on_date = ?", (on,))
        jp = tx.one(f"SELECT last_event_id FROM {totals} WHERE branch = 'DEPOK' AND account = '3300' AND on_date = ? "
                    f"ORDER BY last_position DESC LIMIT 1", (on,))[0]
        unbalanced = tx.one(f"SELECT MAX(last_event_id) FROM {totals} WHERE on_date = ?", (on,))[0]
        last = tx.one(f"SELECT last_event_id FROM {totals} WHERE on_date = ? ORDER BY last_position DESC LIMIT 1",
                      (on,))[0]
    assert failed(queries.check_books(store, TODAY)) == [
        ("the general ledger's invariants", None, None, unbalanced),
        ("the journal balances: debits = credits", None, -3, last),
        ("contributions JP (3300) = branch flows", "DEPOK", 3, jp)]


def save_offsets(store: ViewStore, offsets: dict[str, int]) -> None:
    with store.transaction() as tx:
        for name, offset in offsets.items():
            version = ViewStore.live_version(tx, name)
            assert version is not None
            ViewStore.save_offsets(tx, name, version, {(TOPIC, 0): (offset, offset), (TOPIC, 1): (9, 9)})


def test_projections_that_have_not_read_the_same_offsets_are_refused(held: Path, tmp_path: Path) -> None:
    store = copy(held, tmp_path)
    save_offsets(store, dict.fromkeys(queries.TIED_PROJECTIONS, 12))
    assert queries.check_books(store, TODAY)["ok"]
    save_offsets(store, {"general_ledger": 11})
    with pytest.raises(NotProjected, match=r"general_ledger is behind on test.events partition 0\): run `ledger "
                                           r"projections run`"):
        queries.check_books(store, TODAY)
    with store.transaction() as tx:  # a rebuild's check says why it did not check
        assert queries.rebuild_ties(tx, "balances") == (
            "the books' ties were not checked: the projections have not read the same events (general_ledger is "
            "behind on test.events partition 0)")


def test_a_rebuild_is_stopped_by_a_tie_that_does_not_hold_naming_the_event(held: Path, tmp_path: Path) -> None:
    store = copy(held, tmp_path)
    totals = live(store, "general_ledger", "totals")
    with store.transaction() as tx:
        version = ViewStore.live_version(tx, "collections")
        assert version is not None
        assert queries.rebuild_ties(tx, "collections").startswith("the books tie as of ")
        refunds = table_name("collections", version, "refunds")
        on = tx.one(f"SELECT refunded_on FROM {refunds}")[0]
        tx.execute(f"UPDATE {refunds} SET amount = amount - 1")
        event = tx.one(f"SELECT last_event_id FROM {totals} WHERE account = '2100' AND on_date = ? "
                       f"ORDER BY last_position DESC LIMIT 1", (on,))[0]
        with pytest.raises(InvariantViolation, match=r"BEKASI-KOTA: unapplied receipts \(2100\) = payers' unapplied "
                                                     r"credit does not hold by -1 rupiah \(collections\); first "
                                                     rf"differs on {on} \(1 of \d+ checks fail\)") as raised:
            queries.rebuild_ties(tx, "collections")
        assert raised.value.event_id == event


# --- on every rebuild: the runner's check, on the real Kafka topic --------------------------------------------------

@pytest.fixture(scope="module")
def relayed(tmp_path_factory: pytest.TempPathFactory, settings: Settings, kafka_roles: KafkaRoles) -> Settings:
    """The collections history relayed to topics of its own: the projections' settings for them."""
    root = tmp_path_factory.mktemp("books-ties-kafka")
    prefix = f"test-books-ties-{uuid.uuid4().hex[:10]}"
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


def test_a_rebuild_checks_the_ties_when_the_four_projections_are_at_the_same_offsets(relayed: Settings) -> None:
    runner.run(relayed, list(queries.TIED_PROJECTIONS), follow=False)
    result = runner.rebuild(relayed, "branches")
    assert re.fullmatch(r"the books tie as of \d{4}-\d\d-\d\d \(16 checks\)", result.ties), result.ties
    store = ViewStore.open(relayed)
    refunds, totals = live(store, "collections", "refunds"), live(store, "general_ledger", "totals")
    with store.transaction() as tx:
        tx.execute(f"UPDATE {refunds} SET amount = amount - 1")
        refunded_on = tx.one(f"SELECT refunded_on FROM {refunds}")[0]
        event = tx.one(f"SELECT last_event_id FROM {totals} WHERE account = '2100' AND on_date = ? "
                       f"ORDER BY last_position DESC LIMIT 1", (refunded_on,))[0]
        ledger_version = ViewStore.live_version(tx, "general_ledger")
    # A rebuild of the general ledger: its new version does not tie to the collections (changed): stopped, named.
    with pytest.raises(InvariantViolation, match=r"unapplied receipts \(2100\) = payers' unapplied credit does not "
                                                 r"hold by -1 rupiah") as raised:
        runner.rebuild(relayed, "general_ledger")
    assert raised.value.event_id == event
    with store.reading() as tx:
        assert ViewStore.live_version(tx, "general_ledger") == ledger_version  # not switched
        assert ViewStore.offsets(tx, "general_ledger", ledger_version + 1) == {}  # the new version dropped
    result = runner.rebuild(relayed, "collections")  # the changed row rebuilt from the topic: the books tie again
    assert result.ties.startswith("the books tie as of ")
    # A projection behind the others: the ties are not checked, and the rebuild says so.
    topic = runner.events_topic(relayed)
    with store.transaction() as tx:
        version = ViewStore.live_version(tx, "balances")
        assert version is not None
        partition, (offset, _, _) = max(ViewStore.offsets(tx, "balances", version).items(), key=lambda o: o[1][0])
        ViewStore.save_offsets(tx, "balances", version, {partition: (offset - 1, 0)})
    result = runner.rebuild(relayed, "branches")
    assert result.ties == (f"the books' ties were not checked: the projections have not read the same events "
                           f"(balances is behind on {topic} partition {partition[1]})")


def test_the_ties_hold_and_find_a_change_on_postgresql(relayed: Settings, postgres_settings: Settings) -> None:
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
        ends = kafka_client.end_offsets(pg.kafka(), topic)
        for name in queries.TIED_PROJECTIONS:
            view = PROJECTIONS[name]
            live_runner = runner.Runner(pg, store, view, runner.ensure_live(store, view), sorted(ends))
            live_runner.catch_up(ends)
            live_runner.close()
        for on in [*month_ends(date(2024, 1, 1), date(2024, 8, 1)), date(2024, 7, 4), date(2024, 7, 15)]:
            assert failed(queries.check_books(store, on)) == [], on
        receipts, totals = live(store, "collections", "receipts"), live(store, "general_ledger", "totals")
        with store.transaction() as tx:
            on = tx.one(f"SELECT received_on FROM {receipts} WHERE reference = 'HELD-1'")[0]
            tx.execute(f"UPDATE {receipts} SET amount = amount + 7 WHERE reference = 'HELD-1'")
            event = tx.one(f"SELECT last_event_id FROM {totals} WHERE account = '2100' AND on_date = ? "
                           f"ORDER BY last_position DESC LIMIT 1", (on,))[0]
            result = queries.books_ties(tx, date(2024, 8, 1))
            assert failed(result) == [("unapplied receipts (2100) = payers' unapplied credit", "BEKASI-KOTA", -7,
                                       event)]
            with pytest.raises(InvariantViolation, match="unapplied receipts"):
                queries.rebuild_ties(tx, "collections")
    finally:
        store.close()
        with psycopg.connect(pg.postgres_conninfo(), autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA views_{suffix} CASCADE")
