"""A payer's account statement (`ledger statement`): its bills, the money it sent, settlements with their late fines,
refunds and reversals, between two dates, read from the write side's event store (the payer's `PayerAccount`
events), as a real statement reads.

The balance is what the payer owes minus its credit: a bill and a settlement's late fine are debits (they add to what
is owed); money received is a credit. A settlement moves money onto bills, so it changes the balance by its fine
alone; a refund and money returned as a bank error take credit away (debits); a reversed settlement gives its fine
back (a credit: the bill is owed again, and the money that paid it is credit again). So the balance on any day is
the outstanding bills minus the unapplied money, and the statement's totals add up: opening balance + debits -
credits = closing balance.

Every line is dated with its event's effective date (a bill: the day it counts from; a settlement: the day it is
settled, which may be earlier than the day it was recorded), in that order and, within a day, in the order recorded.
The names of who paid (`payer_name`) are personal data and never shown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger import events as ev
from ledger.application import Ledger
from ledger.domain import event_id, payer_account_id
from ledger.errors import InvalidInput, RuleViolation
from ledger.formatting import rupiah
from ledger.rules import Segment

DATE_CHARS = 12
DESCRIPTION_CHARS = 50  # a line's description column; longer descriptions wrap onto the next lines
MONEY_CHARS = 15  # the debit and credit columns
BALANCE_CHARS = 17
STATEMENT_WIDTH = DATE_CHARS + DESCRIPTION_CHARS + 2 * MONEY_CHARS + BALANCE_CHARS  # 109 characters


@dataclass(frozen=True)
class Line:
    """One line of the statement: the event it comes from and what it does to the balance."""

    day: date
    event_id: str
    kind: str  # the event type
    description: str
    debit: int
    credit: int
    reference: str  # the bill id or the bank reference


def _line(aggregate_id: Any, version: int, contract: ev.LedgerEvent) -> Line | None:
    """The line of one of the account's events; None for an event that moves nothing (none so far)."""
    eid = event_id(aggregate_id, version)
    if isinstance(contract, ev.BillClosed):
        kind = "adjustment bill" if contract.kind is ev.BillKind.ADJUSTMENT else "bill"
        return Line(contract.counts_from, eid, contract.TYPE,
                    f"{kind} {contract.month} {contract.segment.value}, {contract.member_count:,} member(s), due "
                    f"{contract.due_date.isoformat()}, code {contract.payment_code}", contract.total, 0,
                    contract.bill_id)
    if isinstance(contract, ev.MoneyReceived):
        code = f", code {contract.payment_code}" if contract.payment_code else ""
        return Line(contract.received_on, eid, contract.TYPE,
                    f"money received from the {contract.payer.value}{code}", 0, contract.amount, contract.reference)
    if isinstance(contract, ev.BillSettled):
        late = (f", {contract.months_late} month(s) late: fine" if contract.months_late else ", on time")
        return Line(contract.settled_on, eid, contract.TYPE,
                    f"bill {contract.month} of {rupiah(contract.amount)} settled from {', '.join(contract.references)}"
                    f"{late}", contract.fine, 0, contract.bill_id)
    if isinstance(contract, ev.MoneyRefunded):
        return Line(contract.refunded_on, eid, contract.TYPE, f"refund of credit: {contract.reason}",
                    contract.amount, 0, contract.refund_id)
    if isinstance(contract, ev.SettlementReversed):
        return Line(contract.reversed_on, eid, contract.TYPE,
                    f"settlement of bill {contract.month} reversed, {rupiah(contract.total)} back to credit, fine "
                    f"returned: {contract.reason}", 0, contract.fine, contract.bill_id)
    if isinstance(contract, ev.ReceiptReturned):
        return Line(contract.returned_on, eid, contract.TYPE, f"money returned (bank error): {contract.reason}",
                    contract.amount, 0, contract.reference)
    return None


def _books(contracts: Iterable[ev.LedgerEvent], until: date) -> dict[str, int]:
    """Outstanding bills (their count and amount) and unapplied money on `until`, from the account's events."""
    billed = settled = bills = settlements = credit = 0
    for contract in contracts:
        if contract.effective_date() > until:
            continue
        if isinstance(contract, ev.BillClosed):
            billed, bills = billed + contract.total, bills + 1
        elif isinstance(contract, ev.MoneyReceived):
            credit += contract.amount
        elif isinstance(contract, ev.BillSettled):
            settled, settlements, credit = settled + contract.amount, settlements + 1, credit - contract.total
        elif isinstance(contract, ev.SettlementReversed):
            settled, settlements, credit = settled - contract.amount, settlements - 1, credit + contract.total
        elif isinstance(contract, (ev.MoneyRefunded, ev.ReceiptReturned)):
            credit -= contract.amount
    return {"bills_open": bills - settlements, "outstanding": billed - settled, "unapplied": credit}


