"""The books through the HTTP API (issue 18): a branch's trial balance, an account's running balance and the journal,
and the fund's trial balance, to the rupiah on a small history computed by hand; who may read them (403 outside the
reader's scope, for another branch or the whole fund); the journal's pages and cursor; its access-log entries.

The API runs in process (FastAPI's TestClient) over a real SQLite view store built by the projections' own code
(tests/support/views.py) from a ledger written through its commands, as tests/integration/test_api_access.py does.

The history (docs/cli.md's collections scenario, in branch BEKASI-KOTA; one payment in BOGOR):
- employer 10012345 (risk low) employs Budi (15000000001) at Rp5,000,000 from January 2024: the January bill is
  Rp477,000 (JHT 5.7% = 285,000; JKK 0.54% = 27,000, of which 0.14% = 7,000 recomposed to JKP; JKM 0.30% = 15,000,
  of which 0.10% = 5,000 to JKP; JP 3% = 150,000), counting from 1 February;
- Sari (15000000002), BPU, declares Rp1,000,000: Rp16,800 a month (JKK 10,000, JKM 6,800), counting from 1 January;
- 12 Jan: Rp16,800 for Sari (a regional budget pays): her bill is settled that day;
- 10 Feb: Rp300,000 from the employer: not enough for the bill; 20 Apr: Rp210,000: the bill is settled three months
  late with a fine of 3 x 2% x 477,000 = 28,620 (505,620 in all), Rp4,380 left, refunded on 22 Apr;
- BOGOR: employer 10054321's Rp100,000 received on 5 Mar, not applied (it has no bill).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ledger.commands import CloseBills, EnrollMember, ReceiveMoney, RefundMoney, RegisterEmployer
from ledger.settings import Settings
from projections import queries
from projections.api import JOURNAL_PAGE_ENTRIES_MAX, create_app
from projections.queries import RateLimiter
from projections.store import ViewStore
from tests.support.access_log import MemoryAccessLog
from tests.support.scenario import new_ledger
from tests.support.tokens import TokenKit
from tests.support.views import project, published

pytestmark = pytest.mark.integration

TODAY = date(2024, 12, 31)
BEKASI, BOGOR = "BEKASI-KOTA", "BOGOR"
NPP, BOGOR_NPP, BUDI, SARI = "10012345", "10054321", "15000000001", "15000000002"
JOURNAL = "GET /branches/{branch}/journal"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ViewStore]:
    app = new_ledger()
    for npp, branch in ((NPP, BEKASI), (BOGOR_NPP, BOGOR)):
        app.execute(RegisterEmployer.build(npp=npp, name="PT Contoh", branch=branch, kind="company",
                                           risk_class="low", registered_on=date(2015, 7, 1)))
    app.execute(EnrollMember.build(member={"kpj": BUDI, "nik": "3275011505900001", "name": "Budi Santoso",
                                           "birth_date": date(1990, 5, 15), "wage": 5_000_000},
                                   npp=NPP, effective=date(2024, 1, 1)))
    app.execute(EnrollMember.build(member={"kpj": SARI, "nik": "3275015505900002", "name": "Sari Dewi",
                                           "birth_date": date(1990, 5, 15), "wage": 1_000_000, "segment": "BPU"},
                                   branch=BEKASI, effective=date(2024, 1, 1)))
    app.execute(CloseBills.build(month="2024-01", npps=[NPP], kpjs=[SARI]))
    app.execute(ReceiveMoney.build(reference="BRI-240112-3", kpj=SARI, amount=16_800, received_on=date(2024, 1, 12),
                                   payer="institution", payer_name="APBD Kota Bekasi"))
    app.execute(ReceiveMoney.build(reference="BCA-240210-001", npp=NPP, amount=300_000,
                                   received_on=date(2024, 2, 10)))
    app.execute(ReceiveMoney.build(reference="BCA-240420-007", npp=NPP, amount=210_000,
                                   received_on=date(2024, 4, 20)))
    app.execute(RefundMoney.build(npp=NPP, amount=4_380, refunded_on=date(2024, 4, 22), reason="overpaid"))
    app.execute(ReceiveMoney.build(reference="MANDIRI-240305-9", npp=BOGOR_NPP, amount=100_000,
                                   received_on=date(2024, 3, 5)))
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

    def get(self, path: str, role: str = "auditor", subject: str = "auditor-ani", **token: Any) -> Any:
        return self.client.get(path, headers=self.kit.headers(role, subject, **token))


@pytest.fixture
def api(store: ViewStore, kit: TokenKit, tmp_path: Path) -> Api:
    log = MemoryAccessLog()
    settings = kit.settings(Settings(projection_sqlite_path=tmp_path / "unused.db"))
    app = create_app(settings, store, access_log=log, clock=lambda: TODAY, limiter=RateLimiter(reads_max=10_000))
    return Api(TestClient(app), log, kit)


def balances(report: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """The accounts with a balance: code -> (debit column, credit column)."""
    return {row["code"]: (row["debit"], row["credit"]) for row in report["accounts"] if row["debit"] or row["credit"]}


def test_a_branch_trial_balance_to_the_rupiah(api: Api, store: ViewStore) -> None:
    response = api.get(f"/branches/{BEKASI}/trial-balance?as_of=2024-12-31")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report == queries.trial_balance(store, date(2024, 12, 31), BEKASI)
    assert balances(report) == {
        "1110": (505_620, 0),  # 300,000 + 210,000 - 4,380
        "1120": (16_800, 0),
        "2200": (0, 285_000),
        "3100": (0, 20_000 + 10_000),  # Budi's JKK less its JKP share, Sari's JKK
        "3200": (0, 10_000 + 6_800),
        "3300": (0, 150_000),
        "3410": (0, 7_000),
        "3420": (0, 5_000),
        "4100": (0, 28_620),
    }
    assert report["totals"]["debit"] == report["totals"]["credit"] == 522_420 and report["balanced"]
    assert report["difference"] == 0 and report["branch"] == BEKASI and report["as_of"] == "2024-12-31"
    # Every account of the chart is listed, in code order, those without a movement at zero.
    assert [row["code"] for row in report["accounts"]] == sorted(row["code"] for row in report["accounts"])
    assert len(report["accounts"]) == 21
    # On 31 March: the employer's bill outstanding, its money not yet applied.
    march = api.get(f"/branches/{BEKASI}/trial-balance?as_of=2024-03-31").json()
    assert balances(march) == {"1110": (300_000, 0), "1120": (16_800, 0), "1200": (477_000, 0),
                               "2100": (0, 300_000), "2300": (0, 477_000), "3100": (0, 10_000), "3200": (0, 6_800)}
    # An omitted as_of is today (the API's clock).
    assert api.get(f"/branches/{BEKASI}/trial-balance").json() == report
    assert api.log.entries == []  # no member's data


def test_the_fund_trial_balance_adds_the_branches(api: Api) -> None:
    report = api.get("/books/trial-balance?as_of=2024-12-31").json()
    assert report["branch"] is None and report["balanced"]
    fund = balances(report)
    assert fund["1110"] == (505_620 + 100_000, 0) and fund["2100"] == (0, 100_000)
    assert report["totals"]["debit"] == 522_420 + 100_000


def test_an_accounts_running_balance(api: Api) -> None:
    response = api.get(f"/branches/{BEKASI}/accounts/unapplied?from=2024-02-01&to=2024-04-30")
    assert response.status_code == 200, response.text
    assert response.json() == {
        "account": "2100", "name": "Unapplied receipts: payers' credit", "kind": "liability", "normal_side": "credit",
        "branch": BEKASI, "from": "2024-02-01", "to": "2024-04-30", "opening_on": "2024-01-31", "opening": 0,
        "days": [{"date": "2024-02-10", "debit": 0, "credit": 300_000, "balance": 300_000},
                 {"date": "2024-04-20", "debit": 505_620, "credit": 210_000, "balance": 4_380},
                 {"date": "2024-04-22", "debit": 4_380, "credit": 0, "balance": 0}],  # the refund
        "debits": 510_000, "credits": 510_000, "closing": 0}
    jht = api.get(f"/branches/{BEKASI}/accounts/2200?from=2024-05-01&to=2024-12-31").json()
    assert (jht["opening"], jht["days"], jht["closing"]) == (285_000, [], 285_000)


def test_the_journal_in_pages_each_entry_balanced(api: Api) -> None:
    first = api.get(f"/branches/{BEKASI}/journal?from=2024-01-01&to=2024-12-31&limit=4")
    assert first.status_code == 200, first.text
    entries, page = [], first.json()
    while True:
        entries += page["entries"]
        assert len(page["entries"]) <= 4
        if page["next"] is None:
            break
        page = api.get(f"/branches/{BEKASI}/journal?from=2024-01-01&to=2024-12-31&limit=4&after={page['next']}"
                       ).json()
    assert [(e["date"], e["type"]) for e in entries] == [
        ("2024-01-01", "BillClosed"), ("2024-01-12", "MoneyReceived"), ("2024-01-12", "BillSettled"),
        ("2024-01-12", "ContributionPaid"), ("2024-02-01", "BillClosed"), ("2024-02-10", "MoneyReceived"),
        ("2024-04-20", "MoneyReceived"), ("2024-04-20", "BillSettled"), ("2024-04-20", "ContributionPaid"),
        ("2024-04-22", "MoneyRefunded")]
    for entry in entries:
        assert sum(leg["debit"] for leg in entry["legs"]) == sum(leg["credit"] for leg in entry["legs"]) > 0
    budi = entries[8]
    assert (budi["kpj"], budi["npp"], budi["reference"]) == (BUDI, NPP, f"{NPP}/2024-01/PU/1")
    assert {(leg["account"], leg["debit"], leg["credit"]) for leg in budi["legs"]} == {
        ("2190", 505_620, 0), ("2200", 0, 285_000), ("3100", 0, 20_000), ("3410", 0, 7_000), ("3200", 0, 10_000),
        ("3420", 0, 5_000), ("3300", 0, 150_000), ("4100", 0, 28_620)}
    # One page holding them all has no next; one account's entries only.
    whole = api.get(f"/branches/{BEKASI}/journal?from=2024-01-01&to=2024-12-31").json()
    assert whole["entries"] == entries and whole["next"] is None
    fines = api.get(f"/branches/{BEKASI}/journal?from=2024-01-01&to=2024-12-31&account=fines").json()
    assert [e["event_id"] for e in fines["entries"]] == [budi["event_id"]] and fines["account"] == "4100"
    # Each member named by an entry answered was recorded, once per request.
    assert {(e.kpj, e.endpoint) for e in api.log.entries} == {(BUDI, JOURNAL), (SARI, JOURNAL)}


def test_a_page_records_the_members_it_gives_not_the_next_pages(api: Api) -> None:
    base = f"/branches/{BEKASI}/journal?from=2024-01-01&to=2024-12-31&limit=4"
    first = api.get(base).json()  # Sari's bill, money, settlement and line
    assert {e["kpj"] for e in first["entries"]} == {SARI} and [e.kpj for e in api.log.entries] == [SARI]
    second = api.get(f"{base}&after={first['next']}").json()  # the employer's: Budi's line comes next, not given
    assert {e["kpj"] for e in second["entries"]} == {None} and second["next"]
    assert [e.kpj for e in api.log.entries] == [SARI]


def test_bad_parameters_are_422(api: Api) -> None:
    base = f"/branches/{BEKASI}"
    for path in (f"{base}/accounts/nope?from=2024-01-01&to=2024-02-01",
                 f"{base}/accounts/2200?from=2024-03-01&to=2024-02-01",
                 f"{base}/accounts/2200?from=2024-02-30&to=2024-03-01",
                 f"{base}/accounts/2200?to=2024-03-01",
                 f"{base}/journal?from=2024-03-01&to=2024-02-01",
                 f"{base}/journal?from=2024-01-01&to=2024-02-01&account=9999",
                 f"{base}/journal?from=2024-01-01&to=2024-02-01&limit=0",
                 f"{base}/journal?from=2024-01-01&to=2024-02-01&limit={JOURNAL_PAGE_ENTRIES_MAX + 1}",
                 f"{base}/journal?from=2024-01-01&to=2024-02-01&after=yesterday",
                 f"{base}/trial-balance?as_of=2024-13-01"):
        response = api.get(path)
        assert response.status_code == 422, (path, response.text)
    response = api.get(f"{base}/journal?from=2024-03-01&to=2024-02-01")
    assert response.json()["detail"] == [{"type": "value_error", "loc": ["query", "from"],
                                          "msg": "from 2024-03-01 is after to 2024-02-01"}]
    assert api.get("/branches/NOWHERE/trial-balance").status_code == 404
    assert api.get("/branches/NOWHERE/journal?from=2024-01-01&to=2024-02-01").status_code == 404


STAFF = {"role": "branch-staff", "subject": "staff-bogor", "branches": (BOGOR,)}
PATHS = ("/branches/{branch}/trial-balance", "/branches/{branch}/accounts/2100?from=2024-01-01&to=2024-12-31",
         "/branches/{branch}/journal?from=2024-01-01&to=2024-12-31")


def test_branch_staff_read_their_branch_only_and_not_the_fund(api: Api) -> None:
    for path in PATHS:
        assert api.get(path.format(branch=BOGOR), **STAFF).status_code == 200, path
        refused = api.get(path.format(branch=BEKASI), **STAFF)
        assert refused.status_code == 403, path
        assert BEKASI not in refused.json()["detail"]
    assert api.get("/books/trial-balance", **STAFF).status_code == 403
    bogor = api.get(f"/branches/{BOGOR}/trial-balance?as_of=2024-12-31", **STAFF).json()
    assert balances(bogor) == {"1110": (100_000, 0), "2100": (0, 100_000)}
    # BOGOR's entries name an employer, no member: nothing was recorded.
    assert api.log.entries == []


def test_other_roles_read_no_books(api: Api) -> None:
    for token in ({"role": "member-service", "subject": "portal", "kpj": BUDI},
                  {"role": "operator", "subject": "ops-citra"}):
        for path in (*PATHS, "/books/trial-balance"):
            assert api.get(path.format(branch=BEKASI), **token).status_code == 403, (token, path)
    assert api.client.get(f"/branches/{BEKASI}/trial-balance").status_code == 401


def test_openapi_describes_the_books_endpoints(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    for path in ("/branches/{branch}/trial-balance", "/books/trial-balance", "/branches/{branch}/accounts/{account}",
                 "/branches/{branch}/journal"):
        operation = spec["paths"][path]["get"]
        assert operation["security"] == [{"bearer": []}], path
        assert {"200", "401", "403", "422", "429", "503"} <= set(operation["responses"]), path

