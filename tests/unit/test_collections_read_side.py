"""The collections read side: aging and late-fine arithmetic to the rupiah, and the `collections` projection built
from a real ledger's events (tests/support/collections_history.py) into a real SQLite view store, without Kafka:
arrears at several dates, the branch's collection figures, what the view keeps, the order events arrive in, and the
invariants a rebuild checks."""

from __future__ import annotations

import random
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.audit.recount import Recount, compare_as_of
from ledger.errors import Forbidden, InvariantViolation, NotFound, NotProjected
from ledger.formatting import arrears_lines, branch_report_lines
from projections import queries
from projections.access import Reader, Role
from projections.catalog import PROJECTIONS
from projections.queries import AGING_BUCKETS, ReadSide, aging_bucket, overdue_bill
from projections.store import ViewStore, table_name
from projections.views import bill_fine
from tests.support.access_log import MemoryAccessLog
from tests.support.collections_history import (
    BPU_KPJ,
    BRANCH,
    HELD,
    NPP,
    record_collections,
    record_held_and_unbilled,
)
from tests.support.views import TEST_NIK_KEY, project, published

JANUARY, FEBRUARY = f"{NPP}/2024-01/PU/1", f"{NPP}/2024-02/PU/1"
# The member lines of each employer bill of the history (the same three wages both months), and their total.
LINES = [(467_461, 1), (486_545, 1), (604_200, 1)]
BILL = 1_558_206
BPU_BILL = 26_800


# --- the arithmetic --------------------------------------------------------------------------------------------------

def test_aging_buckets_by_months_overdue() -> None:
    expected = {1: "1", 2: "2-3", 3: "2-3", 4: "4-6", 6: "4-6", 7: "7-12", 12: "7-12", 13: ">12", 40: ">12"}
    assert {months: aging_bucket(months) for months in expected} == expected
    assert [label for label, _, _ in AGING_BUCKETS] == ["1", "2-3", "4-6", "7-12", ">12"]
    with pytest.raises(ValueError, match="at least 1 month overdue"):
        aging_bucket(0)


def test_a_bills_fine_is_the_sum_of_its_lines_fines_rounded_each() -> None:
    due = date(2024, 2, 15)
    # Three lines of Rp25: 2% is Rp0.50 each, rounded half up to Rp1 each: Rp3, where 2% of the Rp75 total is Rp2.
    assert bill_fine("PU", [(25, 3)], 1, due) == 3
    # The history's bill, 3 and 4 months late: Rp93,493 and Rp124,657 (2% of the total would give 93,492 and 124,656).
    assert [bill_fine("PU", LINES, months, due) for months in (1, 2, 3, 4, 13)] == [31_164, 62_328, 93_493, 124_657,
                                                                                     405_134]
    assert bill_fine("BPU", [(BPU_BILL, 1)], 5, due) == 0  # BPU contributions carry no fine
    assert bill_fine("PU", LINES, 0, due) == 0


@pytest.mark.parametrize(("as_of", "expected"), [
    (date(2024, 2, 15), None),  # the due date itself: not overdue
    (date(2024, 2, 16), (1, 31_164)),
    (date(2024, 3, 15), (1, 31_164)),
    (date(2024, 3, 16), (2, 62_328)),
    (date(2024, 5, 16), (4, 124_657)),
    (date(2025, 2, 16), (13, 405_134)),
])
def test_months_overdue_and_fine_accrued_at_a_date(as_of: date, expected: tuple[int, int] | None) -> None:
    assert overdue_bill("PU", date(2024, 2, 15), LINES, as_of) == expected


def test_a_bpu_bill_ages_without_a_fine() -> None:
    assert overdue_bill("BPU", date(2024, 3, 15), [(BPU_BILL, 1)], date(2024, 6, 30)) == (4, 0)


# --- the projection, from a real ledger's events ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def records() -> list[tuple[dict[str, Any], bytes]]:
    day = [date(2024, 1, 1)]
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: day[0], nik_key=TEST_NIK_KEY)
    record_collections(app, lambda on: day.__setitem__(0, on))
    return published(app)


@pytest.fixture(scope="module")
def store(records: list[tuple[dict[str, Any], bytes]], tmp_path_factory: pytest.TempPathFactory) -> ViewStore:
    views = ViewStore("sqlite", sqlite_path=tmp_path_factory.mktemp("collections") / "views.db")
    project(views, records)
    return views


