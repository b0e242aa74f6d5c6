"""The `collections` projection with reversed settlements and returned receipts (`ledger reverse`): arrears and the
branch's collection figures as of dates before and after each reversal, to the rupiah, equal to the auditor's recount
from the same events; and the invariants a rebuild checks.

The history (`tests/support/collections.py`, `collections_with_reversals`): one member on Rp5,000,000, billed
Rp477,000 for 2016-11 (counts from 2016-12-01, due 2016-12-15); paid 12-10; the settlement reversed 12-20; settled
again 12-21 with one month's fine (Rp9,540); Rp2,500,000 received 12-22 and returned 12-23; Rp1,000 received 12-24
and refunded 12-27."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from ledger.application import Ledger
from ledger.audit.recount import Recount, compare_as_of
from ledger.errors import InvariantViolation
from projections import queries
from projections.catalog import PROJECTIONS
from projections.store import ViewStore, table_name
from tests.support.collections import NPP, collections_with_reversals
from tests.support.views import TEST_NIK_KEY, project, published

BRANCH = "BEKASI-KOTA"
BILL = 477_000


@pytest.fixture(scope="module")
def records() -> list[tuple[dict[str, Any], bytes]]:
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: date(2026, 11, 23),
                 nik_key=TEST_NIK_KEY)
    collections_with_reversals(app)
    return published(app)


@pytest.fixture(scope="module")
def store(tmp_path_factory, records) -> ViewStore:
    path: Path = tmp_path_factory.mktemp("reversals-views") / "views.db"
    views = ViewStore("sqlite", sqlite_path=path)
    project(views, records)  # checks the invariants
    return views


def figures(store: ViewStore, on: date) -> dict[str, int]:
    with store.reading() as tx:
        found = queries.collection_figures(tx, BRANCH, on)
    assert found is not None
    return found


def recounted(records, on: date) -> dict[str, int]:
    recount = Recount(on)
    for env, _ in records:
        recount.add(env)
    recount.finish()
    return recount.payers.figures()[f"npp:{NPP}"]


BILL_AND_MONEY_FIGURES = ("billed", "settled", "outstanding", "fines_applied", "applied", "received", "refunded",
                          "unapplied")


@pytest.mark.parametrize(("on", "settled", "fines", "received", "refunded"), [
    (date(2016, 12, 10), BILL, 0, BILL, 0),  # paid on time
    (date(2016, 12, 20), 0, 0, BILL, 0),  # the settlement reversed: owed again, its money credit again
    (date(2016, 12, 21), BILL, 9_540, BILL + 9_540, 0),  # settled again, a month late
    (date(2016, 12, 22), BILL, 9_540, BILL + 9_540 + 2_500_000, 0),  # money by mistake
    (date(2016, 12, 23), BILL, 9_540, BILL + 9_540, 0),  # returned: received counts net of it
    (date(2016, 12, 31), BILL, 9_540, BILL + 9_540 + 1_000, 1_000),
])
def test_the_branch_figures_follow_each_reversal_and_equal_the_recount(store, records, on, settled, fines, received,
                                                                      refunded) -> None:
    answer = figures(store, on)
    assert {name: answer[name] for name in BILL_AND_MONEY_FIGURES} == {
        "billed": BILL, "settled": settled, "outstanding": BILL - settled, "fines_applied": fines,
                      "applied": settled + fines, "received": received, "refunded": refunded,
                      "unapplied": received - settled - fines - refunded}
    topic = recounted(records, on)
    assert (topic["billed"], topic["settled"], topic["outstanding"], topic["fines"], topic["applied"],
            topic["received"] - topic["returned"], topic["refunded"], topic["unapplied"]) == (
        answer["billed"], answer["settled"], answer["outstanding"], answer["fines_applied"], answer["applied"],
        answer["received"], answer["refunded"], answer["unapplied"])


def test_a_bill_whose_settlement_was_reversed_is_in_arrears_with_the_payers_credit_beside_it(store) -> None:
    reopened = queries.arrears(store, BRANCH, date(2016, 12, 20))
    [payer] = reopened["payers"]
    assert (payer["npp"], payer["amount"], payer["fine"], payer["credit"], payer["months_overdue"]) == (
        NPP, BILL, 9_540, BILL, 1)
    assert queries.arrears(store, BRANCH, date(2016, 12, 14))["payers"] == []  # settled, and not yet due anyway
    assert queries.arrears(store, BRANCH, date(2016, 12, 21))["payers"] == []  # settled again


def test_a_reversal_of_a_settlement_that_was_not_made_breaks_an_invariant(tmp_path, records) -> None:
    views = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    project(views, records)
    collections = PROJECTIONS["collections"]
    with views.transaction() as tx:
        version = ViewStore.live_version(tx, "collections")
        assert version is not None
        reversals = table_name("collections", version, "settlement_reversals")
        tx.execute(f"UPDATE {reversals} SET total = total + 1, amount = amount + 1")
        with pytest.raises(InvariantViolation, match="a settlement reversed that was not made, or not as it was"):
            collections.check(tx, version)
        tx.execute(f"DELETE FROM {reversals}")
        with pytest.raises(InvariantViolation, match="settled twice, and neither settlement reversed"):
            collections.check(tx, version)


def compared(store: ViewStore, records, on: date) -> Any:
    recount = Recount(on)
    for env, _ in records:
        recount.add(env)
    recount.finish()
    return compare_as_of(recount, store, "test.events")


@pytest.mark.parametrize("on", [date(2016, 12, 10), date(2016, 12, 20), date(2016, 12, 23), date(2016, 12, 31)])
def test_audit_as_of_compares_the_branch_collection_figures_and_finds_them_equal(store, records, on) -> None:
    report = compared(store, records, on)
    assert (report.ok, report.differences) == (True, [])
    assert "collections" in report.projection_events  # built: compared (no offsets here: projected without Kafka)


def test_audit_as_of_names_a_tampered_settlement_reversal(tmp_path, records) -> None:
    views = ViewStore("sqlite", sqlite_path=tmp_path / "views.db")
    project(views, records)
    with views.transaction() as tx:
        version = ViewStore.live_version(tx, "collections")
        assert version is not None
        tx.execute(f"UPDATE {table_name('collections', version, 'settlement_reversals')} SET reversed_on = "
                   f"'2016-12-25'")  # the bill looks settled from 12-10 to 12-25, and then settled twice
    report = compared(views, records, date(2016, 12, 20))
    found = [(d.field, d.topic, d.projection) for d in report.differences]
    assert found[:4] == [
        ("collections.settled", 0, BILL), ("collections.outstanding", BILL, 0), ("collections.applied", 0, BILL),
        ("collections.unapplied", BILL, 0)]
    # The lines reversed with the settlement look like lines of payments without a bill on 12-20, and the bill, open
    # again on the topic, is not in arrears in the projection.
    assert found[4:6] == [("collections.paid_without_bill", 0, -BILL), ("collections.paid_without_bill_reversed", 0,
                                                                          BILL)]
    assert {field.split(".")[1] for field, _, _ in found[6:]} == {"1", "total"}
