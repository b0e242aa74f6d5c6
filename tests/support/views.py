"""A real view store built without Kafka: the events of a ledger, as the relay would publish them, applied to new
versions of both projections as the runner applies them (checked, then switched live)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ledger.application import Ledger
from ledger.events import EVENT_TYPES
from ledger.generator import BranchPlan, generate_branch
from ledger.publishing.envelope import envelope
from projections.catalog import PROJECTIONS
from projections.store import ViewStore


def published(app: Ledger) -> list[tuple[dict[str, Any], bytes]]:
    """Every contract event of the store as the relay publishes it: (envelope, record value)."""
    records = []
    for position, notification in enumerate(app.stored_contract_notifications(), start=1):
        _, value, _ = envelope(notification, position)
        records.append((orjson.loads(value), value))
    return records


def project(store: ViewStore, records: list[tuple[dict[str, Any], bytes]]) -> None:
    """Apply the records to new versions of both projections, as the runner does; check the invariants; switch
    readers to them and drop the versions they replace."""
    with store.transaction() as tx:
        for name, view in PROJECTIONS.items():
            version = ViewStore.new_version(tx, name)
            view.create(tx, version, indexes=True)
            as_json = [store.dialect == "sqlite" and env["type"] in view.json_types
                       and env["version"] == EVENT_TYPES[env["type"]].VERSION for env, _ in records]
            by_json = [value for (_, value), json_path in zip(records, as_json, strict=True) if json_path]
            if by_json:
                view.apply_json(tx, version, by_json)
            view.apply(tx, version, [env for (env, _), json_path in zip(records, as_json, strict=True)
                                     if not json_path])
            view.check(tx, version)
            replaced = ViewStore.switch(tx, name, version)
            if replaced is not None:
                view.drop(tx, replaced)


TEST_NIK_KEY = b"views-tests-only-nik-hmac-key-0123456789"  # in memory, never published


def projected_store(path: Path, plans: list[BranchPlan], today: date,
                    more: Callable[[Ledger], None] | None = None) -> ViewStore:
    """An SQLite view store at `path` holding the generated histories of `plans` (one branch each), written on `today`
    by a ledger in memory; then whatever `more` writes with that ledger."""
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: today, nik_key=TEST_NIK_KEY)
    for plan in plans:
        generate_branch(app, plan)
    if more is not None:
        more(app)
    store = ViewStore("sqlite", sqlite_path=path)
    project(store, published(app))
    return store
