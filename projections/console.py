"""The console: server-rendered HTML pages under /console for auditors, branch staff, member service and operators.

Every page is HTML made on the server from Jinja2 templates (projections/templates/, autoescaped) with charts drawn
as SVG (projections.charts); no page runs a script, and the Content-Security-Policy forbids one. The console reads
through the same read side as the JSON API, with the same `Reader`: a page's figures are the API's figures, scope is
checked in the query layer (a branch-staff token opens its own branches and their members, nothing else), and a look
at a member is written to the access log before the page is sent.

Logging in: the login page takes a token (the same bearer token the API takes) in a form; a valid one is kept in the
cookie `ledger_token` (HttpOnly: no script reads it; SameSite=Strict: no other site's page sends it; Path=/console:
the JSON API never sees it, it takes only the Authorization header; Secure when the console is served over https).
A request may also carry the token as `Authorization: Bearer`. Logging out clears the cookie. A token that is missing,
refused or expired answers 401 with the login page; a page the token may not open, 403; an unknown member, branch or
page, 404; a projection not yet built, Kafka out of reach or the access log unavailable, 503: each as an HTML page.

Pages, each built by a function that takes the `Reader` (`index_page`, `branch_page`, `account_page`, `member_page`,
`operator_page`) and renders one template:
- `/console/`: links to what the token may open;
- `/console/branches/{code}?as_of=YYYY-MM-DD`: the branch report, charts of contributions per program per month and
  of claims per program, tables of the same figures, and the branch's trial balance (from the general ledger);
- `/console/branches/{code}/accounts/{account}?as_of=YYYY-MM-DD`: an account's running balance in the branch over
  the month of the date, up to the date (each account of the branch page's trial balance links to it);
- `/console/members/{kpj}?as_of=YYYY-MM-DD`: the member's balance per program, the JHT balance over time as a chart,
  the movements, and per movement a download of its receipt (`ledger audit prove`'s proof bundle, as JSON);
- `/console/operator`: the projections' versions, lag and last update, the relay's last commit, and the latest
  checkpoint verified with the log's key (operators and auditors only).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qs, quote

import jinja2
import orjson
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from ledger.audit.proofs import prove_event
from ledger.books import ACCOUNTS, Account
from ledger.errors import (
    AccessLogUnavailable,
    ConfigurationError,
    Forbidden,
    InvalidInput,
    KafkaUnavailable,
    LedgerError,
    NotFound,
    NotProjected,
    RateLimited,
    ReceiptsBusy,
    RelayStateInvalid,
    TopicUnreadable,
    Unauthenticated,
    Unprovable,
)
from ledger.publishing import kafka_client, relay
from ledger.publishing.topics import Topics
from ledger.settings import Settings
from ledger.tlog.note import b64encode
from projections import charts, queries, runner
from projections.access import Reader, Role
from projections.store import ViewStore
from projections.views import PROGRAMS

PREFIX = "/console"
COOKIE = "ledger_token"
TOKEN_CHARS_MAX = 8_192  # a JWT with a few claims is well under 2 kB; anything this long is not a token
LOGIN_BODY_BYTES_MAX = 16_384  # the login form: the token and where to go next, form-encoded
NEXT_CHARS_MAX = 300
RECEIPTS_AT_ONCE_MAX = 2  # a receipt reads the whole events topic: at most this many at a time, then 503
AS_OF_CHARS_MAX = 10
# ASCII digits only: Python's `\d` also matches other scripts' digits (Arabic-Indic, Devanagari, ...).
KPJ = re.compile(r"[0-9]{11}")
BRANCH = re.compile(r"[A-Z0-9-]{2,40}")
ACCOUNT_CODE = re.compile(r"[0-9]{4}")  # the chart's codes (ledger.books.CHART)
EVENT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.[0-9]{1,9}")
SECURITY_HEADERS = {
    # No script, no frame, no plugin; styles inline (the pages' own and pygal's); forms post only here.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    # Other sites get no referrer (a URL holds a KPJ); this one gets its origin on posts (`_same_origin`).
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",  # member data must not stay in a shared browser's cache
}


class Reads(Protocol):
    """What the pages read through: `queries.ReadSide` (scope, rate limit and access log in the query layer)."""

    def member_balance(self, reader: Reader, kpj: str, as_of: date, *, endpoint: str) -> dict[str, Any]: ...

    def member_history(self, reader: Reader, kpj: str, start: date | None, end: date | None, *,
                       endpoint: str) -> list[dict[str, Any]]: ...

    def branch_report(self, reader: Reader, branch: str, as_of: date) -> dict[str, Any]: ...

    def trial_balance(self, reader: Reader, as_of: date, branch: str | None = None) -> dict[str, Any]: ...

    def account_activity(self, reader: Reader, account: Account, start: date, end: date,
                         branch: str | None = None) -> dict[str, Any]: ...


Authenticate = Callable[[str], Reader]  # a token -> its Reader; raises Unauthenticated (or Forbidden)


# --- Pages' data: each takes the Reader, and asks the read side, which checks its scope. -----------------------------

def index_page(reader: Reader, store: ViewStore) -> dict[str, Any]:
    """What the token may open: branch codes are not personal data, so an auditor is shown every known branch."""
    branches: list[str] = []
    if reader.role == Role.AUDITOR:
        try:
            branches = queries.branch_codes(store)
        except NotProjected:
            branches = []
    elif reader.role == Role.BRANCH_STAFF:
        branches = sorted(reader.branches)
    return {"branches": branches, "member": reader.kpj if reader.role == Role.MEMBER_SERVICE else None,
            "member_lookup": reader.role in (Role.AUDITOR, Role.BRANCH_STAFF),
            "operator": may_operate(reader)}


# What builds the general ledger: the branch page says so in place of the trial balance while it is not built.
BUILD_BOOKS = "ledger projections rebuild general_ledger"


def branch_page(read: Reads, reader: Reader, branch: str, as_of: date) -> dict[str, Any]:
    """The branch report, its charts, and the branch's trial balance on the same date. The report is read first (its
    scope check and rate limit; no such branch is NotFound there); the trial balance is a second read with the same
    checks. Without the general ledger built (NotProjected) the rest of the page still shows, and the trial
    balance's section says so and what to run."""
    report = read.branch_report(reader, branch, as_of)
    trial: dict[str, Any] | None = None
    try:
        trial = read.trial_balance(reader, as_of, branch)
    except NotProjected:  # not built, or built by an earlier release: either way, a rebuild builds it
        trial = None
    month_chart = charts.contributions_by_month(report["months"], PROGRAMS, chart_id="contributions-chart",
                                                title=f"Contributions per program per month, {branch}")
    claims_chart = charts.claims_by_program(report["claims"], chart_id="claims-chart",
                                            title=f"Claims paid per program, {branch}")
    return {"report": report, "programs": PROGRAMS, "branch": branch, "as_of": report["as_of"],
            "month_chart": month_chart, "claims_chart": claims_chart, "trial": trial, "build_books": BUILD_BOOKS,
            "chart_codes": set(ACCOUNTS)}


