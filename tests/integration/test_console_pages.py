"""The console's pages over HTTP, in process: login and its cookie, scope by role, the HTML error pages, and the ways
in an insider might try (another branch, another member, a forged login from another site, an open redirect, markup
in a token's claims). The views are built in this process from generated histories of two branches (no Kafka); the
browser tests (tests/e2e/test_console_browser.py) check the same pages rendered, against a real server and broker."""

from __future__ import annotations

import html
import re
import sqlite3
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger.generator import BranchPlan
from ledger.settings import Settings
from projections import console
from projections.api import create_app
from projections.charts import rupiah
from projections.store import ViewStore
from tests.support.access_log import MemoryAccessLog
from tests.support.tokens import TokenKit
from tests.support.views import projected_store

pytestmark = pytest.mark.integration

TODAY = date(2017, 6, 30)
BEKASI, DEPOK = "BEKASI-KOTA", "DEPOK"
BEKASI_KPJ, DEPOK_KPJ = "17100000001", "17200000001"
PLANS = [BranchPlan(branch=BEKASI, employers=3, members=30, bpu_members=3, months=4),
         BranchPlan(branch=DEPOK, employers=2, members=20, bpu_members=2, months=4, seed=3, first_npp=30_000_001,
                    first_kpj=17_200_000_001)]
SUBJECT_WITH_MARKUP = 'eve<script>alert("x")</script>'
Tokens = dict[str, str]  # a name -> a token of that reader
Headers = Callable[[str], dict[str, str]]  # a name -> the Authorization header with its token


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Iterator[ViewStore]:
    views = projected_store(Path(tmp_path_factory.mktemp("console")) / "views.db", PLANS, TODAY)
    yield views
    views.close()


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> TokenKit:
    return TokenKit.create(Path(tmp_path_factory.mktemp("tokens")))


@pytest.fixture(scope="module")
def tokens(kit: TokenKit) -> Tokens:
    return {"auditor": kit.token("auditor", "auditor@fund"),
            "bekasi": kit.token("branch-staff", "staff@bekasi", branches=(BEKASI,)),
            "portal": kit.token("member-service", "portal", kpj=DEPOK_KPJ),
            "ops": kit.token("operator", "ops@fund"),
            "markup": kit.token("auditor", SUBJECT_WITH_MARKUP)}


@pytest.fixture(scope="module")
def access_log() -> MemoryAccessLog:
    return MemoryAccessLog()


@pytest.fixture(scope="module")
def client(store: ViewStore, kit: TokenKit, access_log: MemoryAccessLog) -> TestClient:
    settings = kit.settings(Settings(projection_sqlite_path=store.sqlite_path))
    return TestClient(create_app(settings, store, access_log=access_log, clock=lambda: TODAY))


@pytest.fixture(scope="module")
def as_(tokens: Tokens) -> Headers:
    return lambda name: {"Authorization": f"Bearer {tokens[name]}"}


