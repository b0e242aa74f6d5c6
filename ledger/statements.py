"""Bank statements: the fund's bank account's credits, read from an MT940 file or a CSV file, checked whole.

`read_statement` reads a file into `StatementLine`s, or raises `InvalidInput` naming the line of the first problem:
nothing is recorded from a file with one bad line (`ledger payment import` checks the whole file first). Only a
credit (MT940 mark `C`) is money received; a debit or a reversal is returned too, marked, so it can be listed as
skipped. Both formats are bounded (`STATEMENT_FILE_BYTES_MAX`, `STATEMENT_LINES_MAX`), read only from a regular file,
as UTF-8 (a byte order mark is allowed), with LF or CRLF line ends.

- **MT940** (SWIFT customer statement, parsed by the `mt-940` package): each `:61:` statement line is one
  transaction, its `:86:` text the description. The reference is the bank reference (after `//` in `:61:`), else the
  customer reference unless it is `NONREF`. The date is the value date. The amount must be whole rupiah (`,00` or no
  decimals) in IDR. The payer is named by a payment code in the `:86:` text (17 digits starting with 1 for an employer,
  19 starting with 2 for a BPU member), or else by `NPP 12345678` or `KPJ 12345678901` written there.
- **CSV**, with the header `reference,received_on,amount,payment_code,npp,kpj,payer_name,description` (`CSV_COLUMNS`,
  in any order): one credit per row; `amount` whole rupiah in digits (no sign, no separators); `received_on`
  YYYY-MM-DD; at most one of `payment_code`, `npp`, `kpj` (none: the money is held until matched).

Descriptions keep the bank's text with runs of spaces and line breaks made single spaces, cut to
`commands.DESCRIPTION_CHARS_MAX` characters. A message never repeats a description or a payer's name: they may name a
person.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID

from eventsourcing.utils import get_topic
from pydantic import TypeAdapter, ValidationError

from ledger import events as ev
from ledger import identifiers
from ledger.commands import (
    DESCRIPTION_CHARS_MAX,
    IMPORT_BATCH_LINES_MAX,
    MONEY_AMOUNT_MAX,
    Command,
    Description,
    HoldMoney,
    Name,
    ReceiveMoney,
    RecordStatementLines,
    Reference,
)
from ledger.domain import HeldMoney, command_record_id
from ledger.errors import InvalidInput
from ledger.handlers import EARLIEST_DATE, HandlerContext
from ledger.input_files import open_bounded
from ledger.suspense import NoPayer, Payer, payer_named

# A busy branch's day is a few thousand credits; a month of one account fits too. 100,000 lines of about 200 bytes.
STATEMENT_LINES_MAX = 100_000
STATEMENT_FILE_BYTES_MAX = 32 * 1024 * 1024
CSV_COLUMNS = ("reference", "received_on", "amount", "payment_code", "npp", "kpj", "payer_name", "description")
FORMATS = ("mt940", "csv")
CURRENCY = "IDR"
AMOUNT_DIGITS_MAX = 13  # MONEY_AMOUNT_MAX (Rp1 trillion) has 13 digits: a longer number is refused unread

EMPLOYER_CODE = re.compile(r"(?<![0-9])1[0-9]{16}(?![0-9])")  # 17 digits: 1 + NPP + YYMM + segment + bill + check
MEMBER_CODE = re.compile(r"(?<![0-9])2[0-9]{18}(?![0-9])")  # 19 digits: 2 + KPJ + YYMM + bill + check
LABELLED_NPP = re.compile(r"\bNPP[ .:]*([0-9]{8})(?![0-9])", re.IGNORECASE)
LABELLED_KPJ = re.compile(r"\bKPJ[ .:]*([0-9]{11})(?![0-9])", re.IGNORECASE)
_DIGITS = re.compile(r"[0-9]+")
_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TAG = re.compile(r":([0-9]{2}[A-Z]?):")

# The MT940 package logs the text it could not parse (a `:86:` text may name a person) at ERROR level: kept quiet,
# never passed on to a handler of the application's nor printed on stderr. Our own errors name the line instead.
_MT940_LOG = logging.getLogger("mt940")
_MT940_LOG.addHandler(logging.NullHandler())
_MT940_LOG.propagate = False

_REFERENCE: TypeAdapter[str] = TypeAdapter(Reference)
_NAME: TypeAdapter[str] = TypeAdapter(Name)
_DESCRIPTION: TypeAdapter[str] = TypeAdapter(Description)


@dataclass(frozen=True)
class StatementLine:
    """One transaction of a statement. `line`: where it starts in the file (MT940: its `:61:` line)."""

    line: int
    reference: str
    received_on: date
    amount: int  # whole rupiah, > 0
    credit: bool  # money received; False: a debit or a reversal, skipped
    payment_code: str | None = None
    npp: str | None = None
    kpj: str | None = None
    payer_name: str | None = None
    description: str | None = None
    repeat_of: int | None = None  # the earlier line of this file with the same reference and the same money
    mark: str = "C"  # MT940's debit/credit mark (C, D, RC, RD); C for a CSV row


def read_statement(path: Path, fmt: str | None, today: date) -> list[StatementLine]:
    """Every transaction of the statement file, checked; `fmt` None: told from the content."""
    return parse_statement(_read_bounded(path), fmt, today, str(path))


def parse_statement(data: bytes, fmt: str | None, today: date, name: str = "statement") -> list[StatementLine]:
    if fmt is not None and fmt not in FORMATS:
        raise InvalidInput(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    text = _decode(data, name)
    if not text.strip():
        raise InvalidInput(f"{name}: the file is empty: not a statement")
    chosen = fmt or _format_of(text, name)
    lines = _parse_mt940(text, name, today) if chosen == "mt940" else _parse_csv(text, name, today)
    return _mark_repeats(lines, name)


# --- reading --------------------------------------------------------------------------------------------------------

def _read_bounded(path: Path) -> bytes:
    """A regular file of at most STATEMENT_FILE_BYTES_MAX bytes; `InvalidInput` for anything else."""
    with open_bounded(path, STATEMENT_FILE_BYTES_MAX, "STATEMENT_FILE_BYTES_MAX in ledger/statements.py",
                      "split the statement") as handle:
        data: bytes = handle.read()
    return data


def _decode(data: bytes, name: str) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise InvalidInput(f"{name}: line {line}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    return text.replace("\r\n", "\n")


def _format_of(text: str, name: str) -> str:
    first = text.lstrip().split("\n", 1)[0].strip()
    if first.startswith((":20:", "{1:")):
        return "mt940"
    if "reference" in [cell.strip().strip('"') for cell in first.lower().split(",")]:
        return "csv"
    raise InvalidInput(f"{name}: neither an MT940 statement (it starts with the tag :20:) nor a CSV statement (its "
                       f"header is {','.join(CSV_COLUMNS)})")


def _problem(name: str, line: int, message: str) -> InvalidInput:
    return InvalidInput(f"{name}: line {line}: {message}; nothing was imported")


def _checked(adapter: TypeAdapter[str], value: str, what: str) -> str:
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        # The message only: pydantic's own text would repeat the value, which may be a person's name.
        raise ValueError(f"{what} {error.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def _text(value: str | None, adapter: TypeAdapter[str], what: str, chars_max: int | None = None) -> str | None:
    """Free text with its runs of spaces and line breaks made single spaces; None when empty."""
    if value is None:
        return None
    flat = re.sub(r"\s+", " ", value).strip()
    if chars_max is not None:
        flat = flat[:chars_max].rstrip()
    return _checked(adapter, flat, what) if flat else None


def _day(value: date, today: date) -> date:
    if value > today:
        raise ValueError(f"the date {value.isoformat()} is in the future (today is {today.isoformat()})")
    if value < EARLIEST_DATE:
        raise ValueError(f"the date {value.isoformat()} is before {EARLIEST_DATE.isoformat()}, earlier than anything "
                         f"in the fund's books")
    return value


def _amount(value: int) -> int:
    if value <= 0:
        raise ValueError("the amount must be more than Rp0")
    if value > MONEY_AMOUNT_MAX:
        raise ValueError(f"the amount is more than Rp{MONEY_AMOUNT_MAX:,} (MONEY_AMOUNT_MAX in ledger/commands.py)")
    return value


def _code(value: str) -> str:
    if not (16 <= len(value) <= 19 and value.isdigit()) or not identifiers.luhn_valid(value):  # noqa: PLR2004
        raise ValueError(f"payment code {value} is not valid: 16 to 19 digits whose last is a check digit, as "
                         f"printed on the bill (a typo? the check digit does not match)")
    return value


def _mark_repeats(lines: list[StatementLine], name: str) -> list[StatementLine]:
    """A reference twice in one file: the same money again is marked a repeat; other money is refused."""
    first: dict[str, StatementLine] = {}
    marked = []
    for item in lines:
        if not item.credit:
            marked.append(item)
            continue
        seen = first.get(item.reference)
        if seen is None:
            first[item.reference] = item
            marked.append(item)
        elif (seen.amount, seen.received_on, seen.payment_code, seen.npp, seen.kpj) == \
                (item.amount, item.received_on, item.payment_code, item.npp, item.kpj):
            marked.append(replace(item, repeat_of=seen.line))
        else:
            raise _problem(name, item.line, f"reference {item.reference} is also on line {seen.line} with another "
                                            f"amount, date or payer")
    return marked


# --- CSV ------------------------------------------------------------------------------------------------------------

def _parse_csv(text: str, name: str, today: date) -> list[StatementLine]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = next(reader)
    except csv.Error as error:
        raise _problem(name, 1, f"not a readable CSV header ({error})") from None
    columns = [cell.strip().lower() for cell in header]
    missing = [c for c in CSV_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if missing or unknown or len(set(columns)) != len(columns):
        raise _problem(name, 1, f"the header must name the columns {','.join(CSV_COLUMNS)} (in any order, each "
                                f"once)" + (f"; missing: {', '.join(missing)}" if missing else "")
                       + (f"; unknown: {', '.join(repr(c[:40]) for c in unknown)}" if unknown else ""))
    lines: list[StatementLine] = []
    start = reader.line_num + 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            raise _problem(name, start, f"not a readable CSV row ({error})") from None
        line, start = start, reader.line_num + 1
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        if len(lines) >= STATEMENT_LINES_MAX:
            raise _problem(name, line, f"more than {STATEMENT_LINES_MAX:,} lines (STATEMENT_LINES_MAX in "
                                       f"ledger/statements.py); split the statement")
        if len(cells) != len(columns):
            raise _problem(name, line, f"{len(cells)} cells where the header has {len(columns)}")
        try:
            lines.append(_csv_line(line, dict(zip(columns, cells, strict=True)), today))
        except ValueError as error:
            raise _problem(name, line, str(error)) from None
    return lines


def _csv_line(line: int, row: dict[str, str], today: date) -> StatementLine:
    cell = {key: value.strip() for key, value in row.items()}
    reference = _checked(_REFERENCE, cell["reference"], "reference:")
    if not _ISO_DAY.fullmatch(cell["received_on"]):
        raise ValueError("received_on must be a date written YYYY-MM-DD, like 2024-03-20")
    try:
        received_on = date.fromisoformat(cell["received_on"])
    except ValueError:
        raise ValueError(f"received_on {cell['received_on']} is not a date of the calendar") from None
    amount_text = cell["amount"]
    if amount_text.startswith("-"):
        raise ValueError("the amount is negative: a CSV statement lists credits only, in whole rupiah")
    if not _DIGITS.fullmatch(amount_text):
        raise ValueError("the amount must be whole rupiah written in digits only, like 1500000 (no sign, no "
                         "separators, no decimals)")
    if len(amount_text.lstrip("0")) > AMOUNT_DIGITS_MAX:
        raise ValueError(f"the amount is more than Rp{MONEY_AMOUNT_MAX:,} (MONEY_AMOUNT_MAX in ledger/commands.py)")
    payer = [key for key in ("payment_code", "npp", "kpj") if cell[key]]
    if len(payer) > 1:
        raise ValueError(f"name the payer once: {' and '.join(payer)} are both given")
    code = _code(cell["payment_code"]) if cell["payment_code"] else None
    npp = identifiers.validate_npp(cell["npp"]) if cell["npp"] else None
    kpj = identifiers.validate_kpj(cell["kpj"]) if cell["kpj"] else None
    return StatementLine(
        line=line, reference=reference, received_on=_day(received_on, today), amount=_amount(int(amount_text)),
        credit=True, payment_code=code, npp=npp, kpj=kpj,
        payer_name=_text(cell["payer_name"] or None, _NAME, "payer_name:"),
        description=_text(cell["description"] or None, _DESCRIPTION, "description:", DESCRIPTION_CHARS_MAX))


# --- MT940 ----------------------------------------------------------------------------------------------------------

def _parse_mt940(text: str, name: str, today: date) -> list[StatementLine]:
    import mt940  # imported here: only this format needs it

    starts = [number for number, line in enumerate(text.split("\n"), start=1) if line.startswith(":61:")]
    tags = {match.group(1) for match in _TAG.finditer(text) if match.start() == 0 or text[match.start() - 1] == "\n"}
    if "20" not in tags or not tags & {"60F", "60M"}:
        raise InvalidInput(f"{name}: not an MT940 statement: it has no :20: reference or no :60F: opening balance")
    if len(starts) > STATEMENT_LINES_MAX:
        raise _problem(name, starts[STATEMENT_LINES_MAX], f"more than {STATEMENT_LINES_MAX:,} statement lines "
                                                          f"(STATEMENT_LINES_MAX in ledger/statements.py)")
    _check_statement_lines(text, starts, name)
    try:
        transactions = mt940.parse(text)
    except (ValueError, RuntimeError, KeyError, InvalidOperation) as error:
        raise InvalidInput(f"{name}: not a valid MT940 statement ({type(error).__name__})") from None
    found = list(transactions)
    if len(found) != len(starts):
        raise InvalidInput(f"{name}: not a valid MT940 statement: {len(starts)} :61: lines, {len(found)} read")
    lines = []
    for line, transaction in zip(starts, found, strict=True):
        try:
            lines.append(_mt940_line(line, transaction.data, today))
        except ValueError as error:
            raise _problem(name, line, str(error)) from None
    return lines


def _check_statement_lines(text: str, starts: list[int], name: str) -> None:
    """Each `:61:` line matches the statement line's shape and has a real value date: the package's own errors do
    not say where they are."""
    from mt940 import tags

    shape = tags.Statement().re
    rows = text.split("\n")
    for line in starts:
        value = rows[line - 1][4:]
        found = shape.match(value)
        if found is None:
            raise _problem(name, line, "not an MT940 statement line: :61: YYMMDD[MMDD] C|D|RC|RD amount "
                                       "[type] reference[//bank reference]")
        try:
            date(2000 + int(found.group("year")), int(found.group("month")), int(found.group("day")))
        except ValueError:
            raise _problem(name, line, f"the value date {value[:6]} is not a date of the calendar (YYMMDD)") \
                from None


def _mt940_line(line: int, data: dict[str, Any], today: date) -> StatementLine:
    mark = str(data.get("status") or "").upper()
    currency = str(data.get("currency") or "")
    if currency.upper() != CURRENCY:
        raise ValueError(f"currency {currency or 'missing'}: the fund's accounts are in rupiah ({CURRENCY})")
    raw = data["amount"].amount
    amount = abs(Decimal(raw))
    if amount != amount.to_integral_value():
        raise ValueError("the amount is not whole rupiah (it has a fraction of a rupiah)")
    value_date = data["date"]
    received_on = date(value_date.year, value_date.month, value_date.day)
    bank_reference = (data.get("bank_reference") or "").strip()
    customer_reference = (data.get("customer_reference") or "").strip()
    reference = bank_reference or ("" if customer_reference.upper() == "NONREF" else customer_reference)
    details = str(data.get("transaction_details") or "")
    if mark != "C":
        # Money out (D, a reversed credit RC) or back (a reversed debit RD): not a payer's money; listed as skipped.
        return StatementLine(line=line, reference=reference or "-", received_on=received_on, amount=int(amount),
                             credit=False, mark=mark)
    if not reference:
        raise ValueError("the credit carries no reference (neither a bank reference after // nor a customer "
                         "reference other than NONREF): it could not be told from a repeat")
    text = " ".join(part for part in (details, str(data.get("extra_details") or "")) if part)
    code, npp, kpj = _payer_in_text(text)
    return StatementLine(
        line=line, reference=_checked(_REFERENCE, reference, "reference:"), received_on=_day(received_on, today),
        amount=_amount(int(amount)), credit=True, payment_code=code, npp=npp, kpj=kpj,
        description=_text(details or None, _DESCRIPTION, "the :86: text", DESCRIPTION_CHARS_MAX))


def _payer_in_text(text: str) -> tuple[str | None, str | None, str | None]:
    """(payment code, npp, kpj) written in a statement's text: a code first (its check digit must hold), else a
    labelled NPP or KPJ."""
    codes = EMPLOYER_CODE.findall(text) + MEMBER_CODE.findall(text)
    if codes:
        return _code(codes[0]), None, None
    npp = LABELLED_NPP.search(text)
    if npp:
        return None, npp.group(1), None
    kpj = LABELLED_KPJ.search(text)
    return (None, None, kpj.group(1)) if kpj else (None, None, None)


# --- importing: what each credit becomes -----------------------------------------------------------------------------

class Importer(HandlerContext, Protocol):
    """What the import needs of the ledger: its reads (a handler's) and `execute`."""

    def execute(self, command: Command) -> dict[str, Any]: ...


class Reader(Protocol):
    def notifications(self, topics: tuple[str, ...] = ()) -> Iterator[Any]: ...

    def find_many(self, ids: list[UUID]) -> dict[UUID, Any]: ...


@dataclass
class Outcome:
    """What one statement line became: matched (received from a known payer), held (until matched), duplicate
    (recorded before, or earlier in this file) or skipped (not a credit)."""

    line: StatementLine
    status: str
    reason: str | None = None
    payer: str | None = None
    command: Command | None = None
    result: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {"line": self.line.line, "status": self.status, "reference": self.line.reference,
                               "amount": self.line.amount, "received_on": self.line.received_on.isoformat()}
        if self.payer is not None:
            row["payer"] = self.payer
        if self.reason is not None:
            row["reason"] = self.reason
        if self.result is not None and "bills_settled" in self.result:
            row["bills_settled"] = self.result["bills_settled"]
        return row


def plan_import(context: HandlerContext, lines: list[StatementLine], branch: str,
                name: str = "statement") -> list[Outcome]:
    """What each line will become, decided before anything is recorded; `InvalidInput` naming the line when one
    cannot be recorded (its reference was recorded before with other money, say)."""
    outcomes: list[Outcome] = []
    # What was recorded under the credits' references, in one read (a few queries), not one each; and each payer
    # looked up once.
    references = dict.fromkeys(item.reference for item in lines if item.credit)  # once each, in order
    earlier = context.find_many([command_record_id(f"money:{reference}") for reference in references])
    payers: dict[tuple[str | None, str | None, str | None], Payer | NoPayer] = {}
    for item in lines:
        try:
            outcomes.append(_plan_line(context, item, branch, earlier, payers))
        except InvalidInput as error:
            raise _problem(name, item.line, str(error)) from None
    return outcomes


def _plan_line(context: HandlerContext, item: StatementLine, branch: str, earlier: dict[UUID, Any],
               payers: dict[tuple[str | None, str | None, str | None], Payer | NoPayer]) -> Outcome:
    if not item.credit:
        kind = {"D": "a debit", "RC": "a reversed credit", "RD": "a reversed debit"}.get(item.mark, "not a credit")
        return Outcome(item, "skipped", f"{kind} ({item.mark}): only credits are money received")
    if item.repeat_of is not None:
        return Outcome(item, "duplicate", f"the same money as line {item.repeat_of}")
    previous = earlier.get(command_record_id(f"money:{item.reference}"))
    if previous is not None:
        result = previous.result
        if (result.get("amount"), result.get("received_on")) != (item.amount, item.received_on.isoformat()):
            raise InvalidInput(f"reference {item.reference} was recorded before with Rp{result.get('amount'):,} "
                               f"received on {result.get('received_on')}; this line says Rp{item.amount:,} on "
                               f"{item.received_on.isoformat()}")
        how = "held until matched" if previous.name == HoldMoney.NAME else "received"
        return Outcome(item, "duplicate", f"recorded before ({how})")
    key = (item.payment_code, item.npp, item.kpj)
    if key not in payers:
        payers[key] = payer_named(context, *key)
    payer = payers[key]
    if isinstance(payer, Payer):
        named = {"code": item.payment_code} if item.payment_code else {"npp": payer.npp, "kpj": payer.kpj}
        command = ReceiveMoney.build(reference=item.reference, amount=item.amount, received_on=item.received_on,
                                     payer_name=item.payer_name, **{k: v for k, v in named.items() if v})
        return Outcome(item, "matched", None, payer.label, command)
    command = HoldMoney.build(reference=item.reference, branch=branch, amount=item.amount,
                              received_on=item.received_on, payment_code=item.payment_code,
                              description=item.description, payer_name=item.payer_name)
    return Outcome(item, "held", payer.reason, None, command)


def run_import(ledger: Importer, outcomes: list[Outcome]) -> Iterator[Outcome]:
    """Record the planned lines in order, in transactions of at most `IMPORT_BATCH_LINES_MAX` lines
    (`RecordStatementLines`); yields each outcome once its transaction is committed. A line recorded meanwhile by
    someone else is answered as a duplicate. A `LedgerError` stops the run: the transactions before it stay recorded,
    and importing the file again records only the rest."""
    pending: list[Outcome] = []
    for outcome in outcomes:
        if outcome.command is not None:
            pending.append(outcome)
            if len(pending) < IMPORT_BATCH_LINES_MAX:
                continue
            yield from _record(ledger, pending)
            pending = []
        elif not pending:
            yield outcome
            continue
        else:
            pending.append(outcome)
    if pending:
        yield from _record(ledger, pending)


def _record(ledger: Importer, outcomes: list[Outcome]) -> Iterator[Outcome]:
    lines = [outcome.command for outcome in outcomes if outcome.command is not None]
    done = ledger.execute(RecordStatementLines.build(lines=lines))["lines"]
    results = iter(done)
    for outcome in outcomes:
        if outcome.command is not None:
            outcome.result = next(results)
            if outcome.result["repeated"]:
                outcome.status, outcome.reason, outcome.payer = "duplicate", "recorded before (meanwhile)", None
        yield outcome


def unmatched(reader: Reader, branch: str | None) -> list[dict[str, Any]]:
    """Money held and not matched yet, oldest first: the branch's, or every branch's."""
    ids = [n.originator_id for n in reader.notifications(topics=(get_topic(HeldMoney.Created),))]
    rows = []
    for held in reader.find_many(ids).values():
        if held.identified is None and (branch is None or held.branch == branch):
            money: ev.MoneyUnidentified = held.held
            rows.append({"reference": money.reference, "branch": money.branch,
                         "received_on": money.received_on.isoformat(), "amount": money.amount,
                         "payment_code": money.payment_code, "description": money.description})
    rows.sort(key=lambda row: (row["received_on"], row["reference"]))
    return rows
