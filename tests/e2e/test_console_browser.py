"""The console in a real browser: Debian's headless Chromium, driven by Playwright, against a real server.

A generated branch history is written by the CLI, relayed to the real broker with signed checkpoints, and projected;
the API with its console then runs under uvicorn on a free port, reading that view store and, for receipts and the
operator page, the topics, and trusting tokens signed as `ledger api token issue` signs them (tests/support/tokens.py);
reads of members' data go to an access log in memory. Each test logs in with a token as a person would (the login
form), opens pages, and
checks that the figures shown are the API's JSON answers, formatted; that a branch-staff token of another branch gets
the 403 page for the branch and for its members; that the keyboard reaches the tables; that a receipt downloaded
from the member page checks offline. A screenshot of every page is saved under `.run/test-output/console/`
(listed at the end of the test run, tests/e2e/conftest.py).

The browser is Debian's `chromium` at CHROMIUM (scripts/test installs it when missing), started by Playwright through
`executable_path` with a fresh profile and no network besides this server; Playwright's own browser download never
runs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from playwright.sync_api import BrowserContext, Page, sync_playwright

from ledger.audit.proofs import check_proof
from ledger.settings import Settings
from ledger.tlog.note import Ed25519Verifier
from projections import console
from projections.api import create_app
from projections.charts import rupiah
from projections.store import ViewStore
from projections.views import PROGRAMS
from tests.support.access_log import MemoryAccessLog
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import AUDITOR, KafkaRoles
from tests.support.signing import log_verifier_key
from tests.support.tokens import TokenKit

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / ".run" / "test-output" / "console"
BRANCH, OTHER_BRANCH = "BEKASI-KOTA", "DEPOK"
TODAY = date(2017, 7, 31)  # the server's clock: after the generated months
AS_OF = "2017-03-31"
FIRST_KPJ = "17100000001"  # the generator's first KPJ: the city government's first employee
SERVER_START_S_MAX = 30
PAGE_TIMEOUT_MS = 20_000
# docs/console.md's command that saves a downloaded receipt's bundle for `ledger audit check-proof`.
DOCUMENTED_SAVE = ('import json, sys; open(sys.argv[2], "w", encoding="utf-8", newline="")'
                   '.write(json.load(open(sys.argv[1]))["bundle"])')
TABS_MAX = 60  # Tab presses allowed to reach a table from the top of a page


def count(number: int) -> str:
    return f"{number:,}".replace(",", ".")


# --- The server -----------------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Server:
    base: str
    tokens: TokenKit  # signs tokens as `ledger api token issue` does, with a key the server trusts
    cli: Cli
    access_log: MemoryAccessLog

    def api(self, path: str, token: str) -> Any:
        response = httpx.get(f"{self.base}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        return response.json()


@pytest.fixture(scope="module")
def server(tmp_path_factory, kafka_roles: KafkaRoles) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("console")
    unique = uuid.uuid4().hex[:10]
    cli = Cli(env={**os.environ, "LEDGER_SQLITE_PATH": str(folder / "ledger.db"),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(folder / "views.db"),
                   "LEDGER_KAFKA_TOPIC_PREFIX": f"test-console-{unique}",
                   "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}"},
              folder=folder, kafka=kafka_roles)
    counts = cli.json("generate", "--employers", "4", "--members", "60", "--bpu", "6", "--months", "6")
    assert counts["members"] >= 60
    cli.kafka_init()
    cli("relay")
    applied = cli.json("projections", "run")["applied"]
    assert applied["balances"] == applied["branches"] > 300

    # The server reads the topics as the auditor does (receipts, operator page), with the log's verifier key.
    tokens = TokenKit.create(folder / "tokens")
    settings = tokens.settings(kafka_roles.settings(AUDITOR, Settings(
        projection_sqlite_path=folder / "views.db", kafka_topic_prefix=f"test-console-{unique}",
        log_verifier_keys=log_verifier_key())))
    store = ViewStore.open(settings)
    access_log = MemoryAccessLog()
    app = create_app(settings, store, access_log=access_log, clock=lambda: TODAY)
    port = free_port()
    uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=uvicorn_server.run, name="console-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S_MAX
    while not uvicorn_server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the console's server did not start"
        time.sleep(0.05)
    yield Server(f"http://127.0.0.1:{port}", tokens, cli, access_log)
    uvicorn_server.should_exit = True
    thread.join(timeout=SERVER_START_S_MAX)
    store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    assert CHROMIUM.exists(), f"no Chromium at {CHROMIUM}: scripts/test installs Debian's chromium package"
    with tempfile.TemporaryDirectory(prefix="console-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900}, accept_downloads=True, locale="en-US")
        context.set_default_timeout(PAGE_TIMEOUT_MS)
        yield context
        context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    browser.clear_cookies()
    one = browser.new_page()
    yield one
    one.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Page, server: Server, token: str, path: str = "/console/") -> None:
    """Open `path`, get the login page (401), paste the token, and land on `path`."""
    response = page.goto(server.base + path)
    assert response is not None and response.status == 401
    assert page.get_by_role("heading", name="Log in").is_visible()
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.base + path)


def rows(page: Page, table_id: str, part: str = "tbody") -> list[list[str]]:
    """The text of each row's cells (row headers first), as the browser renders them."""
    return page.locator(f"#{table_id} {part} tr").evaluate_all(
        "rows => rows.map(row => Array.from(row.cells).map(cell => cell.innerText.trim()))")


