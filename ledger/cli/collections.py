"""The collections commands: the monthly close that bills dues (`ledger billing`), money received, refunded, imported
from bank statements and matched by hand (`ledger payment`)."""

import hashlib
import re
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from ledger import identifiers
from ledger.application import BranchPayers
from ledger.billing import check_close_month
from ledger.cli.common import DATE_HELP, AsJson, CommandId, checked, print_json, reporting, today
from ledger.commands import CLOSE_MEMBERS_MAX, CLOSE_PAYERS_MAX, MONTH_PATTERN, CloseBills, ReceiveMoney, RefundMoney
from ledger.errors import InvalidInput, NotFound
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