def account_page(read: Reads, reader: Reader, branch: str, code: str, as_of: date) -> dict[str, Any]:
    """An account of the chart in a branch: its running balance over the month of `as_of`, from the 1st to `as_of`
    (`queries.account_activity`, the scope of the branch's trial balance). An account not in the chart is NotFound;
    without the general ledger built, NotProjected (the 503 page)."""
    account = ACCOUNTS.get(code)
    if account is None:
        raise NotFound(f"no account {code} in the chart of accounts (`ledger books chart`)")
    activity = read.account_activity(reader, account, as_of.replace(day=1), as_of, branch)
    return {"activity": activity, "branch": branch, "as_of": as_of.isoformat(), "account": account}


def member_page(read: Reads, reader: Reader, kpj: str, as_of: date, *, receipts: bool) -> dict[str, Any]:
    endpoint = f"GET {PREFIX}/members/{{kpj}}"
    balance = read.member_balance(reader, kpj, as_of, endpoint=endpoint)
    history = read.member_history(reader, kpj, None, as_of, endpoint=endpoint)
    chart = charts.jht_balance_over_time(history, chart_id="balance-chart", title=f"JHT balance of member {kpj}",
                                         until=as_of)
    return {"balance": balance, "history": history, "programs": PROGRAMS, "kpj": kpj, "as_of": balance["as_of"],
            "balance_chart": chart, "receipts": receipts}


