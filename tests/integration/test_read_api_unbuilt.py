"""Before any projection is built, the read side says so clearly instead of answering zeros."""

from __future__ import annotations

from datetime import date

import pytest
from fastapi.testclient import TestClient

from ledger.errors import NotProjected
from ledger.settings import Settings
from projections import queries
from projections.api import create_app
from projections.store import ViewStore
from tests.support.access_log_memory import MemoryAccessLog
from tests.support.tokens import TokenKit

pytestmark = pytest.mark.integration


def test_queries_and_the_api_refuse_until_the_projections_are_built(tmp_path) -> None:
    settings = Settings(projection_sqlite_path=tmp_path / "views.db")
    store = ViewStore.open(settings)
    with pytest.raises(NotProjected, match="the balances projection has not been built yet"):
        queries.member_balance(store, "17100000001", date(2017, 1, 1))
    with pytest.raises(NotProjected, match="the branches projection has not been built yet"):
        queries.branch_report(store, "BEKASI-KOTA", date(2017, 1, 1))
    kit = TokenKit.create(tmp_path / "keys")
    client = TestClient(create_app(kit.settings(settings), store, access_log=MemoryAccessLog()),
                        headers=kit.headers("auditor"))
    response = client.get("/members/17100000001/balance")
    assert response.status_code == 503 and "not been built" in response.json()["detail"]
    assert client.get("/branches/BEKASI-KOTA/totals?as_of=2017-13-01").status_code == 422


def test_a_malformed_parameter_is_refused_without_repeating_it(tmp_path) -> None:
    kit = TokenKit.create(tmp_path / "keys")
    client = TestClient(create_app(kit.settings(Settings(projection_sqlite_path=tmp_path / "views.db")),
                                   access_log=MemoryAccessLog()), headers=kit.headers("auditor"))
    nik = "3275011505900001"  # a NIK typed where the KPJ belongs
    response = client.get(f"/members/{nik}/balance")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "kpj"]
    assert nik not in response.text
