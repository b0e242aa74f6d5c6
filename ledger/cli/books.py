"""The fund's books in double entry (`ledger books`): the chart of accounts, the trial balance at a date, the journal
and an account's running balance over a period, and the check that the books balance and tie to every member and
branch (docs/books.md)."""

import sys
from collections.abc import Iterator
from datetime import date
from typing import Annotated, Any

import typer

from ledger import books
from ledger.cli.common import DATE_HELP, AsJson, parse_date, print_json, reporting, today
from ledger.csv_lines import csv_line
from ledger.errors import EXIT_BOOKS_UNTIED, InvalidInput
from ledger.formatting import (
    AMOUNT_WIDTH,
    NAME_WIDTH,
    amount_cell,
    check_lines,
    rupiah,
    trial_balance_lines,
    whose_books,
)
from projections import queries
from projections.access import Reader

books_app = typer.Typer(help="The fund's books in double entry: chart, trial balance, journal, accounts, check.",
                        no_args_is_help=True)


# --- reading the books: chart, trial-balance, journal, account ------------------------------------------------------

JOURNAL_ENDPOINT = "ledger books journal"  # the access log's endpoint of the entries naming a member it shows
CSV_HEADER = ("date", "entry", "type", "branch", "account", "account_name", "program", "kpj", "npp", "reference",
              "debit", "credit")


def _account_option(text: str) -> books.Account:
    try:
        return books.account(text)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def _period(start: str, end: str) -> tuple[date, date]:
    first, last = parse_date("--from", start), parse_date("--to", end)
    if first > last:
        raise InvalidInput(f"--from {first} is after --to {last}")
    return first, last


def account_lines(report: dict[str, Any]) -> list[str]:
    """An account's running balance as `ledger books account` prints it."""
    width = 12 + 3 * AMOUNT_WIDTH
    lines = [(f"Account {report['account']} {report['name']} ({report['kind']}, balance on the "
              f"{report['normal_side']} side) of {whose_books(report['branch'])}, {report['from']} to {report['to']}"),
             (f"  {'opening balance on ' + report['opening_on']:<{width - AMOUNT_WIDTH}}"
              f"{rupiah(report['opening']):>{AMOUNT_WIDTH}}"),
             f"  {'date':<12}{'debit':>{AMOUNT_WIDTH}}{'credit':>{AMOUNT_WIDTH}}{'balance':>{AMOUNT_WIDTH}}"]
    lines += [f"  {day['date']:<12}{amount_cell(day['debit']):>{AMOUNT_WIDTH}}"
              f"{amount_cell(day['credit']):>{AMOUNT_WIDTH}}{rupiah(day['balance']):>{AMOUNT_WIDTH}}"
              for day in report["days"]]
    if not report["days"]:
        lines.append("  no movement in the period")
    lines.append(f"  {'total':<12}{rupiah(report['debits']):>{AMOUNT_WIDTH}}"
                 f"{rupiah(report['credits']):>{AMOUNT_WIDTH}}")
    lines.append(f"  {'closing balance on ' + report['to']:<{width - AMOUNT_WIDTH}}"
                 f"{rupiah(report['closing']):>{AMOUNT_WIDTH}}")
    return lines


def journal_entry_lines(entry: dict[str, Any]) -> list[str]:
    """One journal entry as `ledger books journal` prints it: a line for the entry, one per leg below it."""
    payer = " ".join(f"{name} {entry[name]}" for name in ("kpj", "npp") if entry[name])
    head = f"{entry['date']}  {entry['type']}  {entry['branch']}" + (f"  {payer}" if payer else "")
    if entry["reference"]:
        head += f"  ref {entry['reference']}"
    lines = [f"{head}  (event {entry['event_id']})"]
    for leg in entry["legs"]:
        program = "" if leg["program"] == books.NO_PROGRAM else leg["program"]
        lines.append(f"    {leg['account']:<6}{leg['account_name']:<{NAME_WIDTH}}{program:<5}"
                     f"{amount_cell(leg['debit']):>{AMOUNT_WIDTH}}{amount_cell(leg['credit']):>{AMOUNT_WIDTH}}")
    return lines


def journal_csv_lines(entry: dict[str, Any]) -> Iterator[bytes]:
    """One CSV line per leg of an entry (`CSV_HEADER`), spreadsheet-safe (`ledger.csv_lines`); a leg of no program
    has an empty program cell."""
    for leg in entry["legs"]:
        program = "" if leg["program"] == books.NO_PROGRAM else leg["program"]
        yield csv_line((entry["date"], entry["event_id"], entry["type"], entry["branch"], leg["account"],
                        leg["account_name"], program, entry["kpj"] or "", entry["npp"] or "", entry["reference"] or "",
                        leg["debit"], leg["credit"]))