def rows(report: dict[str, Any]) -> list[tuple[str | None, str, int, int, int]]:
    return [(payer["npp"] or payer["kpj"], bill["month"], bill["months_overdue"], bill["amount"], bill["fine"])
            for payer in report["payers"] for bill in payer["bills"]]


def assert_adds_up(report: dict[str, Any]) -> None:
    totals = report["totals"]
    for field in ("amount", "fine", "total", "credit"):
        assert sum(payer[field] for payer in report["payers"]) == totals[field], field
    for field in ("amount", "fine", "total"):
        assert sum(bucket[field] for bucket in report["buckets"]) == totals[field], field
        for payer in report["payers"]:
            assert sum(bill[field] for bill in payer["bills"]) == payer[field], field
    assert sum(bucket["bills"] for bucket in report["buckets"]) == totals["bills"] == sum(
        len(payer["bills"]) for payer in report["payers"])
    assert totals["payers"] == len(report["payers"]) == totals["employers"] + totals["members"]
    assert all(bill["total"] == bill["amount"] + bill["fine"] for p in report["payers"] for bill in p["bills"])


def test_arrears_before_any_money_is_applied(store: ViewStore) -> None:
    report = queries.arrears(store, BRANCH, date(2024, 3, 16))
    assert rows(report) == [(NPP, "2024-01", 2, BILL, 62_328), (NPP, "2024-02", 1, BILL, 31_164),
                            (BPU_KPJ, "2024-02", 2, BPU_BILL, 0), (BPU_KPJ, "2024-03", 1, BPU_BILL, 0)]
    assert report["totals"] == {"payers": 2, "employers": 1, "members": 1, "bills": 4,
                                "amount": 2 * BILL + 2 * BPU_BILL, "fine": 93_492,
                                "total": 2 * BILL + 2 * BPU_BILL + 93_492, "credit": 1_000_000, "held": 0,
                                "held_count": 0}
    # The employer's Rp1,000,000 is held as credit: a bill is settled only whole, with its fine.
    assert [(p["npp"], p["credit"]) for p in report["payers"]] == [(NPP, 1_000_000), (None, 0)]
    assert {b["bucket"]: (b["bills"], b["total"]) for b in report["buckets"]} == {
        "1": (2, BILL + 31_164 + BPU_BILL), "2-3": (2, BILL + 62_328 + BPU_BILL), "4-6": (0, 0), "7-12": (0, 0),
        ">12": (0, 0)}
    assert_adds_up(report)


def test_arrears_on_the_day_a_bill_is_settled_and_after_every_employer_bill_is(store: ViewStore) -> None:
    # 2024-04-20: REF-2 settles January (3 months late) that day; February is 2 months overdue; the BPU member's two
    # months age on.
    report = queries.arrears(store, BRANCH, date(2024, 4, 20))
    assert rows(report) == [(BPU_KPJ, "2024-02", 3, BPU_BILL, 0), (BPU_KPJ, "2024-03", 2, BPU_BILL, 0),
                            (NPP, "2024-02", 2, BILL, 62_328)]
    assert report["totals"]["credit"] == 3_000_000 - (BILL + 93_493)
    assert_adds_up(report)
    report = queries.arrears(store, BRANCH, date(2024, 6, 30))
    assert rows(report) == [(BPU_KPJ, "2024-02", 5, BPU_BILL, 0), (BPU_KPJ, "2024-03", 4, BPU_BILL, 0)]
    assert [b["bucket"] for p in report["payers"] for b in p["bills"]] == ["4-6", "4-6"]
    assert_adds_up(report)
    # Before anything is due, nothing is in arrears.
    assert queries.arrears(store, BRANCH, date(2024, 2, 15))["totals"]["bills"] == 0


NOTHING_HELD_NOR_PAID_WITHOUT_BILL = {"returned": 0, "held": 0, "held_count": 0, "held_matched_later": 0,
                                      "paid_without_bill": 0, "paid_without_bill_count": 0,
                                      "paid_without_bill_reversed": 0}


