"""Loading many aggregates with a few queries instead of one query each.

A month's payment for an employer reads every member of its roster: 7,000 members, 7,000 round trips through the
eventsourcing repository. This module asks the event store for the events of a whole chunk of aggregates at once,
per backend (SQLite, PostgreSQL), and rebuilds the aggregates with the library's own mapper and `mutate`, so the
result is exactly what `repository.get` returns. Any other backend falls back to one query per aggregate.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresAggregateRecorder
from eventsourcing.sqlite import SQLiteAggregateRecorder
from psycopg.sql import SQL, Identifier

IDS_PER_QUERY_MAX = 500  # SQLite allows 999 bound parameters per statement by default on older builds


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


def load_many(application: Any, ids: Sequence[UUID]) -> dict[UUID, Any]:
    """Aggregates by id, rebuilt from their events as the repository would; missing ids are left out."""
    aggregates = {}
    for aggregate_id, stored_events in select_events_of_many(application.recorder, ids).items():
        aggregate = None
        for stored in stored_events:
            aggregate = application.mapper.to_domain_event(stored).mutate(aggregate)
        aggregates[aggregate_id] = aggregate
    return aggregates
