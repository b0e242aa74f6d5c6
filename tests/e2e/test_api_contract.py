"""The published contract stays honest (issue 16): schemathesis, run as its command-line tool against the running API,
generates requests from the OpenAPI description (its examples, its boundary values, then random ones: valid and
invalid) and checks every answer against the description: no server error, every status documented, every content
type and body schema as described, headers as described, invalid input refused, valid input accepted, no answer
without a token (every check schemathesis has: `--checks all`).

The API runs in a real uvicorn server on a free port, in this process: `create_app` over a real SQLite view store built
by the projections' own code from a generated branch history (tests/support/views.py), with the real access log on a
temporary SQLite file and tokens signed by a test key. Runs are bounded (`EXAMPLES_PER_OPERATION`, `RUN_S_MAX`) and
repeatable: a fixed seed, deterministic generation (which keeps no example database between runs).

The console's pages (`/console/...`) are not in the OpenAPI description (`include_in_schema=False`): they are HTML for
browsers, checked by their own page and browser tests, not part of the JSON contract; so schemathesis does not see them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from ledger.application import Ledger
from ledger.commands import CloseBills, ReceiveMoney
from ledger.generator import BranchPlan
from ledger.settings import Settings
from projections.access_log import AccessLog, AccessLogStore
from projections.api import create_app
from projections.queries import RateLimiter
from tests.support.tokens import TokenKit
from tests.support.views import projected_store, published

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "tests" / "support" / "contract_hooks.py"
TODAY = date(2017, 6, 30)  # the date an omitted `as_of` stands for: after the generated months
EXAMPLE_KPJ = "15000000001"  # the KPJ the description gives as its example: the generated branch's first member
OTHER_BRANCH = "BOGOR"
PLANS = [BranchPlan(branch="BEKASI-KOTA", employers=3, members=40, bpu_members=4, first_month="2017-01", months=4,
                    seed=16, first_kpj=int(EXAMPLE_KPJ)),
         BranchPlan(branch=OTHER_BRANCH, employers=2, members=20, bpu_members=2, first_month="2017-01", months=4,
                    seed=17, first_kpj=16_000_000_001, first_npp=30_000_001)]
EXAMPLES_PER_OPERATION = 40
SEED = 16
RUN_S_MAX = 120  # a run takes a few seconds; this bounds a hung one
SERVER_START_S_MAX = 15
# The contract runs make a few hundred reads in seconds as one subject, far beyond the production limit of
# READS_PER_MINUTE_MAX a minute, which would turn them into a run of 429s that reach no query. The limiter is the
# real one, with this bound; tests/integration/test_api_access.py checks the production limit and its 429.
CONTRACT_READS_MAX = 100_000
MEMBER_PATH = re.compile(r"^/members/[^/]*/(balance|history)$")
BRANCH_PATH = re.compile(r"^/branches/[^/]*/totals$")
ARREARS_PATH = re.compile(r"^/branches/[^/]*/arrears$")
ARREARS_ENDPOINT = "GET /branches/{branch}/arrears"
BOOKS_PATHS = {name: re.compile(pattern) for name, pattern in (
    ("trial balance", r"^/branches/[^/]*/trial-balance$"), ("account", r"^/branches/[^/]*/accounts/[^/]*$"),
    ("journal", r"^/branches/[^/]*/journal$"))}
FUND_PATH = re.compile(r"^/books/trial-balance$")
JOURNAL_ENDPOINT = "GET /branches/{branch}/journal"

Asgi = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[dict[str, Any]], Awaitable[None]]],
                Awaitable[None]]


@dataclass
class RunningApi:
    base: str
    kit: TokenKit
    access_log: AccessLogStore
    answers: list[tuple[str, int]] = field(default_factory=list)  # (path, status) of every answer, in order

    def statuses(self, pattern: re.Pattern[str], since: int = 0) -> set[int]:
        return {status for path, status in self.answers[since:] if pattern.match(path)}


def recording(app: Asgi, answers: list[tuple[str, int]]) -> Asgi:
    """The app, noting the path and status of every answer it gives (so the test knows what the run reached)."""
    async def wrapped(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]],
                      send: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        async def noting(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                answers.append((scope["path"], message["status"]))
            await send(message)

        await app(scope, receive, noting)

    return wrapped


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    folder = tmp_path_factory.mktemp("api-contract")
    kit = TokenKit.create(folder / "token-keys")
    settings = kit.settings(Settings()).model_copy(update={"access_log_sqlite_path": folder / "access-log.db"})
    views = projected_store(folder / "views.db", PLANS, TODAY, more=collections)
    access_log = AccessLog.open(settings)
    app = create_app(settings, views, access_log=access_log, clock=lambda: TODAY,
                     limiter=RateLimiter(reads_max=CONTRACT_READS_MAX))
    answers: list[tuple[str, int]] = []
    server = uvicorn.Server(uvicorn.Config(recording(app, answers), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="contract-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + SERVER_START_S_MAX
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the API did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningApi(f"http://127.0.0.1:{port}", kit, access_log.store.same_store(), answers)
    finally:
        server.should_exit = True
        thread.join(SERVER_START_S_MAX)
        access_log.close()
        views.close()


def collections(app: Ledger) -> None:
    """Bills for May and June 2017 of the first branch's employers and self-paying BPU members, and money that settles
    some of them: so that the arrears answers hold employers and members, with fines, credit and several buckets."""
    first = PLANS[0]
    npps = [str(first.first_npp + i) for i in range(first.employers)]
    kpjs = sorted({env["data"]["kpj"] for env, _ in published(app) if env["type"] == "MemberEnrolled"
                   and env["branch"] == first.branch and env["data"]["segment"] == "BPU" and not env["data"]["npp"]})
    assert npps and kpjs
    for month in ("2017-05", "2017-06"):
        app.execute(CloseBills.build(month=month, npps=npps if month == "2017-05" else [], kpjs=kpjs))
    app.execute(ReceiveMoney.build(reference="CONTRACT-1", npp=npps[0], amount=1_000, received_on=TODAY))
    app.execute(ReceiveMoney.build(reference="CONTRACT-2", kpj=kpjs[0], amount=1_000_000, received_on=TODAY))


def schemathesis_run(api: RunningApi, token: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    """`st run` against the running API with `token`: every check, bounded, seeded, deterministic."""
    st = Path(sys.executable).with_name("st")
    workdir.mkdir(parents=True, exist_ok=True)
    command = [str(st), "run", f"{api.base}/openapi.json", "--header", f"Authorization: Bearer {token}",
               "--checks", "all", "--phases", "examples,coverage,fuzzing", "--max-examples",
               str(EXAMPLES_PER_OPERATION), "--seed", str(SEED), "--generation-deterministic", "--workers", "1",
               "--no-color"]
    return subprocess.run(command, cwd=workdir, env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS)},
                          capture_output=True, text=True, timeout=RUN_S_MAX, check=False)


def passed(run: subprocess.CompletedProcess[str]) -> str:
    """Why the run failed (its report), or an empty string when it passed."""
    return "" if run.returncode == 0 else f"schemathesis exit {run.returncode}:\n{run.stdout[-12_000:]}\n{run.stderr}"


def test_every_answer_to_an_auditor_conforms_to_the_description(api: RunningApi, tmp_path: Path) -> None:
    since = len(api.answers)
    run = schemathesis_run(api, api.kit.token("auditor", "contract-auditor"), tmp_path / "auditor")
    assert not passed(run), passed(run)
    # The run reached the queries, not only the refusals: real answers from each endpoint, and the documented
    # refusals of bad input and unknown members.
    answers = api.answers[since:]
    assert 200 in api.statuses(re.compile(r"^/members/[^/]*/balance$"), since)
    assert 200 in api.statuses(re.compile(r"^/members/[^/]*/history$"), since)
    assert 200 in api.statuses(BRANCH_PATH, since)
    assert 200 in api.statuses(ARREARS_PATH, since)
    for name, path in BOOKS_PATHS.items():
        assert 200 in api.statuses(path, since), name
    assert 200 in api.statuses(FUND_PATH, since)
    assert {401, 404, 422} <= api.statuses(MEMBER_PATH, since)
    assert all(status < 500 for _, status in answers), [a for a in answers if a[1] >= 500]
    # Every member's data answered was recorded in the access log, each read once (the arrears answers record each
    # BPU member they list, the journal's each member its entries name, under their own endpoints).
    read = sum(1 for path, status in answers if status == 200 and MEMBER_PATH.match(path))
    logged = [entry for entry in api.access_log.after(0, 100_000) if entry.subject == "contract-auditor"]
    assert len([entry for entry in logged if entry.endpoint not in (ARREARS_ENDPOINT, JOURNAL_ENDPOINT)]) == read > 0
    assert EXAMPLE_KPJ in {entry.kpj for entry in logged}


def test_every_refusal_of_branch_staff_conforms_to_the_description(api: RunningApi, tmp_path: Path) -> None:
    """A branch-staff token of another branch: every member and the generated branch refused (403), as described."""
    since = len(api.answers)
    token = api.kit.token("branch-staff", "contract-staff", branches=(OTHER_BRANCH,))
    run = schemathesis_run(api, token, tmp_path / "staff")
    assert not passed(run), passed(run)
    assert 403 in api.statuses(re.compile(r"^/members/[^/]*/balance$"), since)
    assert 403 in api.statuses(re.compile(r"^/members/[^/]*/history$"), since)
    assert 403 in api.statuses(BRANCH_PATH, since)
    assert 403 in api.statuses(ARREARS_PATH, since)
    for name, path in BOOKS_PATHS.items():
        assert 403 in api.statuses(path, since), name
    assert 403 in api.statuses(FUND_PATH, since) and 200 not in api.statuses(FUND_PATH, since)  # never to staff
    # No member of another branch was read, known or not: never a 200 nor a 404 (which would say the KPJ is unknown).
    assert not {200, 404} & api.statuses(MEMBER_PATH, since)
    # Only the journal of their own branch names members: those of OTHER_BRANCH (the plan's KPJs from 16000000001).
    read = [entry for entry in api.access_log.after(0, 100_000) if entry.subject == "contract-staff"]
    assert all(entry.endpoint == JOURNAL_ENDPOINT and entry.kpj.startswith("1600000") for entry in read), read
