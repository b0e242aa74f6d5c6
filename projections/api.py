"""The read-only HTTP API over the projections (`ledger serve`); OpenAPI at /openapi.json, browsable at /docs.

Every endpoint but `GET /health` needs a bearer token (`Authorization: Bearer <JWT>`, projections/tokens.py), and
answers through the read side (`projections.queries.ReadSide`), which checks the token's role and scope, counts the
read towards the reader's rate limit and records every read of a member's data in the access log before answering.
Each endpoint answers from the live version of a projection, in one snapshot.

Errors are JSON with a `detail`, and each status is documented in the OpenAPI description of every endpoint that can
give it: 401 without a valid token (with `WWW-Authenticate: Bearer`), 403 outside the reader's role or scope, 404 for
an unknown member or branch (to a reader who may read it), 422 for a malformed KPJ, date or header, 429 beyond the
rate limit (with `Retry-After`), 503 while a projection has not been built yet or when the access log cannot be
written. A 422 names the parameter and the problem but, unlike FastAPI's default, never repeats the value: a NIK
typed where a KPJ belongs would otherwise be echoed into responses and whatever logs them. No error repeats the
token, and a 403 names neither the KPJ asked for nor its branch.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Annotated, Any

import uvicorn
from fastapi import Cookie, Depends, FastAPI, Header, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.books import ACCOUNTS, BY_SLUG
from ledger.books import account as chart_account
from ledger.errors import (
    AccessLogUnavailable,
    ConfigurationError,
    Forbidden,
    LedgerError,
    NotFound,
    NotProjected,
    RateLimited,
    Unauthenticated,
)
from ledger.settings import Settings
from projections import console
from projections.access import PURPOSE_CHARS_MAX, Reader
from projections.access_log import REFUSED_CATEGORIES
from projections.queries import (
    JOURNAL_CURSOR_PATTERN,
    AccessLogWriter,
    RateLimiter,
    ReadSide,
    journal_cursor,
    parse_journal_cursor,
)
from projections.store import ViewStore
from projections.tokens import TokenVerifier

# ASCII digits: `\d` (Python's and pydantic's) also takes other scripts' digits, such as Arabic-Indic ones.
KpjPath = Annotated[str, Path(pattern=r"^[0-9]{11}$", description="the member's KPJ: 11 digits",
                              examples=["15000000001"])]
BranchPath = Annotated[str, Path(pattern=r"^[A-Z0-9-]{2,40}$", description="a branch code",
                                 examples=["BEKASI-KOTA"])]
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date(value: object) -> object:
    """A date parameter in the one form the API documents (JSON Schema's `date`): pydantic alone would also read a
    number as a Unix time, so that `as_of=0` answered as of 1970-01-01."""
    if not (isinstance(value, str) and _ISO_DATE.fullmatch(value)):
        raise ValueError("a date YYYY-MM-DD")
    return value


IsoDate = Annotated[date, BeforeValidator(_iso_date)]
# An account of the chart, by code or name (`ledger books chart`): any other is refused with 422.
ACCOUNT_PATTERN = "^(" + "|".join(sorted({*ACCOUNTS, *BY_SLUG})) + ")$"
AccountPath = Annotated[str, Path(pattern=ACCOUNT_PATTERN, description="an account's code or name (ledger books "
                                                                      "chart)", examples=["2200", "jht"])]
From = Annotated[IsoDate, Query(alias="from", description="the first day, YYYY-MM-DD; not after `to` (422)")]
To = Annotated[IsoDate, Query(alias="to", description="the last day, YYYY-MM-DD")]
AsOf = Annotated[IsoDate | None, Query(description="effective date YYYY-MM-DD; default today")]

# The cookie the console's login form sets (HttpOnly, SameSite=Strict): accepted by `browser_reader` only, never by
# the JSON endpoints, so a page of another site cannot make a browser spend it on the API.
LOGIN_COOKIE = "ledger_token"
NO_CREDENTIALS = ("no bearer token: send the header `Authorization: Bearer TOKEN` (docs/projections.md, "
                  "\"Authentication, roles and scope\")")

_bearer = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="JWT",
                     description="A JWT of the fund's identity provider (or `ledger api token issue` in development), "
                                 "with the claims sub, role, and branches (branch-staff) or kpj (member-service).")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
# What `utf8_header` and `purpose_ok` accept, as a regular expression (ECMA-262, as JSON Schema's patterns are) for the
# OpenAPI description, over the text the header carries in UTF-8: none of the characters the access log refuses
# (`REFUSED_CATEGORIES`), and no space at either end (HTTP drops spaces and tabs around a value). Only described:
# checking it in the parameter would answer 422 before the token is looked at (see `_reader`).
_REFUSED_CHARACTERS = r"\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}"
PURPOSE_PATTERN = rf"^[^{_REFUSED_CHARACTERS} ](?:[^{_REFUSED_CHARACTERS}]*[^{_REFUSED_CHARACTERS} ])?$"
Purpose = Annotated[str | None, Header(alias="X-Purpose", description=f"why this read (kept in the access log): one "
                                       f"line of UTF-8 text, at most {PURPOSE_CHARS_MAX} characters",
                                       json_schema_extra={"minLength": 1, "maxLength": PURPOSE_CHARS_MAX,
                                                          "pattern": PURPOSE_PATTERN})]


class ErrorBody(BaseModel):
    detail: str


# The answers, as the OpenAPI description publishes them. The endpoints return the read side's dictionaries as they
# are (FastAPI does not pass them through these models on every request); tests/e2e/test_api_contract.py checks that
# every answer of the running API has exactly this shape (no member missing, none added).

class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProgramBalance(_Answer):
    employer: int = Field(description="the employer's contributions, rupiah")
    worker: int = Field(description="the worker's contributions, rupiah")
    contributions: int = Field(description="employer + worker, rupiah")
    yield_: int = Field(alias="yield", description="development yield credited (JHT only; 0 for the others), rupiah")
    claims_count: int = Field(description="claims paid, net of reversals")
    claims: int = Field(description="claims paid, net of reversals, rupiah")


class JhtBalance(ProgramBalance):
    balance: int = Field(description="contributions + yield - claims, rupiah")


class Programs(_Answer):
    JHT: JhtBalance
    JKK: ProgramBalance
    JKM: ProgramBalance
    JP: ProgramBalance


class MemberBalance(_Answer):
    kpj: str
    as_of: date
    branch: str
    segment: str = Field(description="PU (wage earner) or BPU (informal)")
    npp: str | None = Field(description="the employer's NPP; null for a BPU member who pays for themself")
    enrolled_on: date
    exited_on: date | None = Field(description="the exit date, when on or before as_of")
    exit_reason: str | None
    jht_balance: int = Field(description="rupiah")
    fines_paid_by_employer: int = Field(description="late fines paid for this member's months, rupiah")
    movements: int = Field(description="money movements up to as_of")
    programs: Programs


class Movement(_Answer):
    date_: date = Field(alias="date", description="effective date")
    kind: str = Field(description="contribution, contribution-reversal, yield, claim or claim-reversal")
    event_id: str
    month: str | None = Field(description="the contribution month YYYY-MM, for contributions")
    contributions: int = Field(description="every program's contributions of the movement, rupiah")
    jht_contribution: int = Field(description="rupiah")
    fine: int = Field(description="rupiah")
    yield_: int = Field(alias="yield", description="rupiah")
    claim_program: str | None
    claim: int = Field(description="rupiah")
    jht_balance: int = Field(description="the JHT balance after this movement, rupiah")


class ContributionTotals(_Answer):
    employer: int
    worker: int
    total: int


class ClaimTotals(_Answer):
    count: int
    amount: int


class ProgramContributions(_Answer):
    JHT: ContributionTotals
    JKK: ContributionTotals
    JKM: ContributionTotals
    JP: ContributionTotals


class ProgramClaims(_Answer):
    JHT: ClaimTotals
    JKK: ClaimTotals
    JKM: ClaimTotals
    JP: ClaimTotals


class EmployersByKind(_Answer):
    company: int
    government: int


class MonthTotals(_Answer):
    month: str = Field(description="contribution month YYYY-MM")
    JHT: int
    JKK: int
    JKM: int
    JP: int
    fines: int
    total: int


class CollectionFigures(_Answer):
    billed: int = Field(description="bills counting by as_of (from their counts_from date), rupiah")
    settled: int = Field(description="the amounts of those bills settled by as_of, rupiah")
    outstanding: int = Field(description="the amounts of those bills not settled by as_of: billed = settled + "
                                         "outstanding, rupiah")
    fines_applied: int = Field(description="the late fines settled with them, rupiah")
    applied: int = Field(description="money applied to bills: settled + fines_applied, rupiah")
    received: int = Field(description="money received by as_of, rupiah")
    unapplied: int = Field(description="money received and neither applied nor refunded: received = applied + "
                                       "unapplied + refunded, rupiah")
    refunded: int = Field(description="money refunded by as_of, rupiah")
    returned: int = Field(description="money received by mistake and returned as a bank error by as_of, rupiah: "
                                      "received is net of it")
    held: int = Field(description="money the bank credited to the branch by as_of that named no known payer and was "
                                  "not matched to its payer by as_of, rupiah")
    held_count: int = Field(description="the bank credits held, as counted in held")
    held_matched_later: int = Field(description="the part of held matched to its payer after as_of, which received "
                                                "counts too (a matched receipt is dated the day the money arrived), "
                                                "rupiah")
    paid_without_bill: int = Field(description="money of payments without a bill (ledger contribution pay) made by "
                                               "as_of, net of their lines reversed by as_of, rupiah; beside the bills' "
                                               "figures, not in billed nor received")
    paid_without_bill_count: int = Field(description="payments without a bill made by as_of")
    paid_without_bill_reversed: int = Field(description="their lines reversed by as_of, rupiah")


class BranchTotals(_Answer):
    branch: str
    as_of: date
    active_pu_members: int
    active_employers: int
    active_employers_by_kind: EmployersByKind
    registered_employers: int
    bpu_members_enrolled: int
    bpu_members_active: int
    contributions: ProgramContributions
    contributions_total: int
    late_fines: int
    claims: ProgramClaims
    claims_total: ClaimTotals
    months: list[MonthTotals]
    collections: CollectionFigures | None = Field(description="bills and money as of as_of (collections projection); "
                                                              "null while that projection has not been built")


class ArrearsBill(_Answer):
    bill_id: str
    month: str = Field(description="the contribution month billed, YYYY-MM")
    segment: str = Field(description="PU (wage earner) or BPU (informal)")
    payment_code: str = Field(description="the code the payer quotes at the bank")
    due_date: date
    months_overdue: int = Field(description="whole months since the due date, a started month counting as one")
    bucket: str = Field(description="the aging bucket: 1, 2-3, 4-6, 7-12 or >12 (months overdue)")
    amount: int = Field(description="the bill's contributions, rupiah")
    fine: int = Field(description="the late fine accrued by as_of (PU only; 2% a month, rounded per member line), "
                                  "rupiah")
    total: int = Field(description="amount + fine, rupiah")


class ArrearsPayer(_Answer):
    payer: str = Field(description="employer, or member (a self-paying BPU member)")
    npp: str | None = Field(description="the employer's NPP; null for a member")
    kpj: str | None = Field(description="the member's KPJ; null for an employer")
    bills: list[ArrearsBill] = Field(description="its overdue bills, oldest first")
    amount: int = Field(description="rupiah")
    fine: int = Field(description="rupiah")
    total: int = Field(description="rupiah")
    months_overdue: int = Field(description="of its oldest overdue bill")
    credit: int = Field(description="money received from the payer by as_of and neither applied nor refunded: a bill "
                                    "is settled only whole, with its fine, rupiah")


class AgingBucket(_Answer):
    bucket: str = Field(description="1, 2-3, 4-6, 7-12 or >12 months overdue")
    bills: int
    amount: int
    fine: int
    total: int


class ArrearsTotals(_Answer):
    payers: int
    employers: int
    members: int
    bills: int
    amount: int
    fine: int
    total: int
    credit: int = Field(description="the credit of the payers listed")
    held: int = Field(description="money the bank credited to the branch by as_of that named no known payer and was "
                                  "not matched by as_of (some of it may be these payers'), rupiah")
    held_count: int = Field(description="the bank credits held, as counted in held")


class Arrears(_Answer):
    branch: str
    as_of: date
    payers: list[ArrearsPayer] = Field(description="payers with bills overdue on as_of, most months overdue first")
    buckets: list[AgingBucket] = Field(description="the five aging buckets, in order, each present")
    totals: ArrearsTotals = Field(description="the sums of the payers' rows, and of the buckets")


class TrialBalanceAccount(_Answer):
    code: str = Field(description="the account's code (ledger books chart)")
    name: str
    kind: str = Field(description="asset, liability, fund, income or expense")
    debits: int = Field(description="its debits up to as_of, rupiah")
    credits: int = Field(description="its credits up to as_of, rupiah")
    debit: int = Field(description="its balance when debits exceed credits (else 0), rupiah")
    credit: int = Field(description="its balance when credits exceed debits (else 0), rupiah")


class TrialBalanceTotals(_Answer):
    debits: int
    credits: int
    debit: int = Field(description="the debit column's total, rupiah")
    credit: int = Field(description="the credit column's total, rupiah")


class TrialBalance(_Answer):
    branch: str | None = Field(description="the branch; null for the whole fund")
    as_of: date
    accounts: list[TrialBalanceAccount] = Field(description="every account open on as_of, and any other with a "
                                                            "movement, in code order")
    totals: TrialBalanceTotals
    balanced: bool = Field(description="the debit and credit columns are equal")
    difference: int = Field(description="debit column - credit column, rupiah: 0 when balanced")


class AccountDay(_Answer):
    date_: date = Field(alias="date")
    debit: int = Field(description="rupiah")
    credit: int = Field(description="rupiah")
    balance: int = Field(description="the closing balance of the day, on the account's normal side, rupiah")


class AccountActivity(_Answer):
    account: str = Field(description="the account's code")
    name: str
    kind: str = Field(description="asset, liability, fund, income or expense")
    normal_side: str = Field(description="debit or credit: the side its balances are shown on (below zero: the "
                                         "other side)")
    branch: str | None
    from_: date = Field(alias="from")
    to: date
    opening_on: date = Field(description="the day before from")
    opening: int = Field(description="the balance at the end of opening_on, rupiah")
    days: list[AccountDay] = Field(description="each day of the period with a movement, in date order")
    debits: int = Field(description="the period's debits, rupiah")
    credits: int = Field(description="the period's credits, rupiah")
    closing: int = Field(description="the balance at the end of to, rupiah: opening + the days' movements")


class JournalLeg(_Answer):
    account: str
    account_name: str
    program: str = Field(description="JHT, JKK, JKM, JP, or - (no program)")
    debit: int = Field(description="rupiah")
    credit: int = Field(description="rupiah")


class JournalEntry(_Answer):
    date_: date = Field(alias="date", description="the entry's date")
    event_id: str
    position: int = Field(description="the event's position in the log")
    type: str = Field(description="the event type that made the entry")
    branch: str
    kpj: str | None = Field(description="the member, for a contribution line or a self-paying member's money")
    npp: str | None = Field(description="the employer or paying body")
    reference: str | None = Field(description="the payment, bill, bank reference, refund or claim it belongs to")
    legs: list[JournalLeg] = Field(description="its debits and credits, which are equal")


class JournalPage(_Answer):
    branch: str
    from_: date = Field(alias="from")
    to: date
    account: str | None = Field(description="the account asked for (its code); null for every entry")
    entries: list[JournalEntry] = Field(description="in (date, position) order")
    next: str | None = Field(description="the cursor of the next page (`after`); null on the last page")


class Health(_Answer):
    status: str


class Problem(BaseModel):
    type: str
    loc: list[str | int]
    msg: str


class ValidationErrorBody(BaseModel):
    detail: list[Problem]


Responses = dict[int | str, dict[str, Any]]


def _error(description: str, **headers: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description,
            "headers": {name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
                        for name, text in headers.items()}}


UNAUTHENTICATED: Responses = {
    401: _error("no bearer token, or one that is malformed, badly signed, expired, or not for this API",
                WWW_Authenticate="`Bearer`, with `error=\"invalid_token\"` when a token was given")}
REFUSALS: Responses = {
    **UNAUTHENTICATED,
    403: _error("the token's role or scope does not cover this member or branch"),
    422: {"model": ValidationErrorBody, "description": "a malformed parameter or header: each problem's loc, type "
                                                       "and msg, never the value"},
    429: _error("more reads in the last minute than the reader is allowed",
                Retry_After="seconds until the next read is allowed"),
    503: _error("the projection has not been built yet, or the access log cannot be written"),
}
MEMBER_RESPONSES: Responses = {**REFUSALS, 404: _error("no such member (told only to a reader who may read every "
                                                       "member, or the member a member-service token acts for)")}
BRANCH_RESPONSES: Responses = {**REFUSALS, 404: _error("no such branch (told only to a reader who may read it)")}


def _answer(model: type[BaseModel] | Any, description: str) -> Responses:
    return {200: {"model": model, "description": description}}

# Entries in one page of `GET /branches/{branch}/journal`: a day of a large branch is a few thousand; `next` pages on.
JOURNAL_PAGE_ENTRIES_MAX = 1_000
JOURNAL_PAGE_ENTRIES_DEFAULT = 100
FUND_RESPONSES: Responses = {**REFUSALS}


def _from_after_to(start: date, end: date) -> None:
    if start > end:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "from"),
                                       "msg": f"from {start} is after to {end}"}])


def journal_page(read_side: ReadSide, reader: Reader, branch: str, start: date, end: date, account: str | None,
                 limit: int, after: str | None) -> dict[str, Any]:
    """A page of `GET /branches/{branch}/journal`: `limit` entries after the cursor `after`, and the next cursor
    when more follow. The journal's snapshot is closed before the page is returned."""
    _from_after_to(start, end)
    chosen = chart_account(account) if account is not None else None
    page, more = read_side.journal_page(reader, start, end, limit, endpoint="GET /branches/{branch}/journal",
                                        account=chosen, branch=branch,
                                        after=parse_journal_cursor(after) if after else None)
    return {"branch": branch, "from": start.isoformat(), "to": end.isoformat(),
            "account": chosen.code if chosen else None, "entries": page,
            "next": journal_cursor((page[-1]["date"], page[-1]["position"])) if more else None}


STATUS: dict[type[LedgerError], int] = {Unauthenticated: 401, Forbidden: 403, NotFound: 404, RateLimited: 429,
                                        NotProjected: 503, AccessLogUnavailable: 503}


async def _reader(request: Request, token: str | None, purpose: str | None) -> Reader:
    """The reader of the request's token, on the event loop when the token is remembered (a dictionary look-up); a
    token checked afresh (a signature, perhaps a fetch of the JWKS) in the worker threads, off the event loop. A sync
    dependency would take every request through the thread pool once more than the endpoint, a third of the cost the
    API added to a read (`scripts/bench api`, docs/benchmarks.md)."""
    if not token:
        raise Unauthenticated(NO_CREDENTIALS, token_given=False)
    verifier: TokenVerifier = request.app.state.token_verifier
    reader = verifier.remembered(token)
    if reader is None:
        reader = await run_in_threadpool(verifier.verify, token)
    # Checked once the token is: a request without a valid token learns nothing but 401.
    if purpose is not None:
        purpose = utf8_header(purpose)
        if purpose is None or not purpose_ok(purpose):
            raise RequestValidationError([{"type": "string_pattern_mismatch", "loc": ("header", "X-Purpose"),
                                           "msg": f"one line of UTF-8 text, at most {PURPOSE_CHARS_MAX} characters"}])
    return replace(reader, purpose=purpose)


def utf8_header(value: str) -> str | None:
    """A header's text as the client wrote it, or None if it is not UTF-8. The server hands a header over as its
    bytes read as Latin-1, so "Bu Siti \u2014 keluhan" would be logged as mojibake, and the bytes of a right-to-left
    override or a byte-order mark would pass as Latin-1 letters; decoded, each is the character it is, and checked
    as such."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def purpose_ok(purpose: str) -> bool:
    """One line of printable text, as the access log keeps it (the characters it refuses, refused here first)."""
    return (0 < len(purpose) <= PURPOSE_CHARS_MAX
            and not any(unicodedata.category(char) in REFUSED_CATEGORIES for char in purpose))


async def current_reader(request: Request, credentials: Credentials, purpose: Purpose = None) -> Reader:
    """The reader of a JSON request: from the `Authorization: Bearer` header only. Raises `Unauthenticated` (401)."""
    return await _reader(request, credentials.credentials if credentials else None, purpose)


async def browser_reader(request: Request, credentials: Credentials, purpose: Purpose = None,
                         ledger_token: Annotated[str | None, Cookie(include_in_schema=False)] = None) -> Reader:
    """The reader of a console page: the bearer header, or else the `ledger_token` cookie of the login form."""
    return await _reader(request, credentials.credentials if credentials else ledger_token, purpose)


CurrentReader = Annotated[Reader, Depends(current_reader)]


async def refused(_request: Request, error: Exception) -> JSONResponse:
    """422, listing each problem's type, loc and msg, never the value given."""
    assert isinstance(error, RequestValidationError)
    problems = [{"type": item["type"], "loc": list(item["loc"]), "msg": item["msg"]} for item in error.errors()]
    return JSONResponse(status_code=422, content={"detail": problems})


async def refusal(_request: Request, error: Exception) -> JSONResponse:
    """The read side's refusals, with their status (`STATUS`) and headers; any other error is a bug, answered 500."""
    status = next((code for kind, code in STATUS.items() if isinstance(error, kind)), None)
    if status is None:
        raise error
    headers = {}
    if isinstance(error, Unauthenticated):
        headers["WWW-Authenticate"] = 'Bearer realm="ledger"' + (', error="invalid_token"' if error.token_given else "")
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(error.retry_after_s)
    return JSONResponse(status_code=status, content={"detail": str(error)}, headers=headers)


def server(app: FastAPI) -> uvicorn.Server:
    """The HTTP server that answers with `app` (uvicorn, one process), run on a socket bound by the caller: `ledger
    serve`'s, and the API benchmark's (`scripts/bench api`), which measures the API as it is served."""
    return uvicorn.Server(uvicorn.Config(app, log_level="warning"))


class NoStore:
    """`Cache-Control: no-store` on every response that does not set its own: a member's balance or history must not
    be kept by a browser's cache, or by a proxy in between (a member portal often sits behind one), where the next
    user of the machine or the proxy's operator would read it unlogged. A plain ASGI middleware: it only adds a
    header to the response's start, and costs a read nothing measurable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_no_store(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_no_store)


def books_routes(app: FastAPI, read_side: ReadSide, clock: Callable[[], date]) -> None:
    """The books (issue 18), from the general_ledger projection: a branch's trial balance, account and journal in the
    scope of its totals; the fund's trial balance for a reader who may read every branch."""

    @app.get("/branches/{branch}/trial-balance", summary="A branch's trial balance on a date: every account's "
                                                         "balance in the debit or the credit column, and the totals",
             response_model=None, responses={**_answer(TrialBalance, "the trial balance"), **BRANCH_RESPONSES})
    def branch_trial_balance(reader: CurrentReader, branch: BranchPath, as_of: AsOf = None) -> dict[str, Any]:
        return read_side.trial_balance(reader, as_of or clock(), branch)

    @app.get("/books/trial-balance", summary="The whole fund's trial balance on a date (a reader of every branch)",
             response_model=None, responses={**_answer(TrialBalance, "the trial balance"), **FUND_RESPONSES})
    def fund_trial_balance(reader: CurrentReader, as_of: AsOf = None) -> dict[str, Any]:
        return read_side.trial_balance(reader, as_of or clock(), None)

    @app.get("/branches/{branch}/accounts/{account}", summary="An account's running balance in a branch over a "
                                                              "period: opening, each day's movements, closing",
             response_model=None, responses={**_answer(AccountActivity, "the account"), **BRANCH_RESPONSES})
    def branch_account(reader: CurrentReader, branch: BranchPath, account: AccountPath, start: From, end: To
                       ) -> dict[str, Any]:
        _from_after_to(start, end)
        return read_side.account_activity(reader, chart_account(account), start, end, branch)

    @app.get("/branches/{branch}/journal", summary="A branch's journal between two dates, a page of entries with "
                                                   "their legs, in date and event order",
             response_model=None, responses={**_answer(JournalPage, "a page of the journal"), **BRANCH_RESPONSES})
    def branch_journal(
            reader: CurrentReader, branch: BranchPath, start: From, end: To,
            account_code: Annotated[str | None, Query(alias="account", pattern=ACCOUNT_PATTERN, description=(
                "only the entries with a leg on this account: its code or name (ledger books chart)"))] = None,
            limit: Annotated[int, Query(ge=1, le=JOURNAL_PAGE_ENTRIES_MAX, description="entries in the page")]
            = JOURNAL_PAGE_ENTRIES_DEFAULT,
            after: Annotated[str | None, Query(pattern=JOURNAL_CURSOR_PATTERN, description=(
                "the previous page's `next`: the entries after it"))] = None,
    ) -> dict[str, Any]:
        return journal_page(read_side, reader, branch, start, end, account_code, limit, after)


def create_app(settings: Settings, store: ViewStore | None = None, *, access_log: AccessLogWriter | None = None,
               clock: Callable[[], date] = date.today, limiter: RateLimiter | None = None) -> FastAPI:
    """The API over `store` (default: the configured one), recording reads of members' data in `access_log`.
    `clock` gives the date an omitted `as_of` stands for: today on this machine, like the ledger's clock. Raises
    `ConfigurationError` when the token settings are missing or wrong (`Settings.api_token_verification`)."""
    verifier = TokenVerifier.from_settings(settings)
    if access_log is None:
        raise ConfigurationError("the API records every read of a member's data in the access log: none was given")
    views = store or ViewStore.open(settings)
    read_side = ReadSide(views, access_log, limiter=limiter)
    app = FastAPI(title="Contribution ledger: read API",
                  description="Member balances, member history, branch totals and the fund's books from the "
                              "ledger's projections, at any effective date. Read-only. Every endpoint but /health "
                              "needs a bearer token; what it may read depends on its role (docs/projections.md).",
                  version="1")
    app.state.token_verifier = verifier
    app.state.read_side = read_side
    app.add_exception_handler(RequestValidationError, refused)
    app.add_exception_handler(LedgerError, refusal)
    app.add_middleware(NoStore)

    @app.get("/health", summary="Whether the API answers (no token needed, no data)", response_model=None,
             responses=_answer(Health, "the API answers"))
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/members/{kpj}/balance", summary="A member's balance per program as of a date", response_model=None,
             responses={**_answer(MemberBalance, "the member's balance"), **MEMBER_RESPONSES})
    def member_balance(reader: CurrentReader, kpj: KpjPath, as_of: AsOf = None) -> dict[str, Any]:
        return read_side.member_balance(reader, kpj, as_of or clock(), endpoint="GET /members/{kpj}/balance")

    @app.get("/members/{kpj}/history", summary="A member's money movements with the JHT balance after each",
             response_model=None,
             responses={**_answer(list[Movement], "the movements, oldest first"), **MEMBER_RESPONSES})
    def member_history(reader: CurrentReader, kpj: KpjPath,
                       start: Annotated[IsoDate | None, Query(alias="from", description="first date, YYYY-MM-DD; "
                                                                                    "not after `to` (422)")] = None,
                       end: Annotated[IsoDate | None, Query(alias="to", description="last date, YYYY-MM-DD")] = None,
                       ) -> list[dict[str, Any]]:
        if start and end and start > end:
            raise RequestValidationError([{"type": "value_error", "loc": ("query", "from"),
                                           "msg": f"from {start} is after to {end}"}])
        return read_side.member_history(reader, kpj, start, end, endpoint="GET /members/{kpj}/history")

    @app.get("/branches/{branch}/totals", summary="A branch's members, employers, contributions, fines and claims",
             response_model=None, responses={**_answer(BranchTotals, "the branch report"), **BRANCH_RESPONSES})
    def branch_totals(reader: CurrentReader, branch: BranchPath, as_of: AsOf = None) -> dict[str, Any]:
        return read_side.branch_report(reader, branch, as_of or clock())

    @app.get("/branches/{branch}/arrears", summary="A branch's overdue bills per employer and BPU member, with months "
                                                   "overdue, late fines accrued and aging buckets",
             response_model=None, responses={**_answer(Arrears, "the arrears report"), **BRANCH_RESPONSES})
    def branch_arrears(reader: CurrentReader, branch: BranchPath, as_of: AsOf = None) -> dict[str, Any]:
        return read_side.arrears(reader, branch, as_of or clock(), endpoint="GET /branches/{branch}/arrears")

    books_routes(app, read_side, clock)

    # The console's HTML pages (docs/console.md): the same read side, the same token verification.
    app.include_router(console.router(read_side, views, settings, authenticate=verifier.verify, clock=clock))
    return app
