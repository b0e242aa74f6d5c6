"""Who may read what through the HTTP API: every role against every endpoint, for a member of the reader's branch, a
member of another branch and a KPJ nobody has; tokens missing, forged or expired; the rate limit; the access log.

The API runs in process (FastAPI's TestClient) over a real SQLite view store, built from a ledger with two branches by
the projections' own code (tests/support/views.py), with an access log in memory that a test can make fail."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from ledger.commands import RegisterEmployer
from ledger.errors import AccessLogUnavailable, ConfigurationError, Forbidden, Unauthenticated
from ledger.settings import Settings
from projections import queries
from projections.access import Reader, Role
from projections.api import browser_reader, create_app
from projections.queries import READS_PER_MINUTE_MAX, RateLimiter, ReadSide
from projections.store import ViewStore
from projections.tokens import TokenVerifier
from tests.support.access_log_memory import MemoryAccessLog
from tests.support.scenario import enroll, kpj, new_ledger, pay, register
from tests.support.tokens import TokenKit
from tests.support.views import project, published

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 23)
BEKASI, BOGOR = "BEKASI-KOTA", "BOGOR"
BEKASI_NPP, BOGOR_NPP = "10012345", "10054321"
BEKASI_MEMBERS = [kpj(n) for n in range(1, 7)]
BOGOR_MEMBERS = [kpj(n) for n in range(101, 105)]
OWN, OTHER_BRANCH, UNKNOWN = BEKASI_MEMBERS[0], BOGOR_MEMBERS[0], kpj(399)
SAME_BRANCH = BEKASI_MEMBERS[1]  # another member of the reader's own branch: not the member-service's own


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewStore]:
    app = new_ledger()
    register(app, BEKASI_NPP)
    app.execute(RegisterEmployer(npp=BOGOR_NPP, name="PT Hujan Sejahtera", branch=BOGOR, kind="company",
                                 risk_class="low", registered_on=date(2015, 7, 1)))
    for serial, member in enumerate(BEKASI_MEMBERS + BOGOR_MEMBERS, start=1):
        enroll(app, member, npp=BEKASI_NPP if member in BEKASI_MEMBERS else BOGOR_NPP, serial=serial)
    for npp in (BEKASI_NPP, BOGOR_NPP):
        pay(app, "2024-01", date(2024, 2, 10), npp=npp)
        pay(app, "2024-02", date(2024, 3, 12), npp=npp)
    views = ViewStore("sqlite", sqlite_path=tmp_path_factory.mktemp("views") / "views.db")
    project(views, published(app))
    yield views
    views.close()


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> TokenKit:
    return TokenKit.create(tmp_path_factory.mktemp("token-keys"))


@dataclass
class Api:
    client: TestClient
    log: MemoryAccessLog
    kit: TokenKit
    clock: list[float]  # the rate limiter's monotonic clock, moved by the test

    def get(self, path: str, role: str | None = None, subject: str | None = None, **token: Any) -> Any:
        headers = self.kit.headers(role, subject, **token) if role else {}
        return self.client.get(path, headers=headers)


@pytest.fixture
def api(store: ViewStore, kit: TokenKit, tmp_path: Path) -> Api:
    log, clock = MemoryAccessLog(), [1_000.0]
    settings = kit.settings(Settings(projection_sqlite_path=tmp_path / "unused.db"))
    app = create_app(settings, store, access_log=log, clock=lambda: TODAY,
                     limiter=RateLimiter(clock=lambda: clock[0]))
    return Api(TestClient(app), log, kit, clock)


# The readers of the matrix, as token arguments.
READERS: dict[str, dict[str, Any]] = {
    "auditor": {"role": "auditor", "subject": "auditor-ani"},
    "branch-staff": {"role": "branch-staff", "subject": "staff-budi", "branches": (BEKASI,)},
    "member-service": {"role": "member-service", "subject": "portal", "kpj": OWN},
    "operator": {"role": "operator", "subject": "ops-citra"},
}
# What each role gets for each member: its own (a member of its branch; the member-service's own), another member of
# its branch, a member of another branch, and a KPJ nobody has.
MEMBER_STATUS = {
    "auditor": {OWN: 200, SAME_BRANCH: 200, OTHER_BRANCH: 200, UNKNOWN: 404},
    "branch-staff": {OWN: 200, SAME_BRANCH: 200, OTHER_BRANCH: 403, UNKNOWN: 403},
    "member-service": {OWN: 200, SAME_BRANCH: 403, OTHER_BRANCH: 403, UNKNOWN: 403},
    "operator": {OWN: 403, SAME_BRANCH: 403, OTHER_BRANCH: 403, UNKNOWN: 403},
}
BRANCH_STATUS = {
    "auditor": {BEKASI: 200, BOGOR: 200, "NOWHERE": 404},
    "branch-staff": {BEKASI: 200, BOGOR: 403, "NOWHERE": 403},
    "member-service": {BEKASI: 403, BOGOR: 403, "NOWHERE": 403},
    "operator": {BEKASI: 403, BOGOR: 403, "NOWHERE": 403},
}
MEMBER_ENDPOINTS = {"/members/{kpj}/balance?as_of=2024-06-30": "GET /members/{kpj}/balance",
                    "/members/{kpj}/history": "GET /members/{kpj}/history"}


@pytest.mark.parametrize("who", sorted(READERS))
def test_every_role_against_every_endpoint_and_member(api: Api, store: ViewStore, who: str) -> None:
    token = READERS[who]
    expected_entries = []
    for path, endpoint in MEMBER_ENDPOINTS.items():
        for member, status in MEMBER_STATUS[who].items():
            response = api.get(path.format(kpj=member), **token)
            assert response.status_code == status, (who, path, member, response.text)
            if status == 200:
                expected_entries.append((token["subject"], Role(who), member, endpoint))
            if status == 403:
                # Neither the KPJ asked for nor the branch it belongs to is told.
                assert member not in response.text and BOGOR not in response.text
    for branch, status in BRANCH_STATUS[who].items():
        response = api.get(f"/branches/{branch}/totals?as_of=2024-06-30", **token)
        assert response.status_code == status, (who, branch, response.text)
        if status == 200:
            assert response.json() == queries.branch_report(store, branch, date(2024, 6, 30))
    # Exactly the member reads answered were logged, in order, as who, which member, which endpoint.
    assert [(e.subject, e.role, e.kpj, e.endpoint) for e in api.log.entries] == expected_entries
    assert all(e.at.tzinfo is not None and e.purpose is None for e in api.log.entries)


def test_an_answer_is_the_projections_answer(api: Api, store: ViewStore) -> None:
    for member in (OWN, OTHER_BRANCH):
        response = api.get(f"/members/{member}/balance?as_of=2024-06-30", "auditor")
        assert response.json() == queries.member_balance(store, member, date(2024, 6, 30))
        assert response.json()["jht_balance"] > 0
    history = api.get(f"/members/{OWN}/history?from=2024-03-01", "branch-staff", branches=(BEKASI,)).json()
    assert history == queries.member_history(store, OWN, date(2024, 3, 1), None) and len(history) == 1


def test_a_branch_staff_token_naming_an_unknown_branch_is_told_it_is_unknown(api: Api) -> None:
    response = api.get("/branches/NOWHERE/totals", "branch-staff", branches=(BEKASI, "NOWHERE"))
    assert response.status_code == 404 and "unknown branch" in response.json()["detail"]


def test_a_member_service_is_told_its_own_member_is_unknown(api: Api) -> None:
    response = api.get(f"/members/{UNKNOWN}/balance", "member-service", kpj=UNKNOWN)
    assert response.status_code == 404 and api.log.entries == []


def test_without_a_valid_token_every_endpoint_answers_401(api: Api, kit: TokenKit, tmp_path: Path) -> None:
    other = TokenKit.create(tmp_path / "other-keys")
    expired = kit.token("auditor", ttl_s=60, now=datetime.now(UTC) - timedelta(hours=2))
    attempts = {
        "no header": {},
        "another scheme": {"Authorization": f"Basic {kit.token('auditor')}"},
        "empty bearer": {"Authorization": "Bearer "},
        "garbage": {"Authorization": "Bearer not-a-token"},
        "another issuer's key": {"Authorization": f"Bearer {other.token('auditor')}"},
        "expired": {"Authorization": f"Bearer {expired}"},
    }
    for path in ("/members/{kpj}/balance", "/members/{kpj}/history", "/branches/BEKASI-KOTA/totals"):
        for what, headers in attempts.items():
            response = api.client.get(path.format(kpj=OWN), headers=headers)
            assert response.status_code == 401, (what, path)
            challenge = response.headers["WWW-Authenticate"]
            assert challenge.startswith("Bearer ") and ('error="invalid_token"' in challenge) == (
                what not in ("no header", "another scheme", "empty bearer")), what
            for header in headers.values():
                given = header.removeprefix("Bearer ").removeprefix("Basic ")
                assert not given or given not in response.text
    assert "expired" in api.client.get(f"/members/{OWN}/balance",
                                       headers=attempts["expired"]).json()["detail"]
    # Even a malformed KPJ is not looked at before the token: 401, not 422.
    assert api.client.get("/members/3275011505900001/balance").status_code == 401
    assert api.log.entries == []


def test_the_json_api_ignores_the_console_cookie_which_the_console_takes(api: Api) -> None:
    token = api.kit.token("auditor")
    api.client.cookies.set("ledger_token", token)
    assert api.client.get(f"/members/{OWN}/balance").status_code == 401
    app = api.client.app

    @app.get("/probe")  # what a console page declares
    def probe(reader: Reader = Depends(browser_reader)) -> dict[str, str]:  # noqa: B008
        return {"subject": reader.subject}

    assert api.client.get("/probe").json() == {"subject": "test-auditor"}
    api.client.cookies.clear()
    assert api.client.get("/probe").status_code == 401


def test_health_needs_no_token_and_tells_nothing(api: Api) -> None:
    response = api.client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_a_loop_over_400_consecutive_kpjs_learns_nothing(api: Api) -> None:
    """The issue's outsider: 400 consecutive KPJs. Without a token, 401 for every one. With a branch-staff token of
    BEKASI-KOTA, its own members and 403 for every other KPJ, in another branch or in none alike."""
    kpjs = [kpj(n) for n in range(1, 401)]
    assert {api.client.get(f"/members/{k}/history").status_code for k in kpjs} == {401}
    headers = api.kit.headers("branch-staff", "insider", branches=(BEKASI,))
    answered, refusals = [], set()
    for k in kpjs:
        response = api.client.get(f"/members/{k}/history", headers=headers)
        if response.status_code == 200:
            answered.append(k)
        else:
            assert response.status_code == 403 and k not in response.text
            refusals.add(response.text)
    assert answered == BEKASI_MEMBERS
    assert len(refusals) == 1  # one and the same refusal for another branch's member and for nobody's KPJ
    assert api.log.kpjs() == BEKASI_MEMBERS


def test_the_rate_limit_answers_429_with_retry_after_and_spares_other_subjects(api: Api) -> None:
    auditor = api.kit.headers("auditor", "fast-reader")
    for _ in range(READS_PER_MINUTE_MAX):
        assert api.client.get(f"/members/{OWN}/balance", headers=auditor).status_code == 200
    api.clock[0] += 20
    refused = api.client.get(f"/branches/{BEKASI}/totals", headers=auditor)
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "40"
    assert str(READS_PER_MINUTE_MAX) in refused.json()["detail"]
    assert len(api.log.entries) == READS_PER_MINUTE_MAX  # the refused read was neither answered nor logged
    assert api.get(f"/members/{OWN}/balance", "auditor", "someone-else").status_code == 200
    # A fresh token of the same subject is the same reader.
    assert api.client.get(f"/members/{OWN}/balance", headers=api.kit.headers("auditor", "fast-reader")
                          ).status_code == 429
    api.clock[0] += 40
    assert api.client.get(f"/members/{OWN}/balance", headers=auditor).status_code == 200


def test_a_member_service_is_limited_per_member_it_acts_for(api: Api) -> None:
    first = api.kit.headers("member-service", "portal", kpj=OWN)
    for _ in range(READS_PER_MINUTE_MAX):
        assert api.client.get(f"/members/{OWN}/balance", headers=first).status_code == 200
    assert api.client.get(f"/members/{OWN}/history", headers=first).status_code == 429
    second = api.kit.headers("member-service", "portal", kpj=SAME_BRANCH)
    assert api.client.get(f"/members/{SAME_BRANCH}/history", headers=second).status_code == 200


def test_a_read_whose_access_log_entry_cannot_be_written_fails(api: Api) -> None:
    api.log.failing = True
    response = api.get(f"/members/{OWN}/balance", "auditor")
    assert response.status_code == 503 and "access log" in response.json()["detail"]
    assert "jht_balance" not in response.text
    assert api.get(f"/members/{OWN}/history", "auditor").status_code == 503
    # Branch totals hold no member's data, and are not logged.
    assert api.get(f"/branches/{BEKASI}/totals", "auditor").status_code == 200


def test_the_purpose_header_is_logged_and_bounded(api: Api) -> None:
    headers = {**api.kit.headers("auditor", "ani"), "X-Purpose": "claim review 2024/118"}
    assert api.client.get(f"/members/{OTHER_BRANCH}/balance", headers=headers).status_code == 200
    assert [(e.kpj, e.purpose) for e in api.log.entries] == [(OTHER_BRANCH, "claim review 2024/118")]
    too_long = api.client.get(f"/members/{OWN}/balance", headers={**headers, "X-Purpose": "x" * 201})
    assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["header", "X-Purpose"]
    assert "x" * 201 not in too_long.text
    # Without a valid token, the header is not even looked at.
    assert api.client.get(f"/members/{OWN}/balance", headers={"X-Purpose": "x" * 201}).status_code == 401
    assert len(api.log.entries) == 1


def test_from_after_to_is_a_422_in_the_documented_shape(api: Api) -> None:
    response = api.get(f"/members/{OWN}/history?from=2024-05-01&to=2024-01-01", "auditor")
    assert response.status_code == 422
    assert response.json()["detail"] == [{"type": "value_error", "loc": ["query", "from"],
                                          "msg": "from 2024-05-01 is after to 2024-01-01"}]


def test_openapi_documents_the_bearer_scheme_and_every_response(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"]}
    for path in ("/members/{kpj}/balance", "/members/{kpj}/history", "/branches/{branch}/totals"):
        operation = spec["paths"][path]["get"]
        assert operation["security"] == [{"bearer": []}], path
        assert set(operation["responses"]) == {"200", "401", "403", "404", "422", "429", "503"}, path
        for status in ("401", "403", "404", "429", "503"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)
        assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ValidationErrorBody"}
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
        assert any(p["name"] == "X-Purpose" and p["in"] == "header" for p in operation["parameters"])
    assert "security" not in spec["paths"]["/health"]["get"]
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["detail"]


def test_the_api_does_not_start_without_its_token_settings(store: ViewStore, kit: TokenKit) -> None:
    with pytest.raises(ConfigurationError, match="LEDGER_API_JWKS_FILE"):
        create_app(Settings(), store, access_log=MemoryAccessLog())
    with pytest.raises(ConfigurationError, match="access log"):
        create_app(kit.settings(Settings()), store)


def test_the_command_line_reads_through_the_read_side_as_the_local_user(store: ViewStore) -> None:
    log = MemoryAccessLog()
    read_side = ReadSide(store, log)
    local = Reader.local()
    assert read_side.member_balance(local, OTHER_BRANCH, date(2024, 6, 30), endpoint="ledger balance"
                                    ) == queries.member_balance(store, OTHER_BRANCH, date(2024, 6, 30))
    assert read_side.member_read(local, OWN, lambda: 42, endpoint="ledger balance --from-store") == 42
    assert [(e.subject, e.role, e.kpj, e.endpoint) for e in log.entries] == [
        (local.subject, Role.AUDITOR, OTHER_BRANCH, "ledger balance"),
        (local.subject, Role.AUDITOR, OWN, "ledger balance --from-store")]
    # A read from elsewhere cannot tell a member's branch: branch staff are refused, before anything is read.
    staff = Reader("budi", Role.BRANCH_STAFF, frozenset({BEKASI}))
    with pytest.raises(Forbidden):
        read_side.member_read(staff, OWN, lambda: pytest.fail("read before the scope was checked"), endpoint="x")
    log.failing = True
    with pytest.raises(AccessLogUnavailable):
        read_side.member_read(local, OWN, lambda: 42, endpoint="ledger balance --from-store")


@pytest.fixture
def jwks_server(kit: TokenKit) -> Iterator[tuple[str, list[str]]]:
    """The kit's JWKS served over http on loopback, as an identity provider publishes it: its URL and the paths
    fetched."""
    fetched: list[str] = []
    body = kit.jwks_file.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json", fetched
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def test_keys_from_a_url_are_fetched_once_and_made_up_kids_do_not_refetch_them(
        kit: TokenKit, jwks_server: tuple[str, list[str]], tmp_path: Path) -> None:
    url, fetched = jwks_server
    settings = kit.settings(Settings()).model_copy(update={"api_jwks_file": None, "api_jwks_url": url,
                                                           "development_mode": True})
    verifier = TokenVerifier.from_settings(settings)
    assert verifier.verify(kit.token("auditor", "ani")).subject == "ani"
    assert verifier.verify(kit.token("auditor", "budi")).subject == "budi"
    others = [TokenKit.create(tmp_path / f"other-{n}") for n in range(5)]
    for other in others:
        with pytest.raises(Unauthenticated, match="a key this API does not know"):
            verifier.verify(other.token("auditor"))
    # One fetch, and at most one more for all the made-up kids (the refresh cooldown, JWKS_REFRESH_COOLDOWN_S).
    assert 1 <= len(fetched) <= 2 and set(fetched) == {"/jwks.json"}
    # Outside development mode, only https.
    with pytest.raises(ConfigurationError, match="must be an https:// URL"):
        TokenVerifier.from_settings(settings.model_copy(update={"development_mode": False}))


def test_when_the_keys_cannot_be_fetched_the_token_is_not_accepted(kit: TokenKit) -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = kit.settings(Settings()).model_copy(update={
        "api_jwks_file": None, "api_jwks_url": f"http://127.0.0.1:{port}/jwks.json", "development_mode": True})
    with pytest.raises(Unauthenticated, match="keys could not be fetched"):
        TokenVerifier.from_settings(settings).verify(kit.token("auditor"))