def test_without_a_token_every_page_is_the_login_page_with_status_401(client: TestClient) -> None:
    for path in ("/console/", f"/console/branches/{BEKASI}", f"/console/members/{BEKASI_KPJ}", "/console/operator",
                 "/console/nowhere"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert '<h1>Log in</h1>' in response.text and 'name="token"' in response.text
        assert f'name="next" value="{path}"' in response.text
        assert BEKASI_KPJ not in response.text.replace(f'value="{path}"', "")
    response = client.get(f"/console/members/{BEKASI_KPJ}", headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401 and "the bearer token is malformed" in response.text
    assert 'ledger_token=""' in response.headers["set-cookie"]


def test_logging_in_sets_a_cookie_no_script_and_no_other_site_can_use(client: TestClient, tokens: Tokens) -> None:
    response = client.post("/console/login", data={"token": tokens["bekasi"], "next": f"/console/branches/{BEKASI}"},
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/console/branches/{BEKASI}"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{console.COOKIE}={tokens['bekasi']};")
    assert {"HttpOnly", "Path=/console", "SameSite=strict"} <= {part.strip() for part in cookie.split(";")}
    assert "Secure" not in cookie  # plain http here; over https it is Secure (below)
    secure = TestClient(client.app, base_url="https://console.example").post(
        "/console/login", data={"token": tokens["bekasi"]}, follow_redirects=False)
    assert "Secure" in {part.strip() for part in secure.headers["set-cookie"].split(";")}

    with TestClient(client.app) as browser:
        browser.cookies.set(console.COOKIE, tokens["bekasi"], path="/console")
        page = browser.get(f"/console/branches/{BEKASI}")
        assert page.status_code == 200 and f"Branch {BEKASI}" in page.text
        out = browser.post("/console/logout", follow_redirects=False)
        assert out.status_code == 303 and out.headers["location"] == "/console/login"
        assert f'{console.COOKIE}=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]


def test_a_refused_login_sets_no_cookie_and_says_why(client: TestClient) -> None:
    for form in ({"token": "forged"}, {"token": ""}, {"token": "x" * (console.TOKEN_CHARS_MAX + 1)}):
        response = client.post("/console/login", data=form, follow_redirects=False)
        assert response.status_code == 401 and "set-cookie" not in response.headers
        assert 'role="alert"' in response.text
    too_big = client.post("/console/login", content=b"token=" + b"x" * console.LOGIN_BODY_BYTES_MAX,
                          headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=False)
    assert too_big.status_code == 413 and "set-cookie" not in too_big.headers


def test_a_login_or_logout_posted_from_another_sites_page_is_refused(client: TestClient, tokens: Tokens) -> None:
    for evil in ({"Origin": "https://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
                 {"Sec-Fetch-Site": "same-site", "Origin": "http://testserver"}):
        response = client.post("/console/login", data={"token": tokens["bekasi"]}, headers=evil, follow_redirects=False)
        assert response.status_code == 403 and "set-cookie" not in response.headers, evil
        assert client.post("/console/logout", headers=evil, follow_redirects=False).status_code == 403
    same = client.post("/console/login", data={"token": tokens["bekasi"]}, headers={"Origin": "http://testserver"},
                       follow_redirects=False)
    assert same.status_code == 303


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/console/", "/console/\\evil",
                                    "/elsewhere", "/console//evil.example"])
def test_after_login_the_browser_goes_only_to_a_console_page(client: TestClient, target: str, tokens: Tokens) -> None:
    response = client.post("/console/login", data={"token": tokens["auditor"], "next": target}, follow_redirects=False)
    assert response.headers["location"] == "/console/"


def test_pages_forbid_scripts_framing_and_caching(client: TestClient, as_: Headers) -> None:
    response = client.get(f"/console/members/{BEKASI_KPJ}", headers=as_("auditor"))
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy and "script-src" not in policy
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<script" not in response.text


def test_markup_in_a_tokens_claims_is_shown_as_text(client: TestClient, as_: Headers) -> None:
    response = client.get("/console/", headers=as_("markup"))
    assert response.status_code == 200
    assert SUBJECT_WITH_MARKUP not in response.text
    assert "eve&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in response.text


def test_branch_staff_open_their_branch_and_its_members_only(client: TestClient, store: ViewStore,
                                                             as_: Headers) -> None:
    staff = as_("bekasi")
    index = client.get("/console/", headers=staff).text
    assert f'href="/console/branches/{BEKASI}"' in index and DEPOK not in index
    page = client.get(f"/console/branches/{BEKASI}?as_of=2017-03-31", headers=staff)
    assert page.status_code == 200
    assert client.get(f"/console/members/{BEKASI_KPJ}", headers=staff).status_code == 200
    refusals = [client.get(path, headers=staff) for path in (
        f"/console/branches/{DEPOK}", f"/console/members/{DEPOK_KPJ}", "/console/members/99999999999",
        f"/console/members/{DEPOK_KPJ}/receipts/00000000-0000-0000-0000-000000000000.1", "/console/operator")]
    assert [response.status_code for response in refusals] == [403] * 5
    for response in refusals:
        assert "<h1>Not allowed (403)</h1>" in response.text and "Rp" not in response.text
    # A member of another branch and a KPJ that exists nowhere are refused alike: a 403 tells nothing more.
    assert refusals[1].text.replace(DEPOK_KPJ, "K") == refusals[2].text.replace("99999999999", "K")


def test_a_member_service_opens_the_member_it_acts_for_only(client: TestClient, as_: Headers) -> None:
    portal = as_("portal")
    index = client.get("/console/", headers=portal).text
    assert f'href="/console/members/{DEPOK_KPJ}"' in index and "/console/branches/" not in index
    assert client.get(f"/console/members/{DEPOK_KPJ}", headers=portal).status_code == 200
    assert client.get(f"/console/members/{BEKASI_KPJ}", headers=portal).status_code == 403
    assert client.get(f"/console/branches/{DEPOK}", headers=portal).status_code == 403


def test_an_operator_opens_no_branch_and_no_member(client: TestClient, as_: Headers) -> None:
    ops = as_("ops")
    index = client.get("/console/", headers=ops).text
    assert 'href="/console/operator"' in index and "/console/branches/" not in index
    assert client.get(f"/console/branches/{BEKASI}", headers=ops).status_code == 403
    assert client.get(f"/console/members/{BEKASI_KPJ}", headers=ops).status_code == 403


def test_errors_are_html_pages_with_their_status(client: TestClient, tmp_path: Path, as_: Headers,
                                                 kit: TokenKit) -> None:
    auditor = as_("auditor")
    cases = {"/console/branches/NOWHERE": 404, "/console/branches/bad code": 404, "/console/members/12345": 404,
             "/console/members/99999999999": 404, f"/console/branches/{BEKASI}?as_of=2017-02-30": 422,
             f"/console/branches/{BEKASI}?as_of=20170101x": 422, "/console/nowhere": 404,
             "/console/members?kpj=12": 404}
    for path, status in cases.items():
        response = client.get(path, headers=auditor)
        assert (response.status_code, response.headers["content-type"]) == (status, "text/html; charset=utf-8"), path
        assert f"({status})</h1>" in response.text
    assert "as_of must be a date YYYY-MM-DD" in client.get(
        f"/console/branches/{BEKASI}?as_of=2017-02-30", headers=auditor).text
    lookup = client.get(f"/console/members?kpj={BEKASI_KPJ}", headers=auditor, follow_redirects=False)
    assert (lookup.status_code, lookup.headers["location"]) == (303, f"/console/members/{BEKASI_KPJ}")

    unbuilt = TestClient(create_app(kit.settings(Settings(projection_sqlite_path=tmp_path / "empty.db")),
                                    access_log=MemoryAccessLog(), clock=lambda: TODAY))
    response = unbuilt.get(f"/console/branches/{BEKASI}", headers=auditor)
    assert response.status_code == 503 and "has not been built yet" in response.text


def test_receipts_need_the_logs_key_and_a_movement_of_the_member(client: TestClient, store: ViewStore,
                                                                 as_: Headers) -> None:
    auditor = as_("auditor")
    page = client.get(f"/console/members/{BEKASI_KPJ}", headers=auditor).text
    assert "/receipts/" not in page and "LEDGER_LOG_VERIFIER_KEYS" in page  # no key: no receipt links
    from projections import queries

    movement = queries.member_history(store, BEKASI_KPJ)[0]["event_id"]
    response = client.get(f"/console/members/{BEKASI_KPJ}/receipts/{movement}", headers=auditor)
    assert response.status_code == 503 and "LEDGER_LOG_VERIFIER_KEYS" in response.text
    # Another member's movement is not this member's receipt, whoever asks.
    response = client.get(f"/console/members/{DEPOK_KPJ}/receipts/{movement}", headers=auditor)
    assert response.status_code == 404 and "has no movement" in response.text


def test_the_branch_page_shows_the_reports_figures(client: TestClient, store: ViewStore, as_: Headers) -> None:
    from projections import queries

    report = queries.branch_report(store, BEKASI, date(2017, 3, 31))
    page = client.get(f"/console/branches/{BEKASI}?as_of=2017-03-31", headers=as_("auditor")).text
    assert f'data-figure="contributions_total">{rupiah(report["contributions_total"])}<' in page
    for month in report["months"]:
        assert f'<th scope="row">{month["month"]}</th><td class="num">{rupiah(month["JHT"])}</td>' in page
    assert page.count("<caption") == 4 and page.count('scope="col"') >= 17
    assert 'role="img"' in page and 'lang="en"' in page and 'href="#main"' in page


def test_every_look_at_a_member_is_in_the_access_log_before_the_page_is_sent(client: TestClient, as_: Headers,
                                                                             access_log: MemoryAccessLog) -> None:
    before = len(access_log.entries)
    assert client.get(f"/console/branches/{BEKASI}", headers=as_("bekasi")).status_code == 200
    assert len(access_log.entries) == before  # branch totals are nobody's personal data
    assert client.get(f"/console/members/{BEKASI_KPJ}", headers=as_("bekasi")).status_code == 200
    assert [(one.subject, one.role, one.kpj, one.endpoint) for one in access_log.entries[before:]] == [
        ("staff@bekasi", "branch-staff", BEKASI_KPJ, "GET /console/members/{kpj}")] * 2  # the balance, the movements
    after = len(access_log.entries)
    assert client.get(f"/console/members/{DEPOK_KPJ}", headers=as_("bekasi")).status_code == 403
    assert len(access_log.entries) == after  # refused: nothing was read
    access_log.unavailable = "the access log cannot be written: the disk is full"
    try:
        response = client.get(f"/console/members/{BEKASI_KPJ}", headers=as_("bekasi"))
    finally:
        access_log.unavailable = None
    assert response.status_code == 503 and "access log cannot be written" in response.text
    assert rupiah(0) not in response.text and "Movements" not in response.text


def test_the_json_api_does_not_take_the_consoles_cookie(client: TestClient, tokens: Tokens) -> None:
    with TestClient(client.app) as other:
        other.cookies.set(console.COOKIE, tokens["auditor"])
        assert other.get(f"/members/{BEKASI_KPJ}/balance").status_code == 401
        assert other.get("/console/").status_code == 200


TRIAL_ROW = re.compile(r'<tr data-account="([0-9]+)"><th scope="row">\1</th><td><a href="/console/branches/'
                       r'BEKASI-KOTA/accounts/\1\?as_of=2017-03-31">([^<]*)</a></td>'
                       r'<td class="num">([^<]*)</td><td class="num">([^<]*)</td></tr>')
DAY_ROW = re.compile(r'<tr><th scope="row">([0-9-]{10})</th><td class="num">([^<]*)</td><td class="num">([^<]*)</td>'
                     r'<td class="num">([^<]*)</td></tr>')


def test_the_branch_page_shows_the_branchs_trial_balance_to_the_rupiah(client: TestClient, store: ViewStore,
                                                                       as_: Headers) -> None:
    from projections import queries

    staff = as_("bekasi")
    page = client.get(f"/console/branches/{BEKASI}?as_of=2017-03-31", headers=staff).text
    shown = {code: (html.unescape(name), debit, credit) for code, name, debit, credit in TRIAL_ROW.findall(page)}
    # The API's trial balance of the branch, as the page shows it: zero balances left blank, as the CLI prints them.
    trial = client.get(f"/branches/{BEKASI}/trial-balance?as_of=2017-03-31", headers=staff).json()
    assert trial["balanced"] and trial == queries.trial_balance(store, date(2017, 3, 31), BEKASI)
    assert shown == {row["code"]: (row["name"], rupiah(row["debit"]) if row["debit"] else "",
                                   rupiah(row["credit"]) if row["credit"] else "") for row in trial["accounts"]}
    assert list(shown) == [row["code"] for row in trial["accounts"]]
    assert f'data-figure="trial_balance_debit">{rupiah(trial["totals"]["debit"])}<' in page
    assert f'data-figure="trial_balance_credit">{rupiah(trial["totals"]["credit"])}<' in page
    assert f'data-figure="trial_balance_result">Balanced: debits equal credits, {rupiah(trial["totals"]["debit"])}.<' \
        in page
    # To the rupiah, against the branch report on the same page (the branches projection, not the books): in this
    # history (no yield, no JKP, no fine, no bill) the programs' funds hold their contributions less their claims,
    # and the banks what came in and went out.
    report = queries.branch_report(store, BEKASI, date(2017, 3, 31))
    contributions, claims = report["contributions"], report["claims"]
    assert report["late_fines"] == 0 and claims["JHT"]["amount"] > 0 and claims["JP"]["amount"] > 0
    assert shown["2200"][2] == rupiah(contributions["JHT"]["total"] - claims["JHT"]["amount"])
    assert (shown["3100"][2], shown["3200"][2], shown["3300"][2]) == tuple(
        rupiah(contributions[p]["total"]) for p in ("JKK", "JKM", "JP"))
    assert shown["5400"][1] == rupiah(claims["JP"]["amount"])
    assert shown["1190"][2] == rupiah(report["claims_total"]["amount"])
    came_in = sum(int(re.sub(r"[^0-9]", "", shown[code][1]) or 0) for code in ("1110", "1120"))
    assert came_in == report["contributions_total"]
    assert 'aria-labelledby="trial-balance-caption"' in page and '<th scope="row" colspan="2">Total</th>' in page
    # Another branch's staff: the whole page is refused, its trial balance with it.
    refused = client.get(f"/console/branches/{DEPOK}?as_of=2017-03-31", headers=staff)
    assert refused.status_code == 403 and "Trial balance" not in refused.text and "data-account" not in refused.text


def test_without_the_general_ledger_the_branch_page_shows_the_rest_and_says_what_to_run(
        store: ViewStore, kit: TokenKit, tmp_path: Path, as_: Headers) -> None:
    # The same views, the general ledger not live (as before its first build): a copy, its registry row cleared.
    path = tmp_path / "views-without-books.db"
    with sqlite3.connect(store.sqlite_path) as source, sqlite3.connect(path) as copy:
        source.backup(copy)
        copy.execute("UPDATE projection_registry SET live_version = NULL WHERE name = 'general_ledger'")
    client = TestClient(create_app(kit.settings(Settings(projection_sqlite_path=path)),
                                   access_log=MemoryAccessLog(), clock=lambda: TODAY))
    response = client.get(f"/console/branches/{BEKASI}?as_of=2017-03-31", headers=as_("bekasi"))
    assert response.status_code == 200
    from projections import queries

    report = queries.branch_report(store, BEKASI, date(2017, 3, 31))
    assert f'data-figure="contributions_total">{rupiah(report["contributions_total"])}<' in response.text
    assert '<h2 id="trial-balance-heading">Trial balance</h2>' in response.text
    assert ("The general ledger has not been built yet, so the branch's trial balance cannot be shown: run "
            "<code>ledger projections rebuild general_ledger</code>.") in html.unescape(response.text)
    assert "data-account" not in response.text and 'id="trial-balance"' not in response.text
    assert client.get(f"/branches/{BEKASI}/trial-balance", headers=as_("bekasi")).status_code == 503
    account = client.get(f"/console/branches/{BEKASI}/accounts/2200", headers=as_("bekasi"))
    assert account.status_code == 503 and "has not been built yet" in account.text


def test_each_account_of_the_trial_balance_opens_its_running_balance_over_the_month(
        client: TestClient, as_: Headers) -> None:
    staff = as_("bekasi")
    trial = client.get(f"/branches/{BEKASI}/trial-balance?as_of=2017-03-31", headers=staff).json()
    branch_page = client.get(f"/console/branches/{BEKASI}?as_of=2017-03-31", headers=staff).text
    for code in ("2200", "1110", "2190"):
        link = f"/console/branches/{BEKASI}/accounts/{code}?as_of=2017-03-31"
        assert f'href="{link}"' in branch_page
        page = client.get(link, headers=staff)
        assert page.status_code == 200, code
        api = client.get(f"/branches/{BEKASI}/accounts/{code}?from=2017-03-01&to=2017-03-31", headers=staff).json()
        assert api["days"] and api["from"] == "2017-03-01"
        assert DAY_ROW.findall(page.text) == [
            (day["date"], rupiah(day["debit"]) if day["debit"] else "", rupiah(day["credit"]) if day["credit"] else "",
             rupiah(day["balance"])) for day in api["days"]]
        assert f'data-figure="opening">{rupiah(api["opening"])}<' in page.text
        assert f'data-figure="closing">{rupiah(api["closing"])}<' in page.text
        # The closing balance on the date is the account's line of the trial balance, on its normal side.
        row = next(one for one in trial["accounts"] if one["code"] == code)
        assert api["closing"] == (row["debit"] - row["credit"] if api["normal_side"] == "debit"
                                  else row["credit"] - row["debit"])
        assert 'aria-labelledby="days-caption"' in page.text and page.text.count('scope="col"') == 4
    refused = client.get(f"/console/branches/{DEPOK}/accounts/2200?as_of=2017-03-31", headers=staff)
    assert refused.status_code == 403 and "Rp" not in refused.text
    for path in (f"/console/branches/{BEKASI}/accounts/9999", f"/console/branches/{BEKASI}/accounts/JHT",
                 "/console/branches/NOWHERE/accounts/2200"):
        assert client.get(path, headers=as_("auditor")).status_code == 404, path
    assert client.get(f"/console/branches/{BEKASI}/accounts/2200?as_of=2017-3-1", headers=staff).status_code == 422
