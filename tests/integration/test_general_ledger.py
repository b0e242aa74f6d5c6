"""The general ledger (`projections.general_ledger`) built from real histories: a generated branch (DEPOK: bills,
money in part, late settlements, refunds, claims) and the books history of tests/support/books_history.py
(BEKASI-KOTA: a settlement reversed and settled again, a payment without a bill reversed whole, a claim reversed, a
refund, a receipt returned, money held and matched later, late and partial payments, an adjustment, a yield).

Without Kafka (tests/support/views.py): the trial balance balances at every month-end, in every branch; each account
at each month-end equals the figure worked by hand (BEKASI-KOTA) or the branch report's (DEPOK); the match is booked
on the day its money arrived; the clearing account is empty; the JSON path and an index-less load (reversals
waiting for `complete`) write the rows the ordinary path writes; PostgreSQL writes the rows SQLite writes.
On the real broker: a rebuild in two workers gives the journal a rebuild in one gives."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.events import EVENT_TYPES
from ledger.generator import BranchPlan
from ledger.settings import Settings
from projections import queries, runner
from projections.catalog import PROJECTIONS
from projections.general_ledger import GeneralLedger
from projections.store import ViewStore, table_name
from tests.support.books_history import BRANCH, BUDI, record_books_history
from tests.support.kafka_roles import KafkaRoles
from tests.support.relayed import relayed_history
from tests.support.views import project, projected_store, published

pytestmark = pytest.mark.integration

GL = "general_ledger"
VIEW = PROJECTIONS[GL]
GENERATED = BranchPlan(branch="DEPOK", employers=3, members=30, bpu_members=5, months=6, first_month="2023-03",
                       collections=True, budget_members=2, seed=5)
TODAY = date(2025, 1, 2)
Records = list[tuple[dict[str, Any], bytes]]


def write_books(app: Ledger) -> dict[str, Any]:
    """The books history on `app`, its clock moved day by day as the steps need, then put back."""
    clock, day = app.clock, [TODAY]
    app.clock = lambda: day[0]
    try:
        return record_books_history(app, lambda on: day.__setitem__(0, on))
    finally:
        app.clock = clock


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ViewStore, Records, Ledger]:
    apps: list[Ledger] = []

    def more(app: Ledger) -> None:
        apps.append(app)
        write_books(app)

    store = projected_store(tmp_path_factory.mktemp("gl") / "views.db", [GENERATED], TODAY, more=more)
    return store, published(apps[0]), apps[0]


@pytest.fixture(scope="module")
def store(built: tuple[ViewStore, Records, Ledger]) -> ViewStore:
    return built[0]


@pytest.fixture(scope="module")
def records(built: tuple[ViewStore, Records, Ledger]) -> Records:
    return built[1]


def month_ends(first: date, last: date) -> Iterator[date]:
    day = date(first.year, first.month, 1)
    while day <= last:
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        yield following - timedelta(days=1)
        day = following


def balances(store: ViewStore, as_of: date, branch: str | None = None, version: int = 1) -> dict[str, int]:
    """Each account's balance (debit - credit) at the end of `as_of`, zero balances left out."""
    where, args = ("AND branch = ?", (as_of.isoformat(), branch)) if branch else ("", (as_of.isoformat(),))
    with store.reading() as tx:
        return {account: int(balance) for account, balance in tx.all(
            f"SELECT account, SUM(debit) - SUM(credit) FROM {table_name(GL, version, 'totals')} "
            f"WHERE on_date <= ? {where} GROUP BY account HAVING SUM(debit) != SUM(credit)", args)}


