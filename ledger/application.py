"""The write side's application service: verb-named commands that load aggregates, decide, and save once.

Every command goes through `Ledger.execute`, which gives three guarantees:
1. Idempotency: the command's result is saved with a `CommandRecord` under the client's command id, in the same
   transaction as the events. A repeat finds the record and returns the first result; nothing is written again.
   The same id with other content is refused (`CommandIdConflict`).
2. All or nothing: one command is one `save()`, one transaction. A bulk enrollment of 7,000 members or a payment for
   a whole roster is written whole or not at all.
3. Optimistic concurrency: a second writer on the same aggregate makes the save fail with an integrity error; the
   command is then run again from a fresh load, at most `COMMAND_ATTEMPTS_MAX` times, with a bounded backoff.

The backend is chosen by configuration (`Settings.eventsourcing_env()`): an SQLite file or PostgreSQL.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from ledger import events as ev
from ledger import identifiers
from ledger import rules
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
    INTERNAL_EVENT_TOPICS,
    CommandRecord,
    ContributionMonth,
    Employer,
    LedgerAggregate,
    Member,
    Payment,
    check_segment_programs,
    command_record_id,
    contribution_month_id,
    employer_id,
    event_id,
    member_id,
    month_key,
    month_start,
    shift_month,
    parse_event_id,
)
from ledger.errors import (
    AlreadyExists,
    CommandIdConflict,
    ConcurrencyConflict,
    InvalidInput,
    LedgerError,
    NotFound,
    RuleViolation,
)
from ledger.memory import collector_paused
from ledger.persistence import TunedApplication, load_many
from ledger.rules import Program, Segment

COMMAND_ATTEMPTS_MAX = 5
RETRY_BACKOFF_BASE_S = 0.01
RETRY_BACKOFF_MAX_S = 0.5
EARLIEST_DATE = date(1977, 1, 1)  # the fund's predecessor began in 1977: nothing in the books is older
PREPAID_MONTHS_MAX = 12  # BPU members and government employers may pay up to a year ahead
JKK_CLAIM_EXPIRY_YEARS = 5  # from the accident; 2 before December 2019 (not modelled: older claims are all paid)
NOTIFICATION_PAGE_SIZE = 1_000  # reading the notification log, e.g. to list every member
AGGREGATE_CACHE_MAX = 1_000

Clock = Callable[[], date]


def _months(first: str, count: int) -> list[str]:
    return [shift_month(first, i) for i in range(count)]


def _month_end(month: str) -> date:
    start = month_start(month)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1) - timedelta(days=1)


class Ledger(TunedApplication):
    """The contribution ledger's write side."""

    name = "ledger"

    def __init__(self, env: dict[str, str] | None = None, clock: Clock = date.today, *,
                 nik_key: bytes | None) -> None:
        """`nik_key`: the key of the NIK hash written into MemberEnrolled and published, always given by the caller
        (the entry points take it from `Settings.nik_hmac_key_bytes`, which checks it); None opens the ledger for
        reading and for commands that hash no NIK."""
        # A bounded cache of loaded aggregates: a long-running writer (a bulk load, the benchmark, a server) then
        # reloads a busy employer by reading only its newest events. Entries are fast-forwarded from the store
        # before use, so another writer's changes are always seen; the cache never decides anything on its own.
        super().__init__(env={"AGGREGATE_CACHE_MAXSIZE": str(AGGREGATE_CACHE_MAX), **(env or {})})
        self.clock = clock
        self._nik_key = nik_key
        self._attempt = threading.local()  # per thread: whether this attempt used a cached copy (see `_get`)
        self._handlers: dict[type[Command], Callable[[Any, bool], tuple[list[Any], dict[str, Any]]]] = {
            RegisterEmployer: self._register_employer,
            ChangeRiskClass: self._change_risk_class,
            EnrollMember: self._enroll_member,
            EnrollMembers: self._enroll_members,
            ChangeWage: self._change_wage,
            ExitMember: self._exit_member,
            PayContribution: self._pay_contribution,
            CreditYield: self._credit_yield,
            PayClaim: self._pay_claim,
            Reverse: self._reverse,
        }

    # --- the command pipeline ------------------------------------------------------------------------------------

    def execute(self, command: Command) -> dict[str, Any]:
        with collector_paused():  # a month's payment builds thousands of events at once: see ledger.memory
            return self._execute(command)

    def _execute(self, command: Command) -> dict[str, Any]:
        handler = self._handlers[type(command)]
        fingerprint = command.fingerprint()
        for attempt in range(COMMAND_ATTEMPTS_MAX):
            # The command record is not looked up first: a repeat is caught where it must show, which saves a
            # query on every first run. A repeat either fails in the handler (the fact already exists) or collides
            # with its own command record on save; in both cases the record answers.
            careful = attempt > 0
            self._attempt.used_cache = False
            try:
                # A retry runs the careful path: it checks, record by record, what the fast path left to the
                # store's uniqueness constraint, so that a real duplicate is reported by name instead of retried.
                # It also reads every aggregate fresh from the store (see `_get`).
                aggregates, result = handler(command, careful)
            except LedgerError:
                if not careful and self._attempt.used_cache:
                    continue  # the refusal may come from a stale cached copy: decide again on fresh reads
                if (previous := self._previous_result(command, fingerprint)) is not None:
                    return previous
                raise
            result = {"command": command.NAME, "command_id": command.command_id, **result}
            record = CommandRecord(command_id=command.command_id, name=command.NAME, fingerprint=fingerprint,
                                   result=result)
            try:
                self.save(*aggregates, record)
                self._cache_saved(aggregates)
            except IntegrityError:
                if (previous := self._previous_result(command, fingerprint)) is not None:
                    return previous
                time.sleep(min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_BASE_S * 2 ** attempt) * random.random())
                continue
            return {**result, "repeated": False}
        raise ConcurrencyConflict(
            f"{command.NAME}: other writers kept changing the same records; gave up after "
            f"{COMMAND_ATTEMPTS_MAX} attempts. Nothing was written; it is safe to run the command again.")

    def _cache_saved(self, aggregates: list[Any]) -> None:
        """Keep the employers and members just saved in the cache as they now are (see `_get`'s `to_save`)."""
        if self.repository.cache is not None:
            for aggregate in aggregates:
                if isinstance(aggregate, (Employer, Member)):
                    self.repository.cache.put(aggregate.id, aggregate)

    def _previous_result(self, command: Command, fingerprint: str) -> dict[str, Any] | None:
        """The first result of this command id, if it ran before; refused if it ran with other content."""
        previous = self._get(command_record_id(command.command_id))
        if previous is None:
            return None
        if previous.fingerprint != fingerprint:
            raise CommandIdConflict(
                f"command id {command.command_id!r} was already used for a different "
                f"{previous.name} command; the first one stands. Use a new command id.")
        return {**previous.result, "repeated": True}

    def nik_hmac(self, nik: str) -> str:
        assert self._nik_key, "this Ledger was opened without a NIK key: it cannot enroll members"
        return identifiers.nik_hmac(self._nik_key, nik)

    # --- reading -------------------------------------------------------------------------------------------------

    def _get(self, aggregate_id: UUID, *, to_save: bool = False) -> Any:
        """The aggregate, brought up to date from the store; None if there is none.

        With `to_save` (the command records an event on it and saves it), a cached copy is used as it is, without
        asking the store for newer events. The save checks it anyway: if the store has a newer event, that event
        holds the version this save wants, the save is refused, and the retry (the careful path) reads fresh."""
        if to_save and self.repository.cache is not None:
            try:
                cached = self.repository.cache.get(aggregate_id)
            except KeyError:
                pass
            else:
                self._attempt.used_cache = True
                return copy.deepcopy(cached)
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def employer(self, npp: str, *, to_save: bool = False) -> Employer:
        employer = self._get(employer_id(npp), to_save=to_save)
        if employer is None:
            raise NotFound(f"no employer with NPP {npp} is registered")
        return employer

    def member(self, kpj: str, *, to_save: bool = False) -> Member:
        member = self._get(member_id(kpj), to_save=to_save)
        if member is None:
            raise NotFound(f"no member with KPJ {kpj} is enrolled")
        return member

    def members(self, kpjs: list[str]) -> list[Member]:
        """Many members at once (a whole roster), with a few queries instead of one each."""
        ids = [member_id(kpj) for kpj in kpjs]
        loaded = load_many(self, ids)
        missing = [kpj for kpj, i in zip(kpjs, ids) if i not in loaded]
        if missing:
            raise NotFound(f"no member with KPJ {missing[0]} is enrolled ({len(missing)} missing in all)")
        return [loaded[i] for i in ids]

    def contribution_months(self, member: Member) -> list[ContributionMonth]:
        """The member's contribution-month records, from enrollment to a year ahead (prepaid BPU months)."""
        today = self.clock()
        first = month_start(month_key(member.enrolled_on))
        count = (today.year + 1 - first.year) * 12 + today.month - first.month + 1
        ids = [contribution_month_id(member.kpj, month) for month in _months(month_key(first), max(count, 0))]
        loaded = load_many(self, ids)  # one query per few hundred months, not one per month
        return [loaded[i] for i in ids if i in loaded]

    def program_balance(self, member: Member, program: Program, as_of: date,
                        months: list[ContributionMonth] | None = None) -> int:
        """Contributions paid (net of reversals) plus yield (JHT) minus claims, for one program, as of a date."""
        if months is None:
            months = self.contribution_months(member)
        total = 0
        for record in months:
            for _, contract in record.recorded:
                if isinstance(contract, ev.ContributionPaid) and contract.paid_on <= as_of:
                    share = contract.shares.get(program)
                    total += share.employer + share.worker if share else 0
                elif isinstance(contract, ev.ContributionReversed) and contract.reversed_on <= as_of:
                    share = contract.shares.get(program)
                    total -= share.employer + share.worker if share else 0
        for _, contract in member.recorded:
            if isinstance(contract, ev.YieldCredited) and program is Program.JHT and contract.credited_on <= as_of:
                total += contract.amount
            elif isinstance(contract, ev.ClaimPaid) and contract.program is program and contract.paid_on <= as_of:
                total -= contract.amount
            elif isinstance(contract, ev.ClaimReversed) and contract.program is program \
                    and contract.reversed_on <= as_of:
                total += contract.amount
        return total

    def lowest_balance(self, member: Member, program: Program, from_date: date,
                       months: list[ContributionMonth] | None = None) -> int:
        """The lowest balance of `program` on `from_date` or any later day something was booked: what can still be
        taken out on `from_date` without a later day going negative (claims and reversals may be dated back)."""
        if months is None:
            months = self.contribution_months(member)
        days = {from_date} | {contract.effective_date() for record in [member, *months]
                              for _, contract in record.recorded if contract.effective_date() > from_date}
        return min(self.program_balance(member, program, day, months) for day in days)

    def jht_balance(self, kpj: str, as_of: date | None = None) -> int:
        member = self.member(kpj)
        return self.program_balance(member, Program.JHT, as_of or self.clock())

    def notifications(self, topics: tuple[str, ...] = ()) -> Iterator[Any]:
        """The store's notification log in bounded pages, optionally only some event topics."""
        start = 1
        while True:
            page = self.recorder.select_notifications(start=start, limit=NOTIFICATION_PAGE_SIZE, topics=topics)
            yield from page
            if len(page) < NOTIFICATION_PAGE_SIZE:
                return
            start = page[-1].id + 1

    def stored_contract_notifications(self) -> Iterator[Any]:
        """What the relay publishes: every notification but the internal ones."""
        return (n for n in self.notifications() if n.topic not in INTERNAL_EVENT_TOPICS)

    def all_member_ids(self) -> Iterator[UUID]:
        """Every member, from the notification log filtered on the member-created topic."""
        return (n.originator_id for n in self.notifications(topics=(get_topic(Member.Created),)))

    def stored_contracts(self, aggregate_id: UUID) -> Iterator[tuple[int, ev.LedgerEvent]]:
        """The contract events of one aggregate as stored, upcast to the current versions."""
        facts = ev.MemberFacts()  # an older reversal is upcast with the payment before it (see ledger.events)
        for stored in self.events.get(aggregate_id):
            contract = ev.parse_event(stored.schema_type, stored.schema_version, stored.data, context=facts)
            facts.see(contract.TYPE, ev.to_json_dict(contract))
            yield stored.originator_version, contract

    def history(self, *, kpj: str | None = None, npp: str | None = None) -> list[dict[str, Any]]:
        """The recorded events of a member (with its contribution months) or of an employer, oldest first."""
        aggregates: list[LedgerAggregate]
        if kpj is not None:
            member = self.member(kpj)
            aggregates = [member, *self.contribution_months(member)]
        elif npp is not None:
            aggregates = [self.employer(npp)]
        else:
            raise InvalidInput("history needs a KPJ or an NPP")
        rows = []
        for aggregate in aggregates:
            for version, contract in self.stored_contracts(aggregate.id):
                rows.append({"event_id": event_id(aggregate.id, version), "type": contract.TYPE,
                             "effective_date": contract.effective_date().isoformat(),
                             "data": ev.to_json_dict(contract)})
        # Stable: within one date, rows keep their recorded order (member first, then months, each by version).
        rows.sort(key=lambda row: row["effective_date"])
        return rows

    # --- guards that need the clock ------------------------------------------------------------------------------

    def _check_date(self, field: str, value: date, *, not_after: date | None = None) -> None:
        today = self.clock()
        latest = not_after or today
        if value > latest:
            raise InvalidInput(f"{field} {value.isoformat()} is in the future (latest allowed "
                               f"{latest.isoformat()}); a typo such as a wrong year?")
        if value < EARLIEST_DATE:
            raise InvalidInput(f"{field} {value.isoformat()} is before {EARLIEST_DATE.isoformat()}, "
                               f"earlier than anything in the fund's books")

    # --- employers -----------------------------------------------------------------------------------------------

    def _register_employer(self, command: RegisterEmployer, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("registration date", command.registered_on)
        if self._get(employer_id(command.npp)) is not None:
            raise AlreadyExists(f"an employer with NPP {command.npp} is already registered")
        contract = ev.EmployerRegistered(
            npp=command.npp, name=command.name, branch=command.branch, kind=command.kind,
            risk_class=command.risk_class, programs=command.programs, labour_intensive=command.labour_intensive,
            registered_on=command.registered_on)
        employer = Employer.start(contract)
        return [employer], {"npp": command.npp, "event_id": event_id(employer.id, 1)}

    def _change_risk_class(self, command: ChangeRiskClass, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("effective date", command.effective)
        employer = self.employer(command.npp, to_save=not careful)
        new_id = employer.record(ev.EmployerRiskClassChanged(
            npp=command.npp, risk_class=command.risk_class, effective=command.effective))
        return [employer], {"npp": command.npp, "event_id": new_id}

    # --- members -------------------------------------------------------------------------------------------------

    def _new_member(self, row: MemberRow, npp: str | None, branch: str, effective: date) -> Member:
        programs = row.program_set()
        check_segment_programs(row.segment, frozenset(programs))
        if row.segment is Segment.BPU:
            self._check_declared_income(row.kpj, row.wage, effective)
        if row.birth_date >= effective:
            # The birth date is personal data: the message names the field, not its value.
            raise InvalidInput(f"member {row.kpj}: the birth date is not before the enrollment date {effective}")
        return Member.start(ev.MemberEnrolled(
            kpj=row.kpj, nik=row.nik, nik_hmac=self.nik_hmac(row.nik), name=row.name, birth_date=row.birth_date,
            birth_year=row.birth_date.year, segment=row.segment, npp=npp, branch=branch, wage=row.wage, programs=programs, effective=effective))

    @staticmethod
    def _check_declared_income(kpj: str, income: int, on: date) -> None:
        """A BPU member's declared income is one of the government's list: within its bounds on `on`."""
        try:
            low, high = rules.in_force(rules.BPU_INCOME_BOUNDS, on)
        except LookupError as error:  # a date before the rule tables begin
            raise RuleViolation(f"member {kpj}: {error}") from None
        if not low <= income <= high:
            raise InvalidInput(f"member {kpj}: a BPU declared income must be between Rp{low:,} and "
                               f"Rp{high:,}, got Rp{income:,}")

    def _enroll(self, rows: list[MemberRow], npp: str | None, branch: str | None, effective: date,
                careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("effective date", effective)
        employer = self.employer(npp, to_save=not careful) if npp is not None else None
        if employer is not None:
            branch = employer.branch
        assert branch is not None  # the command's own validation guarantees it
        # The store's uniqueness constraint catches a KPJ enrolled twice; only a retry checks member by member,
        # to name the KPJ that already exists.
        if careful:
            for row in rows:
                if self._get(member_id(row.kpj)) is not None:
                    raise AlreadyExists(f"a member with KPJ {row.kpj} is already enrolled")
        members = [self._new_member(row, npp, branch, effective) for row in rows]
        aggregates: list[Any] = list(members)
        if employer is not None:
            employer.record(ev.WorkersJoined(npp=employer.npp, kpjs=[row.kpj for row in rows], effective=effective))
            aggregates.append(employer)
        return aggregates, {"enrolled": len(members), "npp": npp, "branch": branch,
                            "kpjs": [row.kpj for row in rows][:10], "effective": effective.isoformat()}

    def _enroll_member(self, command: EnrollMember, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        aggregates, result = self._enroll([command.member], command.npp, command.branch, command.effective, careful)
        return aggregates, {**result, "kpj": command.member.kpj, "event_id": event_id(aggregates[0].id, 1)}

    def _enroll_members(self, command: EnrollMembers, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        return self._enroll(list(command.members), command.npp, None, command.effective, careful)

    def _change_wage(self, command: ChangeWage, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("effective date", command.effective)
        member = self.member(command.kpj, to_save=not careful)
        if command.effective < member.enrolled_on:
            raise InvalidInput(f"wage change on {command.effective} is before member {command.kpj} enrolled "
                               f"({member.enrolled_on})")
        if member.exit is not None:
            raise RuleViolation(f"member {command.kpj} exited on {member.exit.exit_date}; no wage change after exit")
        if member.segment is Segment.BPU:  # as at enrollment: otherwise every later payment would be refused
            self._check_declared_income(command.kpj, command.wage, command.effective)
        new_id = member.record(ev.MemberWageChanged(kpj=command.kpj, wage=command.wage, effective=command.effective))
        return [member], {"kpj": command.kpj, "wage": command.wage, "event_id": new_id}

    def _exit_member(self, command: ExitMember, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("exit date", command.exit_date)
        member = self.member(command.kpj, to_save=not careful)
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
        # An exit dated back must not leave paid months that it makes not owed (rules.month_owed): those payments
        # are reversed first, as a claim that would take back paid-out money is.
        for record in self.contribution_months(member):
            if record.current is not None and not rules.month_owed(record.month, member.enrolled_on,
                                                                   command.exit_date):
                raise RuleViolation(f"member {command.kpj}'s contribution for {record.month} is paid (event "
                                    f"{record.current_id}); an exit on {command.exit_date} means that month is not "
                                    f"owed: reverse that contribution first")
        new_id = member.record(ev.MemberExited(kpj=command.kpj, reason=command.reason, exit_date=command.exit_date))
        return [member], {"kpj": command.kpj, "reason": command.reason.value, "event_id": new_id}

    # --- contributions -------------------------------------------------------------------------------------------

    def _pay_contribution(self, command: PayContribution, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("payment date", command.paid_on)
        months = _months(command.month, command.months)
        paid_month = month_key(command.paid_on)
        if command.npp is not None:
            employer = self.employer(command.npp)
            members = self.members(employer.roster)
            payer = command.payer or ev.PayerRole.EMPLOYER
            branch = employer.branch
            may_prepay = employer.kind is ev.EmployerKind.GOVERNMENT
            labour_intensive = employer.labour_intensive and len(employer.roster) >= 50
            account = f"employer {employer.npp}"
        else:
            member = self.member(command.kpj)
            if member.segment is not Segment.BPU or member.npp is not None:
                raise RuleViolation(f"member {member.kpj} is paid for by employer {member.npp}: pay with --npp")
            employer, members, payer, branch = None, [member], command.payer or ev.PayerRole.MEMBER, member.branch
            may_prepay, labour_intensive, account = True, False, f"member {member.kpj}"
        latest_month = _months(paid_month, PREPAID_MONTHS_MAX + 1)[-1] if may_prepay else paid_month
        if months[-1] > latest_month:
            raise InvalidInput(f"contribution month {months[-1]} is in the future for a payment made on "
                               f"{command.paid_on} (latest allowed {latest_month})")

        lines: list[ev.ContributionPaid] = []
        for month in months:
            for member in members:
                if member.covered_in(month):
                    lines.append(self._contribution_line(command, employer, member, month, payer, branch,
                                                         labour_intensive))
        if not lines:
            raise RuleViolation(f"no member of {account} is covered in {', '.join(months)}: the months are before "
                                f"enrollment or after exit")

        records: list[Any] = []
        for line in lines:
            existing = self._get(contribution_month_id(line.kpj, line.month)) if careful else None
            if existing is not None:
                existing.check_can_pay()
                existing.record(line)
                records.append(existing)
            else:
                records.append(ContributionMonth.start(line))
        program_totals = dict.fromkeys(Program, 0)
        for line in lines:
            for program, share in line.shares.items():
                program_totals[program] += share.employer + share.worker
        receipt = ev.ContributionPaymentReceived(
            payment_id=command.command_id, npp=command.npp, kpj=command.kpj, branch=branch, payer=payer,
            payer_name=command.payer_name, paid_on=command.paid_on, months=months, member_count=len({line.kpj for line in lines}),
            line_count=len(lines), program_totals={p: t for p, t in program_totals.items() if t},
            fine=sum(line.fine for line in lines), total=sum(line.total for line in lines))
        records.append(Payment.start(receipt))
        return records, {"payment_id": receipt.payment_id, "payer": payer.value, "months": months,
                         "members": receipt.member_count, "lines": receipt.line_count,
                         "program_totals": {p.value: t for p, t in receipt.program_totals.items()},
                         "fine": receipt.fine, "total": receipt.total}

    def _contribution_line(self, command: PayContribution, employer: Employer | None, member: Member, month: str,
                           payer: ev.PayerRole, branch: str, labour_intensive: bool) -> ev.ContributionPaid:
        start = month_start(month)
        wage = member.wage_on(_month_end(month))
        try:
            if member.segment is Segment.PU:
                assert employer is not None
                owed = rules.pu_contribution(wage, employer.risk_class_on(start), member.programs, start,
                                             labour_intensive=labour_intensive)
                late = rules.months_late(rules.pu_due_date(start), command.paid_on)
                fine = rules.late_fine(owed.total, late, rules.pu_due_date(start))
            else:
                owed = rules.bpu_contribution(wage, member.programs, start)
                late, fine = 0, 0  # BPU members pay no fine; unpaid months make them inactive instead
        except (LookupError, ValueError) as error:
            raise RuleViolation(f"member {member.kpj}, month {month}: {error}") from None
        shares = {p: ev.ProgramShare(employer=s.employer, worker=s.worker) for p, s in owed.shares.items()}
        return ev.ContributionPaid(
            kpj=member.kpj, npp=member.npp, branch=branch, segment=member.segment, month=month,
            paid_on=command.paid_on, payer=payer, payment_id=command.command_id, wage=wage, shares=shares,
            jkp_from_jkk=owed.jkp_from_jkk, jkp_from_jkm=owed.jkp_from_jkm, jp_deferred=owed.jp_deferred,
            months_late=late, fine=fine, total=owed.total + fine)

    # --- yield ---------------------------------------------------------------------------------------------------

    def _credit_yield(self, command: CreditYield, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        credited_on = command.credited_on or date(command.year, 12, 31)
        self._check_date("credit date", credited_on)
        if credited_on < date(command.year, 12, 31):
            raise InvalidInput(f"the {command.year} yield is credited after the year ends, not on {credited_on}")
        rate = command.rate_percent / Decimal(100)
        credited: list[Any] = []
        total = 0
        earlier_rates: set[Decimal] = set()  # the rates this year's yield was already credited at
        for aggregate_id in self.all_member_ids():
            member = self.repository.get(aggregate_id)
            if command.year in member.yields:
                earlier_rates.add(member.yields[command.year].rate)
                continue
            # A full JHT payout closes the account: the member was paid out and earns no later yield.
            closed = any(c.kind is ev.ClaimKind.JHT_FULL for c in member.claims_of(Program.JHT))
            if Program.JHT not in member.programs or closed or member.enrolled_on > date(command.year, 12, 31):
                continue
            months = self.contribution_months(member)
            balances = [self.program_balance(member, Program.JHT, _month_end(f"{command.year}-{m:02d}"), months)
                        for m in range(1, 13)]
            balances = [max(0, b) for b in balances]
            amount = rules.jht_yield(balances, rate)
            member.record(ev.YieldCredited(kpj=member.kpj, year=command.year, rate=rate,
                                           balance_basis=sum(balances) // 12, amount=amount, credited_on=credited_on))
            credited.append(member)
            total += amount
        # A year has one announced rate: crediting it again at another rate, or when nobody is left to credit, is
        # refused rather than answered with "0 members", which an operator could take for success.
        other = sorted(r for r in earlier_rates if r != rate)
        if other:
            raise AlreadyExists(f"the {command.year} yield was already credited at {other[0] * 100:f}% "
                                f"(rate_percent); one year has one rate")
        if not credited:
            if earlier_rates:
                raise AlreadyExists(f"the {command.year} yield was already credited to every JHT member")
            raise RuleViolation(f"no JHT member to credit the {command.year} yield to (none enrolled by the end of "
                                f"{command.year}, or all paid out)")
        return credited, {"year": command.year, "rate_percent": str(command.rate_percent),
                          "members": len(credited), "total": total}

    # --- claims --------------------------------------------------------------------------------------------------

    DEFAULT_CLAIM_KIND = {Program.JHT: ev.ClaimKind.JHT_FULL, Program.JKM: ev.ClaimKind.JKM_DEATH,
                          Program.JP: ev.ClaimKind.JP_LUMP_SUM}
    KINDS_BY_PROGRAM = {
        Program.JHT: {ev.ClaimKind.JHT_FULL, ev.ClaimKind.JHT_PARTIAL_HOUSING, ev.ClaimKind.JHT_PARTIAL_OTHER},
        Program.JKK: {ev.ClaimKind.JKK_DEATH, ev.ClaimKind.JKK_DISABILITY, ev.ClaimKind.JKK_CARE},
        Program.JKM: {ev.ClaimKind.JKM_DEATH},
        Program.JP: {ev.ClaimKind.JP_LUMP_SUM},
    }

    def _pay_claim(self, command: PayClaim, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("payment date", command.paid_on)
        self._check_date("incident date", command.incident_date, not_after=command.paid_on)
        kind = command.kind or self.DEFAULT_CLAIM_KIND.get(command.program)
        if kind is None:
            raise InvalidInput("a JKK claim needs --kind: death, disability or care")
        if kind not in self.KINDS_BY_PROGRAM[command.program]:
            allowed = ", ".join(sorted(k.value for k in self.KINDS_BY_PROGRAM[command.program]))
            raise InvalidInput(f"{kind.value} is not a kind of {command.program.value} claim (allowed: {allowed})")
        member = self.member(command.kpj, to_save=not careful)
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
        statutory, ceiling = self._claim_amounts(member, command, kind)
        amount = command.amount if command.amount is not None else statutory
        if amount is None:
            raise InvalidInput(f"a {command.program.value} {kind.value} claim has no statutory amount: give --amount")
        if ceiling is not None and amount > ceiling:
            raise RuleViolation(f"claim of Rp{amount:,} is above what member {member.kpj} can be paid from "
                                f"{command.program.value} (Rp{ceiling:,})")
        if kind is ev.ClaimKind.JHT_FULL and amount != ceiling:
            raise RuleViolation(f"a full JHT payout pays the whole balance, Rp{ceiling:,}, not Rp{amount:,}")
        if amount <= 0:
            raise RuleViolation(f"member {member.kpj} has nothing to pay out from {command.program.value}")
        claim = ev.ClaimPaid(
            claim_id=command.command_id, kpj=member.kpj, branch=member.branch, program=command.program, kind=kind,
            incident_date=command.incident_date, paid_on=command.paid_on, beneficiary=command.beneficiary,
            beneficiary_name=command.beneficiary_name, amount=amount, statutory_amount=statutory)
        member.check_can_claim(claim)
        new_id = member.record(claim)
        return [member], {"kpj": member.kpj, "program": command.program.value, "kind": kind.value,
                          "amount": amount, "statutory_amount": statutory, "beneficiary": command.beneficiary.value,
                          "event_id": new_id}

    def _claim_amounts(self, member: Member, command: PayClaim, kind: ev.ClaimKind) -> tuple[int | None, int | None]:
        """(statutory amount, ceiling): what the rules give, and the most that may be paid."""
        if command.program is Program.JHT:
            balance = self.lowest_balance(member, Program.JHT, command.paid_on)
            if kind is ev.ClaimKind.JHT_FULL:
                return balance, balance
            if not rules.jht_partial_allowed(member.enrolled_on, command.paid_on):
                raise RuleViolation(f"a partial JHT payout needs 10 years of membership; member {member.kpj} "
                                    f"enrolled on {member.enrolled_on}")
            partial = rules.JhtPartialKind.HOUSING if kind is ev.ClaimKind.JHT_PARTIAL_HOUSING \
                else rules.JhtPartialKind.OTHER
            most = rules.jht_partial_max(max(balance, 0), partial)
            return most, most
        if command.program is Program.JKK:
            incident = command.incident_date
            try:
                expires = incident.replace(year=incident.year + JKK_CLAIM_EXPIRY_YEARS)
            except ValueError:  # an accident on 29 February: the anniversary falls on 1 March
                expires = date(incident.year + JKK_CLAIM_EXPIRY_YEARS, 3, 1)
            if command.paid_on > expires:
                raise RuleViolation(f"a JKK claim expires {JKK_CLAIM_EXPIRY_YEARS} years after the accident "
                                    f"({command.incident_date})")
            wage = member.wage_on(command.incident_date)
            if kind is ev.ClaimKind.JKK_DEATH:
                return rules.jkk_death_benefit(wage), None
            if kind is ev.ClaimKind.JKK_DISABILITY:
                return rules.jkk_disability_benefit(wage), None
            return None, None
        if command.program is Program.JKM:
            if member.exit is not None and member.exit.exit_date != command.incident_date:
                raise InvalidInput(f"the incident date of a JKM claim is the date of death, "
                                   f"{member.exit.exit_date}, not {command.incident_date}")
            try:
                return rules.jkm_benefit(command.incident_date).cash_total, None
            except LookupError as error:  # a death before the rule tables begin
                raise RuleViolation(f"member {member.kpj}: {error}") from None
        months = self.contribution_months(member)
        paid_months = sum(1 for m in months if m.current is not None and Program.JP in m.current.shares)
        if not rules.jp_lump_sum_allowed(paid_months):
            raise RuleViolation(f"member {member.kpj} has {paid_months} months of JP contributions: 15 years or more "
                                f"give a monthly pension, not a lump sum")
        balance = self.lowest_balance(member, Program.JP, command.paid_on, months)
        return balance, balance

    # --- reversals -----------------------------------------------------------------------------------------------

    def _reverse(self, command: Reverse, careful: bool) -> tuple[list[Any], dict[str, Any]]:
        self._check_date("reversal date", command.reversed_on)
        try:
            aggregate_id, version = parse_event_id(command.event_id)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        target = event_id(aggregate_id, version)  # canonical, however the id was typed
        aggregate = self._get(aggregate_id)
        original = aggregate.event_with_id(version) if isinstance(aggregate, LedgerAggregate) else None
        if original is None:
            raise NotFound(f"no event {target} in the ledger")
        if isinstance(original, ev.ContributionPaid):
            assert isinstance(aggregate, ContributionMonth)
            if aggregate.current_id != target:
                raise AlreadyExists(f"contribution {target} was already reversed")
            if command.reversed_on < original.paid_on:
                raise InvalidInput(f"a reversal cannot precede the payment it reverses ({original.paid_on})")
            member = self.member(original.kpj)
            for program in (Program.JHT, Program.JP):  # the individual accounts: they must never go below zero
                share = original.shares.get(program)
                taken = share.employer + share.worker if share else 0
                if taken and self.lowest_balance(member, program, command.reversed_on) < taken:
                    raise RuleViolation(f"reversing {target} would take back Rp{taken:,} of {program.value} that "
                                        f"member {original.kpj} was already paid out; reverse that claim first")
            new_id = aggregate.record(ev.ContributionReversed(
                reverses=target, kpj=original.kpj, npp=original.npp, segment=original.segment,
                branch=original.branch, month=original.month,
                reason=command.reason, shares=original.shares, fine=original.fine, total=original.total,
                reversed_on=command.reversed_on))
            amount = original.total
        elif isinstance(original, ev.ClaimPaid):
            assert isinstance(aggregate, Member)
            if target not in aggregate.claims:
                raise AlreadyExists(f"claim {target} was already reversed")
            if command.reversed_on < original.paid_on:
                raise InvalidInput(f"a reversal cannot precede the claim it reverses ({original.paid_on})")
            new_id = aggregate.record(ev.ClaimReversed(
                reverses=target, claim_id=original.claim_id, kpj=original.kpj, branch=original.branch,
                program=original.program, amount=original.amount, reason=command.reason,
                reversed_on=command.reversed_on))
            amount = original.amount
        else:
            raise RuleViolation(f"event {target} is a {original.TYPE}; only contributions and claims "
                                f"are reversed (correct other facts with a new command)")
        return [aggregate], {"reverses": target, "type": original.TYPE, "amount": amount,
                             "event_id": new_id}


__all__ = ["Ledger", "LedgerError"]
