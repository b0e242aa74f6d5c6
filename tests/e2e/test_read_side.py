"""The read side end to end: a generated branch history written by the CLI, relayed to the real broker, projected,
then asked through `ledger report branch`, `ledger balance`, `ledger projections ...` and the HTTP API of
`ledger serve` (a real server on a free port), with tokens from `ledger api token issue`."""

from __future__ import annotations

import json
import os
import pwd
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest

from tests.support.cli_runner import Cli
from tests.support.kafka_roles import KafkaRoles
from tests.support.tokens import TokenKit

pytestmark = pytest.mark.e2e

BRANCH = "BEKASI-KOTA"
AS_OF = "2017-03-31"
SERVER_START_S_MAX = 30
FIRST_KPJ = "17100000001"  # the generator's first KPJ: the city government's first employee


@pytest.fixture(scope="module")
def projected(tmp_path_factory, kafka_roles: KafkaRoles) -> Cli:
    folder = tmp_path_factory.mktemp("read-side")
    unique = uuid.uuid4().hex[:10]
    kit = TokenKit.create(folder / "token-keys")
    cli = Cli(env={**os.environ, **kit.variables(), "LEDGER_SQLITE_PATH": str(folder / "ledger.db"),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(folder / "views.db"),
                   "LEDGER_ACCESS_LOG_SQLITE_PATH": str(folder / "access-log.db"),
                   "LEDGER_KAFKA_TOPIC_PREFIX": f"test-e2e-{unique}", "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}"},
              folder=folder, kafka=kafka_roles)
    counts = cli.json("generate", "--employers", "4", "--members", "60", "--bpu", "6", "--months", "4")
    assert counts["members"] >= 60 and counts["payments"] > 0
    cli.kafka_init()
    cli("relay")
    applied = cli.json("projections", "run")["applied"]
    assert applied["balances"] == applied["branches"] > 300
    return cli


def test_branch_report_as_a_table_and_as_json(projected: Cli) -> None:
    report = projected.json("report", "branch", BRANCH, "--as-of", AS_OF)
    assert report["branch"] == BRANCH and report["as_of"] == AS_OF
    assert 50 <= report["active_pu_members"] <= 70 and report["active_employers"] == 4
    assert report["active_employers_by_kind"] == {"company": 3, "government": 1}
    assert report["contributions_total"] == sum(p["total"] for p in report["contributions"].values()) > 0
    assert report["claims_total"]["amount"] == sum(p["amount"] for p in report["claims"].values())
    # Employers pay March in April, after the report date; BPU members pay March in March.
    assert [m["month"] for m in report["months"]] == ["2017-01", "2017-02", "2017-03"]
    assert 0 < report["months"][2]["total"] < report["months"][1]["total"] / 10
    table = projected("report", "branch", BRANCH, "--as-of", AS_OF).stdout
    assert f"Branch {BRANCH}, up to {AS_OF}" in table
    assert f"active PU (wage-earner) members   {report['active_pu_members']:>12,}" in table
    assert f"Rp{report['contributions']['JHT']['total']:,}" in table


def test_member_balance_from_the_projection_equals_the_event_store(projected: Cli) -> None:
    kpj = FIRST_KPJ
    for as_of in ("2017-01-31", "2017-02-20", "2017-05-31"):
        view = projected.json("balance", kpj, "--as-of", as_of)
        store = projected.json("balance", "--from-store", kpj, "--as-of", as_of)
        assert view["jht_balance"] == store["jht_balance"], as_of
    with_history = projected.json("balance", kpj, "--as-of", "2017-05-31", "--history")
    assert with_history["history"][-1]["jht_balance"] == with_history["jht_balance"] > 0
    text = projected("balance", kpj, "--as-of", "2017-05-31", "--history").stdout
    assert f"JHT balance of member {kpj} on 2017-05-31: Rp{with_history['jht_balance']:,}" in text
    assert "contribution 2017-01" in text


