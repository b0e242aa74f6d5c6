"""`ledger audit history`: the events of one member, employer or branch as a timeline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.audit.topic import in_period, read_topic
from ledger.settings import KafkaConnection


@dataclass(frozen=True)
class Subject:
    """Whose events: exactly one of a member (KPJ), an employer (NPP) or a branch (code)."""

    kpj: str | None = None
    npp: str | None = None
    branch: str | None = None

    def __post_init__(self) -> None:
        assert sum(value is not None for value in (self.kpj, self.npp, self.branch)) == 1, self

    def matches(self, env: dict[str, Any]) -> bool:
        if self.branch is not None:
            branch: str = env["branch"]
            return branch == self.branch
        data = env["data"]
        if self.npp is not None:
            npp: str | None = data.get("npp")
            return npp == self.npp
        # A member's own events carry its KPJ; an employer's roster change lists it among `kpjs`.
        return data.get("kpj") == self.kpj or self.kpj in (data.get("kpjs") or ())

    def __str__(self) -> str:
        if self.kpj is not None:
            return f"member {self.kpj}"
        return f"employer {self.npp}" if self.npp is not None else f"branch {self.branch}"


def history(envelopes: Iterable[dict[str, Any]], subject: Subject, start: date | None = None,
            end: date | None = None) -> list[dict[str, Any]]:
    """The subject's events with an effective date in [start, end], by effective date, then position."""
    found = [env for env in envelopes if subject.matches(env) and in_period(env, start, end)]
    found.sort(key=lambda env: (env["effective_date"], env["position"]))
    return found


def history_topic(kafka: KafkaConnection, topic: str, subject: Subject, start: date | None = None,
                  end: date | None = None) -> list[dict[str, Any]]:
    return history((env for _, env in read_topic(kafka, topic)), subject, start, end)
