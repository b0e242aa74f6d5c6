"""The auditor's recount of collections per payer (`ledger.audit.recount.PayerBooks`, in `ledger audit as-of`), from
the envelopes alone, at several dates of a history with a reversed settlement, a returned receipt and a refund
(`tests/support/collections.py`: one member on Rp5,000,000, billed Rp477,000 for 2016-11, due 2016-12-15)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.audit.recount import PayerBooks, Recount
from ledger.domain import INTERNAL_EVENT_TOPICS
from ledger.formatting import payer_books_lines
from ledger.publishing.envelope import envelope
from tests.support.collections import NPP, collections_with_reversals
from tests.support.scenario import new_ledger

PAYER = f"npp:{NPP}"


@pytest.fixture(scope="module")
def envelopes() -> list[dict[str, Any]]:
    app = new_ledger()
    collections_with_reversals(app)
    stored = [n for n in app.recorder.select_notifications(start=1, limit=10_000)
              if n.topic not in INTERNAL_EVENT_TOPICS]
    return [orjson.loads(envelope(n, position)[1]) for position, n in enumerate(stored, start=1)]


def recount_figures(envelopes: list[dict[str, Any]], on: date) -> dict[str, dict[str, int]]:
    recount = Recount(on)
    for env in envelopes:
        recount.add(env)
    recount.finish()
    figures = recount.payers.figures()
    assert PayerBooks.check(figures) == []
    return figures


def recounted(envelopes: list[dict[str, Any]], on: date) -> dict[str, int]:
    return recount_figures(envelopes, on)[PAYER]


def test_before_the_bill_counts_the_payer_has_no_books(envelopes):
    assert recount_figures(envelopes, date(2016, 11, 30)) == {}


def test_the_bill_settled_on_time(envelopes):
    assert recounted(envelopes, date(2016, 12, 15)) == {
        "bills": 1, "bills_settled": 1, "bills_open": 0, "billed": 477_000, "settled": 477_000, "outstanding": 0,
        "fines": 0, "received": 477_000, "returned": 0, "applied": 477_000, "refunded": 0, "unapplied": 0}


def test_the_reversed_settlement_leaves_the_bill_outstanding_and_its_money_unapplied(envelopes):
    assert recounted(envelopes, date(2016, 12, 20)) == {
        "bills": 1, "bills_settled": 0, "bills_open": 1, "billed": 477_000, "settled": 0, "outstanding": 477_000,
        "fines": 0, "received": 477_000, "returned": 0, "applied": 0, "refunded": 0, "unapplied": 477_000}


def test_at_the_end_every_rupiah_is_applied_returned_or_refunded(envelopes):
    # Settled again on 2016-12-21 with one month's fine (2% of Rp477,000); Rp2,500,000 returned as a bank error;
    # Rp1,000 received and refunded.
    end = recounted(envelopes, date(2016, 12, 31))
    assert end == {
        "bills": 1, "bills_settled": 1, "bills_open": 0, "billed": 477_000, "settled": 477_000, "outstanding": 0,
        "fines": 9_540, "received": 477_000 + 9_540 + 2_500_000 + 1_000, "returned": 2_500_000,
        "applied": 486_540, "refunded": 1_000, "unapplied": 0}
    assert end["received"] == end["returned"] + end["applied"] + end["refunded"] + end["unapplied"]
    assert end["billed"] == end["settled"] + end["outstanding"]


def test_a_settlement_counted_twice_is_named_as_a_problem_and_printed(envelopes):
    settled = next(env for env in envelopes if env["type"] == "BillSettled")
    books = PayerBooks()
    for env in [*envelopes, settled]:
        books.add(env["type"], env["data"])
    figures = books.figures()
    problems = PayerBooks.check(figures)
    assert problems == [f"payer {PAYER}: outstanding is -477,000, below zero",
                        f"payer {PAYER}: unapplied is -477,000, below zero",
                        f"payer {PAYER}: bills_open is -1, below zero"]
    lines = payer_books_lines({"payers": figures, "totals": PayerBooks.totals(figures), "problems": problems}, 50)
    assert lines[0].startswith("collections recounted from the topic: 1 payer(s), 1 bill(s) (-1 open); billed "
                               "Rp477,000, settled Rp954,000")
    assert lines[2].split() == [PAYER, "-1", "Rp477,000", "Rp954,000", "Rp9,540", "-Rp477,000", "Rp2,987,540",
                                "Rp2,500,000", "Rp1,000", "-Rp477,000"]
    assert lines[-1] == f"  problem: payer {PAYER}: bills_open is -1, below zero"


def test_the_lines_docs_audit_md_shows_are_the_ones_printed(envelopes):
    text = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text(encoding="utf-8")
    shown = text.split("**Collections per payer.**", 1)[1].split("```\n", 2)[1].splitlines()
    figures = recount_figures(envelopes, date(2016, 12, 31))
    assert shown == payer_books_lines({"payers": figures, "totals": PayerBooks.totals(figures), "problems": []}, 50)