def test_unknown_ids_and_bad_dates_are_clear_errors(projected: Cli) -> None:
    assert projected("balance", "99999999999", expect=3).stderr == \
        "error: unknown member: no KPJ 99999999999 in the balances projection\n"
    assert "unknown branch" in projected("report", "branch", "NOWHERE", expect=3).stderr
    assert "--as-of must be a date" in projected("report", "branch", BRANCH, "--as-of", "2017-02-30", expect=2).stderr
    assert "unknown projection nope" in projected("projections", "rebuild", "nope", expect=2).stderr
    assert "unknown branch" in projected("report", "arrears", "--branch", "NOWHERE", expect=3).stderr
    assert "--as-of must be a date" in projected("report", "arrears", "--branch", BRANCH, "--as-of", "2017-02-30",
                                                 expect=2).stderr


def test_arrears_of_a_branch_that_pays_without_bills(projected: Cli) -> None:
    """The generated history pays its months with `ledger contribution pay`, without bills: nothing is in arrears,
    and the branch report's collection figures are all zero."""
    report = projected.json("report", "arrears", "--branch", BRANCH, "--as-of", AS_OF)
    assert (report["branch"], report["as_of"], report["payers"]) == (BRANCH, AS_OF, [])
    assert [(b["bucket"], b["bills"]) for b in report["buckets"]] == [(label, 0) for label in
                                                                      ("1", "2-3", "4-6", "7-12", ">12")]
    assert "  no bill is overdue" in projected("report", "arrears", "--branch", BRANCH, "--as-of", AS_OF).stdout
    branch = projected.json("report", "branch", BRANCH, "--as-of", AS_OF)
    figures = branch["collections"]
    assert {name: figures[name] for name in ("billed", "settled", "outstanding", "fines_applied", "applied",
                                             "received", "unapplied", "refunded", "returned", "held", "held_count",
                                             "held_matched_later")} == dict.fromkeys(
        ("billed", "settled", "outstanding", "fines_applied", "applied", "received", "unapplied", "refunded",
         "returned", "held", "held_count", "held_matched_later"), 0)
    # Without bills, every contribution and fine was paid without a bill (`ledger contribution pay`).
    assert figures["paid_without_bill"] == branch["contributions_total"] + branch["late_fines"] > 0
    assert figures["paid_without_bill_count"] > 0


def test_status_then_rebuild_with_workers_switches_versions_and_keeps_answers(projected: Cli) -> None:
    before = projected.json("report", "branch", BRANCH, "--as-of", AS_OF)
    status = {row["name"]: row for row in projected.json("projections", "status")}
    assert status["branches"]["lag"] == 0 and status["balances"]["lag"] == 0
    version = status["branches"]["live_version"]
    rebuilt = projected.json("projections", "rebuild", "branches", "--workers", "2")
    assert (rebuilt["version"], rebuilt["replaced"]) == (version + 1, version)
    assert rebuilt["events"] == status["branches"]["events"]
    assert projected.json("report", "branch", BRANCH, "--as-of", AS_OF) == before
    text = projected("projections", "status").stdout
    assert f"branches: version {version + 1}, {rebuilt['events']:,} events applied, lag 0" in text


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def api(projected: Cli) -> str:
    port = free_port()
    server = projected.with_env(LEDGER_API_PORT=str(port)).start("serve", stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S_MAX
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2)
            break
        except OSError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail(f"ledger serve did not start: {server.communicate(timeout=5)[1]}")
    yield base
    server.terminate()
    server.wait(timeout=10)


