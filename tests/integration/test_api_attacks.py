"""The insider and the careless clerk against the read side (issue 16): each test is a way in that must stay shut.

A branch-staff token of BEKASI-KOTA tries to read a member of BOGOR through every endpoint and every console page
(dates before the member enrolled, history ranges, the receipt), through tricks in the address (Arabic-Indic digits
that a regex's `\\d` takes for a KPJ, `%2e`, a trailing slash, leading zeros, another case) and through other HTTP
methods; tokens are tried in the query string; the console's responses are checked for caching, framing and markup
echoed back; and the access log's topic is attacked with the API's own Kafka principal (tests at the end, on the real
secured broker). The API runs in process over a real SQLite view store built by the projections' own code, with an
access log in memory (tests/support/access_log.py)."""

from __future__ import annotations

import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.commands import RegisterEmployer
from ledger.errors import RateLimited
from ledger.settings import Settings
from projections import queries
from projections.access import AccessEntry
from projections.access_log import AccessLog
from projections.api import utf8_header
from projections.queries import RateLimiter
from projections.store import ViewStore
from tests.support.access_log import MemoryAccessLog
from tests.support.kafka_roles import API, AUDITOR, KafkaRoles
from tests.support.scenario import enroll, kpj, new_ledger, pay, register
from tests.support.tokens import TokenKit
from tests.support.views import project, published

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 23)
BEKASI, BOGOR = "BEKASI-KOTA", "BOGOR"
BEKASI_NPP, BOGOR_NPP = "10012345", "10054321"
OWN, OTHER = kpj(1), kpj(101)  # a member of BEKASI-KOTA, a member of BOGOR
ENROLLED = date(2024, 1, 1)
ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")  # digits Python's and Rust's `\d` both match
DEVANAGARI = str.maketrans("0123456789", "०१२३४५६७८९")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewStore]:
    app = new_ledger()
    register(app, BEKASI_NPP)
    app.execute(RegisterEmployer(npp=BOGOR_NPP, name="PT Hujan Sejahtera", branch=BOGOR, kind="company",
                                 risk_class="low", registered_on=date(2015, 7, 1)))
    enroll(app, OWN, npp=BEKASI_NPP, serial=1, effective=ENROLLED)
    enroll(app, OTHER, npp=BOGOR_NPP, serial=2, effective=ENROLLED)
    for npp in (BEKASI_NPP, BOGOR_NPP):
        pay(app, "2024-01", date(2024, 2, 10), npp=npp)
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

    def staff(self) -> dict[str, str]:
        return self.kit.headers("branch-staff", "insider@bekasi", branches=(BEKASI,))

    def auditor(self) -> dict[str, str]:
        return self.kit.headers("auditor", "auditor@fund")


@pytest.fixture
def api(store: ViewStore, kit: TokenKit, tmp_path: Path) -> Api:
    log = MemoryAccessLog()
    settings = kit.settings(Settings(projection_sqlite_path=tmp_path / "unused.db"))
    app = create_app_for(settings, store, log)
    return Api(TestClient(app), log, kit)


def create_app_for(settings: Settings, store: ViewStore, log: MemoryAccessLog) -> Any:
    from projections.api import create_app

    # A limiter far above the tests' pace: these tests are about scope, not the rate limit.
    return create_app(settings, store, access_log=log, clock=lambda: TODAY, limiter=RateLimiter(reads_max=10_000))


def shows_other(response: Any) -> bool:
    """Whether a response shows anything of the other branch's member: its KPJ, its branch or a figure."""
    return response.status_code == 200 or BOGOR in response.text or "jht_balance" in response.text or \
        "Rp" in response.text


# --- scope: the other branch's member through every door --------------------------------------------------------------

