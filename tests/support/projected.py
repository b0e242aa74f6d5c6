"""A view store built in this process from a generated branch history, without Kafka: the ledger in memory writes
the history with its own commands (`ledger.generator`), each event is shaped as the relay publishes it, and both
projections apply them as the runner does (checking their invariants). For tests of what reads the views (the
console's pages) where the broker adds nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ledger.application import Ledger
from ledger.events import EVENT_TYPES
from ledger.generator import BranchPlan, generate_branch
from ledger.publishing.envelope import envelope
from projections.store import ViewStore
from projections.views import PROJECTIONS

TEST_NIK_KEY = b"console-tests-only-nik-hmac-key-0123456"  # in memory, never published


def published(app: Ledger) -> list[tuple[dict[str, Any], bytes]]:
    """Every contract event of the store as the relay publishes it: (envelope, record value)."""
    records = []
    for position, notification in enumerate(app.stored_contract_notifications(), start=1):
        _, value, _ = envelope(notification, position)
        records.append((orjson.loads(value), value))
    return records


def project(store: ViewStore, records: list[tuple[dict[str, Any], bytes]]) -> None:
    """Apply the records to a new version of each projection, check the invariants, switch readers to it."""
    with store.transaction() as tx:
        for name, view in PROJECTIONS.items():
            version = ViewStore.new_version(tx, name)
            view.create(tx, version, indexes=True)
            by_json = [value for env, value in records if store.dialect == "sqlite" and env["type"] in view.json_types
                       and env["version"] == EVENT_TYPES[env["type"]].VERSION]
            if by_json:
                view.apply_json(tx, version, by_json)
            view.apply(tx, version, [env for env, value in records
                                     if not (store.dialect == "sqlite" and env["type"] in view.json_types
                                             and env["version"] == EVENT_TYPES[env["type"]].VERSION)])
            view.check(tx, version)
            ViewStore.switch(tx, name, version)


def projected_store(path: Path, plans: list[BranchPlan], today: date) -> ViewStore:
    """An SQLite view store at `path` holding the histories of `plans` (one branch each), written on `today`."""
    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: today, nik_key=TEST_NIK_KEY)
    for plan in plans:
        generate_branch(app, plan)
    store = ViewStore("sqlite", sqlite_path=path)
    project(store, published(app))
    return store
