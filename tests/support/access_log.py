"""An access log in memory, for unit tests of what reads member data (the read side, the API, the console): it
checks each entry as the real one does (`entry_body`: the same bounds, the same `InvalidInput`), keeps the chain in a
list, and can be told to refuse (`unavailable`), as a store that cannot be written does. Never used by production
code: `projections.access_log.AccessLog` is the one that writes."""

from __future__ import annotations

import threading

from ledger.errors import AccessLogUnavailable
from projections.access import AccessEntry
from projections.access_log import GENESIS_HASH, LoggedEntry, entry_body, entry_hash


class MemoryAccessLog:
    def __init__(self) -> None:
        self.entries: list[LoggedEntry] = []
        self.unavailable: str | None = None  # set: every `record` raises AccessLogUnavailable with this message
        self._lock = threading.Lock()

    def record(self, entry: AccessEntry) -> None:
        body = entry_body(entry)
        if self.unavailable is not None:
            raise AccessLogUnavailable(self.unavailable)
        with self._lock:
            prev_hash = self.entries[-1].hash if self.entries else GENESIS_HASH
            numbered = {**body, "seq": len(self.entries) + 1}
            self.entries.append(LoggedEntry(**numbered, prev_hash=prev_hash, hash=entry_hash(prev_hash, numbered)))

    def close(self) -> None:
        pass

    def reads_of(self, kpj: str) -> list[LoggedEntry]:
        return [entry for entry in self.entries if entry.kpj == kpj]
