"""Schemathesis hooks for tests/e2e/test_api_contract.py (loaded by `st run` through SCHEMATHESIS_HOOKS).

One documented rule of the API is beyond what OpenAPI can say: `GET /members/{kpj}/history` (and the books' account
and journal) refuse `from` after `to` with 422 (a constraint between two parameters; the description of `from` says
so). Schemathesis, knowing each
parameter alone, calls such a request valid and reports its refusal ("schema-valid request rejected"). That one
failure, for exactly that request and that refusal, is dropped; every other failure of every check stands, and the
422 itself is still checked against the description (status documented, content type, schema) like any answer.
"""

from __future__ import annotations

from typing import Any

import orjson
import schemathesis

PERIOD_PATHS = frozenset({"/members/{kpj}/history", "/branches/{branch}/accounts/{account}",
                          "/branches/{branch}/journal"})
REJECTED_POSITIVE_DATA = "ST202"


def from_after_to_refused(case: Any, response: Any) -> bool:
    """The answer is the documented refusal of a `from` after `to`: 422, naming the query parameter `from`."""
    query = case.query or {}
    start, end = query.get("from"), query.get("to")
    if case.operation.path not in PERIOD_PATHS or not (isinstance(start, str) and isinstance(end, str) and start > end):
        return False
    if response.status_code != 422:  # the status the description documents for it
        return False
    try:
        problems = orjson.loads(response.content)["detail"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return False
    return [(p.get("type"), p.get("loc")) for p in problems] == [("value_error", ["query", "from"])]


@schemathesis.hook
def filter_failure(_context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep every failure but "schema-valid request rejected" for the documented `from`-after-`to` refusal."""
    return not (failure.code == REJECTED_POSITIVE_DATA and from_after_to_refused(case, response))