def test_branch_staff_never_read_the_other_branchs_member_through_any_endpoint_date_or_range(api: Api) -> None:
    staff = api.staff()
    doors = [f"/members/{OTHER}/balance", f"/members/{OTHER}/balance?as_of=2023-12-31",
             f"/members/{OTHER}/balance?as_of=1900-01-01", f"/members/{OTHER}/balance?as_of=9999-12-31",
             f"/members/{OTHER}/history", f"/members/{OTHER}/history?from=2024-01-01&to=2024-12-31",
             f"/members/{OTHER}/history?from=1900-01-01&to=1900-01-02", f"/members/{OTHER}/history?to=2023-12-31",
             f"/branches/{BOGOR}/totals", f"/branches/{BOGOR}/totals?as_of=2023-12-31",
             f"/console/members/{OTHER}", f"/console/members/{OTHER}?as_of=2023-12-31",
             f"/console/members/{OTHER}?as_of=2024-01-01", f"/console/branches/{BOGOR}",
             f"/console/branches/{BOGOR}?as_of=2015-01-01"]
    for path in doors:
        response = api.client.get(path, headers=staff)
        assert response.status_code == 403, (path, response.status_code)
        assert not shows_other(response), path
    # The receipt of each of the other member's movements, asked for under the other member and under its own.
    for movement in queries.member_history(api.client.app.state.read_side.store, OTHER):
        for path in (f"/console/members/{OTHER}/receipts/{movement['event_id']}",
                     f"/console/members/{OWN}/receipts/{movement['event_id']}"):
            response = api.client.get(path, headers=staff)
            assert response.status_code in (403, 404) and not shows_other(response), path
    # Only the staff's own member's reads (the receipt's look at its history) were logged; none of the other's.
    assert all(entry.kpj == OWN for entry in api.log.entries)
    # The control: the same doors open for the staff's own member and branch.
    assert api.client.get(f"/members/{OWN}/balance?as_of=2023-12-31", headers=staff).status_code == 200
    assert api.client.get(f"/console/members/{OWN}?as_of=2023-12-31", headers=staff).status_code == 200


@pytest.mark.parametrize("digits", [ARABIC_INDIC, DEVANAGARI], ids=["arabic-indic", "devanagari"])
def test_a_kpj_in_other_scripts_digits_is_malformed_not_a_member(api: Api, digits: dict[int, str]) -> None:
    """`\\d` matches every script's digits: a KPJ written in Arabic-Indic digits must be refused as malformed (it is
    not 11 digits 0-9), never looked up, never compared, never written to the access log."""
    for member in (OWN, OTHER):
        foreign = member.translate(digits)
        for path, status in ((f"/members/{foreign}/balance", 422), (f"/members/{foreign}/history", 422),
                             (f"/console/members/{foreign}", 404), (f"/console/members?kpj={foreign}", 404)):
            for headers in (api.auditor(), api.staff()):
                response = api.client.get(path, headers=headers, follow_redirects=False)
                assert response.status_code == status, (path, response.status_code)
    event = queries.member_history(api.client.app.state.read_side.store, OWN)[0]["event_id"]
    foreign_event = event.translate(ARABIC_INDIC)
    assert foreign_event != event
    response = api.client.get(f"/console/members/{OWN}/receipts/{foreign_event}", headers=api.auditor())
    assert response.status_code == 404
    assert api.log.entries == []


