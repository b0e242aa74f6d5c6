"""Reading batch input for the CLI: a CSV of members to enroll, and a JSON-lines file of commands.

Both readers check everything before anything is written, and every error names where it is: the CSV's row number
(counting data rows from 1, as `EnrollMembers` does) and the JSON-lines file's line number. Both are bounded: a file
that is too long or has a line that is too long is refused, never read whole into memory first. Only regular files
are read: a device such as /dev/zero or a pipe may never end (and `submit` reads its file twice). A line is read at
most its maximum length plus one character at a time, so a file without line breaks costs one bounded read; a
JSON line's nesting depth is counted before the parser (which recurses once per level) sees it.
"""

from __future__ import annotations

import csv
import difflib
import io
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ledger.commands import BULK_ENROLLMENT_MAX, COMMAND_TYPES, Command, MemberRow, describe_validation_error
from ledger.errors import InvalidInput
from ledger.input_files import open_bounded

CSV_REQUIRED_COLUMNS = ("kpj", "nik", "name", "birth_date", "wage")
CSV_OPTIONAL_COLUMNS = ("segment", "programs")
CSV_ROW_ERRORS_SHOWN_MAX = 10  # enough to fix a file in one pass; more would bury the first problem
CSV_CELL_CHARS_MAX = 1_000
# A row is 7 cells of at most CSV_CELL_CHARS_MAX characters, quoted, and separators: 8,000 characters with room.
CSV_LINE_CHARS_MAX = 8 * CSV_CELL_CHARS_MAX
# BULK_ENROLLMENT_MAX rows of about 100 bytes each are 10 MB; 64 MiB leaves room for long names in any script.
CSV_FILE_BYTES_MAX = 64 * 1024 * 1024

SUBMIT_LINES_MAX = 1_000_000
# One line may hold a bulk enrollment of BULK_ENROLLMENT_MAX members, about 150 characters each.
SUBMIT_LINE_CHARS_MAX = 32 * 1024 * 1024
# A million ordinary commands of a few hundred bytes, or about 30 full bulk enrollments.
SUBMIT_FILE_BYTES_MAX = 1024 * 1024 * 1024
# The deepest command is a bulk enrollment: line object > members list > member object > programs list (4 levels).
SUBMIT_JSON_DEPTH_MAX = 8

PROGRAM_SEPARATORS = re.compile(r"[,;|]")

CSV_HELP = (
    "The CSV has a header row naming its columns, in any order: kpj (11 digits), nik (16 digits), name, "
    "birth_date (YYYY-MM-DD), wage (whole rupiah, digits only) and optionally segment (PU or BPU; empty means PU) "
    "and programs (JHT, JKK, JKM, JP separated by ';' or '|'; empty means the segment's default). Rows are "
    f"numbered from 1 after the header; at most {BULK_ENROLLMENT_MAX:,} rows in a regular file of at most "
    f"{CSV_FILE_BYTES_MAX // 1024 // 1024} MiB."
)


def split_programs(text: str | None) -> list[str] | None:
    """'JHT|JKK' or 'JHT,JKK' or 'JHT;JKK' -> ['JHT', 'JKK']; empty -> None (the segment's default programs)."""
    if text is None or not text.strip():
        return None
    return [part.strip() for part in PROGRAM_SEPARATORS.split(text)]


# --- reading files, bounded -----------------------------------------------------------------------------------------

@contextmanager
def _open_text(path: Path, bytes_max: int, limit_name: str, *, encoding: str, newline: str | None) -> Iterator[Any]:
    """A regular file of at most `bytes_max` bytes, opened for reading text; `InvalidInput` for anything else."""
    with open_bounded(path, bytes_max, limit_name) as handle:
        yield io.TextIOWrapper(handle, encoding=encoding, newline=newline)


def _bounded_lines(handle: Any, chars_max: int, what: str) -> Iterator[str]:
    """Each line of a text file, read at most `chars_max` + 1 characters at a time; too long a line is refused."""
    number = 0
    while line := handle.readline(chars_max + 1):
        number += 1
        if len(line) > chars_max:
            raise InvalidInput(f"{what}: line {number} is longer than {chars_max:,} characters")
        yield line


# --- CSV -----------------------------------------------------------------------------------------------------------

def read_member_rows(path: Path) -> list[MemberRow]:
    """Every row of a bulk-enrollment CSV as a `MemberRow`; `InvalidInput` naming the bad rows if any is wrong."""
    try:
        with _open_text(path, CSV_FILE_BYTES_MAX, "CSV_FILE_BYTES_MAX", encoding="utf-8-sig", newline="") as handle:
            lines = _bounded_lines(handle, CSV_LINE_CHARS_MAX, str(path))
            return _parse_member_rows(csv.DictReader(lines), path)
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


