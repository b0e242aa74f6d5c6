"""Collections on the write side: the monthly close that bills dues, money received, its application to bills, and
refunds. Handlers in the shape of `ledger.handlers` (load, decide, return what to save); `ledger.application` runs them.

- A **bill** (`BillClosed` + `BillLinesAdded` parts) freezes what a payer owes for one month and segment: one line per
  member covered that month and neither billed nor paid yet, priced as `ledger contribution pay` prices it. A month
  closed again bills only what is new: members found since (a back-dated enrollment), and the difference for members
  billed before whose month costs more now (a wage or risk class raised back into it; `BillLine.adjustment`): an
  adjustment bill, never an edit. A lower wage or class dated back into a billed month is refused when recorded.
- **Money** (`MoneyReceived`) goes to the payer's account (`domain.PayerAccount`) as a lot, and is applied by the rule
  in force (`rules.MONEY_APPLICATION`): bills oldest first, each settled whole with its late fine to the settlement
  date. A settlement (`BillSettled`) records the bill's lines as `ContributionPaid` events (payment id = the bill id),
  so balances, branch totals and everything downstream keep their meaning; an adjustment line is recorded as a
  `ContributionAdjusted` on the member's month, which they add the same way.
- A **refund** (`MoneyRefunded`) pays back credit: money received and not applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID

from ledger import events as ev
from ledger import pricing, rules
from ledger.commands import CloseBills, ReceiveMoney, RefundMoney
from ledger.domain import (
    BillLines,
    ContributionMonth,
    Employer,
    Member,
    OpenBill,
    PayerAccount,
    bill_lines_id,
    contribution_month_id,
    event_id,
    month_key,
    month_start,
    payer_account_id,
)
from ledger.errors import InvalidInput, NotFound, RuleViolation
from ledger.handlers import Handler, HandlerContext, Outcome, check_date, month_records
from ledger.identifiers import luhn_check_digit
from ledger.rules import Segment

SEGMENT_DIGIT = {Segment.PU: "1", Segment.BPU: "2"}
BILLS_PER_MONTH_MAX = 99  # a payer's bills for one month and segment: the payment code has two digits for it
EMPLOYER_CODE_DIGITS, MEMBER_CODE_DIGITS = 17, 19
SETTLED_SHOWN_MAX = 24  # bills a receipt's result lists by id (a lump payment may settle more; all are recorded)


# --- payment codes -------------------------------------------------------------------------------------------------


def payment_code(npp: str | None, kpj: str | None, month: str, segment: Segment, seq: int) -> str:
    """The code a payer quotes at the bank: who pays, for which month, which bill, and a Luhn check digit.

    Employer: 1 + NPP (8) + YYMM + segment digit + bill number (2) + check = 17 digits. Self-paying BPU member:
    2 + KPJ (11) + YYMM + bill number (2) + check = 19 digits. The code names its payer, so money quoting it goes
    to that payer's account even when the clerk types nothing else.
    """
    yymm = month[2:4] + month[5:7]
    body = f"1{npp}{yymm}{SEGMENT_DIGIT[segment]}{seq:02d}" if npp is not None else f"2{kpj}{yymm}{seq:02d}"
    return body + luhn_check_digit(body)


def payer_of_code(code: str) -> tuple[str | None, str | None]:
    """(npp, kpj) of a payment code (already checked for shape and check digit by the command)."""
    if code[0] == "1" and len(code) == EMPLOYER_CODE_DIGITS:
        return code[1:9], None
    if code[0] == "2" and len(code) == MEMBER_CODE_DIGITS:
        return None, code[1:12]
    raise NotFound(f"unknown payment code {code}: no bill carries it")


# --- the monthly close ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Payer:
    npp: str | None
    kpj: str | None
    branch: str
    members: list[Member]
    employer: Employer | None
    labour_intensive: bool

    @property
    def label(self) -> str:
        return f"employer {self.npp}" if self.npp is not None else f"member {self.kpj}"


def _payers(context: HandlerContext, command: CloseBills) -> list[_Payer]:
    payers = []
    for npp in command.npps:
        employer = context.employer(npp)
        payers.append(_Payer(npp, None, employer.branch, context.members(employer.roster) if employer.roster else [],
                             employer, pricing.labour_intensive_discount(employer.labour_intensive,
                                                                         len(employer.roster))))
    for member in context.members(command.kpjs) if command.kpjs else []:
        if member.segment is not Segment.BPU or member.npp is not None:
            raise RuleViolation(f"member {member.kpj} is billed to its employer or paying body {member.npp}: "
                                f"close with that NPP")
        payers.append(_Payer(None, member.kpj, member.branch, [member], None, False))
    return payers


# What a member's month costs depends on these alone, so one close prices each combination once (members of a
# branch share a few hundred wages): (segment, wage, programs, month, risk class, labour-intensive) -> the line's
# fields but the KPJ.
Prices = dict[tuple[Any, ...], dict[str, Any]]


def _bill_line(payer: _Payer, member: Member, month: str, due: date, prices: Prices) -> ev.BillLine:
    wage = member.wage_on(pricing.month_end(month))
    risk_class = payer.employer.risk_class_on(month_start(month)) if payer.employer is not None else None
    key = (member.segment, wage, member.programs, month, risk_class, payer.labour_intensive)
    fields = prices.get(key)
    if fields is None:
        try:
            price = pricing.price_month(member.segment, wage, member.programs, month, due, risk_class=risk_class,
                                        labour_intensive=payer.labour_intensive)
        except (LookupError, ValueError) as error:
            raise RuleViolation(f"member {member.kpj}, month {month}: {error}") from None
        owed = price.owed
        fields = prices[key] = {
            "wage": wage, "shares": {p: ev.ProgramShare(employer=s.employer, worker=s.worker)
                                     for p, s in owed.shares.items()},
            "jkp_from_jkk": owed.jkp_from_jkk, "jkp_from_jkm": owed.jkp_from_jkm, "jp_deferred": owed.jp_deferred,
            "amount": owed.total}
    return ev.BillLine(kpj=member.kpj, **fields)


def _already_billed(context: HandlerContext, account: PayerAccount | None, month: str,
                    segment: Segment) -> dict[str, list[ev.BillLine]]:
    """The lines of the payer's bills for `month` and `segment`, by member."""
    if account is None:
        return {}
    billed: dict[str, list[ev.BillLine]] = {}
    for bill_id in account.bills_by_month.get((month, segment.value), []):
        lines: BillLines | None = context.find(bill_lines_id(bill_id))
        for line in lines.lines if lines is not None else []:
            billed.setdefault(line.kpj, []).append(line)
    return billed