def build_statement(payer: dict[str, Any], aggregate_id: Any, stored: Iterable[tuple[int, ev.LedgerEvent]],
                    start: date, end: date) -> dict[str, Any]:
    """The statement of one account from its stored events (version, contract): what `ledger statement --json`
    prints. `payer`: who the account is (`kind`, `npp` or `kpj`, `name` for an employer, `branch`)."""
    if start > end:
        raise InvalidInput(f"--from {start.isoformat()} is after --to {end.isoformat()}")
    contracts = list(stored)
    lines = [line for version, contract in contracts if (line := _line(aggregate_id, version, contract)) is not None]
    lines.sort(key=lambda line: line.day)  # stable: within a day, in the order recorded
    opening = sum(line.debit - line.credit for line in lines if line.day < start)
    balance, rows = opening, list[dict[str, Any]]()
    for line in lines:
        if start <= line.day <= end:
            balance += line.debit - line.credit
            rows.append({"date": line.day.isoformat(), "type": line.kind, "description": line.description,
                         "reference": line.reference, "debit": line.debit, "credit": line.credit,
                         "balance": balance, "event_id": line.event_id})
    debits, credit_total = sum(r["debit"] for r in rows), sum(r["credit"] for r in rows)
    books = _books((contract for _, contract in contracts), end)
    assert opening + debits - credit_total == balance == books["outstanding"] - books["unapplied"], "the books disagree"
    return {"payer": payer, "from": start.isoformat(), "to": end.isoformat(), "opening_balance": opening,
            "lines": rows, "total_debit": debits, "total_credit": credit_total, "closing_balance": balance, **books}


def account_statement(ledger: Ledger, *, npp: str | None, kpj: str | None, start: date, end: date) -> dict[str, Any]:
    """The statement of an employer or paying body (`npp`) or of a self-paying BPU member (`kpj`)."""
    if npp is not None:
        employer = ledger.employer(npp)
        payer = {"kind": "employer", "npp": npp, "kpj": None, "name": employer.name, "branch": employer.branch}
    else:
        assert kpj is not None
        member = ledger.member(kpj)
        if member.segment is not Segment.BPU or member.npp is not None:
            raise RuleViolation(f"member {kpj} is billed to employer or paying body {member.npp}: ask for its "
                                f"statement with --npp {member.npp}")
        # A member's name is personal data: the statement names the KPJ only.
        payer = {"kind": "member", "npp": None, "kpj": kpj, "name": None, "branch": member.branch}
    aggregate_id = payer_account_id(npp, kpj)
    return build_statement(payer, aggregate_id, ledger.stored_contracts(aggregate_id), start, end)


def _wrapped(text: str, width: int) -> list[str]:
    words, rows, row = text.split(" "), [], ""
    for word in words:
        if row and len(row) + 1 + len(word) > width:
            rows.append(row)
            row = word
        else:
            row = f"{row} {word}" if row else word
    return [*rows, row]


def _row(day: str, text: str, debit: str = "", credit: str = "", balance: str = "") -> str:
    return (f"{day:<{DATE_CHARS}}{text:<{DESCRIPTION_CHARS}}{debit:>{MONEY_CHARS}}{credit:>{MONEY_CHARS}}"
            f"{balance:>{BALANCE_CHARS}}").rstrip()


def statement_lines(statement: dict[str, Any]) -> list[str]:
    """The statement as it prints in a terminal."""
    payer = statement["payer"]
    who = (f"employer {payer['npp']} ({payer['name']})" if payer["kind"] == "employer"
           else f"self-paying member {payer['kpj']}")
    rule = "-" * STATEMENT_WIDTH
    out = [f"ACCOUNT STATEMENT  {who}, branch {payer['branch']}",
           (f"period {statement['from']} to {statement['to']}; balance = owed minus credit (a negative balance "
            f"is the payer's credit)"),
           rule, _row("date", "description", "debit", "credit", "balance"), rule,
           _row(statement["from"], "opening balance", balance=rupiah(statement["opening_balance"]))]
    for row in statement["lines"]:
        text = _wrapped(f"{row['description']} [{row['reference']}]", DESCRIPTION_CHARS - 2)
        out.append(_row(row["date"], text[0], rupiah(row["debit"]) if row["debit"] else "",
                        rupiah(row["credit"]) if row["credit"] else "", rupiah(row["balance"])))
        out.extend(_row("", more) for more in text[1:])
    if not statement["lines"]:
        out.append(_row("", "(no movements in the period)"))
    out += [rule,
            _row("", "totals of the period", rupiah(statement["total_debit"]), rupiah(statement["total_credit"])),
            _row(statement["to"], "closing balance", balance=rupiah(statement["closing_balance"])),
            rule,
            (f"on {statement['to']}: {statement['bills_open']:,} bill(s) open, outstanding "
             f"{rupiah(statement['outstanding'])}; unapplied money (credit) {rupiah(statement['unapplied'])}")]
    return out
