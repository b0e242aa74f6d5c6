"""The write side's application service: `Ledger`, the command pipeline and the reads of the write side.

Every command goes through `Ledger.execute`, which runs its handler (`ledger.handlers`: load, decide, return what to
save) and gives three guarantees:
1. Idempotency: the command's result is saved with a `CommandRecord` under the client's command id, in the same
   transaction as the events. A repeat finds the record and returns the first result; nothing is written again.
   The same id with other content is refused (`CommandIdConflict`).
2. All or nothing: one command is one `save()`, one transaction. A bulk enrollment of 7,000 members or a payment for
   a whole roster is written whole or not at all.
3. Optimistic concurrency: a second writer on the same aggregate makes the save fail with an integrity error; the
   command is then run again from a fresh load, at most `COMMAND_ATTEMPTS_MAX` times, with a bounded backoff.

`Ledger` also keeps the cache of loaded aggregates, loads them (`find`, `employer`, `member`, `members`,
`contribution_months`) for the handlers and for other code, and answers the reads other modules make (balances,
histories, the notification log). How the store is written and read in bulk is `ledger.persistence`'s; what things
cost is `ledger.pricing`'s.

The backend is chosen by configuration (`Settings.eventsourcing_env()`): an SQLite file or PostgreSQL.
"""

from __future__ import annotations

import copy
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError
from eventsourcing.utils import get_topic

from ledger import events as ev
from ledger import identifiers, pricing
from ledger.billing import BILLING_HANDLERS
from ledger.commands import Command
from ledger.domain import (
    INTERNAL_EVENT_TOPICS,
    CommandRecord,
    ContributionMonth,
    Employer,
    LedgerAggregate,
    Member,
    PayerAccount,
    command_record_id,
    contribution_month_id,
    employer_id,
    event_id,
    member_id,
    month_key,
    month_start,
)
from ledger.errors import (
    CommandIdConflict,
    ConcurrencyConflict,
    InvalidInput,
    LedgerError,
    NotFound,
)
from ledger.handlers import HANDLERS, Outcome
from ledger.memory import collector_paused
from ledger.persistence import TunedApplication, load_many, stored_data
from ledger.rules import Program, Segment
from ledger.suspense import SUSPENSE_HANDLERS

COMMAND_ATTEMPTS_MAX = 5
RETRY_BACKOFF_BASE_S = 0.01
RETRY_BACKOFF_MAX_S = 0.5
NOTIFICATION_PAGE_SIZE = 1_000  # reading the notification log, e.g. to list every member
AGGREGATE_CACHE_MAX = 1_000

Clock = Callable[[], date]