def figure(page: Page, name: str) -> str:
    return page.locator(f'[data-figure="{name}"]').inner_text().strip()


# --- The tests ------------------------------------------------------------------------------------------------------

def test_an_auditor_logs_in_and_the_index_links_what_the_token_opens(server: Server, page: Page) -> None:
    token = server.tokens.token("auditor", "auditor@fund")
    response = page.goto(server.base + "/console/")
    assert response is not None and response.status == 401
    screenshot(page, "login")
    page.get_by_label("Token").fill("not-a-token")
    page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("alert").inner_text().startswith("the token was refused")
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(server.base + "/console/")
    assert page.get_by_role("link", name=f"Branch {BRANCH}").is_visible()
    assert page.get_by_role("link", name="Operator page: projections, relay and the signed log").is_visible()
    cookie = next(one for one in page.context.cookies() if one["name"] == console.COOKIE)
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert page.evaluate("document.cookie") == ""  # no script can read the token
    screenshot(page, "index-auditor")

    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(server.base + "/console/login")
    assert not [one for one in page.context.cookies() if one["name"] == console.COOKIE]
    response = page.goto(server.base + "/console/")
    assert response is not None and response.status == 401


def test_the_branch_page_shows_the_apis_figures_in_charts_and_tables(server: Server, page: Page) -> None:
    token = server.tokens.token("branch-staff", "staff@bekasi", branches=(BRANCH,))
    log_in(page, server, token, f"/console/branches/{BRANCH}?as_of={AS_OF}")
    report = server.api(f"/branches/{BRANCH}/totals?as_of={AS_OF}", token)
    assert page.get_by_role("heading", level=1).inner_text() == f"Branch {BRANCH}, up to {AS_OF}"
    assert figure(page, "active_pu_members") == count(report["active_pu_members"])
    assert figure(page, "active_employers") == count(report["active_employers"])
    assert figure(page, "bpu_members_active") == count(report["bpu_members_active"])
    assert figure(page, "contributions_total") == rupiah(report["contributions_total"])
    assert figure(page, "claims_total") == rupiah(report["claims_total"]["amount"])
    assert rows(page, "months") == [
        [m["month"], *(rupiah(m[p]) for p in PROGRAMS), rupiah(m["fines"]), rupiah(m["total"])]
        for m in report["months"]]
    assert len(report["months"]) >= 2
    assert rows(page, "claims") == [[p, count(c["count"]), rupiah(c["amount"])] for p, c in report["claims"].items()]
    assert rows(page, "shares") == [[p, rupiah(c["employer"]), rupiah(c["worker"]), rupiah(c["total"])]
                                    for p, c in report["contributions"].items()]
    # The charts: images with a name and a description, drawn without a script.
    for chart in ("contributions-chart", "claims-chart"):
        svg = page.locator(f'svg[aria-labelledby="{chart}-title {chart}-desc"]')
        assert svg.get_attribute("role") == "img"
        assert svg.locator("rect").count() > 0
    assert page.locator("script").count() == 0
    assert page.locator("#contributions-chart-desc").text_content().startswith(
        f"Contributions per program for {len(report['months'])} contribution month(s)")
    # The branch's trial balance, as the API answers it: zero balances blank, the totals, and that they balance.
    trial = server.api(f"/branches/{BRANCH}/trial-balance?as_of={AS_OF}", token)
    assert rows(page, "trial-balance") == [
        [row["code"], row["name"], rupiah(row["debit"]) if row["debit"] else "",
         rupiah(row["credit"]) if row["credit"] else ""] for row in trial["accounts"]]
    assert trial["balanced"] and trial["totals"]["debit"] > 0
    assert rows(page, "trial-balance", "tfoot") == [
        ["Total", rupiah(trial["totals"]["debit"]), rupiah(trial["totals"]["credit"])]]
    balanced = f"Balanced: debits equal credits, {rupiah(trial['totals']['debit'])}."
    assert figure(page, "trial_balance_result") == balanced
    screenshot(page, "branch")

    # An account of the trial balance: its running balance over the month, as the API answers it.
    page.get_by_role("link", name="JHT: members' balances").click()
    page.wait_for_url(f"{server.base}/console/branches/{BRANCH}/accounts/2200?as_of={AS_OF}")
    month = server.api(f"/branches/{BRANCH}/accounts/2200?from={AS_OF[:8]}01&to={AS_OF}", token)
    assert month["days"]
    assert rows(page, "days")[1:] == [
        [day["date"], rupiah(day["debit"]) if day["debit"] else "", rupiah(day["credit"]) if day["credit"] else "",
         rupiah(day["balance"])] for day in month["days"]]
    assert figure(page, "closing") == rupiah(month["closing"]) == rupiah(
        next(row["credit"] for row in trial["accounts"] if row["code"] == "2200"))
    screenshot(page, "branch-account")
    page.get_by_role("link", name=f"Branch {BRANCH} and its trial balance on {AS_OF}").click()
    page.wait_for_url(f"{server.base}/console/branches/{BRANCH}?as_of={AS_OF}")

    # Another date, through the page's own form.
    page.get_by_label("As of (YYYY-MM-DD)").fill("2017-02-28")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url(f"{server.base}/console/branches/{BRANCH}?as_of=2017-02-28")
    earlier = server.api(f"/branches/{BRANCH}/totals?as_of=2017-02-28", token)
    assert figure(page, "contributions_total") == rupiah(earlier["contributions_total"])


