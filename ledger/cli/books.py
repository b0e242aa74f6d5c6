"""The fund's books in double entry (`ledger books`): the chart of accounts, the trial balance at a date, the journal
and an account's running balance over a period, and the check that the books balance and tie to every member and
branch (docs/books.md)."""

from typing import Annotated, Any

import typer

from ledger.cli.common import DATE_HELP, AsJson, parse_date, print_json, reporting
from ledger.errors import EXIT_BOOKS_UNTIED
from ledger.formatting import rupiah
from projections import queries

books_app = typer.Typer(help="The fund's books in double entry: chart, trial balance, journal, accounts, check.",
                        no_args_is_help=True)


# --- reading the books: chart, trial-balance, journal, account ------------------------------------------------------


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


def check_lines(result: dict[str, Any]) -> list[str]:
    """One line per check ("ok", or what differs, by how much, and the event), then the verdict."""
    lines = []
    for check in result["checks"]:
        where = check["branch"] or "all branches"
        if check["ledger"] is None:  # the invariants: no figure to compare
            figures = ""
        elif check["ok"]:
            figures = f": {rupiah(check['ledger'])}"
        else:
            figures = (f": ledger {rupiah(check['ledger'])}, {check['against']} {rupiah(check['other'])}, differs by "
                       f"{rupiah(check['difference'])}")
        if check["ok"]:
            lines.append(f"ok    {where}: {check['check']}{figures}")
        else:
            problem = f"; {check['problem']}" if check["problem"] else ""
            lines.append(f"FAIL  {where}: {check['check']}{figures}{problem} (event {check['event_id'] or 'unknown'})")
    total = len(result["checks"])
    if result["ok"]:
        lines.append(f"the books balance and tie as of {result['as_of']}: all {total} checks hold")
    else:
        lines.append(f"the books do not tie as of {result['as_of']}: {result['failed']} of {total} checks fail")
    return lines
