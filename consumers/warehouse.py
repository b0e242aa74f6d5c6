"""A warehouse exporter: every event appended to CSV files partitioned by month, idempotent across restarts.

Layout under the output folder: `month=YYYY-MM/events-p<partition>.csv`, where the month is that of the event's
effective date and the partition is the Kafka partition it came from. Each file starts with a header row. Columns:
position, event_id, type, version, aggregate_id, aggregate_version, effective_date, recorded_at, branch, kpj, npp,
amount (the event's `total` or `amount`, whole rupiah, where it has one), and data (the event's JSON). A text cell
that a spreadsheet would evaluate as a formula is written with a `'` in front (`ledger.csv_lines`).

Idempotence: `_export.db` in the same folder records the processed event ids (the SDK's `ProcessedEvents`) and each
file's size after the rows it accounts for, in one transaction per event. A row is appended and flushed before that
transaction commits. On start, every file is cut back to its recorded size. A row written just before a crash, and not
yet recorded, is therefore removed, and the event it came from is delivered again. Each event lands in the files
exactly once.

    ledger consumers warehouse --out warehouse/ [--start beginning] [--idle-exit 10]
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import orjson

from consumers.sdk import Delivery, ProcessedEvents, Subscriber
from ledger.csv_lines import csv_line
from ledger.events import PUBLISHED_EVENT_TYPES, LedgerEvent
from ledger.private_files import make_private_dir, open_private
from ledger.settings import KafkaConnection

GROUP_ID = "warehouse-exporter"
STATE_FILE = "_export.db"
COLUMNS = ("position", "event_id", "type", "version", "aggregate_id", "aggregate_version", "effective_date",
           "recorded_at", "branch", "kpj", "npp", "amount", "data")
FILES_DDL = "CREATE TABLE IF NOT EXISTS export_files (path TEXT PRIMARY KEY, size INTEGER NOT NULL)"


def recover(out: Path, processed: ProcessedEvents) -> int:
    """Cut every file back to the size its recorded rows take; returns how many files had a torn tail."""
    torn = 0
    recorded = dict(processed.connection.execute("SELECT path, size FROM export_files").fetchall())
    for path in out.glob("month=*/events-p*.csv"):
        size = recorded.get(str(path.relative_to(out)), 0)
        if path.stat().st_size != size:
            torn += 1
            with path.open("r+b") as file:
                file.truncate(size)
    return torn


def exporter(kafka: KafkaConnection, topic: str, out: Path, *, group_id: str = GROUP_ID,
             start: str | datetime = "committed", log: Callable[[str], None] = lambda _: None) -> Subscriber:
    make_private_dir(out)  # the files hold members' wages and claims: 0700 and 0600 (ledger.private_files)
    processed = ProcessedEvents(out / STATE_FILE)
    processed.connection.execute(FILES_DDL)
    torn = recover(out, processed)
    if torn:
        log(f"warehouse: cut {torn} file(s) back to their last recorded row")
    subscriber = Subscriber(kafka, topic=topic, group_id=group_id, start=start, processed=processed, log=log)

    @subscriber.on(*PUBLISHED_EVENT_TYPES.values())
    def export(event: LedgerEvent, delivery: Delivery) -> None:
        assert delivery.tx is not None  # a subscriber with a ProcessedEvents hands every handler its transaction
        env = delivery.envelope
        data = event.model_dump(mode="json")
        relative = f"month={env.effective_date.isoformat()[:7]}/events-p{delivery.partition}.csv"
        path = out / relative
        make_private_dir(path.parent)
        amount = data.get("total", data.get("amount"))
        row = csv_line([env.position, env.event_id, env.type, env.version, env.aggregate_id, env.aggregate_version,
                        env.effective_date.isoformat(), env.recorded_at, env.branch, data.get("kpj", ""),
                        data.get("npp") or "", "" if amount is None else amount, orjson.dumps(data).decode()])
        with open_private(path, "ab") as file:
            if file.tell() == 0:
                file.write(csv_line(list(COLUMNS)))
            file.write(row)
            file.flush()
            size = file.tell()
        delivery.tx.execute("INSERT INTO export_files VALUES (?, ?) ON CONFLICT (path) DO UPDATE SET size = "
                            "excluded.size", (relative, size))

    return subscriber
