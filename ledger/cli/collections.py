"""The collections commands: the monthly close that bills dues (`ledger billing`), money received, refunded, imported
from bank statements and matched by hand (`ledger payment`)."""

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ledger import identifiers, statements
from ledger.cli.common import (
    DATE_HELP,
    AsJson,
    CommandId,
    checked,
    parse_date,
    print_error,
    print_json,
    reporting,
    today,
)
from ledger.commands import MatchMoney
from ledger.errors import LedgerError
from ledger.formatting import rupiah

billing_app = typer.Typer(help="Close a month: bill every payer its dues.", no_args_is_help=True)
payment_app = typer.Typer(help="Money received from payers: record, import from a bank statement, match, refund.",
                          no_args_is_help=True)


# --- the monthly close ---------------------------------------------------------------------------------------------
# (ledger billing close)


# --- money received and refunded -----------------------------------------------------------------------------------
# (ledger payment receive, ledger payment refund)


# --- bank statements and money held until matched ------------------------------------------------------------------
# (ledger payment import, ledger payment unmatched, ledger payment match)

@payment_app.command("import", help=f"Import the credits of a bank statement (MT940 or CSV) received at a branch's "
                                    f"account. The whole file is checked first: one bad line records nothing. A "
                                    f"credit naming a known payer (payment code, NPP or KPJ) is recorded as money "
                                    f"received from it and applied to its bills; any other is held until matched "
                                    f"(ledger payment match). Debits are skipped. The CSV header is "
                                    f"{','.join(statements.CSV_COLUMNS)}. Importing the same statement again records "
                                    f"nothing twice.")
def import_statement(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(help="the statement file")],
    branch: Annotated[str, typer.Option(help="the branch whose bank account the statement is of, e.g. BEKASI-KOTA")],
    fmt: Annotated[str | None, typer.Option("--format", help="mt940|csv; default: told from the content")] = None,
    as_json: AsJson = False,
) -> None:
    with reporting(as_json):
        code = checked(identifiers.validate_branch_code, branch)
        ledger = ctx.obj.ledger
        lines = statements.read_statement(file, fmt, today(ctx))
        planned = statements.plan_import(ledger, lines, code, str(file))
        done: list[dict[str, Any]] = []
        try:
            for outcome in statements.run_import(ledger, planned):
                done.append(outcome.as_dict())
                if not as_json:
                    print(_statement_line(done[-1]))
        except LedgerError as error:
            _stop_import(error, planned[len(done)].line.line, len(done), as_json)
    summary = {status: sum(row["status"] == status for row in done) for status in IMPORT_STATUSES}
    if as_json:
        print_json({"file": str(file), "branch": code, "lines": done, "summary": summary})
    else:
        print(", ".join(f"{status} {count}" for status, count in summary.items()))


IMPORT_STATUSES = ("matched", "held", "duplicate", "skipped")


def _stop_import(error: LedgerError, line: int, done: int, as_json: bool) -> NoReturn:
    """A transaction refused while recording (the file was checked whole before; another writer may have changed a
    payer's account meanwhile): nothing of it was recorded, the lines before it stay recorded."""
    if as_json:
        print_error(error, as_json, line=line, recorded=done)
    else:
        print(f"error: {error}\nstopped: nothing from line {line} on was recorded; the {done} line(s) before it stay "
              f"recorded. Import the file again: the lines recorded are answered as duplicates, nothing is recorded "
              f"twice.", file=sys.stderr)
    raise typer.Exit(error.exit_code)


def _statement_line(row: dict[str, Any]) -> str:
    text = f"line {row['line']}: {row['status']} {row['reference']} {rupiah(row['amount'])} of {row['received_on']}"
    if "payer" in row:
        text += f" from {row['payer']}"
        if row.get("bills_settled"):
            text += f" (bills settled: {row['bills_settled']})"
    if "reason" in row:
        text += f": {row['reason']}"
    return text


@payment_app.command("unmatched")
def list_unmatched(
    ctx: typer.Context,
    branch: Annotated[str | None, typer.Option(help="only this branch's; default every branch's")] = None,
    as_json: AsJson = False,
) -> None:
    """Money held until matched: bank credits that named no known payer, oldest first."""
    with reporting(as_json):
        code = checked(identifiers.validate_branch_code, branch) if branch is not None else None
        rows = statements.unmatched(ctx.obj.reader, code)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        print(f"{row['reference']}  {row['received_on']}  {rupiah(row['amount'])}  {row['branch']}  "
              f"{row['description'] or '-'}")
    print(f"{len(rows)} held, {rupiah(sum(row['amount'] for row in rows))} in all")


@payment_app.command("match")
def match_money(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(help="the bank reference of the money held")],
    npp: Annotated[str | None, typer.Option(help="the employer or paying body that sent it")] = None,
    kpj: Annotated[str | None, typer.Option(help="the self-paying BPU member who sent it")] = None,
    code: Annotated[str | None, typer.Option(help="the payment code of a bill it pays")] = None,
    on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}: the day it was identified; default today")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Match money held to its payer: it is recorded as received from that payer (on the day it reached the bank)
    and applied to the payer's bills."""
    given = {"reference": reference, "npp": npp, "kpj": kpj, "code": code, "command_id": command_id,
             "identified_on": parse_date("--on", on) if on is not None else today(ctx)}
    with reporting(as_json):
        result = ctx.obj.ledger.execute(MatchMoney.build(**{k: v for k, v in given.items() if v is not None}))
    if as_json:
        print_json(result)
        return
    payer = f"employer {result['npp']}" if result["npp"] else f"member {result['kpj']}"
    settled = f"; bills settled: {', '.join(result['settled'])}" if result["settled"] else ""
    repeated = " -- repeated: this is the first result; nothing was written" if result["repeated"] else ""
    print(f"matched {result['reference']} ({rupiah(result['amount'])} of {result['received_on']}) to {payer} "
          f"(event {result['event_id']}){settled}; unapplied credit {rupiah(result['unapplied'])}, open bills "
          f"{result['open_bills']}{repeated}")