@pytest.mark.parametrize(("as_of", "expected"), [
    (date(2024, 1, 31), {"billed": 0, "settled": 0, "outstanding": 0, "fines_applied": 0, "applied": 0,
                         "received": 0, "unapplied": 0, "refunded": 0}),
    (date(2024, 3, 16), {"billed": 2 * BILL + 2 * BPU_BILL, "settled": 0, "outstanding": 2 * BILL + 2 * BPU_BILL,
                         "fines_applied": 0, "applied": 0, "received": 1_000_000, "unapplied": 1_000_000,
                         "refunded": 0}),
    (date(2024, 4, 20), {"billed": 2 * BILL + 2 * BPU_BILL, "settled": BILL, "outstanding": BILL + 2 * BPU_BILL,
                         "fines_applied": 93_493, "applied": BILL + 93_493, "received": 3_000_000,
                         "unapplied": 3_000_000 - BILL - 93_493, "refunded": 0}),
    (date(2024, 6, 30), {"billed": 2 * BILL + 2 * BPU_BILL, "settled": 2 * BILL, "outstanding": 2 * BPU_BILL,
                         "fines_applied": 2 * 93_493, "applied": 2 * (BILL + 93_493), "received": 3_500_000,
                         "unapplied": 3_500_000 - 2 * (BILL + 93_493) - 100_000, "refunded": 100_000}),
])
def test_the_branch_report_gains_the_collection_figures(store: ViewStore, as_of: date,
                                                        expected: dict[str, int]) -> None:
    figures = queries.branch_report(store, BRANCH, as_of)["collections"]
    assert figures == {**expected, **NOTHING_HELD_NOR_PAID_WITHOUT_BILL}
    assert figures["billed"] == figures["settled"] + figures["outstanding"]
    assert figures["received"] == figures["applied"] + figures["unapplied"] + figures["refunded"]
    assert figures["applied"] == figures["settled"] + figures["fines_applied"]
    lines = branch_report_lines(queries.branch_report(store, BRANCH, as_of))
    assert any(line.startswith("  collections: billed ") for line in lines)


def test_the_settlements_fines_are_the_ones_the_read_side_computes(store: ViewStore) -> None:
    with store.reading() as tx:
        settled = tx.all(f"SELECT bill_id, settled_on, months_late, fine FROM "
                         f"{table_name('collections', 1, 'settlements')} ORDER BY bill_id")
    assert settled == [(JANUARY, "2024-04-20", 3, 93_493), (FEBRUARY, "2024-06-10", 3, 93_493)]


def test_the_view_keeps_no_payers_name(store: ViewStore, records: list[tuple[dict[str, Any], bytes]]) -> None:
    assert not any(b"Siti" in value for _, value in records)  # not published
    with store.reading() as tx:
        kept = [row for table in PROJECTIONS["collections"].tables
                for row in tx.all(f"SELECT * FROM {table_name('collections', 1, table.name)}")]
    assert kept and not any("Siti" in str(value) for row in kept for value in row)


def test_the_order_of_events_across_aggregates_does_not_matter(records: list[tuple[dict[str, Any], bytes]],
                                                               tmp_path: Path, store: ViewStore) -> None:
    """Workers share the partitions: a bill's lines (their own aggregate) may come before its BillClosed. Each
    aggregate's own events keep their order, as Kafka keeps them per partition."""
    by_aggregate: dict[str, list[tuple[dict[str, Any], bytes]]] = {}
    for record in records:
        by_aggregate.setdefault(record[0]["aggregate_id"], []).append(record)
    shuffled: list[tuple[dict[str, Any], bytes]] = []
    queues = list(by_aggregate.values())
    chooser = random.Random(17)
    while queues:
        queue = chooser.choice(queues)
        shuffled.append(queue.pop(0))
        queues = [q for q in queues if q]
    assert shuffled != records
    other = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    project(other, shuffled)
    for as_of in (date(2024, 3, 16), date(2024, 4, 20), date(2024, 6, 30)):
        assert queries.arrears(other, BRANCH, as_of) == queries.arrears(store, BRANCH, as_of)
        assert queries.branch_report(other, BRANCH, as_of)["collections"] == queries.branch_report(
            store, BRANCH, as_of)["collections"]


def broken(tmp_path: Path, records: list[tuple[dict[str, Any], bytes]], change: str) -> str:
    """The invariant violation of the collections view built from `records` once `change` (SQL on version 1's tables,
    `{t}` their prefix) has been made to it."""
    views = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    project(views, records)
    view = PROJECTIONS["collections"]
    with views.transaction() as tx:
        version = ViewStore.live_version(tx, "collections")
        tx.execute(change.format(t=f"collections_v{version}_"))
        with pytest.raises(InvariantViolation) as caught:
            view.check(tx, version)
    return str(caught.value)


