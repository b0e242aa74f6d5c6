"""Reading batch input for the CLI: a CSV of members to enroll, and a JSON-lines file of commands.

Both readers check everything before anything is written, and every error names where it is: the CSV's row number
(counting data rows from 1, as `EnrollMembers` does) and the JSON-lines file's line number. Both are bounded: a file
that is too long or has a line that is too long is refused, never read whole into memory first.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ledger.commands import BULK_ENROLLMENT_MAX, COMMAND_TYPES, Command, MemberRow, describe_validation_error
from ledger.errors import InvalidInput

CSV_REQUIRED_COLUMNS = ("kpj", "nik", "name", "birth_date", "wage")
CSV_OPTIONAL_COLUMNS = ("segment", "programs")
CSV_ROW_ERRORS_SHOWN_MAX = 10  # enough to fix a file in one pass; more would bury the first problem
CSV_CELL_CHARS_MAX = 1_000

SUBMIT_LINES_MAX = 1_000_000
# One line may hold a bulk enrollment of BULK_ENROLLMENT_MAX members, about 150 characters each.
SUBMIT_LINE_CHARS_MAX = 32 * 1024 * 1024

PROGRAM_SEPARATORS = re.compile(r"[,;|]")

CSV_HELP = (
    "The CSV has a header row naming its columns, in any order: kpj (11 digits), nik (16 digits), name, "
    "birth_date (YYYY-MM-DD), wage (whole rupiah, digits only) and optionally segment (PU or BPU; empty means PU) "
    "and programs (JHT, JKK, JKM, JP separated by ';' or '|'; empty means the segment's default). Rows are "
    f"numbered from 1 after the header; at most {BULK_ENROLLMENT_MAX:,} rows."
)


def split_programs(text: str | None) -> list[str] | None:
    """'JHT|JKK' or 'JHT,JKK' or 'JHT;JKK' -> ['JHT', 'JKK']; empty -> None (the segment's default programs)."""
    if text is None or not text.strip():
        return None
    return [part.strip() for part in PROGRAM_SEPARATORS.split(text)]


# --- CSV -----------------------------------------------------------------------------------------------------------

def read_member_rows(path: Path) -> list[MemberRow]:
    """Every row of a bulk-enrollment CSV as a `MemberRow`; `InvalidInput` naming the bad rows if any is wrong."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _parse_member_rows(csv.DictReader(handle), path)
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except csv.Error as error:
        raise InvalidInput(f"{path}: not a readable CSV file ({error})") from None


def _parse_member_rows(reader: csv.DictReader[str], path: Path) -> list[MemberRow]:
    _check_header(reader.fieldnames, path)
    rows: list[MemberRow] = []
    problems: list[str] = []
    for number, cells in enumerate(reader, start=1):
        if number > BULK_ENROLLMENT_MAX:
            raise InvalidInput(f"{path}: more than {BULK_ENROLLMENT_MAX:,} rows; split the file")
        where = f"row {number} (line {reader.line_num})"
        try:
            rows.append(_member_row(cells))
        except ValidationError as error:  # before ValueError, which it subclasses
            problems.append(describe_validation_error(where, error))
        except ValueError as error:
            problems.append(f"{where}: {error}")
            if len(problems) == CSV_ROW_ERRORS_SHOWN_MAX:
                problems.append("(stopped after this many problems)")
                break
    if problems:
        raise InvalidInput(f"{path}: nothing was enrolled; fix these rows:\n  " + "\n  ".join(problems))
    if not rows:
        raise InvalidInput(f"{path}: no member rows after the header")
    return rows


def _check_header(header: list[str] | None, path: Path) -> None:
    if not header:
        raise InvalidInput(f"{path}: empty file; the first line must be a header such as "
                           f"{','.join(CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS)}")
    unknown = [name for name in header if name not in CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS]
    missing = [name for name in CSV_REQUIRED_COLUMNS if name not in header]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if unknown or missing or repeated:
        parts = [f"{label}: {', '.join(names)}" for label, names in
                 (("unknown columns", unknown), ("missing columns", missing), ("repeated columns", repeated))
                 if names]
        raise InvalidInput(f"{path}: bad header ({'; '.join(parts)}); the columns are "
                           f"{', '.join(CSV_REQUIRED_COLUMNS)} and optionally {', '.join(CSV_OPTIONAL_COLUMNS)}")


def _member_row(cells: dict[str | None, Any]) -> MemberRow:
    if None in cells:
        raise ValueError(f"{len(cells[None])} more cells than the header has columns")
    if any(value is None for value in cells.values()):
        raise ValueError("fewer cells than the header has columns")
    if any(len(value) > CSV_CELL_CHARS_MAX for value in cells.values()):
        raise ValueError(f"a cell is longer than {CSV_CELL_CHARS_MAX:,} characters")
    fields: dict[str, Any] = {name: cells[name] for name in CSV_REQUIRED_COLUMNS}
    if cells.get("segment"):
        fields["segment"] = cells["segment"]
    fields["programs"] = split_programs(cells.get("programs"))
    return MemberRow(**fields)


# --- JSON lines ----------------------------------------------------------------------------------------------------

def read_commands(path: Path) -> Iterator[tuple[int, Command]]:
    """Each non-blank line of a JSON-lines file as (line number, command), read one line at a time.

    A line is `{"command": "<name>", "id": "<command id>", ...fields}`. The id is required: it is what makes
    running the same file again safe. Raises `InvalidInput` naming the line at the first bad one.
    """
    try:
        with path.open(encoding="utf-8") as handle:
            for number in range(1, SUBMIT_LINES_MAX + 2):
                line = handle.readline(SUBMIT_LINE_CHARS_MAX + 1)
                if not line:
                    return
                if number > SUBMIT_LINES_MAX:
                    raise InvalidInput(f"{path}: more than {SUBMIT_LINES_MAX:,} lines; split the file")
                if len(line) > SUBMIT_LINE_CHARS_MAX:
                    raise InvalidInput(f"line {number}: longer than {SUBMIT_LINE_CHARS_MAX:,} characters")
                if line.strip():
                    yield number, _parse_command(number, line)
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None


def _parse_command(number: int, line: str) -> Command:
    try:
        # Decimals, not floats, for every number with a fraction: a rate of 5.63 stays exactly 5.63.
        body = json.loads(line, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"line {number}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"line {number}: expected a JSON object, got {type(body).__name__}")
    name = body.pop("command", None)
    command_id = body.pop("id", None)
    if name not in COMMAND_TYPES:
        raise InvalidInput(f"line {number}: unknown command {name!r}; known: {', '.join(COMMAND_TYPES)}")
    if "command_id" in body:
        raise InvalidInput(f"line {number}: give the command id as \"id\", not \"command_id\"")
    if not isinstance(command_id, str):
        raise InvalidInput(f"line {number}: every line needs an \"id\" (text): the command id that makes a "
                           f"re-run of the file safe")
    try:
        return COMMAND_TYPES[name].build(command_id=command_id, **body)
    except InvalidInput as error:
        raise InvalidInput(f"line {number}: {error}") from None