@pytest.mark.parametrize("path", [
    f"/members/{OTHER}/balance/", f"/members/%2e%2e/members/{OTHER}/balance", f"/members/{OWN}/../{OTHER}/balance",
    f"/members/{OWN}%2f..%2f{OTHER}/balance", f"/members/0{OTHER}/balance", f"/members/{OTHER[1:]}/balance",
    f"/members/{OTHER}%00/balance", f"/members/+{OTHER[1:]}/balance", f"/members/{OTHER} /balance",
    f"/branches/{BOGOR.lower()}/totals", f"/branches/{BOGOR}%20/totals", f"/branches/{BOGOR}/totals/",
    f"/branches/{BEKASI}%2f..%2f{BOGOR}/totals", "/branches/*/totals", "/branches/%2A/totals",
    f"/console/members/{OTHER}/", f"/console/members/%2e%2e/members/{OTHER}", f"/console/members/0{OTHER}",
    f"/console/branches/{BOGOR.lower()}", f"/console/branches/{BOGOR}/", f"/console/branches/{BEKASI}/../{BOGOR}",
    f"/console/branches/{BEKASI}%2f..%2f{BOGOR}", "/console/branches/*",
])
def test_tricks_in_the_address_reach_no_other_branchs_data(api: Api, path: str) -> None:
    response = api.client.get(path, headers=api.staff(), follow_redirects=True)
    assert not shows_other(response), (response.status_code, response.text[:200])
    assert api.log.entries == []


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH", "TRACE"])
def test_other_methods_read_nothing_unlogged_and_nothing_out_of_scope(api: Api, method: str) -> None:
    staff = api.staff()
    for path in (f"/members/{OTHER}/balance", f"/members/{OTHER}/history", f"/branches/{BOGOR}/totals",
                 f"/console/members/{OTHER}", f"/console/branches/{BOGOR}"):
        response = api.client.request(method, path, headers=staff)
        assert response.status_code != 200 and not shows_other(response), (method, path, response.status_code)
    for path in (f"/members/{OWN}/balance", f"/members/{OWN}/history", f"/console/members/{OWN}"):
        before = len(api.log.entries)
        response = api.client.request(method, path, headers=staff)
        # Whatever another method answers for the reader's own member, a read that was made was logged.
        if response.status_code == 200:
            assert len(api.log.entries) > before, (method, path)
        else:
            assert len(api.log.entries) == before, (method, path)
    assert all(entry.kpj == OWN for entry in api.log.entries)


# --- tokens where they do not belong ----------------------------------------------------------------------------------

def test_a_token_in_the_query_string_or_a_form_is_not_a_token(api: Api) -> None:
    token = api.kit.token("auditor", "auditor@fund")
    for path in (f"/members/{OWN}/balance?access_token={token}", f"/members/{OWN}/history?token={token}",
                 f"/branches/{BEKASI}/totals?access_token={token}",
                 f"/members/{OWN}/balance?authorization=Bearer+{token}"):
        response = api.client.get(path)
        assert response.status_code == 401 and token not in response.text, path
    for path in (f"/console/members/{OWN}?access_token={token}", f"/console/?token={token}"):
        response = api.client.get(path)
        assert response.status_code == 401 and "Rp" not in response.text, path
    assert api.log.entries == []


# --- an access-log entry that lies ----------------------------------------------------------------------------------

def test_a_purpose_is_kept_as_written_and_cannot_hide_or_reorder_text_in_the_auditors_table(api: Api) -> None:
    """The purpose is UTF-8 text, kept as the client wrote it (not its bytes read as Latin-1, which would log
    mojibake, and let a byte-order mark's bytes pass as letters). A right-to-left override, a zero-width space, a line
    separator, a byte-order mark, an escape sequence, bytes that are not UTF-8 or a novel: the read is refused (422)
    and nothing is logged, rather than an entry whose purpose reads otherwise than it is."""
    for hidden in (b"\xe2\x80\xae811-6202 tnialpmoc", "routine\u200bcheck".encode(), "one\u2028two".encode(),
                   b"\xef\xbb\xbfroutine", b"a\x1b[2Jb", b"x" * 100_000):
        response = api.client.get(f"/members/{OWN}/balance", headers={**api.auditor(), "X-Purpose": hidden})
        assert response.status_code == 422, hidden
        assert response.json()["detail"][0]["loc"] == ["header", "X-Purpose"] and "jht_balance" not in response.text
    assert api.log.entries == []
    # Bytes that are not UTF-8 (the test client would re-encode them, so the server's reading of them is asked here).
    assert utf8_header(b"caf\xe9".decode("latin-1")) is None
    written = "Keluhan Bu Siti \u2014 No. 118, caf\u00e9 Rp5.000"
    response = api.client.get(f"/members/{OWN}/balance", headers={**api.auditor(), "X-Purpose": written.encode()})
    assert response.status_code == 200 and [entry.purpose for entry in api.log.entries] == [written]