def _adjustment(line: ev.BillLine, billed: list[ev.BillLine]) -> ev.BillLine | None:
    """What a member's month costs now (`line`) beyond what its earlier lines billed, as an adjustment line; None
    when it costs no more. A wage or risk class lowered back into a billed month is refused when recorded
    (`ledger.handlers`), so a share is lower now only when the labour-intensive discount began to apply since (more
    workers): such a month is left as billed."""
    shares: dict[rules.Program, ev.ProgramShare] = {}
    for program in rules.Program:
        now = line.shares.get(program, ev.ProgramShare(employer=0, worker=0))
        employer = now.employer - sum(b.shares[program].employer for b in billed if program in b.shares)
        worker = now.worker - sum(b.shares[program].worker for b in billed if program in b.shares)
        if employer < 0 or worker < 0:
            return None
        if employer or worker:
            shares[program] = ev.ProgramShare(employer=employer, worker=worker)
    if not shares:
        return None
    return ev.BillLine(
        kpj=line.kpj, wage=line.wage, shares=shares,
        jkp_from_jkk=line.jkp_from_jkk - sum(b.jkp_from_jkk for b in billed),
        jkp_from_jkm=line.jkp_from_jkm - sum(b.jkp_from_jkm for b in billed),
        jp_deferred=line.jp_deferred - sum(b.jp_deferred for b in billed),
        amount=sum(share.employer + share.worker for share in shares.values()), adjustment=True)