def _check_header(header: Sequence[str] | None, path: Path) -> None:
    if not header:
        raise InvalidInput(f"{path}: empty file; the first line must be a header such as "
                           f"{','.join(CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS)}")
    known = CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS
    # An unknown column is named by its position, never by its text: a file without a header has a member's NIK
    # and name in its first line. A near miss of a known column is named by the known one.
    unknown = [f"column {index}" + "".join(f" (did you mean {match}?)" for match in
                                           difflib.get_close_matches(name.strip().lower(), known, n=1, cutoff=0.75))
               for index, name in enumerate(header, start=1) if name not in known]
    missing = [name for name in CSV_REQUIRED_COLUMNS if name not in header]
    repeated = sorted({name for name in header if name in known and header.count(name) > 1})
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
    fields["wage"] = _rupiah_cell(cells["wage"])
    if cells.get("segment"):
        fields["segment"] = cells["segment"]
    fields["programs"] = split_programs(cells.get("programs"))
    return MemberRow(**fields)


def _rupiah_cell(text: str) -> int | str:
    """A money cell as whole rupiah: ASCII digits only (no separators, no fraction). Anything else goes to the model
    as text, which refuses it with the money rule's message."""
    return int(text) if _RUPIAH_CELL.fullmatch(text) else text


_RUPIAH_CELL = re.compile(r"[0-9]+")  # a cell has at most CSV_CELL_CHARS_MAX characters: int() of it is cheap


# --- JSON lines ----------------------------------------------------------------------------------------------------

def read_commands(path: Path) -> Iterator[tuple[int, Command]]:
    """Each non-blank line of a JSON-lines file as (line number, command), read one line at a time.

    A line is `{"command": "<name>", "id": "<command id>", ...fields}`. The id is required: it is what makes
    running the same file again safe. Raises `InvalidInput` naming the line at the first bad one, and for a file
    without any command: an empty file is a mistake (the wrong file, a failed export), not a batch of nothing.
    """
    commands = 0
    try:
        with _open_text(path, SUBMIT_FILE_BYTES_MAX, "SUBMIT_FILE_BYTES_MAX", encoding="utf-8", newline=None) as handle:
            for number, line in enumerate(_bounded_lines(handle, SUBMIT_LINE_CHARS_MAX, str(path)), start=1):
                if number > SUBMIT_LINES_MAX:
                    raise InvalidInput(f"{path}: more than {SUBMIT_LINES_MAX:,} lines; split the file")
                if line.strip():
                    commands += 1
                    yield number, parse_command(number, line)
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not commands:
        raise InvalidInput(f"{path}: no commands: the file is empty or holds only blank lines")


# A JSON string (its closing quote may be missing: the parser then names the error) and every run of characters that
# is not a bracket: what is left of a line without them is its brackets. Both patterns are linear in the line.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_COMMAND_NAME = re.compile(r"[a-z][a-z-]{0,39}")


def json_depth(line: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (0 for a bare value), counted without parsing it."""
    depth = deepest = 0
    for bracket in _NOT_BRACKETS.sub("", _JSON_STRING.sub("", line)):
        depth += _DEPTH_STEP[bracket]
        deepest = max(deepest, depth)
    return deepest


def parse_command(number: int, line: str) -> Command:
    """One line of a JSON-lines file (its `number` for the messages) as a command; `InvalidInput` if it is not one."""
    # The parser recurses once per level of nesting: a line nested 100,000 deep would exhaust the stack.
    if json_depth(line) > SUBMIT_JSON_DEPTH_MAX:
        raise InvalidInput(f"line {number}: JSON nested more than {SUBMIT_JSON_DEPTH_MAX} levels deep "
                           f"(SUBMIT_JSON_DEPTH_MAX); a command nests at most 4")
    try:
        # Decimals, not floats, for every number with a fraction: a rate of 5.63 stays exactly 5.63.
        body = json.loads(line, parse_float=Decimal)
    except json.JSONDecodeError as error:
        raise InvalidInput(f"line {number}: not valid JSON ({error.msg} at column {error.colno})") from None
    except ValueError:  # an integer of more digits than Python converts (sys.get_int_max_str_digits())
        raise InvalidInput(f"line {number}: a number with too many digits") from None
    if not isinstance(body, dict):
        raise InvalidInput(f"line {number}: expected a JSON object, got {type(body).__name__}")
    name = body.pop("command", None)
    command_id = body.pop("id", None)
    if name not in COMMAND_TYPES:
        # The name is repeated only if it looks like one: the text could be anything, personal data included.
        shown = f" {name!r}" if isinstance(name, str) and _COMMAND_NAME.fullmatch(name) else ""
        raise InvalidInput(f"line {number}: unknown command{shown}; known: {', '.join(COMMAND_TYPES)}")
    if "command_id" in body:
        raise InvalidInput(f"line {number}: give the command id as \"id\", not \"command_id\"")
    if not isinstance(command_id, str):
        raise InvalidInput(f"line {number}: every line needs an \"id\" (text): the command id that makes a "
                           f"re-run of the file safe")
    try:
        return COMMAND_TYPES[name].build(command_id=command_id, **body)
    except InvalidInput as error:
        raise InvalidInput(f"line {number}: {error}") from None