# --- the console: caching, framing, markup -------------------------------------------------------------------------

def test_every_console_response_forbids_caching_and_framing(api: Api) -> None:
    auditor = api.auditor()
    movement = queries.member_history(api.client.app.state.read_side.store, OWN)[0]["event_id"]
    responses = {
        "member page": api.client.get(f"/console/members/{OWN}", headers=auditor),
        "branch page": api.client.get(f"/console/branches/{BEKASI}", headers=auditor),
        "home": api.client.get("/console/", headers=auditor),
        "login page": api.client.get("/console/login"),
        "login refused": api.client.get(f"/console/members/{OWN}"),
        "forbidden": api.client.get(f"/console/members/{OTHER}", headers=api.staff()),
        "not found": api.client.get("/console/members/99999999999", headers=auditor),
        "receipt refused": api.client.get(f"/console/members/{OWN}/receipts/{movement}", headers=auditor),
        "lookup": api.client.get(f"/console/members?kpj={OWN}", headers=auditor, follow_redirects=False),
        "login": api.client.post("/console/login", data={"token": api.kit.token("auditor"), "next": "/console/"},
                                 follow_redirects=False),
    }
    for what, response in responses.items():
        assert response.headers.get("cache-control") == "no-store", what
        assert "frame-ancestors 'none'" in response.headers.get("content-security-policy", ""), what


def test_the_json_api_forbids_storing_a_members_data(api: Api) -> None:
    """A member's balance or history must not be kept by a browser's cache or a proxy in between (a member portal
    often sits behind one): `Cache-Control: no-store` on every answer of the API."""
    for path in (f"/members/{OWN}/balance", f"/members/{OWN}/history", f"/branches/{BEKASI}/totals",
                 f"/members/{OTHER}/balance"):
        response = api.client.get(path, headers=api.auditor())
        assert response.status_code == 200 and response.headers.get("cache-control") == "no-store", path
    refused = api.client.get(f"/members/{OTHER}/balance", headers=api.staff())
    assert refused.status_code == 403 and refused.headers.get("cache-control") == "no-store"


@pytest.mark.parametrize("next_", ['/console/"><svg onload=alert(1)>', "/console/<script>alert(1)</script>",
                                   "/console/members/1'onmouseover='alert(1)"])
def test_markup_in_where_to_go_next_is_never_markup(api: Api, next_: str) -> None:
    for response in (api.client.get("/console/login", params={"next": next_}),
                     api.client.get(next_.replace("/console/", "/console/members/", 1))):
        assert "<svg onload" not in response.text and "<script>" not in response.text
        assert "'onmouseover='" not in response.text


def test_a_login_from_a_sibling_site_or_an_opaque_origin_is_refused(api: Api) -> None:
    token = api.kit.token("auditor")
    for headers in ({"Sec-Fetch-Site": "same-site"}, {"Sec-Fetch-Site": "cross-site"}, {"Origin": "null"},
                    {"Origin": "http://testserver.evil.example"}, {"Origin": "http://evil.example"}):
        response = api.client.post("/console/login", data={"token": token, "next": "/console/"}, headers=headers,
                                   follow_redirects=False)
        assert response.status_code == 403 and "set-cookie" not in response.headers, headers


# --- the rate limit ------------------------------------------------------------------------------------------------

