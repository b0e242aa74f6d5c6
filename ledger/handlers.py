"""The command handlers: one function per command that loads what it needs, decides, and returns what to save.

`Ledger.execute` (`ledger.application`) calls `HANDLERS[type(command)](context, command, careful)` and saves the
aggregates it returns, with the command record, in one transaction. A handler writes nothing itself: it records events
on aggregates and returns them with the command's result, or raises an operating error (`ledger.errors`), and then
nothing is saved. It reaches the store only through `HandlerContext`, the narrow interface the `Ledger` gives it:
aggregates read from the store, the clock, and the NIK hash. What things cost (contributions, fines, yields, balances,
claim amounts) comes from `ledger.pricing`; guards that need one aggregate only are the aggregate's own
(`ledger.domain`); the guards here span aggregates or need the clock.

`careful` is False on a command's first attempt: an aggregate the handler will save may be the ledger's cached copy
(`to_save=not careful`), and facts that must be new (a member, a contribution month) are left to the store's
uniqueness constraint. A retry is careful: it reads everything fresh and checks those facts one by one, so that a real
duplicate is refused by name instead of retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Protocol
from uuid import UUID

from ledger import events as ev
from ledger import pricing, rules
from ledger.commands import (
    ChangeRiskClass,
    ChangeWage,
    Command,
    CreditYield,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    MemberRow,
    PayClaim,
    PayContribution,
    RegisterEmployer,
    Reverse,
)
from ledger.domain import (
    BillLines,
    ContributionMonth,
    Employer,
    LedgerAggregate,
    Member,
    PayerAccount,
    Payment,
    bill_lines_id,
    check_segment_programs,
    contribution_month_id,
    employer_id,
    event_id,
    member_id,
    month_key,
    month_start,
    parse_event_id,
    payer_account_id,
    payment_id,
)
from ledger.errors import AlreadyExists, InvalidInput, NotFound, RuleViolation
from ledger.rules import Program, RiskClass, Segment

EARLIEST_DATE = date(1977, 1, 1)  # the fund's predecessor began in 1977: nothing in the books is older
PREPAID_MONTHS_MAX = 12  # BPU members and government employers may pay up to a year ahead
INDIVIDUAL_ACCOUNTS = (Program.JHT, Program.JP)  # paid out to the member: their balance must never go below zero

DEFAULT_CLAIM_KIND = {Program.JHT: ev.ClaimKind.JHT_FULL, Program.JKM: ev.ClaimKind.JKM_DEATH,
                      Program.JP: ev.ClaimKind.JP_LUMP_SUM}
KINDS_BY_PROGRAM = {
    Program.JHT: {ev.ClaimKind.JHT_FULL, ev.ClaimKind.JHT_PARTIAL_HOUSING, ev.ClaimKind.JHT_PARTIAL_OTHER},
    Program.JKK: {ev.ClaimKind.JKK_DEATH, ev.ClaimKind.JKK_DISABILITY, ev.ClaimKind.JKK_CARE},
    Program.JKM: {ev.ClaimKind.JKM_DEATH},
    Program.JP: {ev.ClaimKind.JP_LUMP_SUM},
}


class HandlerContext(Protocol):
    """What a handler may ask of the ledger. `to_save`: the handler records an event on the aggregate and returns
    it to be saved, so a cached copy will do (the save's version check catches a stale one)."""

    clock: Callable[[], date]

    def find(self, aggregate_id: UUID, *, to_save: bool = False) -> Any: ...

    def employer(self, npp: str, *, to_save: bool = False) -> Employer: ...

    def member(self, kpj: str, *, to_save: bool = False) -> Member: ...

    def members(self, kpjs: list[str]) -> list[Member]: ...

    def contribution_months(self, member: Member) -> list[ContributionMonth]: ...

    def find_many(self, ids: list[UUID]) -> dict[UUID, Any]: ...

    def all_member_ids(self) -> Iterator[UUID]: ...

    def nik_hmac(self, nik: str) -> str: ...


# The aggregates to save and the command's result.
Outcome = tuple[list[Any], dict[str, Any]]
Handler = Callable[[HandlerContext, Any, bool], Outcome]


def check_date(context: HandlerContext, field: str, value: date, *, not_after: date | None = None) -> None:
    today = context.clock()
    latest = not_after or today
    if value > latest:
        raise InvalidInput(f"{field} {value.isoformat()} is in the future (latest allowed "
                           f"{latest.isoformat()}); a typo such as a wrong year?")
    if value < EARLIEST_DATE:
        raise InvalidInput(f"{field} {value.isoformat()} is before {EARLIEST_DATE.isoformat()}, "
                           f"earlier than anything in the fund's books")


def _account_contracts(context: HandlerContext, member: Member,
                       months: list[ContributionMonth] | None = None) -> list[ev.LedgerEvent]:
    """The contract events a member's balances are computed from: its own and its contribution months'."""
    if months is None:
        months = context.contribution_months(member)
    return pricing.booked([member, *months])


# --- employers -----------------------------------------------------------------------------------------------------


def register_employer(context: HandlerContext, command: RegisterEmployer, careful: bool) -> Outcome:  # noqa: ARG001
    check_date(context, "registration date", command.registered_on)
    if context.find(employer_id(command.npp)) is not None:
        raise AlreadyExists(f"an employer with NPP {command.npp} is already registered")
    contract = ev.EmployerRegistered(
        npp=command.npp, name=command.name, branch=command.branch, kind=command.kind,
        risk_class=command.risk_class, programs=command.programs, labour_intensive=command.labour_intensive,
        registered_on=command.registered_on)
    employer = Employer.start(contract)
    return [employer], {"npp": command.npp, "event_id": event_id(employer.id, 1)}


# --- changes dated back into billed months ---------------------------------------------------------------------------
# A bill is never edited. A change dated back that would lower what a billed month costs (a lower wage, a lower risk
# class) would leave the payer owed money, which the ledger cannot record yet: it is refused, naming the bill and the
# first date the change may take effect. A change that raises it is recorded and does not change the bill: the month's
# next close bills the difference in an adjustment bill (`ledger.billing`).

RISK_ORDER = list(RiskClass)  # very-low .. very-high: a later class has a higher JKK rate


def _bills_from(context: HandlerContext, npp: str | None, kpj: str | None,
                first_month: str) -> list[tuple[str, str]]:
    """(month, bill id) of a payer's bills for `first_month` and later, oldest month first."""
    account: PayerAccount | None = context.find(payer_account_id(npp, kpj))
    if account is None:
        return []
    return sorted((month, bill_id) for (month, _segment), ids in account.bills_by_month.items()
                  if month >= first_month for bill_id in ids)


def _next_month_start(month: str) -> date:
    return month_start(rules.shift_month(month, 1))


def _overridden(history: list[Any], effective: date, day: date) -> bool:
    """Whether a change already recorded, dated after `effective` and by `day`, decides the value on `day`."""
    return any(effective < item.effective <= day for item in history)


def _check_wage_not_lowered_in_bills(context: HandlerContext, member: Member, wage: int, effective: date) -> None:
    """A member's wage is priced at each month's end: a change dated `effective` reaches the months from its own."""
    billed: list[tuple[str, str, int]] = []
    for month, bill_id in _bills_from(context, member.npp, None if member.npp is not None else member.kpj,
                                      month_key(effective)):
        if _overridden(member.wage_history, effective, pricing.month_end(month)):
            continue
        lines: BillLines | None = context.find(bill_lines_id(bill_id))
        billed.extend((month, bill_id, line.wage) for line in (lines.lines if lines is not None else [])
                      if line.kpj == member.kpj)
    for month, bill_id, billed_wage in billed:
        if wage < billed_wage:
            raise RuleViolation(
                f"member {member.kpj}'s wage from {effective.isoformat()} (Rp{wage:,}) is lower than the "
                f"Rp{billed_wage:,} billed for {month} in bill {bill_id}: a lower wage dated back into a billed "
                f"month is not supported (a bill is never edited, and the payer would be owed the difference); "
                f"date the change {_next_month_start(billed[-1][0]).isoformat()} or later")


def _jkk(shares: dict[Program, ev.ProgramShare]) -> int:
    return pricing.share_total(shares, Program.JKK)


def _jkk_lowered(context: HandlerContext, employer: Employer, risk_class: RiskClass, month: str,
                 bill_ids: list[str]) -> tuple[str, str] | None:
    """(member, bill) of the first member whose JKK for `month` at `risk_class` (and the wage in force) would be less
    than the month's bills billed for it; None if none would."""
    billed: dict[str, tuple[int, str]] = {}
    for bill_id in bill_ids:
        lines: BillLines | None = context.find(bill_lines_id(bill_id))
        for line in lines.lines if lines is not None else []:
            before, first_bill = billed.get(line.kpj, (0, bill_id))
            billed[line.kpj] = (before + _jkk(line.shares), first_bill)
    discount = pricing.labour_intensive_discount(employer.labour_intensive, len(employer.roster))
    for member in context.members(sorted(billed)):
        amount, bill_id = billed[member.kpj]
        try:
            price = pricing.price_month(member.segment, member.wage_on(pricing.month_end(month)), member.programs,
                                        month, month_start(month), risk_class=risk_class, labour_intensive=discount)
        except (LookupError, ValueError):
            continue  # a month the rules cannot price was not billed either
        jkk = price.owed.shares.get(Program.JKK)
        if (jkk.employer + jkk.worker if jkk is not None else 0) < amount:
            return member.kpj, bill_id
    return None


def _check_risk_not_lowered_in_bills(context: HandlerContext, employer: Employer, risk_class: RiskClass,
                                     effective: date) -> None:
    """An employer's risk class is taken on each month's first day: a change dated `effective` reaches the months
    that begin on or after it. Refused: a class lower than the one in force for a billed month that would price a
    member's JKK below what its bills billed (a class raised and not billed yet may be lowered back)."""
    first = month_key(effective) if effective.day == 1 else month_key(_next_month_start(month_key(effective)))
    bills = _bills_from(context, employer.npp, None, first)
    by_month: dict[str, list[str]] = {}
    for month, bill_id in bills:
        by_month.setdefault(month, []).append(bill_id)
    for month, bill_ids in by_month.items():
        in_force = employer.risk_class_on(month_start(month))
        if (_overridden(employer.risk_history, effective, month_start(month))
                or RISK_ORDER.index(risk_class) >= RISK_ORDER.index(in_force)):
            continue
        lowered = _jkk_lowered(context, employer, risk_class, month, bill_ids)
        if lowered is not None:
            kpj, bill_id = lowered
            raise RuleViolation(
                f"employer {employer.npp}'s risk class from {effective.isoformat()} ({risk_class.value}) would "
                f"price member {kpj}'s JKK for {month} below what bill {bill_id} billed: a lower risk class dated "
                f"back into a billed month is not supported (a bill is never edited, and the employer would be "
                f"owed the difference); date the change {_next_month_start(bills[-1][0]).isoformat()} or later")


def change_risk_class(context: HandlerContext, command: ChangeRiskClass, careful: bool) -> Outcome:
    check_date(context, "effective date", command.effective)
    employer = context.employer(command.npp, to_save=not careful)
    _check_risk_not_lowered_in_bills(context, employer, command.risk_class, command.effective)
    new_id = employer.record(ev.EmployerRiskClassChanged(
        npp=command.npp, risk_class=command.risk_class, effective=command.effective))
    return [employer], {"npp": command.npp, "event_id": new_id}


# --- members -------------------------------------------------------------------------------------------------------


def _check_declared_income(kpj: str, income: int, on: date) -> None:
    """A BPU member's declared income is one of the government's list: within its bounds on `on`."""
    try:
        low, high = rules.in_force(rules.BPU_INCOME_BOUNDS, on)
    except LookupError as error:  # a date before the rule tables begin
        raise RuleViolation(f"member {kpj}: {error}") from None
    if not low <= income <= high:
        raise InvalidInput(f"member {kpj}: a BPU declared income must be between Rp{low:,} and "
                           f"Rp{high:,}, got Rp{income:,}")


def _new_member(context: HandlerContext, row: MemberRow, npp: str | None, branch: str, effective: date) -> Member:
    programs = row.program_set()
    check_segment_programs(row.segment, frozenset(programs))
    if row.segment is Segment.BPU:
        _check_declared_income(row.kpj, row.wage, effective)
    if row.birth_date >= effective:
        # The birth date is personal data: the message names the field, not its value.
        raise InvalidInput(f"member {row.kpj}: the birth date is not before the enrollment date {effective}")
    return Member.start(ev.MemberEnrolled(
        kpj=row.kpj, nik=row.nik, nik_hmac=context.nik_hmac(row.nik), name=row.name, birth_date=row.birth_date,
        birth_year=row.birth_date.year, segment=row.segment, npp=npp, branch=branch, wage=row.wage,
        programs=programs, effective=effective))


def _check_not_enrolled(context: HandlerContext, rows: list[MemberRow]) -> None:
    for row in rows:
        if context.find(member_id(row.kpj)) is not None:
            raise AlreadyExists(f"a member with KPJ {row.kpj} is already enrolled")


def _enroll(context: HandlerContext, rows: list[MemberRow], npp: str | None, branch: str | None, effective: date,
            careful: bool) -> Outcome:
    check_date(context, "effective date", effective)
    employer = context.employer(npp, to_save=not careful) if npp is not None else None
    if employer is not None:
        branch = employer.branch
    assert branch is not None  # the command's own validation guarantees it
    # The store's uniqueness constraint catches a KPJ enrolled twice; only a retry checks member by member,
    # to name the KPJ that already exists.
    if careful:
        _check_not_enrolled(context, rows)
    members = [_new_member(context, row, npp, branch, effective) for row in rows]
    aggregates: list[Any] = list(members)
    if employer is not None:
        employer.record(ev.WorkersJoined(npp=employer.npp, kpjs=[row.kpj for row in rows], effective=effective))
        aggregates.append(employer)
    return aggregates, {"enrolled": len(members), "npp": npp, "branch": branch,
                        "kpjs": [row.kpj for row in rows][:10], "effective": effective.isoformat()}


def enroll_member(context: HandlerContext, command: EnrollMember, careful: bool) -> Outcome:
    aggregates, result = _enroll(context, [command.member], command.npp, command.branch, command.effective, careful)
    return aggregates, {**result, "kpj": command.member.kpj, "event_id": event_id(aggregates[0].id, 1)}


def enroll_members(context: HandlerContext, command: EnrollMembers, careful: bool) -> Outcome:
    return _enroll(context, list(command.members), command.npp, None, command.effective, careful)


def change_wage(context: HandlerContext, command: ChangeWage, careful: bool) -> Outcome:
    check_date(context, "effective date", command.effective)
    member = context.member(command.kpj, to_save=not careful)
    if command.effective < member.enrolled_on:
        raise InvalidInput(f"wage change on {command.effective} is before member {command.kpj} enrolled "
                           f"({member.enrolled_on})")
    if member.exit is not None:
        raise RuleViolation(f"member {command.kpj} exited on {member.exit.exit_date}; no wage change after exit")
    if member.segment is Segment.BPU:  # as at enrollment: otherwise every later payment would be refused
        _check_declared_income(command.kpj, command.wage, command.effective)
    _check_wage_not_lowered_in_bills(context, member, command.wage, command.effective)
    new_id = member.record(ev.MemberWageChanged(kpj=command.kpj, wage=command.wage, effective=command.effective))
    return [member], {"kpj": command.kpj, "wage": command.wage, "event_id": new_id}


def _check_no_paid_month_after(context: HandlerContext, member: Member, exit_date: date) -> None:
    """An exit dated back must not leave paid months that it makes not owed (`rules.month_owed`): those payments
    are reversed first, as a claim that would take back paid-out money is."""
    for record in context.contribution_months(member):
        if record.current is not None and not rules.month_owed(record.month, member.enrolled_on, exit_date):
            raise RuleViolation(f"member {member.kpj}'s contribution for {record.month} is paid (event "
                                f"{record.current_id}); an exit on {exit_date} means that month is not "
                                f"owed: reverse that contribution first")


def exit_member(context: HandlerContext, command: ExitMember, careful: bool) -> Outcome:
    check_date(context, "exit date", command.exit_date)
    member = context.member(command.kpj, to_save=not careful)
    if member.exit is not None:
        raise AlreadyExists(f"member {command.kpj} already exited on {member.exit.exit_date} "
                            f"({member.exit.reason.value})")
    if command.exit_date < member.enrolled_on:
        raise InvalidInput(f"exit date {command.exit_date} is before member {command.kpj} enrolled "
                           f"({member.enrolled_on})")
    last_wage_change = member.wage_history[-1].effective
    if command.exit_date < last_wage_change:
        raise InvalidInput(f"exit date {command.exit_date} is before the wage change of {last_wage_change} "
                           f"recorded for member {command.kpj}")
    _check_no_paid_month_after(context, member, command.exit_date)
    new_id = member.record(ev.MemberExited(kpj=command.kpj, reason=command.reason, exit_date=command.exit_date))
    return [member], {"kpj": command.kpj, "reason": command.reason.value, "event_id": new_id}


# --- contributions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Account:
    """What a payment is for: an employer's roster (by NPP) or one BPU member (by KPJ), and what that decides."""

    employer: Employer | None
    members: list[Member]
    payer: ev.PayerRole
    branch: str
    may_prepay: bool
    labour_intensive: bool
    label: str  # as messages name it


def _paying_account(context: HandlerContext, command: PayContribution) -> _Account:
    if command.npp is not None:
        employer = context.employer(command.npp)
        return _Account(
            employer=employer, members=context.members(employer.roster),
            payer=command.payer or ev.PayerRole.EMPLOYER, branch=employer.branch,
            may_prepay=employer.kind is ev.EmployerKind.GOVERNMENT,
            labour_intensive=pricing.labour_intensive_discount(employer.labour_intensive, len(employer.roster)),
            label=f"employer {employer.npp}")
    assert command.kpj is not None  # the command's own validation: an NPP or a KPJ
    member = context.member(command.kpj)
    if member.segment is not Segment.BPU or member.npp is not None:
        raise RuleViolation(f"member {member.kpj} is paid for by employer {member.npp}: pay with --npp")
    return _Account(employer=None, members=[member], payer=command.payer or ev.PayerRole.MEMBER,
                    branch=member.branch, may_prepay=True, labour_intensive=False, label=f"member {member.kpj}")


def _check_not_ahead(command: PayContribution, months: list[str], may_prepay: bool) -> None:
    paid_month = month_key(command.paid_on)
    latest_month = pricing.months_from(paid_month, PREPAID_MONTHS_MAX + 1)[-1] if may_prepay else paid_month
    if months[-1] > latest_month:
        raise InvalidInput(f"contribution month {months[-1]} is in the future for a payment made on "
                           f"{command.paid_on} (latest allowed {latest_month})")


def _check_not_billed(context: HandlerContext, command: PayContribution, months: list[str]) -> None:
    """A month with an open bill is paid by money received against the bill (`ledger payment receive`), not here:
    otherwise the bill would stay open for contributions already paid."""
    collections: PayerAccount | None = context.find(payer_account_id(command.npp, command.kpj))
    if collections is None:
        return
    for bill in collections.open_bills:
        if bill.bill.month in months:
            raise RuleViolation(f"{bill.bill.month} is billed (bill {bill.bill.bill_id}, payment code "
                                f"{bill.bill.payment_code}, Rp{bill.bill.total:,}): record the money with "
                                f"ledger payment receive --code {bill.bill.payment_code}")


def _contribution_line(command: PayContribution, account: _Account, member: Member,
                       month: str) -> ev.ContributionPaid:
    wage = member.wage_on(pricing.month_end(month))
    risk_class = account.employer.risk_class_on(month_start(month)) if account.employer is not None else None
    try:
        price = pricing.price_month(member.segment, wage, member.programs, month, command.paid_on,
                                    risk_class=risk_class, labour_intensive=account.labour_intensive)
    except (LookupError, ValueError) as error:
        raise RuleViolation(f"member {member.kpj}, month {month}: {error}") from None
    owed = price.owed
    shares = {p: ev.ProgramShare(employer=s.employer, worker=s.worker) for p, s in owed.shares.items()}
    return ev.ContributionPaid(
        kpj=member.kpj, npp=member.npp, branch=account.branch, segment=member.segment, month=month,
        paid_on=command.paid_on, payer=account.payer, payment_id=command.command_id, wage=wage, shares=shares,
        jkp_from_jkk=owed.jkp_from_jkk, jkp_from_jkm=owed.jkp_from_jkm, jp_deferred=owed.jp_deferred,
        months_late=price.months_late, fine=price.fine, total=price.total)


def _contribution_lines(command: PayContribution, account: _Account, months: list[str]) -> list[ev.ContributionPaid]:
    """One line per member and month owed, months first."""
    lines = [_contribution_line(command, account, member, month)
             for month in months for member in account.members if member.covered_in(month)]
    if not lines:
        raise RuleViolation(f"no member of {account.label} is covered in {', '.join(months)}: the months are before "
                            f"enrollment or after exit")
    return lines


def month_records(context: HandlerContext, lines: list[ev.ContributionPaid], careful: bool) -> list[Any]:
    """A new contribution-month record per line; a retry pays again a month whose payment was reversed, and names
    a month already paid (the first attempt leaves both to the store's uniqueness constraint)."""
    records: list[Any] = []
    for line in lines:
        existing = context.find(contribution_month_id(line.kpj, line.month)) if careful else None
        if existing is not None:
            existing.check_can_pay()
            existing.record(line)
            records.append(existing)
        else:
            records.append(ContributionMonth.start(line))
    return records


def pay_contribution(context: HandlerContext, command: PayContribution, careful: bool) -> Outcome:
    check_date(context, "payment date", command.paid_on)
    months = pricing.months_from(command.month, command.months)
    account = _paying_account(context, command)
    _check_not_ahead(command, months, account.may_prepay)
    _check_not_billed(context, command, months)
    lines = _contribution_lines(command, account, months)
    records = month_records(context, lines, careful)
    receipt = ev.ContributionPaymentReceived(
        payment_id=command.command_id, npp=command.npp, kpj=command.kpj, branch=account.branch,
        payer=account.payer, payer_name=command.payer_name, paid_on=command.paid_on, months=months,
        member_count=len({line.kpj for line in lines}), line_count=len(lines),
        program_totals=pricing.program_totals(lines), fine=sum(line.fine for line in lines),
        total=sum(line.total for line in lines))
    payment = Payment.start(receipt)
    records.append(payment)
    return records, {"payment_id": receipt.payment_id, "event_id": event_id(payment.id, 1),
                     "payer": account.payer.value, "months": months,
                     "members": receipt.member_count, "lines": receipt.line_count,
                     "program_totals": {p.value: t for p, t in receipt.program_totals.items()},
                     "fine": receipt.fine, "total": receipt.total}


# --- yield ---------------------------------------------------------------------------------------------------------


def _earns_yield(member: Member, year: int) -> bool:
    """A JHT member enrolled by the end of `year` whose account is open: a full JHT payout closes it (the member was
    paid out and earns no later yield)."""
    closed = any(c.kind is ev.ClaimKind.JHT_FULL for c in member.claims_of(Program.JHT))
    return Program.JHT in member.programs and not closed and member.enrolled_on <= date(year, 12, 31)


def _check_yield_credited(year: int, rate: Decimal, earlier_rates: set[Decimal], credited: list[Member]) -> None:
    """A year has one announced rate: crediting it again at another rate, or when nobody is left to credit, is
    refused rather than answered with "0 members", which an operator could take for success."""
    other = sorted(r for r in earlier_rates if r != rate)
    if other:
        raise AlreadyExists(f"the {year} yield was already credited at {other[0] * 100:f}% "
                            f"(rate_percent); one year has one rate")
    if not credited:
        if earlier_rates:
            raise AlreadyExists(f"the {year} yield was already credited to every JHT member")
        raise RuleViolation(f"no JHT member to credit the {year} yield to (none enrolled by the end of "
                            f"{year}, or all paid out)")


def credit_yield(context: HandlerContext, command: CreditYield, careful: bool) -> Outcome:  # noqa: ARG001
    credited_on = command.credited_on or date(command.year, 12, 31)
    check_date(context, "credit date", credited_on)
    if credited_on < date(command.year, 12, 31):
        raise InvalidInput(f"the {command.year} yield is credited after the year ends, not on {credited_on}")
    rate = command.rate_percent / Decimal(100)
    credited: list[Member] = []
    total = 0
    earlier_rates: set[Decimal] = set()  # the rates this year's yield was already credited at
    for aggregate_id in context.all_member_ids():
        member = context.find(aggregate_id)
        if command.year in member.yields:
            earlier_rates.add(member.yields[command.year].rate)
        elif _earns_yield(member, command.year):
            basis, amount = pricing.jht_yield(_account_contracts(context, member), command.year, rate)
            member.record(ev.YieldCredited(kpj=member.kpj, year=command.year, rate=rate, balance_basis=basis,
                                           amount=amount, credited_on=credited_on))
            credited.append(member)
            total += amount
    _check_yield_credited(command.year, rate, earlier_rates, credited)
    return credited, {"year": command.year, "rate_percent": str(command.rate_percent),
                      "members": len(credited), "total": total}


# --- claims --------------------------------------------------------------------------------------------------------


def _claim_kind(command: PayClaim) -> ev.ClaimKind:
    kind = command.kind or DEFAULT_CLAIM_KIND.get(command.program)
    if kind is None:
        raise InvalidInput("a JKK claim needs --kind: death, disability or care")
    if kind not in KINDS_BY_PROGRAM[command.program]:
        allowed = ", ".join(sorted(k.value for k in KINDS_BY_PROGRAM[command.program]))
        raise InvalidInput(f"{kind.value} is not a kind of {command.program.value} claim (allowed: {allowed})")
    return kind


def _check_beneficiary(member: Member, command: PayClaim, kind: ev.ClaimKind) -> None:
    """The member is paid while alive, an heir after a death; a care provider for JKK care only."""
    died = member.exit is not None and member.exit.reason in (ev.ExitReason.DEATH, ev.ExitReason.WORK_DEATH)
    heir = command.beneficiary not in (ev.Beneficiary.SELF, ev.Beneficiary.CARE_PROVIDER)
    if command.beneficiary is ev.Beneficiary.CARE_PROVIDER and kind is not ev.ClaimKind.JKK_CARE:
        raise InvalidInput("only a JKK care claim (--kind care) is paid to a care provider; this claim is paid "
                           "to the member or, after a death, to an heir")
    if (kind in ev.DEATH_CLAIM_KINDS or died) and not heir and kind is not ev.ClaimKind.JKK_CARE:
        raise InvalidInput(f"member {member.kpj} died: the claim is paid to an heir; give the beneficiary's "
                           f"relationship (spouse, child, parent, other-heir) and name")
    if not died and heir and kind not in ev.DEATH_CLAIM_KINDS:
        raise InvalidInput(f"member {member.kpj} has not died: the claim is paid to the member (self), not "
                           f"to the {command.beneficiary.value}")


def _claim_amounts(context: HandlerContext, member: Member, command: PayClaim,
                   kind: ev.ClaimKind) -> pricing.ClaimAmounts:
    if command.program is Program.JHT:
        balance = pricing.lowest_balance(_account_contracts(context, member), Program.JHT, command.paid_on)
        return pricing.jht_claim_amounts(kind, balance, kpj=member.kpj, enrolled_on=member.enrolled_on,
                                         paid_on=command.paid_on)
    if command.program is Program.JKK:
        return pricing.jkk_claim_amounts(kind, member.wage_on(command.incident_date),
                                         incident_date=command.incident_date, paid_on=command.paid_on)
    if command.program is Program.JKM:
        return pricing.jkm_claim_amounts(kpj=member.kpj, incident_date=command.incident_date,
                                         exit_date=None if member.exit is None else member.exit.exit_date)
    months = context.contribution_months(member)
    balance = pricing.lowest_balance(_account_contracts(context, member, months), Program.JP, command.paid_on)
    return pricing.jp_claim_amounts(kpj=member.kpj, paid_months=pricing.jp_paid_months(m.current for m in months),
                                    balance=balance)


def pay_claim(context: HandlerContext, command: PayClaim, careful: bool) -> Outcome:
    check_date(context, "payment date", command.paid_on)
    check_date(context, "incident date", command.incident_date, not_after=command.paid_on)
    kind = _claim_kind(command)
    member = context.member(command.kpj, to_save=not careful)
    _check_beneficiary(member, command, kind)
    amounts = _claim_amounts(context, member, command, kind)
    amount = pricing.claim_amount(command.amount, amounts, kpj=member.kpj, program=command.program, kind=kind)
    statutory = amounts[0]
    claim = ev.ClaimPaid(
        claim_id=command.command_id, kpj=member.kpj, branch=member.branch, program=command.program, kind=kind,
        incident_date=command.incident_date, paid_on=command.paid_on, beneficiary=command.beneficiary,
        beneficiary_name=command.beneficiary_name, amount=amount, statutory_amount=statutory)
    member.check_can_claim(claim)
    new_id = member.record(claim)
    return [member], {"kpj": member.kpj, "program": command.program.value, "kind": kind.value,
                      "amount": amount, "statutory_amount": statutory, "beneficiary": command.beneficiary.value,
                      "event_id": new_id}


# --- reversals -----------------------------------------------------------------------------------------------------


def _check_not_paid_out(context: HandlerContext, original: ev.ContributionPaid, target: str,
                        reversed_on: date) -> None:
    """Reversing a contribution must not take back from an individual account what was already paid out of it."""
    member = context.member(original.kpj)
    taken = {program: pricing.share_total(original.shares, program) for program in INDIVIDUAL_ACCOUNTS}
    if not any(taken.values()):
        return
    contracts = _account_contracts(context, member)
    for program, amount in taken.items():
        if amount and pricing.lowest_balance(contracts, program, reversed_on) < amount:
            raise RuleViolation(f"reversing {target} would take back Rp{amount:,} of {program.value} that "
                                f"member {original.kpj} was already paid out; reverse that claim first")


def _reversal_of(command: Reverse, original: ev.ContributionPaid, target: str) -> ev.ContributionReversed:
    return ev.ContributionReversed(
        reverses=target, kpj=original.kpj, npp=original.npp, segment=original.segment,
        branch=original.branch, month=original.month,
        reason=command.reason, shares=original.shares, fine=original.fine, total=original.total,
        reversed_on=command.reversed_on)


def _check_not_settled_line(context: HandlerContext, original: ev.ContributionPaid, target: str) -> None:
    """A line a bill's settlement paid is reversed with that settlement, never alone: alone, the bill would stay
    settled with money applied to a contribution that is no longer booked."""
    account: PayerAccount | None = context.find(
        payer_account_id(original.npp, original.kpj if original.npp is None else None))
    if account is None:
        return
    for settled_id, settlement in account.settlements.items():
        if settlement.reversed_by is None and settlement.settled.bill_id == original.payment_id:
            raise RuleViolation(f"contribution {target} was paid by the settlement of bill {original.payment_id}: "
                                f"reverse that settlement (ledger reverse {settled_id}), which reverses all its lines "
                                f"and returns its money to the payer's credit")


def _reverse_contribution(context: HandlerContext, command: Reverse, month: ContributionMonth,
                          original: ev.ContributionPaid, target: str) -> Outcome:
    if month.current_id != target:
        raise AlreadyExists(f"contribution {target} was already reversed")
    if command.reversed_on < original.paid_on:
        raise InvalidInput(f"a reversal cannot precede the payment it reverses ({original.paid_on})")
    _check_not_settled_line(context, original, target)
    _check_not_paid_out(context, original, target, command.reversed_on)
    new_id = month.record(_reversal_of(command, original, target))
    return [month], {"amount": original.total, "event_id": new_id}


def _reverse_claim(context: HandlerContext, command: Reverse, member: Member,  # noqa: ARG001
                   original: ev.ClaimPaid, target: str) -> Outcome:
    if target not in member.claims:
        raise AlreadyExists(f"claim {target} was already reversed")
    if command.reversed_on < original.paid_on:
        raise InvalidInput(f"a reversal cannot precede the claim it reverses ({original.paid_on})")
    new_id = member.record(ev.ClaimReversed(
        reverses=target, claim_id=original.claim_id, kpj=original.kpj, branch=original.branch,
        program=original.program, amount=original.amount, reason=command.reason,
        reversed_on=command.reversed_on))
    return [member], {"amount": original.amount, "event_id": new_id}


# --- reversals of whole payments: every line of a payment or a settlement in one command ---------------------------


def _paid_lines(context: HandlerContext, kpjs: list[str], months: list[str],
                payment: str) -> list[ContributionMonth]:
    """The contribution months of `kpjs` x `months` whose current payment is `payment` (its lines not reversed yet).

    A payment's lines are found by key, not by a scan: each is the contribution-month record of one member and month
    (`contribution_month_id`), so the candidates are the payer's members times the payment's months, read in a few
    batched queries."""
    ids = [contribution_month_id(kpj, month) for month in months for kpj in kpjs]
    found = context.find_many(ids)
    records = [found[i] for i in ids if i in found]
    return [r for r in records if r.current is not None and r.current.payment_id == payment]


def _check_lines_not_paid_out(context: HandlerContext, lines: list[ev.ContributionPaid], target: str,
                              reversed_on: date) -> None:
    """`_check_not_paid_out` for many lines at once: per member, what all its lines take back from each individual
    account. Only a member with a claim can have been paid out, so only those members' balances are computed."""
    taken: dict[str, dict[Program, int]] = {}
    for line in lines:
        per_program = taken.setdefault(line.kpj, dict.fromkeys(INDIVIDUAL_ACCOUNTS, 0))
        for program in INDIVIDUAL_ACCOUNTS:
            per_program[program] += pricing.share_total(line.shares, program)
    for member in context.members(list(taken)):
        if not member.claims:
            continue
        contracts = _account_contracts(context, member)
        for program, amount in taken[member.kpj].items():
            if amount and pricing.lowest_balance(contracts, program, reversed_on) < amount:
                raise RuleViolation(f"reversing {target} would take back Rp{amount:,} of {program.value} that "
                                    f"member {member.kpj} was already paid out; reverse that claim first")


def _reverse_lines(context: HandlerContext, command: Reverse, records: list[ContributionMonth],
                   target: str) -> list[str]:
    """A `ContributionReversed` on each record's current line; the new event ids."""
    lines = [r.current for r in records if r.current is not None]
    for line in lines:
        if command.reversed_on < line.paid_on:
            raise InvalidInput(f"a reversal cannot precede the payment it reverses ({line.paid_on})")
    _check_lines_not_paid_out(context, lines, target, command.reversed_on)
    new_ids = []
    for record in records:
        assert record.current is not None and record.current_id is not None
        new_ids.append(record.record(_reversal_of(command, record.current, record.current_id)))
    return new_ids


def _reverse_payment(context: HandlerContext, command: Reverse, payment: Payment,  # noqa: ARG001
                     original: ev.ContributionPaymentReceived, target: str) -> Outcome:
    """Every line of one `ledger contribution pay` payment, in one transaction."""
    if command.reversed_on < original.paid_on:
        raise InvalidInput(f"a reversal cannot precede the payment it reverses ({original.paid_on})")
    kpjs = context.employer(original.npp).roster if original.npp is not None else [str(original.kpj)]
    records = _paid_lines(context, kpjs, original.months, original.payment_id)
    if not records:
        raise AlreadyExists(f"every line of payment {target} ({original.payment_id}) was already reversed")
    amount = sum(r.current.total for r in records if r.current is not None)
    new_ids = _reverse_lines(context, command, records, target)
    return records, {"amount": amount, "event_id": new_ids[0], "lines_reversed": len(new_ids),
                     "lines_already_reversed": original.line_count - len(new_ids)}


def _reverse_settlement(context: HandlerContext, command: Reverse, account: PayerAccount,
                        original: ev.BillSettled, target: str) -> Outcome:
    """A settlement undone: the bill reopened, its money back in the payer's unapplied lots (not applied again by
    itself), and its member lines reversed, in one transaction."""
    settlement = account.settlements[target]
    if settlement.reversed_by is not None:
        raise AlreadyExists(f"settlement {target} was already reversed (event {settlement.reversed_by})")
    if command.reversed_on < original.settled_on:
        raise InvalidInput(f"a reversal cannot precede the settlement it reverses ({original.settled_on})")
    lines: BillLines | None = context.find(bill_lines_id(original.bill_id))
    assert lines is not None, f"bill {original.bill_id} has no lines"
    adjusted = sum(1 for line in lines.lines if line.adjustment)
    if adjusted:
        raise RuleViolation(f"settlement {target} is of adjustment bill {original.bill_id}, whose {adjusted} "
                            f"adjustment line(s) were recorded as ContributionAdjusted: reversing such a settlement "
                            f"is not supported (money paid by mistake stays as paid; a correction is a new bill)")
    records = _paid_lines(context, [line.kpj for line in lines.lines], [original.month], original.bill_id)
    new_ids = _reverse_lines(context, command, records, target) if records else []
    new_id = account.record(ev.SettlementReversed(
        reverses=target, bill_id=original.bill_id, npp=original.npp, kpj=original.kpj, branch=original.branch,
        month=original.month, amount=original.amount, fine=original.fine, total=original.total,
        reason=command.reason, reversed_on=command.reversed_on))
    return [account, *records], {"amount": original.total, "event_id": new_id, "bill_id": original.bill_id,
                                 "lines_reversed": len(new_ids), "unapplied": account.unapplied}


def _return_receipt(context: HandlerContext, command: Reverse, account: PayerAccount,  # noqa: ARG001
                    original: ev.MoneyReceived, target: str) -> Outcome:
    """Money received by mistake (a bank error) taken out of the payer's unapplied money, whole."""
    receipt = account.receipts[target]
    if receipt.returned_by is not None:
        raise AlreadyExists(f"receipt {target} (reference {original.reference}) was already returned "
                            f"(event {receipt.returned_by})")
    if command.reversed_on < original.received_on:
        raise InvalidInput(f"a return cannot precede the receipt it returns ({original.received_on})")
    spent = original.amount - account.lot_left(original.reference)
    if spent:
        settlements = account.settlements_from(original.reference)
        if settlements:
            raise RuleViolation(
                f"Rp{spent:,} of receipt {original.reference} was applied to bills: reverse the settlement(s) "
                f"{', '.join(settlements)} first (ledger reverse EVENT_ID), then this receipt")
        raise RuleViolation(f"Rp{spent:,} of receipt {original.reference} was refunded (ledger payment refund): "
                            f"only money neither applied nor refunded is returned")
    credit_from = account.credit_from(original.reference)
    if credit_from is not None and command.reversed_on < credit_from:
        raise InvalidInput(f"receipt {original.reference} is the payer's credit again only from "
                           f"{credit_from.isoformat()} (a reversed settlement gave it back that day): date the return "
                           f"{credit_from.isoformat()} or after")
    new_id = account.record(ev.ReceiptReturned(
        reverses=target, reference=original.reference, npp=original.npp, kpj=original.kpj, branch=original.branch,
        amount=original.amount, reason=command.reason, returned_on=command.reversed_on))
    return [account], {"amount": original.amount, "event_id": new_id, "unapplied": account.unapplied}


# What each kind of event is reversed with: (context, command, its aggregate, the event, its id) -> outcome.
REVERSIBLE: dict[type[ev.LedgerEvent], Callable[[HandlerContext, Reverse, Any, Any, str], Outcome]] = {
    ev.ContributionPaid: _reverse_contribution,
    ev.ClaimPaid: _reverse_claim,
    ev.ContributionPaymentReceived: _reverse_payment,
    ev.BillSettled: _reverse_settlement,
    ev.MoneyReceived: _return_receipt,
}
# What the events are whose aggregates do not keep them (so they are named by their aggregate).
NOT_KEPT: dict[type, str] = {
    PayerAccount: "a bill, a refund or a reversal",
    Employer: "an employer's registration, risk class change or roster",
    BillLines: "a bill's member lines",
}
REVERSIBLE_TEXT = ("contributions (ContributionPaid), claims (ClaimPaid), whole payments "
                   "(ContributionPaymentReceived), settlements (BillSettled) and money received (MoneyReceived)")


def _reversal_target(context: HandlerContext, text: str) -> tuple[UUID, int]:
    """The event `ledger reverse` names: an event id, or the id of a payment (`ledger contribution pay`'s
    `payment_id`), which stands for the payment's `ContributionPaymentReceived`."""
    try:
        return parse_event_id(text)
    except ValueError as error:
        payment = context.find(payment_id(text.strip()))
        if isinstance(payment, Payment):
            return payment.id, 1
        raise InvalidInput(f"{error}, nor the id of a payment") from None


def reverse(context: HandlerContext, command: Reverse, careful: bool) -> Outcome:  # noqa: ARG001
    check_date(context, "reversal date", command.reversed_on)
    aggregate_id, version = _reversal_target(context, command.event_id)
    target = event_id(aggregate_id, version)  # canonical, however the id was typed
    aggregate = context.find(aggregate_id)
    if not isinstance(aggregate, LedgerAggregate) or not 1 <= version <= aggregate.version:
        raise NotFound(f"no event {target} in the ledger")
    original = aggregate.event_with_id(version)
    reverser = REVERSIBLE.get(type(original)) if original is not None else None
    if reverser is None or original is None:
        what = f"a {original.TYPE}" if original is not None else NOT_KEPT.get(type(aggregate), "not reversible")
        raise RuleViolation(f"event {target} is {what}; only {REVERSIBLE_TEXT} are reversed (correct other facts "
                            f"with a new command)")
    aggregates, result = reverser(context, command, aggregate, original, target)
    return aggregates, {"reverses": target, "type": original.TYPE, **result}


HANDLERS: dict[type[Command], Handler] = {
    RegisterEmployer: register_employer,
    ChangeRiskClass: change_risk_class,
    EnrollMember: enroll_member,
    EnrollMembers: enroll_members,
    ChangeWage: change_wage,
    ExitMember: exit_member,
    PayContribution: pay_contribution,
    CreditYield: credit_yield,
    PayClaim: pay_claim,
    Reverse: reverse,
}
