"""Who reads what: the access log's entry (projections.access_log writes it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class AccessEntry:
    """One read of a member's data: when (UTC), who (the token's subject and role), which member (KPJ), through which
    endpoint, and the purpose the reader gave (the `X-Purpose` header), if any."""

    at: datetime
    subject: str
    role: str
    kpj: str
    endpoint: str
    purpose: str | None