def test_the_member_page_shows_the_balance_over_time_and_each_movement_with_its_receipt(
        server: Server, page: Page, tmp_path: Path) -> None:
    token = server.tokens.token("auditor", "auditor@fund")
    log_in(page, server, token, f"/console/members/{FIRST_KPJ}")
    today = TODAY.isoformat()
    balance = server.api(f"/members/{FIRST_KPJ}/balance?as_of={today}", token)
    history = server.api(f"/members/{FIRST_KPJ}/history?to={today}", token)
    assert figure(page, "jht_balance") == rupiah(balance["jht_balance"]) != "Rp0"
    assert figure(page, "branch") == BRANCH
    movements = rows(page, "movements")
    assert len(movements) == len(history) >= 4
    assert [[row[0], row[2], row[3], row[7]] for row in movements] == [
        [one["date"], rupiah(one["contributions"]), rupiah(one["jht_contribution"]), rupiah(one["jht_balance"])]
        for one in history]
    assert rows(page, "programs") == [
        [p, rupiah(one["employer"]), rupiah(one["worker"]), rupiah(one["contributions"]), rupiah(one["yield"]),
         count(one["claims_count"]), rupiah(one["claims"])] for p, one in balance["programs"].items()]
    chart = page.locator('svg[aria-labelledby="balance-chart-title balance-chart-desc"]')
    assert chart.get_attribute("role") == "img"
    assert rupiah(history[-1]["jht_balance"]) in page.locator("#balance-chart-desc").text_content()
    screenshot(page, "member")

    # The receipt of the last movement, downloaded as a person would, checks offline with the log's key alone.
    with page.expect_download() as download:
        page.locator("#movements tbody tr").last.get_by_role("link").click()
    saved = tmp_path / "receipt.json"
    download.value.save_as(saved)
    receipt = json.loads(saved.read_text())
    assert receipt["event_id"] == history[-1]["event_id"] and receipt["kpj"] == FIRST_KPJ
    proved = check_proof(receipt["bundle"].encode("utf-8"), Ed25519Verifier.of(log_verifier_key()))
    assert (proved["event_id"], proved["data"]["kpj"]) == (history[-1]["event_id"], FIRST_KPJ)
    # As docs/console.md tells a member to check it: the bundle saved as it is, then `ledger audit check-proof`.
    subprocess.run([sys.executable, "-c", DOCUMENTED_SAVE, str(saved), str(tmp_path / "receipt.proof")], check=True,
                   timeout=30)
    checked = server.cli.json("audit", "check-proof", str(tmp_path / "receipt.proof"), "--key", log_verifier_key())
    assert checked["event_id"] == history[-1]["event_id"]
    # Every look at the member, in the page and in the receipt, is in the access log under the auditor's name.
    looks = {one.endpoint for one in server.access_log.entries if (one.subject, one.kpj) == ("auditor@fund", FIRST_KPJ)}
    assert {"GET /console/members/{kpj}", "GET /console/members/{kpj}/receipts/{event_id}"} <= looks