def get(url: str, token: str | None) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_http_api_answers_like_the_cli_with_openapi_and_clear_errors(api: str, projected: Cli) -> None:
    token = projected("api", "token", "issue", "--subject", "auditor-ani", "--role", "auditor", "--ttl", "15m"
                      ).stdout.strip()
    status, spec = get(f"{api}/openapi.json", None)
    assert status == 200
    assert {"/members/{kpj}/balance", "/members/{kpj}/history", "/branches/{branch}/totals"} <= set(spec["paths"])
    kpj = FIRST_KPJ
    assert get(f"{api}/members/{kpj}/balance?as_of=2017-05-31", token) == \
        (200, projected.json("balance", kpj, "--as-of", "2017-05-31"))
    assert get(f"{api}/branches/{BRANCH}/totals?as_of={AS_OF}", token) == \
        (200, projected.json("report", "branch", BRANCH, "--as-of", AS_OF))
    status, history = get(f"{api}/members/{kpj}/history?from=2017-02-01&to=2017-03-31", token)
    assert status == 200 and history and all("2017-02-01" <= row["date"] <= "2017-03-31" for row in history)

    status, body = get(f"{api}/members/99999999999/balance", token)
    assert status == 404 and "unknown member" in body["detail"]
    assert get(f"{api}/branches/NOWHERE/totals", token)[0] == 404
    status, body = get(f"{api}/members/{kpj}/balance?as_of=2017-02-30", token)
    assert status == 422 and body["detail"][0]["loc"] == ["query", "as_of"]
    assert get(f"{api}/members/12345/balance", token)[0] == 422  # not 11 digits
    assert get(f"{api}/members/{kpj}/history?from=2017-05-01&to=2017-01-01", token)[0] == 422


def test_http_api_refuses_readers_without_a_token_or_the_right(api: str, projected: Cli) -> None:
    assert get(f"{api}/members/{FIRST_KPJ}/balance", None)[0] == 401
    assert get(f"{api}/health", None) == (200, {"status": "ok"})
    other = projected("api", "token", "issue", "--subject", "staff-bogor", "--role", "branch-staff", "--branch",
                      "BOGOR", "--ttl", "15m").stdout.strip()
    status, body = get(f"{api}/members/{FIRST_KPJ}/balance", other)
    assert status == 403 and FIRST_KPJ not in body["detail"] and BRANCH not in body["detail"]
    assert get(f"{api}/branches/{BRANCH}/totals", other)[0] == 403


AUDIT_ACCESS_WAIT_S_MAX = 60


def test_audit_access_lists_the_reads_of_the_member_by_the_cli_and_the_api(api: str, projected: Cli) -> None:
    """Every answered read of FIRST_KPJ above, by `ledger balance` and `ledger history --kpj` (as the local user: the
    system's name for it, not the environment's) and through the API (as the token's subject), is in the access log
    that `ledger serve` publishes, and `ledger audit access --kpj` lists it."""
    token = projected("api", "token", "issue", "--subject", "auditor-ani", "--role", "auditor", "--ttl", "15m"
                      ).stdout.strip()
    # The member's events from the event store, by a user who claims to be someone else in the environment.
    events = projected.with_env(USER="auditor-ani", LOGNAME="auditor-ani").json("history", "--kpj", FIRST_KPJ)
    assert events[0]["type"] == "MemberEnrolled"
    local = f"local:{pwd.getpwuid(os.geteuid()).pw_name}"
    assert get(f"{api}/members/{FIRST_KPJ}/history", token)[0] == 200
    # The last read, by a subject of its own: once it is listed, every read before it is (published in seq order).
    last = projected("api", "token", "issue", "--subject", "auditor-last", "--role", "auditor", "--ttl", "15m"
                     ).stdout.strip()
    assert get(f"{api}/members/{FIRST_KPJ}/balance", last)[0] == 200
    deadline = time.monotonic() + AUDIT_ACCESS_WAIT_S_MAX
    while True:
        reads = projected.json("audit", "access", "--kpj", FIRST_KPJ)["reads"]
        endpoints = {(read["subject"].split(":")[0], read["endpoint"]) for read in reads}
        if ("auditor-last", "GET /members/{kpj}/balance") in endpoints or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {("local", "ledger balance"), ("local", "ledger balance --from-store"),
            ("local", "ledger balance --history"), ("local", "ledger history --kpj"),
            ("auditor-ani", "GET /members/{kpj}/balance"), ("auditor-ani", "GET /members/{kpj}/history")} <= endpoints
    assert {read["subject"] for read in reads if read["endpoint"] == "ledger history --kpj"} == {local}
    assert all(read["kpj"] == FIRST_KPJ for read in reads)
    # The refused and the unknown were answered nothing, and logged as nothing.
    assert not any(read["subject"] == "staff-bogor" for read in reads)