def may_operate(reader: Reader) -> bool:
    """The operator page shows no member or branch data: operators and auditors open it."""
    return reader.role in (Role.OPERATOR, Role.AUDITOR)


def _when(timestamp_ms: int | None) -> str | None:
    if timestamp_ms is None:
        return None
    return datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat(timespec="seconds")


def _age_s(timestamp_ms: int | None, now_ms: int) -> int | None:
    return None if timestamp_ms is None else max(0, (now_ms - timestamp_ms) // 1000)


def operator_page(reader: Reader, settings: Settings) -> dict[str, Any]:
    """The projections' status (`ledger projections status`), the relay's last commit on its state topic, and the
    latest checkpoint the newest of the log's keys verifies, with what it covers compared to the events topic."""
    if not may_operate(reader):
        raise Forbidden(f"{reader.subject} ({reader.role}) may not open the operator page: operators and auditors do")
    kafka, topics = settings.kafka(), Topics.for_prefix(settings.kafka_topic_prefix)
    now_ms = int(time.time() * 1000)
    try:
        projections = runner.status(settings)
        state, committed_ms = relay.last_commit(kafka, topics)
        logs = settings.log_verifiers()
        signed = relay.last_signed_checkpoint(kafka, topics.checkpoints, logs[-1]) if logs else None
    except (kafka_client.KafkaError, TimeoutError) as error:
        raise KafkaUnavailable(f"Kafka at {kafka.servers} did not answer: {error}") from None
    checkpoint = None
    if signed is not None:
        checkpoint = {"size": signed.checkpoint.size, "root": b64encode(signed.checkpoint.root_hash),
                      "offset": signed.offset, "committed_at": _when(signed.timestamp_ms),
                      "age_s": _age_s(signed.timestamp_ms, now_ms), "key": f"{logs[-1].name}+{logs[-1].key_id:08x}",
                      "passed_over": signed.passed_over,
                      "covers_relay_state": signed.checkpoint.size == state.position}
    return {
        "projections": projections,
        "relay": {"notification_id": state.notification_id, "position": state.position,
                  "committed_at": _when(committed_ms), "age_s": _age_s(committed_ms, now_ms)},
        "events_topic": topics.events,
        "checkpoint": checkpoint, "log_keys": [f"{one.name}+{one.key_id:08x}" for one in logs],
        "checkpoints_topic": topics.checkpoints,
    }


def receipt(read: Reads, reader: Reader, settings: Settings, kpj: str, event_id: str,
            gate: threading.BoundedSemaphore) -> dict[str, Any]:
    """The member's receipt for one of their movements: `ledger audit prove EVENT_ID`'s proof bundle, with what it
    proves. The movement must be in the member's history as the reader may read it (scope checked, the look logged);
    an event of another member is NotFound here, whatever it is."""
    history = read.member_history(reader, kpj, None, None,
                                  endpoint=f"GET {PREFIX}/members/{{kpj}}/receipts/{{event_id}}")
    if not any(row["event_id"] == event_id for row in history):
        raise NotFound(f"member {kpj} has no movement {event_id}")
    logs = settings.log_verifiers()
    if not logs:
        raise ConfigurationError("receipts need the log's verifier key: set LEDGER_LOG_VERIFIER_KEYS on the server")
    if not gate.acquire(blocking=False):
        raise ReceiptsBusy(f"{RECEIPTS_AT_ONCE_MAX} receipts are being made: try again in a moment")
    try:
        kafka = settings.kafka()
        made = prove_event(kafka, Topics.for_prefix(settings.kafka_topic_prefix), event_id, logs)
    except (kafka_client.KafkaError, TimeoutError) as error:
        raise KafkaUnavailable(f"Kafka did not answer: {error}") from None
    finally:
        gate.release()
    return {"kpj": kpj, "event_id": event_id, "proves": made.summary, "bundle": made.data.decode("utf-8"),
            "check": "ledger audit check-proof FILE --key VERIFIER (FILE: the `bundle` text, saved as it is)"}


# --- HTTP ------------------------------------------------------------------------------------------------------------

def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(loader=jinja2.PackageLoader("projections", "templates"), autoescape=True,
                                     undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    environment.filters["rupiah"] = charts.rupiah
    environment.filters["count"] = lambda number: f"{int(number):,}".replace(",", ".")
    environment.filters["urlpart"] = lambda text: quote(str(text), safe="")
    return environment


# (status, title) of the error pages, by error type; the first match wins (subclasses first).
ERROR_PAGES: tuple[tuple[type[Exception], int, str], ...] = (
    (Forbidden, 403, "Not allowed"),
    (NotFound, 404, "Not found"),
    (ConfigurationError, 503, "Not available"),
    (InvalidInput, 422, "Not understood"),
    (RateLimited, 429, "Too many reads"),
    (NotProjected, 503, "Not available yet"),
    (AccessLogUnavailable, 503, "Not available"),
    (KafkaUnavailable, 503, "Not available"),
    (TopicUnreadable, 503, "Not available"),
    (RelayStateInvalid, 503, "Not available"),
    (Unprovable, 503, "No receipt"),
    (ReceiptsBusy, 503, "Busy"),
)


def _parse_date(text: str | None, default: date) -> date:
    if text is None or text == "":
        return default
    try:
        if len(text) > AS_OF_CHARS_MAX:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput("as_of must be a date YYYY-MM-DD") from None


def _checked(pattern: re.Pattern[str], text: str, what: str) -> str:
    if not pattern.fullmatch(text):
        raise NotFound(f"no such {what}")
    return text


def _safe_next(text: str | None) -> str:
    """Where to go after logging in: a console page of this server, never another site (an open redirect)."""
    if text and len(text) <= NEXT_CHARS_MAX and text.startswith(PREFIX + "/") and "//" not in text \
            and "\\" not in text and text.isprintable():
        return text
    return PREFIX + "/"


@dataclass
class _Console:
    """What the routes share: how to read, how to verify a token, the templates, and the receipts' gate."""

    read: Reads
    store: ViewStore
    settings: Settings
    authenticate: Authenticate
    clock: Callable[[], date]
    templates: jinja2.Environment = field(default_factory=_templates)
    receipts_gate: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(RECEIPTS_AT_ONCE_MAX))

    def html(self, template: str, status_code: int = HTTPStatus.OK, **context: Any) -> HTMLResponse:
        body = self.templates.get_template(template).render(prefix=PREFIX, **context)
        return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)

    def login_page(self, request: Request, status_code: int, message: str | None) -> HTMLResponse:
        """The login page, with the page asked for as where to go next; a 401 also drops a refused cookie."""
        asked = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        response = self.html("login.html", status_code, reader=None, message=message,
                             next=_safe_next(asked if request.url.path != f"{PREFIX}/login" else None))
        if status_code == HTTPStatus.UNAUTHORIZED:
            _drop_cookie(request, response)
        return response

    def reader_of(self, request: Request) -> Reader:
        """The Reader of the request's token: the Authorization header's bearer token, else the login cookie."""
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        token = credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else \
            request.cookies.get(COOKIE)
        if not token:
            raise Unauthenticated("log in with a token to open the console")
        if len(token) > TOKEN_CHARS_MAX:
            raise Unauthenticated("that is not a token")
        return self.authenticate(token)

    def page(self, request: Request, build: Callable[[Reader], Response]) -> Response:
        """Authenticate, build the page, and turn every operating error into its HTML page."""
        reader: Reader | None = None
        try:
            reader = self.reader_of(request)
            return build(reader)
        except Unauthenticated as error:
            return self.login_page(request, HTTPStatus.UNAUTHORIZED, str(error))
        except LedgerError as error:
            status_code, title = _error_page(error)
            response = self.html("error.html", status_code, reader=reader, status=status_code, title=title,
                                 message=str(error))
            if isinstance(error, RateLimited):
                response.headers["Retry-After"] = str(error.retry_after_s)
            return response

    async def log_in(self, request: Request) -> Response:
        if not _same_origin(request):
            return self.html("error.html", HTTPStatus.FORBIDDEN, reader=None, status=HTTPStatus.FORBIDDEN,
                             title="Not allowed", message="a login from another site's page is refused")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_BODY_BYTES_MAX:
                return self.html("login.html", HTTPStatus.REQUEST_ENTITY_TOO_LARGE, reader=None,
                                 message="that is not a token", next=PREFIX + "/")
        form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
        token = (form.get("token") or [""])[0].strip()
        target = _safe_next((form.get("next") or [""])[0])
        if not token or len(token) > TOKEN_CHARS_MAX:
            return self.html("login.html", HTTPStatus.UNAUTHORIZED, reader=None, message="paste a token to log in",
                             next=target)
        try:
            await run_in_threadpool(self.authenticate, token)
        except (Unauthenticated, Forbidden) as error:
            return self.html("login.html", HTTPStatus.UNAUTHORIZED, reader=None,
                             message=f"the token was refused: {error}", next=target)
        response = RedirectResponse(target, status_code=HTTPStatus.SEE_OTHER, headers=SECURITY_HEADERS)
        response.set_cookie(COOKIE, token, path=PREFIX, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")
        return response

    def log_out(self, request: Request) -> Response:
        if not _same_origin(request):
            return self.html("error.html", HTTPStatus.FORBIDDEN, reader=None, status=HTTPStatus.FORBIDDEN,
                             title="Not allowed", message="a logout from another site's page is refused")
        response = RedirectResponse(f"{PREFIX}/login", status_code=HTTPStatus.SEE_OTHER, headers=SECURITY_HEADERS)
        _drop_cookie(request, response)
        return response

    def branch(self, reader: Reader, code: str, as_of: str | None) -> Response:
        context = branch_page(self.read, reader, _checked(BRANCH, code, "branch"), _parse_date(as_of, self.clock()))
        return self.html("branch.html", reader=reader, **context)

    def account(self, reader: Reader, code: str, account: str, as_of: str | None) -> Response:
        context = account_page(self.read, reader, _checked(BRANCH, code, "branch"),
                               _checked(ACCOUNT_CODE, account, "account: a code of the chart, 4 digits"),
                               _parse_date(as_of, self.clock()))
        return self.html("account.html", reader=reader, **context)

    def member(self, reader: Reader, kpj: str, as_of: str | None) -> Response:
        context = member_page(self.read, reader, _checked(KPJ, kpj, "member: a KPJ is 11 digits"),
                              _parse_date(as_of, self.clock()), receipts=bool(self.settings.log_verifier_keys.strip()))
        return self.html("member.html", reader=reader, **context)

    def receipt(self, reader: Reader, kpj: str, event_id: str) -> Response:
        made = receipt(self.read, reader, self.settings, _checked(KPJ, kpj, "member: a KPJ is 11 digits"),
                       _checked(EVENT_ID, event_id, "movement"), self.receipts_gate)
        return Response(orjson.dumps(made, option=orjson.OPT_INDENT_2), media_type="application/json",
                        headers={**SECURITY_HEADERS,
                                 "Content-Disposition": f'attachment; filename="receipt-{event_id}.json"'})


def _drop_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path=PREFIX, secure=request.url.scheme == "https", httponly=True,
                           samesite="strict")