def _already_paid(context: HandlerContext, members: list[Member], month: str) -> set[str]:
    """Members whose month was paid without a bill (`ledger contribution pay`): they are not billed again."""
    ids = {contribution_month_id(m.kpj, month): m.kpj for m in members}
    found = context.find_many(list(ids))
    return {ids[i] for i, record in found.items() if isinstance(record, ContributionMonth) and record.current}


def _lines_owed(context: HandlerContext, payer: _Payer, account: PayerAccount | None, owed: list[Member],
                month: str, segment: Segment, due: date, prices: Prices) -> list[ev.BillLine]:
    """The lines a close bills: members owed and neither billed nor paid yet, then the difference for members
    billed before whose month costs more now (a wage or risk class raised back into it)."""
    billed = _already_billed(context, account, month, segment)
    paid = _already_paid(context, [m for m in owed if m.kpj not in billed], month)
    lines = [_bill_line(payer, m, month, due, prices) for m in owed if m.kpj not in billed and m.kpj not in paid]
    for member in (m for m in owed if m.kpj in billed):
        adjustment = _adjustment(_bill_line(payer, member, month, due, prices), billed[member.kpj])
        if adjustment is not None:
            lines.append(adjustment)
    return lines


def _close_payer(context: HandlerContext, payer: _Payer, month: str, today: date, careful: bool,
                 prices: Prices) -> tuple[PayerAccount | None, list[Any], list[dict[str, Any]]]:
    """The bills of one payer for `month` (one per segment with members owed), recorded on its account."""
    account: PayerAccount | None = context.find(payer_account_id(payer.npp, payer.kpj), to_save=not careful)
    covered = [m for m in payer.members if m.covered_in(month)]
    aggregates: list[Any] = []
    made: list[dict[str, Any]] = []
    for segment in (Segment.PU, Segment.BPU):
        counts_from = rules.bill_counts_from(segment, month_start(month))
        if counts_from > today:
            continue  # a PU month is billed once it is over (its close runs from the 1st of the next month)
        owed = [m for m in covered if m.segment is segment]
        if not owed:
            continue
        due = rules.bill_due_date(segment, month_start(month))
        lines = _lines_owed(context, payer, account, owed, month, segment, due, prices)
        if not lines:
            continue
        seq = (account.bill_count(month, segment) if account is not None else 0) + 1
        if seq > BILLS_PER_MONTH_MAX:
            raise RuleViolation(f"{payer.label} has {BILLS_PER_MONTH_MAX} bills for {month} already")
        code = payment_code(payer.npp, payer.kpj, month, segment, seq)
        bill_id = f"{payer.npp or payer.kpj}/{month}/{segment.value}/{seq}"
        parts = [lines[i:i + ev.BILL_PART_LINES_MAX] for i in range(0, len(lines), ev.BILL_PART_LINES_MAX)]
        bill = ev.BillClosed(
            bill_id=bill_id, payment_code=code, npp=payer.npp, kpj=payer.kpj, branch=payer.branch, segment=segment,
            month=month, kind=ev.BillKind.REGULAR if seq == 1 else ev.BillKind.ADJUSTMENT, counts_from=counts_from,
            due_date=due, closed_on=today, member_count=len(lines), parts=len(parts),
            program_totals=_program_totals(lines), total=sum(line.amount for line in lines))
        if account is None:
            account = PayerAccount.start(bill)
        else:
            account.record(bill)
        record: BillLines | None = None
        for number, part in enumerate(parts, start=1):
            added = ev.BillLinesAdded(bill_id=bill_id, branch=payer.branch, part=number, counts_from=counts_from,
                                      lines=part)
            if record is None:
                record = BillLines.start(added)
            else:
                record.record(added)
        aggregates.append(record)
        made.append({"bill_id": bill_id, "payment_code": code, "members": len(lines), "total": bill.total,
                     "due_date": due.isoformat()})
    return account, aggregates, made


