"""The read-only HTTP API over the projections (`ledger serve`); OpenAPI at /openapi.json, browsable at /docs.

Every endpoint answers from the live version of a projection, in one snapshot. Errors are JSON with a `detail`:
404 for an unknown member or branch, 422 for a malformed KPJ or date (FastAPI validates the parameters), 503 while a
projection has not been built yet. A 422 names the parameter and the problem but, unlike FastAPI's default, never
repeats the value: a NIK typed where a KPJ belongs would otherwise be echoed into responses and whatever logs them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

from fastapi import FastAPI, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from ledger.errors import NotFound, NotProjected
from ledger.settings import Settings
from projections import console, queries
from projections.store import ViewStore

KpjPath = Annotated[str, Path(pattern=r"^\d{11}$", description="the member's KPJ: 11 digits",
                              examples=["15000000001"])]
BranchPath = Annotated[str, Path(pattern=r"^[A-Z0-9-]{2,40}$", description="a branch code",
                                 examples=["BEKASI-KOTA"])]
T = TypeVar("T")
AsOf = Annotated[date | None, Query(description="effective date YYYY-MM-DD; default today")]


def create_app(settings: Settings, store: ViewStore | None = None, *,
               clock: Callable[[], date] = date.today,
               console_tokens: console.Authenticate | None = None) -> FastAPI:
    """The API over `store` (default: the configured one), and the console under /console. `clock` gives the date an
    omitted `as_of` stands for: today on this machine, like the ledger's clock. `console_tokens` verifies the
    console's tokens (STAND-IN until the API's token verification is merged: without it every token is refused)."""
    views = store or ViewStore.open(settings)
    app = FastAPI(title="Contribution ledger: read API",
                  description="Member balances, member history and branch totals from the ledger's projections, "
                              "at any effective date. Read-only.", version="1")

    @app.exception_handler(RequestValidationError)
    async def refused(_request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [{"type": item["type"], "loc": list(item["loc"]), "msg": item["msg"]} for item in error.errors()]
        return JSONResponse(status_code=422, content={"detail": problems})

    def answer(question: Callable[..., T], *args: Any) -> T:
        try:
            return question(views, *args)
        except NotFound as error:
            raise HTTPException(status_code=404, detail=str(error)) from None
        except NotProjected as error:
            raise HTTPException(status_code=503, detail=str(error)) from None

    @app.get("/members/{kpj}/balance", summary="A member's balance per program as of a date")
    def member_balance(kpj: KpjPath, as_of: AsOf = None) -> dict[str, Any]:
        return answer(queries.member_balance, kpj, as_of or clock())

    @app.get("/members/{kpj}/history", summary="A member's money movements with the JHT balance after each")
    def member_history(kpj: KpjPath,
                       start: Annotated[date | None, Query(alias="from", description="first date, YYYY-MM-DD")] = None,
                       end: Annotated[date | None, Query(alias="to", description="last date, YYYY-MM-DD")] = None,
                       ) -> list[dict[str, Any]]:
        if start and end and start > end:
            raise HTTPException(status_code=422, detail=f"from {start} is after to {end}")
        return answer(queries.member_history, kpj, start, end)

    @app.get("/branches/{branch}/totals", summary="A branch's members, employers, contributions, fines and claims")
    def branch_totals(branch: BranchPath, as_of: AsOf = None) -> dict[str, Any]:
        return answer(queries.branch_report, branch, as_of or clock())

    def no_tokens(_token: str) -> console.Reader:
        raise console.Unauthenticated("this server verifies no tokens yet")

    app.include_router(console.router(console.UnscopedReads(views), views, settings,
                                      authenticate=console_tokens or no_tokens, clock=clock))
    return app