def _error_page(error: LedgerError) -> tuple[int, str]:
    for kind, status_code, title in ERROR_PAGES:
        if isinstance(error, kind):
            return status_code, title
    return HTTPStatus.INTERNAL_SERVER_ERROR, "Failed"


def _not_found(_reader: Reader) -> Response:
    raise NotFound("no such page in the console")


def router(read: Reads, store: ViewStore, settings: Settings, *, authenticate: Authenticate,
           clock: Callable[[], date] = date.today) -> APIRouter:
    """The console's routes: `read` answers with scope (queries.ReadSide), `authenticate` turns a token into its
    Reader (the same verification as the API's), `clock` gives the date an omitted `as_of` stands for."""
    pages = APIRouter(prefix=PREFIX, include_in_schema=False)
    app = _Console(read, store, settings, authenticate, clock)

    @pages.get("/login")
    def login_form(request: Request) -> HTMLResponse:
        return app.html("login.html", reader=None, message=None, next=_safe_next(request.query_params.get("next")))

    pages.post("/login")(app.log_in)
    pages.post("/logout")(app.log_out)

    @pages.get("/")
    def index(request: Request) -> Response:
        return app.page(request, lambda reader: app.html("index.html", reader=reader, **index_page(reader, store)))

    @pages.get("/members")
    def member_lookup(request: Request, kpj: str = "") -> Response:
        def build(_reader: Reader) -> Response:
            found = _checked(KPJ, kpj.strip(), "member: a KPJ is 11 digits")
            return RedirectResponse(f"{PREFIX}/members/{found}", status_code=HTTPStatus.SEE_OTHER,
                                    headers=SECURITY_HEADERS)
        return app.page(request, build)

    _branch_routes(pages, app)

    @pages.get("/members/{kpj}")
    def member(request: Request, kpj: str, as_of: str | None = None) -> Response:
        return app.page(request, lambda reader: app.member(reader, kpj, as_of))

    @pages.get("/members/{kpj}/receipts/{event_id}")
    def member_receipt(request: Request, kpj: str, event_id: str) -> Response:
        return app.page(request, lambda reader: app.receipt(reader, kpj, event_id))

    @pages.get("/operator")
    def operator(request: Request) -> Response:
        return app.page(request, lambda reader: app.html("operator.html", reader=reader,
                                                         **operator_page(reader, settings)))

    @pages.get("/{rest:path}")
    def unknown(request: Request) -> Response:
        return app.page(request, _not_found)

    return pages


def _branch_routes(pages: APIRouter, app: _Console) -> None:
    """A branch's page, and an account of its books."""

    @pages.get("/branches/{code}")
    def branch(request: Request, code: str, as_of: str | None = None) -> Response:
        return app.page(request, lambda reader: app.branch(reader, code, as_of))

    @pages.get("/branches/{code}/accounts/{account}")
    def branch_account(request: Request, code: str, account: str, as_of: str | None = None) -> Response:
        return app.page(request, lambda reader: app.account(reader, code, account, as_of))


def _same_origin(request: Request) -> bool:
    """A form post from a page of this server. Browsers say where a POST comes from: `Sec-Fetch-Site` (same-origin,
    or none when typed), and `Origin` (this server, or `null` from a page whose referrer policy hides it, which the
    console's `same-origin` policy does only towards other sites). Anything else is a cross-site request (a login or
    logout forged by another page), refused. Neither header (a script, curl): allowed, as no browser sent it."""
    fetched_from = request.headers.get("sec-fetch-site")
    if fetched_from is not None and fetched_from not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    host = request.headers.get("host", "")
    return origin in (f"http://{host}", f"https://{host}")