def test_a_fine_the_rules_do_not_give_stops_a_rebuild(tmp_path: Path, records: list[tuple[dict[str, Any], bytes]]
                                                      ) -> None:
    problem = broken(tmp_path, records, f"UPDATE {{t}}settlements SET fine = 93492, total = {BILL + 93_492} "
                                        f"WHERE bill_id = '{JANUARY}'")
    assert f"bill {JANUARY}: settled 3 months late with a fine of 93492; the rules give 3 months and 93493" in problem


def test_a_bill_whose_lines_do_not_add_up_stops_a_rebuild(tmp_path: Path, records: list[tuple[dict[str, Any], bytes]]
                                                          ) -> None:
    problem = broken(tmp_path, records, f"DELETE FROM {{t}}bill_amounts WHERE bill_id = '{FEBRUARY}' "
                                        f"AND amount = 604200")
    assert f"bill {FEBRUARY}: its member lines do not add up" in problem


def test_more_money_out_than_in_stops_a_rebuild(tmp_path: Path, records: list[tuple[dict[str, Any], bytes]]) -> None:
    problem = broken(tmp_path, records, "INSERT INTO {t}refunds VALUES ('r-x', '12345678', NULL, 'BEKASI-KOTA', "
                                        "5000000, '2024-06-21', 'e-x')")
    assert "employer 12345678: more money applied and refunded than received by 2024-06-21" in problem


def test_the_read_side_checks_scope_and_logs_each_bpu_member_listed(store: ViewStore) -> None:
    log = MemoryAccessLog()
    read = ReadSide(store, log)
    staff = Reader("budi", Role.BRANCH_STAFF, frozenset({BRANCH}))
    answer = read.arrears(staff, BRANCH, date(2024, 3, 16), endpoint="GET /branches/{branch}/arrears")
    assert answer == queries.arrears(store, BRANCH, date(2024, 3, 16))
    # The BPU member's row is that member's data; the employer's is not.
    assert [(e.subject, e.kpj, e.endpoint) for e in log.entries] == [
        ("budi", BPU_KPJ, "GET /branches/{branch}/arrears")]
    with pytest.raises(Forbidden):
        read.arrears(Reader("ani", Role.BRANCH_STAFF, frozenset({"BOGOR"})), BRANCH, date(2024, 3, 16), endpoint="x")
    with pytest.raises(NotFound, match="unknown branch"):
        read.arrears(Reader.local(), "NOWHERE", date(2024, 3, 16), endpoint="x")
    log.unavailable = "the log's disk is full"
    with pytest.raises(Exception, match="disk is full"):
        read.arrears(staff, BRANCH, date(2024, 3, 16), endpoint="x")
    assert len(log.entries) == 1


def test_the_arrears_table_reads_to_a_person(store: ViewStore) -> None:
    lines = arrears_lines(queries.arrears(store, BRANCH, date(2024, 3, 16)))
    assert lines[0] == f"Arrears of branch {BRANCH} on 2024-03-16: bills unpaid after their due date"
    assert any(line.startswith(f"  employer {NPP}") and "Rp3,116,412" in line and "credit Rp1,000,000" in line
               for line in lines)
    assert any(line.startswith("    2024-01 PU due 2024-02-15") and "Rp62,328" in line for line in lines)
    assert any(line.startswith("    >12 months: 0 bill(s)") for line in lines)
    empty = arrears_lines(queries.arrears(store, BRANCH, date(2024, 2, 1)))
    assert "  no bill is overdue" in empty


# --- money held until matched, and payments without a bill (`record_held_and_unbilled`, after the history) ----------

# The employer's payments without a bill, of its three members' same wages: March paid 2024-07-10, 3 months after its
# due date 2024-04-15 (fine 93,493, as the January bill's); April paid 2024-07-11, 2 months after 2024-05-15 (fine
# 62,328, the lines' 2% fines rounded each: 31,164 a month).
MARCH, APRIL = BILL + 93_493, BILL + 62_328


@pytest.fixture(scope="module")
def later_records() -> list[tuple[dict[str, Any], bytes]]:
    day = [date(2024, 1, 1)]
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: day[0], nik_key=TEST_NIK_KEY)
    record_collections(app, lambda on: day.__setitem__(0, on))
    payments = record_held_and_unbilled(app, lambda on: day.__setitem__(0, on))
    assert (payments["2024-03"]["total"], payments["2024-04"]["total"]) == (MARCH, APRIL) == (1_651_699, 1_620_534)
    return published(app)


@pytest.fixture(scope="module")
def later_store(later_records: list[tuple[dict[str, Any], bytes]],
                tmp_path_factory: pytest.TempPathFactory) -> ViewStore:
    views = ViewStore("sqlite", sqlite_path=tmp_path_factory.mktemp("later") / "views.db")
    project(views, later_records)
    return views


