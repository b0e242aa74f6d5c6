"""The collections commands: the monthly close that bills dues (`ledger billing`), money received, refunded, imported
from bank statements and matched by hand (`ledger payment`)."""

import hashlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ledger import identifiers, statements
from ledger.application import BranchPayers
from ledger.billing import check_close_month
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
from ledger.commands import (
    CLOSE_MEMBERS_MAX,
    CLOSE_PAYERS_MAX,
    MONTH_PATTERN,
    CloseBills,
    MatchMoney,
    ReceiveMoney,
    RefundMoney,
)
from ledger.errors import InvalidInput, LedgerError, NotFound
from ledger.events import PayerRole
from ledger.formatting import rupiah

billing_app = typer.Typer(help="Close a month: bill every payer its dues.", no_args_is_help=True)
payment_app = typer.Typer(help="Money received from payers: record, import from a bank statement, match, refund.",
                          no_args_is_help=True)


# --- the monthly close ---------------------------------------------------------------------------------------------
# (ledger billing close)

CLOSE_DIGEST_CHARS = 16  # of a close batch's command id: the hash of what the batch closes
_MONTH = re.compile(MONTH_PATTERN)


def close_batches(month: str, payers: BranchPayers) -> Iterator[CloseBills]:
    """A branch's close, batch by batch: employers CLOSE_PAYERS_MAX at a time, then self-paying BPU members
    CLOSE_MEMBERS_MAX at a time. Each batch's command id is derived from the month, the branch and the batch's
    payers, and for employers the branch's newest employee (`BranchPayers.last_employer_change`), so that running
    the close again is a repeat of the batches already done (a crash loses at most one batch), while a close after
    an enrollment is a new command that bills what was found (an adjustment bill). A self-paying member's bill
    depends on that member alone: a new one changes the batch's list."""
    chunks: list[tuple[str, int, list[str], list[str]]] = [
        ("employers", i // CLOSE_PAYERS_MAX + 1, payers.npps[i:i + CLOSE_PAYERS_MAX], [])
        for i in range(0, len(payers.npps), CLOSE_PAYERS_MAX)]
    chunks += [("members", i // CLOSE_MEMBERS_MAX + 1, [], payers.kpjs[i:i + CLOSE_MEMBERS_MAX])
               for i in range(0, len(payers.kpjs), CLOSE_MEMBERS_MAX)]
    for kind, number, npps, kpjs in chunks:
        mark = payers.last_employer_change if npps else 0
        content = f"{month}|{payers.branch}|{mark}|{','.join(npps)}|{','.join(kpjs)}"
        digest = hashlib.sha256(content.encode()).hexdigest()[:CLOSE_DIGEST_CHARS]
        yield CloseBills(command_id=f"close:{month}:{payers.branch}:{kind}-{number}:{digest}", month=month,
                         npps=npps, kpjs=kpjs)


@billing_app.command("close")
def close_month(
    ctx: typer.Context,
    month: Annotated[str, typer.Option(help="the contribution month to bill, YYYY-MM")],
    branch: Annotated[str | None, typer.Option(help="one branch, e.g. BEKASI-KOTA; default every branch")] = None,
    as_json: AsJson = False,
) -> None:
    """Close a month: bill every employer and every self-paying BPU member its dues, batch by batch."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with reporting(as_json):
        if not _MONTH.fullmatch(month):
            raise InvalidInput(f"--month must be a month YYYY-MM, like 2024-03, got {month!r}")
        check_close_month(month, today(ctx))
        chosen = None if branch is None else checked(identifiers.validate_branch_code, branch)
        ledger = ctx.obj.ledger
        branches = ledger.payers(chosen)
        if chosen is not None and chosen not in branches:
            raise NotFound(f"no employer or member is registered at branch {chosen}")
        batches = [batch for payers in branches.values() for batch in close_batches(month, payers)]
        summary: dict[str, Any] = {"month": month, "branch": chosen, "batches": len(batches), "batches_repeated": 0,
                                   "bills": 0, "members": 0, "total": 0, "settled_from_credit": 0}
        # The bar goes to stderr and only to a terminal, as `ledger projections rebuild`'s does.
        console = Console(stderr=True)
        with Progress(TextColumn(f"close {month}"), BarColumn(), MofNCompleteColumn(), TextColumn("batches"),
                      console=console, disable=as_json or not console.is_terminal) as bar:
            task = bar.add_task("close", total=len(batches))
            for batch in batches:
                # A batch done before is answered from its record, without loading its payers again.
                result = ledger.previous_result(batch) or ledger.execute(batch)
                if result["repeated"]:
                    summary["batches_repeated"] += 1  # its bills were counted by the run that made them
                else:
                    for key in ("bills", "members", "total", "settled_from_credit"):
                        summary[key] += result[key]
                bar.advance(task)
    if as_json:
        print_json(summary)
        return
    where = f"branch {chosen}" if chosen is not None else f"{len(branches):,} branch(es)"
    repeated = f", {summary['batches_repeated']:,} already closed (repeat)" if summary["batches_repeated"] else ""
    print(f"closed {month} for {where}: {summary['bills']:,} bill(s) for {summary['members']:,} member(s), total "
          f"{rupiah(summary['total'])}; {summary['settled_from_credit']:,} settled from credit "
          f"({summary['batches']:,} batch(es){repeated})")


# --- money received and refunded -----------------------------------------------------------------------------------
# (ledger payment receive, ledger payment refund)


@payment_app.command("receive")
def receive_money(
    ctx: typer.Context,
    amount: Annotated[int, typer.Option(help="the money received, whole rupiah")],
    received_on: Annotated[str, typer.Option(help=f"{DATE_HELP}: the day the money arrived")],
    reference: Annotated[str, typer.Option(help="the bank's reference of the transfer: the same reference again "
                                                "is a repeat, never more money")],
    code: Annotated[str | None, typer.Option(help="the payment code quoted, as printed on the bill")] = None,
    npp: Annotated[str | None, typer.Option(help="an employer or paying body, by NPP")] = None,
    kpj: Annotated[str | None, typer.Option(help="a self-paying BPU member, by KPJ")] = None,
    payer: Annotated[str | None, typer.Option(
        help=f"who paid, as a role: {'|'.join(r.value for r in PayerRole)}; default employer (NPP or an "
             f"employer's code) or member (KPJ or a member's code)")] = None,
    payer_name: Annotated[str | None, typer.Option(
        help="who paid, as on the bank slip; kept in the ledger, never published")] = None,
    as_json: AsJson = False,
) -> None:
    """Record money received from a payer (by payment code, NPP or KPJ) and apply it to its bills, oldest first."""
    given = {"reference": reference, "code": code, "npp": npp, "kpj": kpj, "amount": amount,
             "received_on": received_on, "payer": payer, "payer_name": payer_name}
    with reporting(as_json):
        result = ctx.obj.ledger.execute(ReceiveMoney.build(**{k: v for k, v in given.items() if v is not None}))
    if as_json:
        print_json(result)
        return
    if result["repeated"]:
        print(f"bank reference {result['reference']} already recorded (repeat): nothing was written")
    who = f"employer {result['npp']}" if result["npp"] is not None else f"member {result['kpj']}"
    more = result["bills_settled"] - len(result["settled"])
    listed = ", ".join(result["settled"]) + (f" and {more:,} more" if more > 0 else "")
    settled = f" ({listed})" if result["settled"] else ""
    print(f"received {rupiah(result['amount'])} from {who} on {result['received_on']} (reference "
          f"{result['reference']}, event {result['event_id']}); {result['bills_settled']:,} bill(s) settled"
          f"{settled}; unapplied {rupiah(result['unapplied'])}, "
          f"{result['open_bills']:,} bill(s) open")


@payment_app.command("refund")
def refund_money(
    ctx: typer.Context,
    amount: Annotated[int, typer.Option(help="the money paid back, whole rupiah; at most the payer's credit")],
    on: Annotated[str, typer.Option(help=f"{DATE_HELP}: the day it was paid back")],
    reason: Annotated[str, typer.Option(help="why; kept in the books")],
    npp: Annotated[str | None, typer.Option(help="an employer or paying body, by NPP")] = None,
    kpj: Annotated[str | None, typer.Option(help="a self-paying BPU member, by KPJ")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Pay back a payer's credit: money received and not applied to bills."""
    given = {"npp": npp, "kpj": kpj, "amount": amount, "refunded_on": on, "reason": reason,
             "command_id": command_id}
    with reporting(as_json):
        result = ctx.obj.ledger.execute(RefundMoney.build(**{k: v for k, v in given.items() if v is not None}))
    if as_json:
        print_json(result)
        return
    who = f"employer {npp}" if npp is not None else f"member {kpj}"
    repeated = (f" -- repeated command id {result['command_id']}: this is the first result; nothing was written"
                if result["repeated"] else "")
    print(f"refunded {rupiah(result['amount'])} to {who} (event {result['event_id']}); unapplied "
          f"{rupiah(result['unapplied'])}{repeated}")


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
