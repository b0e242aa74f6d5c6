"""The command line's dates (`ledger.cli.common.parse_date`): the one form the docs give, YYYY-MM-DD, and nothing
else Python's `date.fromisoformat` would also read (a basic-format 20241231, an ISO week date 2024-W52-2): a bad date
is exit 2."""

from __future__ import annotations

from datetime import date

import pytest

from ledger.cli.common import parse_date
from ledger.errors import InvalidInput


def test_a_date_is_yyyy_mm_dd() -> None:
    assert parse_date("--as-of", "2024-12-31") == date(2024, 12, 31)


@pytest.mark.parametrize("text", ["20241231", "2024-W52-2", "2024W522", "2024-366", "2024-12-31T00:00", "2024-2-1",
                                  " 2024-12-31", "2024-02-30", "yesterday", "٢٠٢٤-١٢-٣١"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match=f"--as-of must be a date YYYY-MM-DD, got {text!r}"):
        parse_date("--as-of", text)
