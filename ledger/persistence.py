"""Adjustments to the eventsourcing library's PostgreSQL recorder, chosen through `Settings.eventsourcing_env()`.

The library inserts a command's events in psycopg's pipeline mode. With eventsourcing 9.5.6 and psycopg 3.3, a
pipelined insert whose one parameter holds more than about 10 MB of events never returns (reproduced without any
ledger code: 12 MB hangs, 6 MB works). A 7,000-member bulk enrollment is such a command. This recorder does the same
steps (lock the table so notification ids commit in order, insert, read back the ids) in one ordinary transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder


class LedgerPostgresRecorder(PostgresApplicationRecorder):
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        if not stored_events:
            return None
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as cursor:
            # The table lock is taken inside `_insert_stored_events`, as the library does.
            self._insert_events(cursor, stored_events, **kwargs)
            self._insert_stored_events(cursor, stored_events, **kwargs)
            return self._fetch_ids_after_insert_events(cursor, stored_events, **kwargs)