# The money figures on 2024-06-30 (above): received 3,500,000, applied 2 * (BILL + 93,493), refunded 100,000.
APPLIED = 2 * (BILL + 93_493)


@pytest.mark.parametrize(("as_of", "expected"), [
    # Both credits held on the day they arrived; HELD-1 is matched on 07-05, and its receipt is dated 07-01, the day
    # it arrived: so on 07-01 received counts it too, and held_matched_later says so.
    (date(2024, 7, 1), {"received": 4_250_000, "unapplied": 4_250_000 - APPLIED - 100_000, "held": 1_000_000,
                        "held_count": 2, "held_matched_later": 750_000, "paid_without_bill": 0,
                        "paid_without_bill_count": 0, "paid_without_bill_reversed": 0}),
    (date(2024, 7, 5), {"received": 4_250_000, "unapplied": 4_250_000 - APPLIED - 100_000, "held": 250_000,
                        "held_count": 1, "held_matched_later": 0, "paid_without_bill": 0,
                        "paid_without_bill_count": 0, "paid_without_bill_reversed": 0}),
    (date(2024, 7, 11), {"received": 4_250_000, "unapplied": 4_250_000 - APPLIED - 100_000, "held": 250_000,
                         "held_count": 1, "held_matched_later": 0, "paid_without_bill": MARCH + APRIL,
                         "paid_without_bill_count": 2, "paid_without_bill_reversed": 0}),
    # April's payment reversed: all its lines, with their fines.
    (date(2024, 7, 15), {"received": 4_250_000, "unapplied": 4_250_000 - APPLIED - 100_000, "held": 250_000,
                         "held_count": 1, "held_matched_later": 0, "paid_without_bill": MARCH,
                         "paid_without_bill_count": 2, "paid_without_bill_reversed": APRIL}),
    # The February settlement reversed (its three lines reversed with it): bills' figures change, the payments
    # without a bill do not.
    (date(2024, 7, 20), {"received": 4_250_000, "unapplied": 4_250_000 - (BILL + 93_493) - 100_000,
                         "held": 250_000, "held_count": 1, "held_matched_later": 0, "paid_without_bill": MARCH,
                         "paid_without_bill_count": 2, "paid_without_bill_reversed": APRIL}),
])
def test_held_money_and_payments_without_a_bill_in_the_branch_figures(later_store: ViewStore, as_of: date,
                                                                      expected: dict[str, int]) -> None:
    figures = queries.branch_report(later_store, BRANCH, as_of)["collections"]
    assert {name: figures[name] for name in expected} == expected
    assert figures["returned"] == 0 and figures["refunded"] == 100_000
    assert figures["received"] == figures["applied"] + figures["unapplied"] + figures["refunded"]
    assert figures["billed"] == figures["settled"] + figures["outstanding"]
    report = queries.branch_report(later_store, BRANCH, as_of)
    # A settlement books its bill's lines as contributions: with the payments without a bill, that is all of them.
    assert report["contributions_total"] + report["late_fines"] == figures["applied"] + figures["paid_without_bill"]
    lines = branch_report_lines(report)
    assert any(line.startswith("  held until matched: ") for line in lines)
    assert any(line.startswith("  paid without a bill: ") for line in lines)


def test_the_arrears_report_shows_the_money_held_at_the_branch_beside_its_totals(later_store: ViewStore) -> None:
    for as_of, held, count in ((date(2024, 6, 30), 0, 0), (date(2024, 7, 1), 1_000_000, 2),
                               (date(2024, 7, 5), 250_000, 1)):
        report = queries.arrears(later_store, BRANCH, as_of)
        assert (report["totals"]["held"], report["totals"]["held_count"]) == (held, count)
        printed = arrears_lines(report)
        assert (printed[-1] == f"  held until matched at the branch: Rp{held:,} in {count} credit(s), naming no known "
                               f"payer (ledger payment unmatched)") == (count > 0)


def test_the_held_money_figures_before_the_history_adds_any_are_nothing(later_store: ViewStore) -> None:
    figures = queries.branch_report(later_store, BRANCH, date(2024, 6, 30))["collections"]
    assert {name: figures[name] for name in NOTHING_HELD_NOR_PAID_WITHOUT_BILL} == NOTHING_HELD_NOR_PAID_WITHOUT_BILL
    assert sum(HELD.values()) == 1_000_000