def test_concurrent_reads_cannot_race_past_the_rate_limit() -> None:
    limiter = RateLimiter(reads_max=60, clock=lambda: 1_000.0)
    admitted, refused = [], []
    start = threading.Barrier(40)

    def reader() -> None:
        start.wait(10)
        for _ in range(10):
            try:
                limiter.admit(("insider",))
                admitted.append(1)
            except RateLimited:
                refused.append(1)

    threads = [threading.Thread(target=reader) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()
    assert (len(admitted), len(refused)) == (60, 340)


# --- erasing the traces on Kafka, as the API's principal -------------------------------------------------------------

def test_the_apis_principal_cannot_erase_shorten_or_compact_the_access_topic(kafka_roles: KafkaRoles) -> None:
    """The API's principal may append to `<prefix>.access` (and only that: docs/audit.md, "The access log"); it must not
    delete the topic or its records, shorten its retention, turn on compaction (the key is the subject: a later entry
    of a reader would erase their earlier ones), or add partitions (the chain is read from partition 0 only). Each is
    tried with the principal's own credentials; the topic keeps every record and its configuration."""
    from kafka import TopicPartition
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewPartitions

    from ledger.publishing import kafka_client
    from projections.access_log import AccessLogPublisher, AccessLogStore

    assert kafka_roles.secured, "scripts/test runs the suite against the secured broker (LEDGER_TEST_KAFKA_PRINCIPALS)"
    topics = kafka_roles.provision(f"test-attack-{uuid.uuid4().hex[:10]}", partitions=1)
    folder = Path(tempfile.mkdtemp(prefix="access-attack-"))
    store = AccessLogStore("sqlite", sqlite_path=folder / "access-log.db")
    store.create_schema()
    log = AccessLog(store.same_store())
    for reader in ("siti", "budi", "siti"):
        log.record(AccessEntry(at=datetime.now(UTC), subject=reader, role="branch-staff", kpj=OTHER,
                               endpoint="GET /members/{kpj}/balance", purpose=None))
    log.close()
    publisher = AccessLogPublisher(store, kafka_roles.connection(API), topics.access,
                                   transactional_id=f"access-{topics.prefix}")
    try:
        assert publisher.run() == 3
    finally:
        publisher.close()
        store.close()
    before_records = [(r.offset, r.value) for r in kafka_client.read_to_end(kafka_roles.connection(AUDITOR),
                                                                              topics.access)]
    before_config = kafka_client.describe_topic_config(kafka_roles.admin, topics.access)
    assert len(before_records) == 3 and before_config["retention.ms"] == "-1"

    api = kafka_roles.connection(API)
    admin = KafkaAdminClient(bootstrap_servers=list(api.bootstrap_servers), security_protocol=api.security_protocol,
                             sasl_mechanism=api.sasl_mechanism, sasl_plain_username=api.sasl_username,
                             sasl_plain_password=api.sasl_password, ssl_cafile=api.ssl_cafile,
                             request_timeout_ms=10_000)
    attempts: dict[str, Callable[[], object]] = {
        "delete records": lambda: admin.delete_records({TopicPartition(topics.access, 0): -1}),
        "shorten retention": lambda: admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, topics.access, configs={"retention.ms": "1000"})], raise_on_unknown=False),
        "compact": lambda: admin.alter_configs([ConfigResource(
            ConfigResourceType.TOPIC, topics.access, configs={"cleanup.policy": "compact"})], raise_on_unknown=False),
        "add a partition": lambda: admin.create_partitions({topics.access: NewPartitions(total_count=2)}),
        "delete the topic": lambda: admin.delete_topics([topics.access]),
    }
    try:
        for what, attempt in attempts.items():
            assert "authoriz" in refusal_of(attempt).lower(), what
    finally:
        admin.close()
    after = [(r.offset, r.value) for r in kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.access)]
    assert after == before_records
    assert kafka_client.describe_topic_config(kafka_roles.admin, topics.access) == before_config
    assert kafka_client.topic_partitions(kafka_roles.admin, topics.access) == [0]


def refusal_of(attempt: Callable[[], object]) -> str:
    """What an admin call answered: the error it raised, or (some calls answer per resource rather than raise) what it
    returned, where a refusal is named by its error."""
    try:
        outcome = attempt()
    except Exception as error:  # noqa: BLE001 - the broker's refusal, whichever class kafka-python gives it
        return f"{type(error).__name__}: {error}"
    return f"answered {outcome!r}"