def _program_totals(lines: list[ev.BillLine]) -> dict[rules.Program, int]:
    totals = dict.fromkeys(rules.Program, 0)
    for line in lines:
        for program, share in line.shares.items():
            totals[program] += share.employer + share.worker
    return {program: total for program, total in totals.items() if total}


def check_close_month(month: str, today: date) -> None:
    """A month that may be closed: begun, and within the rules' tables. Also asked by `ledger billing close` before
    its first batch, so that a bad month is refused even for a branch with nobody to bill."""
    if month > month_key(today):
        raise InvalidInput(f"month {month} has not begun (today is {today.isoformat()}); a typo?")
    if month_start(month) < rules.LEDGER_EPOCH:
        raise InvalidInput(f"month {month} is before the ledger's rules begin ({month_key(rules.LEDGER_EPOCH)})")


def close_bills(context: HandlerContext, command: CloseBills, careful: bool) -> Outcome:
    today = context.clock()
    check_close_month(command.month, today)
    aggregates: list[Any] = []
    bills: list[dict[str, Any]] = []
    settled: list[str] = []
    prices: Prices = {}
    for payer in _payers(context, command):
        account, records, made = _close_payer(context, payer, command.month, today, careful, prices)
        if not made:
            continue
        assert account is not None
        # Money the payer had in credit is applied at once: the rule settles the new bill if it can. Its lines are
        # not in the store yet (they are saved with this command), so they are handed over.
        months, settlements = _apply(context, account, careful, {r.bill_id: r.lines for r in records})
        aggregates.extend([account, *records, *months])
        bills.extend(made)
        settled.extend(settlements)
    return aggregates, {"month": command.month, "bills": len(bills), "total": sum(b["total"] for b in bills),
                        "members": sum(b["members"] for b in bills), "settled_from_credit": len(settled),
                        "first_bills": bills[:SETTLED_SHOWN_MAX]}


# --- money and its application -------------------------------------------------------------------------------------


def _fine(bill: ev.BillClosed, lines: list[ev.BillLine], months_late: int) -> list[int]:
    """The late fine of each line: PU only, 2% a month of delay (`rules.late_fine`, rounded per line as
    `ledger contribution pay` rounds it)."""
    if bill.segment is not Segment.PU or months_late == 0:
        return [0] * len(lines)
    return [rules.late_fine(line.amount, months_late, bill.due_date) for line in lines]


def _settlement_date(account: PayerAccount, bill: OpenBill,
                     line_fines: Any) -> tuple[date, int, int] | None:
    """The first day the payer's money covers the bill with its fine: (day, months late, fine), or None.

    Money is taken oldest lot first; the bill is settled on the later of the day it counts from and the day the lot
    that completes it arrived, with the fine due that day (a bill reopened by a reversed settlement: not before the
    day it was reopened)."""
    covered = 0
    latest = bill.bill.counts_from if bill.reopened_on is None else max(bill.bill.counts_from, bill.reopened_on)
    for _reference, left, received_on, _role in account.lots:
        covered += left
        latest = max(latest, received_on)
        months_late = rules.months_late(bill.bill.due_date, latest) if bill.bill.segment is Segment.PU else 0
        fine = sum(line_fines(months_late))
        if covered >= bill.bill.total + fine:
            return latest, months_late, fine
    return None