def test_the_view_keeps_neither_the_held_moneys_text_nor_its_senders_name(
        later_store: ViewStore, later_records: list[tuple[dict[str, Any], bytes]]) -> None:
    assert not any(b"BUDI" in value.upper() for _, value in later_records)  # not published
    with later_store.reading() as tx:
        version = ViewStore.live_version(tx, "collections")
        assert version is not None
        kept = [row for table in PROJECTIONS["collections"].tables
                for row in tx.all(f"SELECT * FROM {table_name('collections', version, table.name)}")]
    assert not any(word in str(value).upper() for row in kept for value in row for word in ("BUDI", "SITI", "TRF"))


def later_compared(store: ViewStore, records: list[tuple[dict[str, Any], bytes]], on: date) -> Any:
    recount = Recount(on)
    for env, _ in records:
        recount.add(env)
    recount.finish()
    return compare_as_of(recount, store, "test.events")


@pytest.mark.parametrize("on", [date(2024, 3, 16), date(2024, 6, 30), date(2024, 7, 1), date(2024, 7, 15),
                                date(2024, 7, 20), date(2025, 3, 1)])
def test_audit_as_of_recounts_held_money_payments_without_a_bill_and_arrears_aging(
        later_store: ViewStore, later_records: list[tuple[dict[str, Any], bytes]], on: date) -> None:
    report = later_compared(later_store, later_records, on)
    assert (report.ok, report.differences) == (True, [])


def test_the_recounts_arrears_aging_to_the_rupiah(later_records: list[tuple[dict[str, Any], bytes]]) -> None:
    recount = Recount(date(2024, 7, 20))
    for env, _ in later_records:
        recount.add(env)
    recount.finish()
    aging = recount.branch_reports()[BRANCH]["arrears"]
    # The February bill open again (due 2024-03-15: 5 months overdue on 07-20; fine 10% of each line, rounded each:
    # 46,746.1 -> 46,746, 48,654.5 -> 48,655, 60,420: 155,821) and the BPU member's two bills (due 2024-02-15 and
    # 2024-03-15: 6 and 5 months overdue, no fine).
    assert aging["4-6"] == {"bills": 3, "amount": BILL + 2 * BPU_BILL, "fine": 155_821,
                            "total": BILL + 2 * BPU_BILL + 155_821}
    assert aging["total"] == aging["4-6"]
    assert aging["1"] == aging["2-3"] == aging["7-12"] == aging[">12"] == {"bills": 0, "amount": 0, "fine": 0,
                                                                           "total": 0}


def test_audit_as_of_names_held_money_and_a_reversal_tampered_with(
        tmp_path: Path, later_records: list[tuple[dict[str, Any], bytes]]) -> None:
    views = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    project(views, later_records)
    with views.transaction() as tx:
        version = ViewStore.live_version(tx, "collections")
        assert version is not None
        tx.execute(f"DELETE FROM {table_name('collections', version, 'held_matches')}")
        tx.execute(f"DELETE FROM {table_name('collections', version, 'contribution_reversals')}")
    found = {(d.field, d.topic, d.projection) for d in later_compared(views, later_records, date(2024, 7, 20))
             .differences}
    assert ("collections.held", 250_000, 1_000_000) in found
    assert ("collections.paid_without_bill_reversed", APRIL, -(BILL + 93_493)) in found


def test_a_version_built_before_these_tables_is_refused_with_the_rebuild_to_run(
        tmp_path: Path, later_records: list[tuple[dict[str, Any], bytes]]) -> None:
    views = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    project(views, later_records)
    with views.transaction() as tx:
        version = ViewStore.live_version(tx, "collections")
        assert version is not None
        tx.execute(f"DROP TABLE {table_name('collections', version, 'unbilled_payments')}")
        assert "run `ledger projections rebuild collections`" in str(PROJECTIONS["collections"].outdated(tx, version))
    with pytest.raises(NotProjected, match="rebuild collections"):
        queries.branch_report(views, BRANCH, date(2024, 7, 20))
    with pytest.raises(NotProjected, match="rebuild collections"):
        queries.arrears(views, BRANCH, date(2024, 7, 20))
    # `ledger projections run` would catch it up without the events it missed: it refuses it too.
    from projections.runner import ensure_live

    with pytest.raises(NotProjected, match="built by an earlier release, without its unbilled_payments table"):
        ensure_live(views, PROJECTIONS["collections"])
    assert ensure_live(views, PROJECTIONS["branches"]) >= 1  # the others are as this release builds them
