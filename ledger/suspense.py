"""Money held until matched: bank credits that name no known payer (suspense), and their matching by a clerk.
Handlers in the shape of `ledger.handlers` (load, decide, return what to save); `ledger.application` runs them.

- A credit on the fund's bank statement whose payment code, NPP or KPJ names no payer the ledger knows is **held**
  (`MoneyUnidentified`) on a `domain.HeldMoney` aggregate keyed by its bank reference, at the branch whose account
  received it. Its command id is the reference (money:REFERENCE), as a receipt's is, so one bank credit is recorded
  once: held, or received, never both.
- A clerk **matches** it to its payer (`MoneyIdentified`); in the same transaction the money is recorded on the payer's
  account as `MoneyReceived` (same reference, received on the day it reached the bank, which is the day the late fine
  runs to) and applied to the payer's bills by the rule in force (`billing._apply`).
- `payer_named` tells the statement import (`ledger payment import`) which credits name a known payer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ledger import events as ev
from ledger.billing import SETTLED_SHOWN_MAX, _apply, payer_of_code, receive_money
from ledger.commands import HoldMoney, MatchMoney, ReceiveMoney, RecordStatementLines
from ledger.domain import (
    CommandRecord,
    ContributionMonth,
    Employer,
    HeldMoney,
    Member,
    PayerAccount,
    command_record_id,
    employer_id,
    event_id,
    held_money_id,
    member_id,
    payer_account_id,
)
from ledger.errors import AlreadyExists, CommandIdConflict, InvalidInput, NotFound, RuleViolation
from ledger.handlers import Handler, HandlerContext, Outcome, check_date
from ledger.rules import Segment


@dataclass(frozen=True)
class NoPayer:
    """Why a credit names no known payer: numbers only, never a person (it is printed). `unknown`: the number is
    well formed but nobody holds it (rather than a payer that pays otherwise)."""

    reason: str
    unknown: bool = True


@dataclass(frozen=True)
class Payer:
    """A payer the ledger knows: an employer or paying body (npp), or a self-paying BPU member (kpj)."""

    npp: str | None
    kpj: str | None
    branch: str
    role: ev.PayerRole

    @property
    def label(self) -> str:
        return f"employer {self.npp}" if self.npp is not None else f"member {self.kpj}"


def payer_named(context: HandlerContext, code: str | None, npp: str | None, kpj: str | None) -> Payer | NoPayer:
    """The known payer that a payment code, an NPP or a KPJ (exactly one, already checked for shape) names, or why
    none: the reason is printed, so it names numbers only, never a person."""
    if code is not None:
        try:
            npp, kpj = payer_of_code(code)
        except NotFound:  # well formed, check digit right, but not of the shape the fund gives its payers
            return NoPayer(f"no bill carries payment code {code}")
    if npp is not None:
        employer = context.find(employer_id(npp))
        if employer is None:
            return NoPayer(f"no employer with NPP {npp} is registered")
        payer = Payer(npp, None, employer.branch, ev.PayerRole.EMPLOYER)
    elif kpj is not None:
        member = context.find(member_id(kpj))
        if member is None:
            return NoPayer(f"no member with KPJ {kpj} is enrolled")
        if member.segment is not Segment.BPU or member.npp is not None:
            return NoPayer(f"member {kpj} is billed to employer or paying body {member.npp}, not paid by the member",
                           unknown=False)
        payer = Payer(None, kpj, member.branch, ev.PayerRole.MEMBER)
    else:
        return NoPayer("the credit names no payment code, NPP or KPJ")
    if code is not None:
        account: PayerAccount | None = context.find(payer_account_id(payer.npp, payer.kpj))
        if account is None or code not in account.codes:
            return NoPayer(f"no bill of {payer.label} carries payment code {code}")
    return payer


def hold_money(context: HandlerContext, command: HoldMoney, careful: bool) -> Outcome:  # noqa: ARG001
    check_date(context, "receipt date", command.received_on)
    if context.find(held_money_id(command.reference)) is not None:
        raise AlreadyExists(f"bank reference {command.reference} is already held in suspense")
    held = HeldMoney.start(ev.MoneyUnidentified(
        reference=command.reference, branch=command.branch, amount=command.amount, received_on=command.received_on,
        payment_code=command.payment_code, description=command.description, payer_name=command.payer_name))
    return [held], {"reference": command.reference, "event_id": event_id(held.id, 1), "branch": command.branch,
                    "amount": command.amount, "received_on": command.received_on.isoformat(), "held": True}


def match_money(context: HandlerContext, command: MatchMoney, careful: bool) -> Outcome:
    held: HeldMoney | None = context.find(held_money_id(command.reference), to_save=not careful)
    if held is None:
        raise NotFound(f"no money is held under bank reference {command.reference} (ledger payment unmatched lists "
                       f"what is held)")
    if held.identified is not None:
        who = held.identified.npp or held.identified.kpj
        raise AlreadyExists(f"held money {command.reference} was already matched to {who} on "
                            f"{held.identified.identified_on.isoformat()}")
    check_date(context, "match date", command.identified_on)
    money = held.held
    if command.identified_on < money.received_on:
        raise InvalidInput(f"match date {command.identified_on.isoformat()} is before the money arrived "
                           f"({money.received_on.isoformat()})")
    payer = payer_named(context, command.code, command.npp, command.kpj)
    if isinstance(payer, NoPayer):
        raise (NotFound if payer.unknown else RuleViolation)(f"cannot match {command.reference}: {payer.reason}")
    account: PayerAccount | None = context.find(payer_account_id(payer.npp, payer.kpj), to_save=not careful)
    held.record(ev.MoneyIdentified(reference=command.reference, branch=held.branch, npp=payer.npp, kpj=payer.kpj,
                                   amount=money.amount, identified_on=command.identified_on))
    receipt = ev.MoneyReceived(
        reference=command.reference, npp=payer.npp, kpj=payer.kpj, branch=payer.branch, payer=payer.role,
        payer_name=money.payer_name, payment_code=command.code, amount=money.amount, received_on=money.received_on)
    if account is None:
        account = PayerAccount.start(receipt)
        receipt_id = event_id(account.id, 1)
    else:
        receipt_id = account.record(receipt)
    records, settled = _apply(context, account, careful)
    return [held, account, *records], {
        "reference": command.reference, "event_id": receipt_id, "npp": payer.npp, "kpj": payer.kpj,
        "amount": money.amount, "received_on": money.received_on.isoformat(),
        "identified_on": command.identified_on.isoformat(), "bills_settled": len(settled),
        "settled": settled[:SETTLED_SHOWN_MAX], "unapplied": account.unapplied, "open_bills": len(account.open_bills)}




class _Batch:
    """A `HandlerContext` for several commands decided in one transaction: an aggregate a command changed is what the
    next one finds (not the store's older copy), so one payer's receipts in one statement build on each other."""

    def __init__(self, context: HandlerContext) -> None:
        self._context = context
        self.clock = context.clock
        self.changed: dict[UUID, Any] = {}
        self._employers: dict[str, Employer] = {}
        self._members: dict[str, Member] = {}

    def find(self, aggregate_id: UUID, *, to_save: bool = False) -> Any:
        if aggregate_id in self.changed:
            return self.changed[aggregate_id]
        return self._context.find(aggregate_id, to_save=to_save)

    def employer(self, npp: str, *, to_save: bool = False) -> Employer:
        if to_save:
            return self._context.employer(npp, to_save=to_save)
        if npp not in self._employers:  # read once a batch: a statement names the same employers again and again
            self._employers[npp] = self._context.employer(npp)
        return self._employers[npp]

    def member(self, kpj: str, *, to_save: bool = False) -> Member:
        if to_save:
            return self._context.member(kpj, to_save=to_save)
        if kpj not in self._members:
            self._members[kpj] = self._context.member(kpj)
        return self._members[kpj]

    def members(self, kpjs: list[str]) -> list[Member]:
        return self._context.members(kpjs)

    def contribution_months(self, member: Member) -> list[ContributionMonth]:
        return self._context.contribution_months(member)

    def find_many(self, ids: list[UUID]) -> dict[UUID, Any]:
        found = self._context.find_many([i for i in ids if i not in self.changed])
        return found | {i: self.changed[i] for i in ids if i in self.changed}

    def all_member_ids(self) -> Iterator[UUID]:
        return self._context.all_member_ids()

    def nik_hmac(self, nik: str) -> str:
        return self._context.nik_hmac(nik)


def record_statement_lines(context: HandlerContext, command: RecordStatementLines, careful: bool) -> Outcome:
    """Each line as its own command would record it, with its own command record, all in one transaction. A line
    whose command id ran before is a duplicate (the same content) or refused (`CommandIdConflict`: other content)."""
    batch = _Batch(context)
    records: list[CommandRecord] = []
    done: list[dict[str, Any]] = []
    # Every line's earlier record in one read (a few queries), not one each.
    earlier = context.find_many([command_record_id(line.command_id) for line in command.lines])
    for line in command.lines:
        previous = earlier.get(command_record_id(line.command_id))
        if previous is not None:
            if previous.fingerprint != line.fingerprint():
                raise CommandIdConflict(line.conflict_message(previous.name))
            done.append({"reference": line.reference, "repeated": True})
            continue
        try:
            if isinstance(line, ReceiveMoney):
                aggregates, result = receive_money(batch, line, careful)
            else:
                aggregates, result = hold_money(batch, line, careful)
        except (InvalidInput, NotFound, AlreadyExists, RuleViolation) as error:
            raise type(error)(f"bank reference {line.reference}: {error}") from None
        batch.changed.update((aggregate.id, aggregate) for aggregate in aggregates)
        result = {"command": line.NAME, "command_id": line.command_id, **result}
        records.append(CommandRecord(command_id=line.command_id, name=line.NAME, fingerprint=line.fingerprint(),
                                     result=result))
        done.append({**result, "repeated": False})
    return [*batch.changed.values(), *records], {"lines": done}


SUSPENSE_HANDLERS: dict[type, Handler] = {
    HoldMoney: hold_money,
    MatchMoney: match_money,
    RecordStatementLines: record_statement_lines,
}
