"""An access log in memory, for tests only: it keeps the entries in a list, and can be told to fail, as a full disk or
an unreachable database would make the real one (projections/access_log.py) fail. Never used outside tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.errors import AccessLogUnavailable
from projections.access import AccessEntry


@dataclass
class MemoryAccessLog:
    entries: list[AccessEntry] = field(default_factory=list)
    failing: bool = False  # when set, every record fails as the real log does when it cannot commit

    def record(self, entry: AccessEntry) -> None:
        if self.failing:
            raise AccessLogUnavailable("the access log cannot be written (a test's failing log)")
        self.entries.append(entry)

    def kpjs(self) -> list[str]:
        return [entry.kpj for entry in self.entries]