def test_the_operator_page_shows_the_projections_the_relay_and_the_latest_signed_checkpoint(
        server: Server, page: Page) -> None:
    token = server.tokens.token("operator", "ops@fund")
    log_in(page, server, token, "/console/operator")
    status = server.cli.json("projections", "status")
    assert rows(page, "projections") == [
        [row["name"], str(row["live_version"]), count(row["events"]), count(row["lag"]), row["last_update"]]
        for row in status]
    published = server.cli.json("audit", "reconcile")["relay_state"]
    assert figure(page, "relay_position") == count(published["position"])
    assert figure(page, "checkpoint_size") == count(published["position"])
    assert figure(page, "checkpoint_covers") == "yes"
    assert figure(page, "checkpoint_key").startswith(Ed25519Verifier.of(log_verifier_key()).name + "+")
    screenshot(page, "operator")
    # An operator reads no branch and no member.
    assert page.goto(f"{server.base}/console/branches/{BRANCH}").status == 403
    assert page.goto(f"{server.base}/console/members/{FIRST_KPJ}").status == 403


def test_branch_staff_cannot_open_another_branch_nor_its_members(server: Server, page: Page) -> None:
    token = server.tokens.token("branch-staff", "staff@depok", branches=(OTHER_BRANCH,))
    log_in(page, server, token)
    assert page.get_by_role("link", name=f"Branch {OTHER_BRANCH}").is_visible()
    assert page.get_by_role("link", name=f"Branch {BRANCH}").count() == 0
    response = page.goto(f"{server.base}/console/branches/{BRANCH}?as_of={AS_OF}")
    assert response is not None and response.status == 403
    assert page.get_by_role("heading", level=1).inner_text() == "Not allowed (403)"
    assert "Rp" not in page.locator("main").inner_text()
    screenshot(page, "forbidden-branch")
    for kpj in (FIRST_KPJ, "99999999999"):  # a member of another branch, and none: the same refusal
        response = page.goto(f"{server.base}/console/members/{kpj}")
        assert response is not None and response.status == 403
        assert kpj not in page.locator("main").inner_text()
    response = page.goto(f"{server.base}/console/members/{FIRST_KPJ}/receipts/"
                         f"00000000-0000-0000-0000-000000000000.1")
    assert response is not None and response.status == 403
    assert page.goto(f"{server.base}/console/operator").status == 403
    response = page.goto(f"{server.base}/console/no-such-page")
    assert response is not None and response.status == 404


def test_the_keyboard_reaches_the_tables_through_the_skip_link(server: Server, page: Page) -> None:
    token = server.tokens.token("branch-staff", "staff@bekasi", branches=(BRANCH,))
    log_in(page, server, token, f"/console/branches/{BRANCH}?as_of={AS_OF}")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to main content")
    assert page.evaluate("document.activeElement.textContent") == "Skip to main content"
    box = skip.bounding_box()
    assert box is not None and box["x"] >= 0 and box["y"] >= 0  # shown once focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    reached = tab_until(page, lambda: page.evaluate(
        "document.activeElement.getAttribute('aria-labelledby')") == "months-caption")
    assert reached, "Tab never reached the table of months"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"  # the focus is visible
    screenshot(page, "branch-keyboard-focus")
    assert tab_until(page, lambda: page.evaluate(
        "document.activeElement.getAttribute('aria-labelledby')") == "claims-caption")


def tab_until(page: Page, reached: Callable[[], bool]) -> bool:
    for _ in range(TABS_MAX):
        page.keyboard.press("Tab")
        if reached():
            return True
    return False
