"""The largest event the ledger records stays far below what a Kafka record may hold.

A bill's member lines are recorded in parts of at most `BILL_PART_LINES_MAX` (`BillLinesAdded`), so that no record of
a large employer's bill comes near the broker's limit (`max.message.bytes`, 1 MiB by default, and the producer's
`max.request.size`, also 1 MiB). The worst part is measured here as the relay publishes it: 1,000 lines, every line
with all four programs, each at the largest wage a command accepts, the risk class with the largest JKK rate, the
longest branch code."""

from __future__ import annotations

from datetime import date

import orjson

from ledger import events as ev
from ledger.commands import WAGE_MAX, CloseBills, EnrollMembers, RegisterEmployer
from ledger.domain import INTERNAL_EVENT_TOPICS
from ledger.identifiers import BRANCH_CODE_LENGTH_MAX
from ledger.publishing.envelope import envelope
from ledger.rules import Program
from tests.support.scenario import kpj, new_ledger, row

PUBLISHED_EVENT_BYTES_MAX = 512 * 1024  # half of Kafka's default record limit: room for headers, batches, growth
LONGEST_BRANCH = ("K" + "-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 2)[:BRANCH_CODE_LENGTH_MAX]
NPP = "49000001"


def test_the_largest_part_of_a_bill_is_published_in_less_than_512_kib() -> None:
    app = new_ledger()
    app.execute(RegisterEmployer(npp=NPP, name="PT Tambang Besar", branch=LONGEST_BRANCH, kind="company",
                                 risk_class="very-high", registered_on=date(2024, 1, 2)))
    members = [row(kpj(9_000_000 + n), WAGE_MAX, serial=1 + n) for n in range(ev.BILL_PART_LINES_MAX)]
    app.execute(EnrollMembers(npp=NPP, effective=date(2024, 2, 1), members=members))
    closed = app.execute(CloseBills(month="2024-02", npps=[NPP]))
    assert closed["members"] == ev.BILL_PART_LINES_MAX

    stored = [n for n in app.recorder.select_notifications(start=1, limit=100_000)
              if n.topic not in INTERNAL_EVENT_TOPICS]
    position, part = next((p, n) for p, n in enumerate(stored, start=1)
                          if orjson.loads(n.state)["schema_type"] == "BillLinesAdded")
    key, value, headers = envelope(part, position)
    published = orjson.loads(value)
    lines = published["data"]["lines"]
    assert published["type"] == "BillLinesAdded" and published["branch"] == LONGEST_BRANCH
    assert len(lines) == ev.BILL_PART_LINES_MAX
    assert all(set(line["shares"]) == {p.value for p in Program} and line["wage"] == WAGE_MAX for line in lines)

    size = len(key) + len(value) + sum(len(name) + len(header) for name, header in headers)
    assert size < PUBLISHED_EVENT_BYTES_MAX, f"the largest BillLinesAdded is published in {size:,} bytes"