def _apply(context: HandlerContext, account: PayerAccount, careful: bool,
           unsaved: dict[str, list[ev.BillLine]] | None = None) -> tuple[list[Any], list[str]]:
    """Apply the account's unapplied money to its open bills by the rule in force; returns the contribution-month
    records to save and the bills settled. `unsaved`: the lines of bills made by this command, by bill id."""
    records: list[Any] = []
    settled: list[str] = []
    touched: dict[UUID, ContributionMonth] = {}  # contribution months this command records on, by id
    while account.open_bills and account.lots:
        bill = account.open_bills[0]
        lines = _bill_lines(context, bill.bill.bill_id, unsaved or {})
        found = _settlement_date(account, bill, lambda months_late, b=bill, ls=lines: _fine(b.bill, ls, months_late))
        if found is None:
            break
        settled_on, months_late, fine = found
        references = account.sources(bill.bill.total + fine)
        role = next(lot[3] for lot in reversed(account.lots) if lot[0] == references[-1])
        rule = rules.in_force(rules.MONEY_APPLICATION, settled_on)
        account.record(ev.BillSettled(
            bill_id=bill.bill.bill_id, npp=bill.bill.npp, kpj=bill.bill.kpj, branch=bill.bill.branch,
            month=bill.bill.month, rule=rule, settled_on=settled_on, months_late=months_late,
            amount=bill.bill.total, fine=fine, total=bill.bill.total + fine, references=references))
        paid, adjusted = _contribution_lines(bill.bill, lines, settled_on, months_late, ev.PayerRole(role))
        new_records = month_records(context, paid, careful)
        touched.update((record.id, record) for record in new_records)
        records.extend(new_records)
        for adjustment in adjusted:
            records.extend(_adjusted_month(context, touched, adjustment, careful))
        settled.append(bill.bill.bill_id)
    return records, settled


def _adjusted_month(context: HandlerContext, touched: dict[UUID, ContributionMonth],
                    adjustment: ev.ContributionAdjusted, careful: bool) -> list[ContributionMonth]:
    """The month's contribution record with the adjustment recorded on it; returned when it is not among the
    records this command saves already."""
    month_id = contribution_month_id(adjustment.kpj, adjustment.month)
    record = touched.get(month_id)
    if record is not None:
        record.record(adjustment)
        return []
    record = context.find(month_id, to_save=not careful)
    if record is None:
        record = ContributionMonth.start(adjustment)
    else:
        record.record(adjustment)
    touched[month_id] = record
    return [record]


def _bill_lines(context: HandlerContext, bill_id: str, unsaved: dict[str, list[ev.BillLine]]) -> list[ev.BillLine]:
    if bill_id in unsaved:
        return unsaved[bill_id]
    lines_record: BillLines | None = context.find(bill_lines_id(bill_id))
    assert lines_record is not None, f"bill {bill_id} has no lines"
    return lines_record.lines


def _contribution_lines(bill: ev.BillClosed, lines: list[ev.BillLine], settled_on: date, months_late: int,
                        payer: ev.PayerRole) -> tuple[list[ev.ContributionPaid], list[ev.ContributionAdjusted]]:
    """A settled bill's lines as contribution events: a `ContributionPaid` per member line, a `ContributionAdjusted`
    per adjustment line (its month was paid, or billed, before)."""
    fines = _fine(bill, lines, months_late)
    paid: list[ev.ContributionPaid] = []
    adjusted: list[ev.ContributionAdjusted] = []
    for line, fine in zip(lines, fines, strict=True):
        fields = dict(
            kpj=line.kpj, npp=bill.npp, branch=bill.branch, segment=bill.segment, month=bill.month,
            paid_on=settled_on, payer=payer, payment_id=bill.bill_id, wage=line.wage, shares=line.shares,
            jkp_from_jkk=line.jkp_from_jkk, jkp_from_jkm=line.jkp_from_jkm, jp_deferred=line.jp_deferred,
            months_late=months_late, fine=fine, total=line.amount + fine)
        if line.adjustment:
            adjusted.append(ev.ContributionAdjusted(**fields))
        else:
            paid.append(ev.ContributionPaid(**fields))
    return paid, adjusted