@books_app.command("chart")
def books_chart(
    ctx: typer.Context,
    as_of: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    as_json: AsJson = False,
) -> None:
    """The chart of accounts open on a date: code, name (also accepted as an account), type, normal side, program,
    and what posts to each."""
    with reporting(as_json):
        on = parse_date("--as-of", as_of) if as_of is not None else today(ctx)
    accounts = [{"code": a.code, "slug": a.slug, "name": a.name, "kind": a.kind, "normal_side": a.normal_side,
                 "program": a.program, "fed_by": a.fed_by} for a in books.chart(on)]
    if as_json:
        print_json({"as_of": on.isoformat(), "accounts": accounts})
        return
    print(f"Chart of accounts on {on.isoformat()}: {len(accounts)} accounts")
    print(f"  {'code':<6}{'name':<20}{'account':<{NAME_WIDTH}}{'type':<11}{'side':<8}program")
    for a in accounts:
        print(f"  {a['code']:<6}{a['slug']:<20}{a['name']:<{NAME_WIDTH}}{a['kind']:<11}{a['normal_side']:<8}"
              f"{a['program']}")


@books_app.command("trial-balance")
def books_trial_balance(
    ctx: typer.Context,
    as_of: Annotated[str, typer.Option(help=DATE_HELP)],
    branch: Annotated[str | None, typer.Option(help="one branch, e.g. BEKASI-KOTA; default the whole fund")] = None,
    as_json: AsJson = False,
) -> None:
    """The trial balance on a date (general_ledger projection): every account with its balance in the debit or the
    credit column, the columns' totals, and whether they balance."""
    with reporting(as_json):
        on = parse_date("--as-of", as_of)
        report = ctx.obj.read_side.trial_balance(Reader.local(), on, branch)
    if as_json:
        print_json(report)
        return
    print("\n".join(line.rstrip() for line in trial_balance_lines(report)))


@books_app.command("account")
def books_account(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="an account's code or name (ledger books chart), e.g. 2200 or jht")],
    start: Annotated[str, typer.Option("--from", help=f"the first day, {DATE_HELP}")],
    end: Annotated[str, typer.Option("--to", help=f"the last day, {DATE_HELP}")],
    branch: Annotated[str | None, typer.Option(help="one branch, e.g. BEKASI-KOTA; default the whole fund")] = None,
    as_json: AsJson = False,
) -> None:
    """An account's running balance over a period: the opening balance, each day's debits, credits and closing
    balance, and the closing balance (general_ledger projection)."""
    with reporting(as_json):
        chosen = _account_option(account)
        first, last = _period(start, end)
        report = ctx.obj.read_side.account_activity(Reader.local(), chosen, first, last, branch)
    if as_json:
        print_json(report)
        return
    print("\n".join(line.rstrip() for line in account_lines(report)))


@books_app.command("journal")
def books_journal(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help=f"the first day, {DATE_HELP}")],
    end: Annotated[str, typer.Option("--to", help=f"the last day, {DATE_HELP}")],
    account: Annotated[str | None, typer.Option(help="only the entries with a leg on this account (code or name)")]
    = None,
    branch: Annotated[str | None, typer.Option(help="one branch, e.g. BEKASI-KOTA; default the whole fund")] = None,
    as_csv: Annotated[bool, typer.Option("--csv", help="one CSV row per leg, with a header, on stdout")] = False,
) -> None:
    """The journal between two dates (inclusive), in date and event order: every entry with its legs, streamed
    (general_ledger projection)."""
    with reporting(False):
        chosen = _account_option(account) if account is not None else None
        first, last = _period(start, end)
        entries = ctx.obj.read_side.journal(Reader.local(), first, last, endpoint=JOURNAL_ENDPOINT, account=chosen,
                                            branch=branch)
        out = sys.stdout.buffer
        started = False
        for entry in entries:
            if not started:
                started = True
                out.write(csv_line(CSV_HEADER) if as_csv else
                          f"Journal of {whose_books(branch)}, {first} to {last}\n".encode())
            for line in (journal_csv_lines(entry) if as_csv else
                         (f"{text.rstrip()}\n".encode() for text in journal_entry_lines(entry))):
                out.write(line)
        if not started:
            out.write(csv_line(CSV_HEADER) if as_csv else
                      f"Journal of {whose_books(branch)}, {first} to {last}\n  no entry in the period\n".encode())
        out.flush()


# --- the check: every entry balances, and the books tie to the other projections ------------------------------------

@books_app.command("check")
def books_check(
    ctx: typer.Context,
    as_of: Annotated[str, typer.Option("--as-of", help=DATE_HELP)],
    as_json: AsJson = False,
) -> None:
    """Check the books as of a date: the general ledger's invariants, and its ties to the members' JHT balances, the
    branch totals and the collections (each failure names the first event it was traced to)."""
    with reporting(as_json):
        on = parse_date("--as-of", as_of)
        result = queries.check_books(ctx.obj.views, on)
    if as_json:
        print_json(result)
    else:
        print("\n".join(check_lines(result)))
    if not result["ok"]:
        raise typer.Exit(EXIT_BOOKS_UNTIED)