def dump(store: ViewStore, version: int = 1) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a version of the general ledger, in a canonical order."""
    with store.reading() as tx:
        return {table.name: sorted((tuple(int(v) if isinstance(v, int) else v for v in row)
                                    for row in tx.all(f"SELECT * FROM {table_name(GL, version, table.name)}")),
                                   key=repr) for table in VIEW.tables}


def test_the_trial_balance_balances_at_every_month_end_in_every_branch(store: ViewStore) -> None:
    with store.reading() as tx:
        first, last = (date.fromisoformat(d) for d in tx.one(
            f"SELECT MIN(on_date), MAX(on_date) FROM {table_name(GL, 1, 'totals')}"))
        branches = [b for (b,) in tx.all(f"SELECT DISTINCT branch FROM {table_name(GL, 1, 'totals')}")]
    assert sorted(branches) == ["BEKASI-KOTA", "DEPOK"]
    ends = list(month_ends(first, last))
    assert len(ends) > 20
    for as_of in ends:
        for branch in (None, *branches):
            found = balances(store, as_of, branch)
            assert sum(found.values()) == 0, (as_of, branch, found)
            # The clearing account is empty at every month-end: a payment and its lines share their day.
            assert "2190" not in found, (as_of, branch)
            # The trial balance as `ledger books trial-balance` reads it: balanced, each account's balance as summed.
            trial = queries.trial_balance(store, as_of, branch)
            assert trial["balanced"] and trial["difference"] == 0, (as_of, branch)
            assert {a["code"]: a["debit"] - a["credit"] for a in trial["accounts"]
                    if a["debit"] != a["credit"]} == found, (as_of, branch)
        # And the ties of `ledger books check`.
        result = queries.check_books(store, as_of)
        assert result["ok"], (as_of, [c for c in result["checks"] if not c["ok"]])


# BEKASI-KOTA, worked by hand from tests/support/books_history.py STEPS (debit +, credit -). The January bill and its
# adjustment count from 2024-02-01, March's from 2024-04-01, whenever they were closed.
FUNDS_MAY = {"2200": -342_000, "3100": -25_400, "3410": -7_000, "3200": -13_000, "3420": -5_000, "3300": -180_000,
             "4100": -(28_620 + 7_632)}
FUNDS_JULY = {"2200": -684_000, "3100": -50_800, "3410": -14_000, "3200": -26_000, "3420": -10_000,
              "3300": -360_000, "4100": -(28_620 + 7_632 + 34_344)}
BY_HAND = {
    date(2024, 1, 31): {},
    date(2024, 2, 29): {"1200": 477_000 + 95_400, "2300": -(477_000 + 95_400)},
    date(2024, 3, 31): {"1200": 477_000 + 95_400, "2300": -(477_000 + 95_400)},
    # REF-1 600,000; January settled, reversed, settled again (505,620 with its fine); the adjustment and March open.
    date(2024, 4, 30): {"1110": 600_000, "1200": 95_400 + 572_400, "2300": -(95_400 + 572_400), "2100": -94_380,
                        "2200": -285_000, "3100": -20_000, "3410": -7_000, "3200": -10_000, "3420": -5_000,
                        "3300": -150_000, "4100": -28_620},
    # REF-2 100,000, the adjustment settled (103,032), 84,840 refunded, REF-3 2,500,000 in and returned.
    date(2024, 5, 31): {"1110": 615_160, "1200": 572_400, "2300": -572_400, "2100": -6_508, **FUNDS_MAY},
    # HELD-1 300,000 (its receipt on the day it arrived); February paid without a bill and reversed: owed back.
    date(2024, 6, 30): {"1110": 915_160 + 505_620, "1200": 572_400, "2300": -572_400, "2100": -306_508,
                        "2400": -505_620, **FUNDS_MAY},
    # REF-4 100,000 short, REF-5 250,000 the rest: March settled (606,744); the claim paid and reversed.
    date(2024, 7, 31): {"1110": 1_770_780, "2100": -49_764, "2400": -505_620, **FUNDS_JULY},
    date(2024, 12, 31): {"1110": 1_770_780, "2100": -49_764, "2400": -505_620, **FUNDS_JULY,
                         "2200": -684_000 - 21_138, "5100": 21_138},
}


@pytest.mark.parametrize("as_of", list(BY_HAND), ids=str)
def test_each_account_at_month_end_is_the_figure_worked_by_hand(built: tuple[ViewStore, Records, Ledger],
                                                                as_of: date) -> None:
    store, _, app = built
    assert balances(store, as_of, BRANCH) == BY_HAND[as_of]
    # The JHT liability is the member's JHT balance on the write side.
    assert -balances(store, as_of, BRANCH).get("2200", 0) == app.jht_balance(BUDI, as_of=as_of)


def test_a_match_is_booked_on_the_day_its_money_arrived(store: ViewStore) -> None:
    # Before HELD-1 arrived; between its arrival (2024-06-03) and its match (2024-06-10): the money is the payer's
    # from the day it arrived, never held and the payer's at once, nor in two bank accounts.
    assert balances(store, date(2024, 6, 2), BRANCH) == BY_HAND[date(2024, 5, 31)]
    for as_of in (date(2024, 6, 3), date(2024, 6, 5), date(2024, 6, 10)):
        found = balances(store, as_of, BRANCH)
        assert (found["1110"], found["2100"]) == (915_160, -306_508), as_of
        assert "1130" not in found and "2150" not in found, as_of
    with store.reading() as tx:
        assert tx.all(f"SELECT on_date, type, account, amount FROM {table_name(GL, 1, 'legs')} WHERE ref = 'HELD-1' "
                      f"ORDER BY position, amount") == [
            ("2024-06-03", "MoneyUnidentified", "2150", -300_000), ("2024-06-03", "MoneyUnidentified", "1130", 300_000),
            ("2024-06-03", "MoneyIdentified", "1130", -300_000), ("2024-06-03", "MoneyIdentified", "2150", 300_000),
            ("2024-06-03", "MoneyReceived", "2100", -300_000), ("2024-06-03", "MoneyReceived", "1110", 300_000)]
        assert tx.all(f"SELECT reference, received_on FROM {table_name(GL, 1, 'held')}") == [("HELD-1", "2024-06-03")]


def test_the_generated_branch_ties_to_its_branch_report_at_every_month_end(store: ViewStore,
                                                                          records: Records) -> None:
    credited = [(env["effective_date"], env["data"]["amount"]) for env, _ in records
                if env["type"] == "YieldCredited" and env["branch"] == GENERATED.branch]
    assert credited  # the 2024 yield of the books history credits every JHT member, DEPOK's too
    for as_of in month_ends(date(2023, 3, 1), date(2024, 12, 31)):
        yields = sum(amount for on, amount in credited if on <= as_of.isoformat())
        found = balances(store, as_of, GENERATED.branch)
        report = queries.branch_report(store, GENERATED.branch, as_of)
        figures, programs = report["collections"], report["contributions"]
        claims = {program: report["claims"][program]["amount"] for program in ("JHT", "JKK", "JKM", "JP")}
        assert found.get("1200", 0) == figures["outstanding"] == -found.get("2300", 0), as_of
        assert -found.get("2100", 0) == figures["unapplied"], as_of
        assert -found.get("2200", 0) == programs["JHT"]["total"] - claims["JHT"] + yields, as_of
        assert found.get("5100", 0) == yields, as_of
        assert -found.get("3100", 0) - found.get("3410", 0) == programs["JKK"]["total"], as_of
        assert -found.get("3200", 0) - found.get("3420", 0) == programs["JKM"]["total"], as_of
        assert -found.get("3300", 0) == programs["JP"]["total"], as_of
        assert -found.get("4100", 0) == report["late_fines"], as_of
        assert (found.get("5200", 0), found.get("5300", 0), found.get("5400", 0)) == (
            claims["JKK"], claims["JKM"], claims["JP"]), as_of
        # The money received less refunded and returned, in the bank.
        assert found.get("1110", 0) + found.get("1120", 0) == (figures["received"] - figures["refunded"]
                                                               - figures["returned"]), as_of


def test_every_payments_clearing_is_empty_and_nothing_waits(store: ViewStore) -> None:
    with store.reading() as tx:
        cleared = tx.all(f"SELECT ref, amount FROM {table_name(GL, 1, 'clearing')}")
        assert len(cleared) > 10 and all(amount == 0 for _, amount in cleared)
        assert tx.one(f"SELECT COUNT(*) FROM {table_name(GL, 1, 'lines')} WHERE pending != 0") == (0,)
        kinds = dict(tx.all(f"SELECT type, COUNT(*) FROM {table_name(GL, 1, 'lines')} GROUP BY type"))
    assert set(kinds) == {"ContributionPaid", "ContributionAdjusted", "ContributionReversed"}


# --- the same rows every way ---------------------------------------------------------------------------------------

BATCH = 7  # small batches: a reversal's payment is often in an earlier batch


def batches(records: Records) -> Iterator[Records]:
    for start in range(0, len(records), BATCH):
        yield records[start:start + BATCH]


def load(store: ViewStore, records: Records, version: int, *, json_path: bool, indexes: bool = True) -> None:
    """Apply `records` to a new `version` of the general ledger as the runner does, batch by batch (the batch's
    current ContributionPaid records by the JSON path first when `json_path`); without indexes, as a rebuild's load,
    then index and complete; check."""
    with store.transaction() as tx:
        VIEW.create(tx, version, indexes=indexes)
    for batch in batches(records):
        with store.transaction() as tx:
            by_json = [json_path and env["type"] in VIEW.json_types
                       and env["version"] == EVENT_TYPES[env["type"]].VERSION for env, _ in batch]
            if any(by_json):
                VIEW.apply_json(tx, version, [value for (_, value), j in zip(batch, by_json, strict=True) if j])
            VIEW.apply(tx, version, [env for (env, _), j in zip(batch, by_json, strict=True) if not j])
    with store.transaction() as tx:
        if not indexes:
            waiting = tx.one(f"SELECT COUNT(*) FROM {table_name(GL, version, 'lines')} WHERE pending = 1")[0]
            assert waiting > 0  # reversals whose payment was in an earlier batch, with no index to find it by
            VIEW.create_indexes(tx, version)
            VIEW.complete(tx, version)
        VIEW.check(tx, version)


def test_the_json_path_and_an_index_less_load_write_the_rows_the_ordinary_path_writes(
        store: ViewStore, records: Records, tmp_path: Path) -> None:
    views = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    load(views, records, 1, json_path=False)
    load(views, records, 2, json_path=True)
    load(views, records, 3, json_path=True, indexes=False)
    load(views, records, 4, json_path=False, indexes=False)
    ordinary = dump(views, 1)
    assert len(ordinary["lines"]) > 100 and ordinary["legs"] and ordinary["totals"] and ordinary["held"]
    for version in (2, 3, 4):
        both = dump(views, version)
        for table in ordinary:
            assert both[table] == ordinary[table], (version, table)
    # And the rows of the store built in one batch (tests/support/views.py).
    assert dump(store) == ordinary


def test_postgresql_writes_the_rows_sqlite_writes(store: ViewStore, records: Records,
                                                  postgres_settings: Settings) -> None:
    import psycopg

    suffix = uuid.uuid4().hex[:8]
    conninfo = postgres_settings.model_copy(update={"projection_store": "postgres"}).postgres_conninfo()
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA views_{suffix}")
    pg = ViewStore("postgres", conninfo=conninfo + f" options=-csearch_path=views_{suffix}")
    try:
        project(pg, records)
        assert dump(pg) == dump(store)
        for as_of in (date(2023, 6, 30), date(2024, 6, 5), date(2024, 12, 31)):
            assert balances(pg, as_of) == balances(store, as_of)
    finally:
        pg.close()
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA views_{suffix} CASCADE")


# --- on the real broker ----------------------------------------------------------------------------------------------

def test_a_rebuild_in_two_workers_writes_the_journal_one_worker_writes(tmp_path: Path, settings: Settings,
                                                                       kafka_roles: KafkaRoles,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    relayed = relayed_history(tmp_path, "books", settings, kafka_roles, TODAY,
                              lambda app: {"ids": write_books(app)})
    waited: list[int] = []
    complete = GeneralLedger.complete

    def counting(self: GeneralLedger, tx: Any, version: int) -> None:
        waited.append(tx.one(f"SELECT COUNT(*) FROM {table_name(GL, version, 'lines')} WHERE pending = 1")[0])
        complete(self, tx, version)

    monkeypatch.setattr(GeneralLedger, "complete", counting)
    records = published(relayed["app"])  # as the relay published them
    assert relayed["published"] == len(records)
    dumps = []
    for workers in (1, 2):
        s = relayed["settings"].model_copy(update={"projection_sqlite_path": tmp_path / f"views-{workers}.db",
                                                   "projection_batch_max": 5})
        result = runner.rebuild(s, GL, workers=workers)
        assert (result.version, result.replaced, result.events) == (1, None, len(records))
        dumps.append(dump(ViewStore.open(s)))
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["lines"]) == sum(1 for e, _ in records if e["type"].startswith("Contribution")
                                         and e["type"] != "ContributionPaymentReceived")
    # The one-worker load met a reversal whose payment was in an earlier batch: it waited for `complete`.
    assert waited[0] > 0, waited
    # And it is the journal the records give without Kafka.
    views = ViewStore("sqlite", sqlite_path=tmp_path / "no-kafka.db")
    load(views, records, 1, json_path=True)
    assert dump(views) == dumps[0]