def _receiving_account(context: HandlerContext, command: ReceiveMoney) -> tuple[str | None, str | None, str,
                                                                               ev.PayerRole]:
    """(npp, kpj, branch, default payer role) of the payer the money names."""
    npp, kpj = (command.npp, command.kpj) if command.code is None else payer_of_code(command.code)
    if npp is not None:
        employer = context.employer(npp)
        return npp, None, employer.branch, ev.PayerRole.EMPLOYER
    assert kpj is not None
    member = context.member(kpj)
    if member.segment is not Segment.BPU or member.npp is not None:
        raise RuleViolation(f"member {kpj}'s contributions are billed to employer or paying body {member.npp}: "
                            f"record the money with --npp {member.npp}")
    return None, kpj, member.branch, ev.PayerRole.MEMBER


def receive_money(context: HandlerContext, command: ReceiveMoney, careful: bool) -> Outcome:
    check_date(context, "receipt date", command.received_on)
    npp, kpj, branch, role = _receiving_account(context, command)
    account: PayerAccount | None = context.find(payer_account_id(npp, kpj), to_save=not careful)
    if command.code is not None and (account is None or command.code not in account.codes):
        raise NotFound(f"unknown payment code {command.code}: no bill carries it (closed months of "
                       f"{'employer ' + npp if npp else 'member ' + str(kpj)} have other codes)")
    receipt = ev.MoneyReceived(
        reference=command.reference, npp=npp, kpj=kpj, branch=branch, payer=command.payer or role,
        payer_name=command.payer_name, payment_code=command.code, amount=command.amount,
        received_on=command.received_on)
    if account is None:
        account = PayerAccount.start(receipt)
        receipt_id = event_id(account.id, 1)
    else:
        receipt_id = account.record(receipt)
    records, settled = _apply(context, account, careful)
    return [account, *records], {
        "reference": command.reference, "event_id": receipt_id, "npp": npp, "kpj": kpj, "amount": command.amount,
        "received_on": command.received_on.isoformat(), "bills_settled": len(settled),
        "settled": settled[:SETTLED_SHOWN_MAX], "unapplied": account.unapplied,
        "open_bills": len(account.open_bills)}


def refund_money(context: HandlerContext, command: RefundMoney, careful: bool) -> Outcome:
    check_date(context, "refund date", command.refunded_on)
    account: PayerAccount | None = context.find(payer_account_id(command.npp, command.kpj), to_save=not careful)
    label = f"employer {command.npp}" if command.npp is not None else f"member {command.kpj}"
    credit = account.unapplied if account is not None else 0
    if command.amount > credit:
        raise RuleViolation(f"a refund of Rp{command.amount:,} is larger than {label}'s credit of Rp{credit:,} "
                            f"(money received and not applied to bills)")
    assert account is not None
    # The money paid back is the oldest held (as `PayerAccount.spend` takes it): it must be the payer's credit by the
    # refund's date (received by then, and if a reversed settlement gave it back, given back by then), or the books
    # would show money paid back before it was received, or while it was still applied to a bill.
    left, arrived = command.amount, command.refunded_on
    for _reference, rupiah, credit_from, _role in account.lots:
        if left <= 0:
            break
        arrived, left = max(arrived, credit_from), left - rupiah
    if arrived > command.refunded_on:
        raise RuleViolation(f"a refund dated {command.refunded_on.isoformat()} would pay back money that is "
                            f"{label}'s credit only from {arrived.isoformat()} (received, or given back by a "
                            f"reversed settlement, that day): date the refund {arrived.isoformat()} or after")
    new_id = account.record(ev.MoneyRefunded(
        refund_id=command.command_id, npp=command.npp, kpj=command.kpj, branch=account.branch,
        amount=command.amount, refunded_on=command.refunded_on, reason=command.reason))
    return [account], {"event_id": new_id, "amount": command.amount, "unapplied": account.unapplied}


BILLING_HANDLERS: dict[type, Handler] = {
    CloseBills: close_bills,
    ReceiveMoney: receive_money,
    RefundMoney: refund_money,
}
