"""Everything the ledger adjusts in the eventsourcing library's persistence, and the one place that reaches into its
internals (`_record`, `_take_snapshots`, `_notify`, `_insert_events`, `recorder.datastore`). Those are not the
library's public API: an upgrade of eventsourcing is checked against this module alone.

`TunedApplication`: the library's `Application` as the ledger uses it, with two adjustments:
- `save` collects our aggregates' events directly, without the runtime protocol checks of `Application.save`;
- the transcoder is `OrjsonTranscoder`.

`OrjsonTranscoder`: the stored events' JSON, encoded by orjson instead of the standard library's encoder. The bytes
are the same for what our events hold (JSON values, dates and datetimes, Decimals; `tests/unit/test_persistence.py`
compares them for every kind of stored event), in about a third of the time: 7 us of a single command's 10 us of
encoding. Decoding stays the library's, so every stored event reads as before.

`LedgerPostgresRecorder`, chosen through `Settings.eventsourcing_env()`: the library inserts a command's events in
psycopg's pipeline mode. With eventsourcing 9.5.6 and psycopg 3.3, a pipelined insert whose one parameter holds more
than about 10 MB of events never returns (reproduced without any ledger code: 12 MB hangs, 6 MB works). A
7,000-member bulk enrollment is such a command. This recorder does the same steps (lock the table so notification
ids commit in order, insert, read back the ids) in one ordinary transaction.

`load_many`: many aggregates with a few queries instead of one query each. A month's payment for an employer reads
every member of its roster: 7,000 members, 7,000 round trips through the eventsourcing repository. It asks the
event store for the events of a whole chunk of aggregates at once, per backend (SQLite, PostgreSQL), and rebuilds
the aggregates with the library's own mapper and `mutate`, so the result is exactly what `repository.get` returns.
Any other backend falls back to one query per aggregate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.persistence import JSONTranscoder, Recording, StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier

IDS_PER_QUERY_MAX = 500  # SQLite allows 999 bound parameters per statement by default on older builds


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return None
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            # The table lock is taken inside `_insert_stored_events`, as the library does.
            self._insert_events(cursor, stored_events, **kwargs)
            self._insert_stored_events(cursor, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(cursor, stored_events, **kwargs)


class OrjsonTranscoder(JSONTranscoder):
    # orjson writes UUIDs, dataclasses and enums itself, where the library's encoder calls a registered
    # transcoding (or fails): our stored events hold none of them, and the unit test named above would show one.
    # Dates and datetimes are passed to the transcodings, as the library's encoder does.
    OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS

    def encode(self, obj: Any) -> bytes:
        return orjson.dumps(obj, default=self._encode_obj, option=self.OPTIONS)


def stored_data(state: bytes) -> dict[str, Any]:
    """The contract data (`data`) of one of our stored events, read from its state without rebuilding the event.

    Our events' `data` holds JSON values only (`ledger.events.to_json_dict`), never a value the transcoder encodes
    as `{"_type_": ...}`, so orjson reads it as the library's decoder would, several times faster: `Ledger.payers`
    reads every enrollment of a branch (262,785 at Bekasi Kota) this way."""
    data: dict[str, Any] = orjson.loads(state)["data"]
    return data


class TunedApplication(Application[UUID]):
    """The library's `Application` with the ledger's transcoder and a faster `save`."""

    def construct_transcoder(self) -> OrjsonTranscoder:
        transcoder = OrjsonTranscoder()  # faster, same bytes: see the module docstring
        self.register_transcodings(transcoder)
        return transcoder

    def save(self, *aggregates: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's `save` for our own aggregates, without its runtime protocol checks.

        `Application.save` asks `isinstance(obj, DomainEventProtocol)` and `isinstance(obj, CollectEventsProtocol)`
        of each object, and on Python 3.11 a runtime-protocol check walks the protocol's attributes every time:
        measured, 40 us of a 510 us single enrollment. Everything the ledger saves is a `LedgerAggregate` or a
        `CommandRecord`, both eventsourcing aggregates, so the events are collected directly; the steps after that
        are the library's own."""
        processing_event: ProcessingEvent[UUID] = ProcessingEvent()
        for aggregate in aggregates:
            processing_event.events.extend(aggregate.collect_events())
            processing_event.aggregates[aggregate.id] = aggregate
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        return recordings


# --- batched reads ------------------------------------------------------------------------------------------------


def _select_sqlite(recorder: SQLiteAggregateRecorder, ids: Sequence[UUID]) -> list[StoredEvent]:
    marks = ",".join("?" * len(ids))
    statement = (f"SELECT * FROM {recorder.events_table_name} WHERE originator_id IN ({marks}) "
                 f"ORDER BY originator_id, originator_version")
    with recorder.datastore.transaction(commit=False) as cursor:
        cursor.execute(statement, [i.hex for i in ids])
        return [StoredEvent(originator_id=recorder.convert_originator_id(row["originator_id"]),
                            originator_version=row["originator_version"], topic=row["topic"], state=row["state"])
                for row in cursor.fetchall()]


def _select_postgres(recorder: PostgresAggregateRecorder, ids: Sequence[UUID]) -> list[StoredEvent]:
    statement = SQL("SELECT * FROM {schema}.{table} WHERE originator_id = ANY(%s) "
                    "ORDER BY originator_id, originator_version").format(
        schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name))
    with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
        cursor.execute(statement, [list(ids)])
        return [StoredEvent(originator_id=row["originator_id"], originator_version=row["originator_version"],
                            topic=row["topic"], state=bytes(row["state"])) for row in cursor.fetchall()]


def select_events_of_many(recorder: Any, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
    """The stored events of each aggregate in `ids`, in version order; absent aggregates are absent keys."""
    found: dict[UUID, list[StoredEvent]] = defaultdict(list)
    for start in range(0, len(ids), IDS_PER_QUERY_MAX):
        chunk = ids[start:start + IDS_PER_QUERY_MAX]
        if isinstance(recorder, SQLiteAggregateRecorder):
            rows = _select_sqlite(recorder, chunk)
        elif isinstance(recorder, PostgresAggregateRecorder):
            rows = _select_postgres(recorder, chunk)
        else:
            rows = [event for i in chunk for event in recorder.select_events(i)]
        for stored in rows:
            found[UUID(str(stored.originator_id))].append(stored)
    return found


def load_many(application: Application[UUID], ids: Sequence[UUID]) -> dict[UUID, Any]:
    """Aggregates by id, rebuilt from their events as the repository would; missing ids are left out."""
    aggregates = {}
    for aggregate_id, stored_events in select_events_of_many(application.recorder, ids).items():
        aggregate = None
        for stored in stored_events:
            event: Any = application.mapper.to_domain_event(stored)  # an aggregate's own event class: it mutates
            aggregate = event.mutate(aggregate)
        aggregates[aggregate_id] = aggregate
    return aggregates