@dataclass
class BranchPayers:
    """A branch's payers, as `Ledger.payers` lists them, in the order they were registered or enrolled."""

    branch: str
    npps: list[str]  # employers and paying bodies
    kpjs: list[str]  # self-paying BPU members
    # The notification id of the branch's newest employer or employee (a member with an NPP): a close batch of
    # employers named after it is a new command once someone was enrolled with one of them, even back-dated.
    last_employer_change: int


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
        self._attempt = threading.local()  # per thread: whether this attempt used a cached copy (see `find`)
        # Each command's handler, given this ledger as its `HandlerContext`: called as handler(command, careful).
        self._handlers: dict[type[Command], Callable[[Any, bool], Outcome]] = {
            command_type: partial(handler, self)
            for command_type, handler in (HANDLERS | BILLING_HANDLERS | SUSPENSE_HANDLERS).items()}

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
                # It also reads every aggregate fresh from the store (see `find`).
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
                # Jitter, so that writers that collided do not collide again; not a secret.
                time.sleep(min(RETRY_BACKOFF_MAX_S, RETRY_BACKOFF_BASE_S * 2 ** attempt) * random.random())  # noqa: S311
                continue
            return {**result, "repeated": False}
        raise ConcurrencyConflict(
            f"{command.NAME}: other writers kept changing the same records; gave up after "
            f"{COMMAND_ATTEMPTS_MAX} attempts. Nothing was written; it is safe to run the command again.")

    def _cache_saved(self, aggregates: list[Any]) -> None:
        """Keep the employers, members and payer accounts just saved in the cache as they now are (see `find`'s
        `to_save`): a stale cached copy would make the next command on them fail its save and run again."""
        if self.repository.cache is not None:
            for aggregate in aggregates:
                if isinstance(aggregate, (Employer, Member, PayerAccount)):
                    self.repository.cache.put(aggregate.id, aggregate)

    def previous_result(self, command: Command) -> dict[str, Any] | None:
        """The first result of this command if its id ran before, as a repeat answers it (with other content:
        refused, `CommandIdConflict`); None if it never ran. One read, for a caller that would rather not run an
        expensive command only to learn it is a repeat (the batches of `ledger billing close` run again)."""
        return self._previous_result(command, command.fingerprint())

    def _previous_result(self, command: Command, fingerprint: str) -> dict[str, Any] | None:
        """The first result of this command id, if it ran before; refused if it ran with other content."""
        previous = self.find(command_record_id(command.command_id))
        if previous is None:
            return None
        if previous.fingerprint != fingerprint:
            raise CommandIdConflict(command.conflict_message(previous.name))
        return {**previous.result, "repeated": True}

    def nik_hmac(self, nik: str) -> str:
        assert self._nik_key, "this Ledger was opened without a NIK key: it cannot enroll members"
        return identifiers.nik_hmac(self._nik_key, nik)

    # --- reading -------------------------------------------------------------------------------------------------

    def find(self, aggregate_id: UUID, *, to_save: bool = False) -> Any:
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
        employer: Employer | None = self.find(employer_id(npp), to_save=to_save)
        if employer is None:
            raise NotFound(f"no employer with NPP {npp} is registered")
        return employer

    def member(self, kpj: str, *, to_save: bool = False) -> Member:
        member: Member | None = self.find(member_id(kpj), to_save=to_save)
        if member is None:
            raise NotFound(f"no member with KPJ {kpj} is enrolled")
        return member

    def members(self, kpjs: list[str]) -> list[Member]:
        """Many members at once (a whole roster), with a few queries instead of one each."""
        ids = [member_id(kpj) for kpj in kpjs]
        loaded = load_many(self, ids)
        missing = [kpj for kpj, i in zip(kpjs, ids, strict=True) if i not in loaded]
        if missing:
            raise NotFound(f"no member with KPJ {missing[0]} is enrolled ({len(missing)} missing in all)")
        return [loaded[i] for i in ids]

    def contribution_months(self, member: Member) -> list[ContributionMonth]:
        """The member's contribution-month records, from enrollment to a year ahead (prepaid BPU months)."""
        today = self.clock()
        first = month_start(month_key(member.enrolled_on))
        count = (today.year + 1 - first.year) * 12 + today.month - first.month + 1
        months = pricing.months_from(month_key(first), max(count, 0))
        ids = [contribution_month_id(member.kpj, month) for month in months]
        loaded = load_many(self, ids)  # one query per few hundred months, not one per month
        return [loaded[i] for i in ids if i in loaded]

    def find_many(self, ids: list[UUID]) -> dict[UUID, Any]:
        """Many aggregates at once, fresh from the store (a few queries, not one each); missing ids left out."""
        return load_many(self, ids)

    def program_balance(self, member: Member, program: Program, as_of: date,
                        months: list[ContributionMonth] | None = None) -> int:
        """Contributions paid (net of reversals) plus yield (JHT) minus claims, for one program, as of a date."""
        if months is None:
            months = self.contribution_months(member)
        return pricing.program_balance(pricing.booked([member, *months]), program, as_of)

    def lowest_balance(self, member: Member, program: Program, from_date: date,
                       months: list[ContributionMonth] | None = None) -> int:
        """The lowest balance of `program` on `from_date` or any later day something was booked: what can still be
        taken out on `from_date` without a later day going negative (claims and reversals may be dated back)."""
        if months is None:
            months = self.contribution_months(member)
        return pricing.lowest_balance(pricing.booked([member, *months]), program, from_date)

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

    def payers(self, branch: str | None = None) -> dict[str, BranchPayers]:
        """Who the monthly close bills, per branch (one branch, or every branch): every employer, and every
        self-paying BPU member (segment BPU, no NPP), read from the notification log's employer- and member-created
        events (their branch, segment and NPP never change), not from a projection."""
        found: dict[str, BranchPayers] = {}
        for notification in self.notifications(topics=(get_topic(Employer.Created), get_topic(Member.Created))):
            data = stored_data(notification.state)
            if branch is not None and data["branch"] != branch:
                continue
            payers = found.setdefault(data["branch"], BranchPayers(data["branch"], [], [], 0))
            if "kpj" not in data:
                payers.npps.append(data["npp"])
            elif data["segment"] == Segment.BPU.value and data["npp"] is None:
                payers.kpjs.append(data["kpj"])
                continue
            payers.last_employer_change = notification.id
        return dict(sorted(found.items()))

    def stored_contracts(self, aggregate_id: UUID) -> Iterator[tuple[int, ev.LedgerEvent]]:
        """The contract events of one aggregate as stored, upcast to the current versions."""
        facts = ev.MemberFacts()  # an older reversal is upcast with the payment before it (see ledger.events)
        stored_events: Iterator[Any] = self.events.get(aggregate_id)  # our aggregates' `Created` and `Recorded`
        for stored in stored_events:
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
        rows: list[dict[str, Any]] = []
        for aggregate in aggregates:
            for version, contract in self.stored_contracts(aggregate.id):
                rows.append({"event_id": event_id(aggregate.id, version), "type": contract.TYPE,
                             "effective_date": contract.effective_date().isoformat(),
                             "data": ev.to_json_dict(contract)})
        # Stable: within one date, rows keep their recorded order (member first, then months, each by version).
        rows.sort(key=lambda row: row["effective_date"])
        return rows


__all__ = ["BranchPayers", "Ledger", "LedgerError"]
