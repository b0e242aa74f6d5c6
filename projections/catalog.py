"""Every projection, by name: what the runner builds, `ledger projections` names and the readers look up."""

from __future__ import annotations

from projections.general_ledger import GeneralLedger
from projections.views import Balances, Branches, Collections, Projection

PROJECTIONS: dict[str, Projection] = {p.name: p for p in (Balances(), Branches(), Collections(), GeneralLedger())}


def projection(name: str) -> Projection:
    try:
        return PROJECTIONS[name]
    except KeyError:
        raise ValueError(f"unknown projection {name!r}: choose one of {', '.join(PROJECTIONS)}") from None
