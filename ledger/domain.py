"""Aggregates: they decide and record, and do no I/O.

Each aggregate stores contract events (`ledger.events`) as JSON inside one eventsourcing event class per kind of
change (`Created`, `Recorded`), so the stored payload is exactly the public contract and old versions are upcast
when an aggregate is loaded. Aggregate ids are derived from natural keys (NPP, KPJ, KPJ + month, payment id,
command id), so a second registration of the same thing collides in the event store instead of creating a twin.

- `Employer`: registration, risk class history, and the roster of KPJs it enrolled.
- `Member`: enrollment, wage history, exit, yield credits and claims.
- `ContributionMonth`: one member's contribution for one month (paid, reversed, paid again). It is an aggregate of
  its own so that a month's payment for 262,785 members creates new records instead of growing and reloading the
  members' histories, and so that paying one month twice is impossible by construction.
- `Payment`: one payment as made by its payer, with its totals.
- `CommandRecord`: the result of a command, by the client's command id (idempotency). Internal, not published.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Generic, Self, TypeVar
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event
from eventsourcing.utils import get_topic

from ledger import events as ev
from ledger.errors import AlreadyExists, RuleViolation
from ledger.rules import Program, RiskClass, Segment, month_owed

ID_NAMESPACE = uuid5(NAMESPACE_URL, "https://ledger.bpjs.example/ids")
T = TypeVar("T")  # what a dated history holds: a wage (int), a risk class
# The partial JHT payouts: a member may take one of them, once.
JHT_PARTIAL_KINDS = frozenset({ev.ClaimKind.JHT_PARTIAL_HOUSING, ev.ClaimKind.JHT_PARTIAL_OTHER})

class _JustBuilt:
    """The contract event that `start`/`record` just serialized, with the dict made from it, so applying it does not
    parse its JSON back. A single slot checked by identity: if anything else intervenes, the event is simply parsed,
    which is always correct."""

    slot: tuple[dict[str, Any], ev.LedgerEvent] | None = None


_just_built = _JustBuilt()


def employer_id(npp: str) -> UUID:
    return uuid5(ID_NAMESPACE, f"employer:{npp}")


def member_id(kpj: str) -> UUID:
    return uuid5(ID_NAMESPACE, f"member:{kpj}")


def contribution_month_id(kpj: str, month: str) -> UUID:
    return uuid5(ID_NAMESPACE, f"contribution:{kpj}:{month}")


def payment_id(command_id: str) -> UUID:
    return uuid5(ID_NAMESPACE, f"payment:{command_id}")


def payer_account_id(npp: str | None, kpj: str | None) -> UUID:
    """A payer's account: an employer or paying body by NPP, a self-paying BPU member by KPJ."""
    return uuid5(ID_NAMESPACE, f"account:npp:{npp}" if npp is not None else f"account:kpj:{kpj}")


def bill_lines_id(bill_id: str) -> UUID:
    return uuid5(ID_NAMESPACE, f"bill-lines:{bill_id}")


def held_money_id(reference: str) -> UUID:
    """Money held in suspense, by its bank reference."""
    return uuid5(ID_NAMESPACE, f"held-money:{reference}")


def command_record_id(command_id: str) -> UUID:
    return uuid5(ID_NAMESPACE, f"command:{command_id}")


def event_id(aggregate_id: UUID, version: int) -> str:
    """An event's public id: the aggregate it belongs to and its version there. Unique, stable, self-locating."""
    return f"{aggregate_id}.{version}"


def parse_event_id(text: str) -> tuple[UUID, int]:
    head, _, tail = text.strip().rpartition(".")
    try:
        return UUID(head), int(tail)
    except ValueError:
        # The text is not repeated: it may be personal data typed into the wrong field.
        raise ValueError("not an event id (expected <aggregate uuid>.<version>, as `ledger history` prints it)") \
            from None


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_start(key: str) -> date:
    year, month = key.split("-")
    return date(int(year), int(month), 1)


class LedgerAggregate(Aggregate):
    """Stores contract events; subclasses react to them in `when()` and derive their id in `key()`.

    `recorded` keeps the contract events of aggregates whose history is read back (members, contribution months);
    an employer keeps only its state, so that a long roster history stays cheap to load and to copy.
    """

    KEEP_RECORDED = True

    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        raise NotImplementedError

    @classmethod
    def create_id(cls, schema_type: str, data: dict[str, Any], meta: dict[str, Any]) -> UUID:  # noqa: ARG003
        return cls.key(data)

    @event("Created")
    def __init__(self, schema_type: str, schema_version: int, data: dict[str, Any], meta: dict[str, Any]) -> None:
        self.applied = 0
        self.recorded: list[tuple[int, ev.LedgerEvent]] = []
        self._apply(schema_type, schema_version, data, meta)

    # The stored event class is named here (`Recorded`); the method's name is not stored. It is not `_record`, the
    # name of an eventsourcing internal, so that a search for the internals finds ledger.persistence alone.
    @event("Recorded")
    def _trigger_recorded(self, schema_type: str, schema_version: int, data: dict[str, Any],
                          meta: dict[str, Any]) -> None:
        self._apply(schema_type, schema_version, data, meta)

    def _apply(self, schema_type: str, schema_version: int, data: dict[str, Any], meta: dict[str, Any]) -> None:
        # A contract built in this process a moment ago (see `start`/`record`) is used as it is; anything loaded
        # from the store is parsed, and upcast if it is of an older version.
        built = _just_built.slot  # read the slot once: another thread may refill it between two reads
        if built is not None and built[0] is data:
            contract = built[1]
        else:
            contract = ev.parse_event(schema_type, schema_version, data, context=self)
        _just_built.slot = None
        # One stored event holds one contract event, so the version being applied is the count so far plus one.
        self.applied += 1
        self.branch: str = meta["branch"]
        self.chain_head: str = meta["hash"]
        if self.KEEP_RECORDED:
            self.recorded.append((self.applied, contract))
        self.when(contract)

    @staticmethod
    def _meta(contract: ev.LedgerEvent, data: dict[str, Any], aggregate_id: UUID, version: int, branch: str,
              prev_hash: str) -> dict[str, Any]:
        """What the relay publishes beside the data: computed here, once, so the relay only copies it."""
        public = ev.public_data(contract.TYPE, data)
        effective = contract.effective_date().isoformat()
        digest = ev.chain_hash(prev_hash, aggregate_id=str(aggregate_id), aggregate_version=version,
                               event_type=contract.TYPE, version=contract.VERSION, effective_date=effective,
                               branch=branch, data=public)
        return {"branch": branch, "effective_date": effective, "prev_hash": prev_hash, "hash": digest}

    def __deepcopy__(self, memo: dict[int, Any]) -> LedgerAggregate:
        """A copy for the repository's cache, cheap because contract events and dated values are immutable.

        Containers are copied, so a command that changes the copy (and then fails to save) leaves the cached
        original as it was; what they hold (frozen pydantic events, frozen dataclasses, strings) is shared.
        """
        copy = object.__new__(type(self))
        for name, value in self.__dict__.items():
            copy.__dict__[name] = type(value)(value) if isinstance(value, (list, dict, set)) else value
        return copy

    @classmethod
    def start(cls, contract: ev.LedgerEvent) -> Self:
        data = ev.to_json_dict(contract)
        meta = cls._meta(contract, data, cls.key(data), 1, data["branch"], ev.GENESIS_HASH)
        _just_built.slot = (data, contract)
        return cls(schema_type=contract.TYPE, schema_version=contract.VERSION, data=data, meta=meta)

    def record(self, contract: ev.LedgerEvent) -> str:
        """Record a contract event; returns its public event id."""
        data = ev.to_json_dict(contract)
        meta = self._meta(contract, data, self.id, self.version + 1, self.branch, self.chain_head)
        _just_built.slot = (data, contract)
        self._trigger_recorded(schema_type=contract.TYPE, schema_version=contract.VERSION, data=data, meta=meta)
        return event_id(self.id, self.version)

    def when(self, contract: ev.LedgerEvent) -> None:
        raise NotImplementedError

    def member_facts(self, kpj: str) -> tuple[str | None, str] | None:  # noqa: ARG002
        """The `ledger.events.UpcastContext` for this aggregate's own older events: what it knows of its member."""
        return None

    def event_with_id(self, version: int) -> ev.LedgerEvent | None:
        for v, contract in self.recorded:
            if v == version:
                return contract
        return None


@dataclass(frozen=True)
class Dated(Generic[T]):
    """A value with the date from which it holds; histories are kept sorted by that date."""

    effective: date
    value: T


def value_on(history: list[Dated[T]], on: date) -> T | None:
    """The value in force on `on`: the last one whose effective date is on or before it (None before the first)."""
    index = bisect.bisect_right([d.effective for d in history], on)
    return history[index - 1].value if index else None


def insert_dated(history: list[Dated[T]], item: Dated[T]) -> None:
    history.insert(bisect.bisect_right([d.effective for d in history], item.effective), item)


class Employer(LedgerAggregate):
    KEEP_RECORDED = False

    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        return employer_id(data["npp"])

    def when(self, contract: ev.LedgerEvent) -> None:
        if isinstance(contract, ev.EmployerRegistered):
            self.npp = contract.npp
            self.name = contract.name
            self.branch = contract.branch
            self.kind = contract.kind
            self.programs = frozenset(contract.programs)
            self.labour_intensive = contract.labour_intensive
            self.registered_on = contract.registered_on
            self.risk_history = [Dated(contract.registered_on, contract.risk_class)]
            self.roster: list[str] = []
        elif isinstance(contract, ev.EmployerRiskClassChanged):
            insert_dated(self.risk_history, Dated(contract.effective, contract.risk_class))
        elif isinstance(contract, ev.WorkersJoined):
            self.roster.extend(contract.kpjs)

    def risk_class_on(self, day: date) -> RiskClass:
        # Before registration the first class applies: contributions are never computed for earlier months anyway.
        return value_on(self.risk_history, day) or self.risk_history[0].value


class Member(LedgerAggregate):
    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        return member_id(data["kpj"])

    def when(self, contract: ev.LedgerEvent) -> None:
        if isinstance(contract, ev.MemberEnrolled):
            self.kpj = contract.kpj
            self.nik = contract.nik
            self.name = contract.name
            self.birth_date = contract.birth_date
            self.segment = contract.segment
            self.npp = contract.npp
            self.branch = contract.branch
            self.programs = frozenset(contract.programs)
            self.enrolled_on = contract.effective
            self.wage_history = [Dated(contract.effective, contract.wage)]
            self.exit: ev.MemberExited | None = None
            self.claims: dict[str, ev.ClaimPaid] = {}  # by event id, reversed ones removed
            self.yields: dict[int, ev.YieldCredited] = {}
        elif isinstance(contract, ev.MemberWageChanged):
            insert_dated(self.wage_history, Dated(contract.effective, contract.wage))
        elif isinstance(contract, ev.MemberExited):
            self.exit = contract
        elif isinstance(contract, ev.YieldCredited):
            self.yields[contract.year] = contract
        elif isinstance(contract, ev.ClaimPaid):
            self.claims[event_id(self.id, self.applied)] = contract
        elif isinstance(contract, ev.ClaimReversed):
            self.claims.pop(contract.reverses, None)

    def wage_on(self, day: date) -> int:
        return value_on(self.wage_history, day) or self.wage_history[0].value

    def covered_in(self, month: str) -> bool:
        """Whether `month` is owed: employed on at least one of its days (`rules.month_owed`; the exit date is the
        first day no longer employed, so an exit on the 1st owes nothing for that month)."""
        return month_owed(month, self.enrolled_on, None if self.exit is None else self.exit.exit_date)

    def claims_of(self, program: Program) -> list[ev.ClaimPaid]:
        return [c for c in self.claims.values() if c.program is program]

    def check_can_claim(self, claim: ev.ClaimPaid) -> None:
        """Guards that depend on this member alone; balance checks are the application's (they span aggregates)."""
        if claim.incident_date < self.enrolled_on:
            raise RuleViolation(
                f"incident date {claim.incident_date} is before member {self.kpj} enrolled ({self.enrolled_on})")
        self._check_death_benefit(claim)
        if claim.kind in (ev.ClaimKind.JHT_FULL, ev.ClaimKind.JP_LUMP_SUM) and self.exit is None:
            raise RuleViolation(f"a {claim.program.value} {claim.kind.value} claim needs the member to have exited "
                                f"(resignation, retirement, death, ...); member {self.kpj} is still active")
        if claim.kind in JHT_PARTIAL_KINDS and any(c.kind in JHT_PARTIAL_KINDS for c in self.claims_of(Program.JHT)):
            raise AlreadyExists(f"member {self.kpj} already took the one partial JHT payout allowed")
        if claim.program is not Program.JKK and claim.program not in self.programs:
            raise RuleViolation(f"member {self.kpj} is not enrolled in {claim.program.value}")

    def _check_death_benefit(self, claim: ev.ClaimPaid) -> None:
        """JKM, and JKK's death benefit: paid once, after the death (work-related for JKK) is recorded."""
        if claim.program is Program.JKM:
            if self.exit is None or self.exit.reason is not ev.ExitReason.DEATH:
                raise RuleViolation(f"a JKM claim needs the member's death recorded first (ledger member exit "
                                    f"--kpj {self.kpj} --reason death --date ...); member {self.kpj} has not exited")
            if self.claims_of(Program.JKM):
                raise AlreadyExists(f"the JKM benefit for the death of member {self.kpj} was already paid")
        if claim.kind is ev.ClaimKind.JKK_DEATH:
            if self.exit is None or self.exit.reason is not ev.ExitReason.WORK_DEATH:
                raise RuleViolation(f"a JKK death claim needs the member's work-related death recorded first "
                                    f"(ledger member exit --kpj {self.kpj} --reason work-death); not so for {self.kpj}")
            if any(c.kind is ev.ClaimKind.JKK_DEATH for c in self.claims_of(Program.JKK)):
                raise AlreadyExists(f"the JKK death benefit for member {self.kpj} was already paid")


class ContributionMonth(LedgerAggregate):
    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        return contribution_month_id(data["kpj"], data["month"])

    def when(self, contract: ev.LedgerEvent) -> None:
        if isinstance(contract, ev.ContributionPaid):
            self.kpj = contract.kpj
            self.month = contract.month
            self.current: ev.ContributionPaid | None = contract
            self.current_id: str | None = event_id(self.id, self.applied)
            self.adjusted: list[str] = getattr(self, "adjusted", [])
        elif isinstance(contract, ev.ContributionReversed):
            self.current = None
            self.current_id = None
        elif isinstance(contract, ev.ContributionAdjusted):
            if not hasattr(self, "kpj"):  # an adjustment settled before the month's first bill (reopened)
                self.kpj, self.month, self.current, self.current_id = contract.kpj, contract.month, None, None
            # The bills whose adjustment lines were settled here (a settlement of such a bill is not reversed).
            self.adjusted = [*getattr(self, "adjusted", []), contract.payment_id]

    def member_facts(self, kpj: str) -> tuple[str | None, str] | None:
        # A reversal stored at v1 follows the payment it reverses, in this aggregate: that payment names the account.
        paid: ev.ContributionPaid | None = getattr(self, "current", None)
        return (paid.npp, paid.segment.value) if paid is not None and paid.kpj == kpj else None

    def check_can_pay(self) -> None:
        if self.current is not None:
            raise AlreadyExists(f"the contribution of member {self.kpj} for {self.month} is already paid "
                                f"(event {self.current_id}); reverse it first to correct it")


class Payment(LedgerAggregate):
    KEEP_RECORDED = False

    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        return uuid5(ID_NAMESPACE, f"payment:{data['payment_id']}")

    def when(self, contract: ev.LedgerEvent) -> None:
        if isinstance(contract, ev.ContributionPaymentReceived):
            self.receipt = contract

    def event_with_id(self, version: int) -> ev.LedgerEvent | None:
        return self.receipt if version == 1 else None


@dataclass
class OpenBill:
    """A bill not yet settled, as its payer's account keeps it."""

    bill: ev.BillClosed
    event_id: str
    # The day a reversed settlement reopened it: it is settled again no earlier, so that a member's month is never
    # paid twice on any day (paid, reversed, and paid again dated back before the reversal).
    reopened_on: date | None = None


Lot = tuple[str, int, date, str]  # money not yet applied: (reference, rupiah left, received on, payer role)


@dataclass(frozen=True)
class Settlement:
    """A bill settled, as its payer's account keeps it so that the settlement can be reversed (`ledger reverse`)."""

    bill: OpenBill
    settled: ev.BillSettled
    taken: tuple[Lot, ...]  # the parts of the lots it spent: (reference, rupiah taken, received on, payer role)
    reversed_by: str | None = None  # the SettlementReversed's event id


@dataclass(frozen=True)
class Receipt:
    """Money received, as its payer's account keeps it so that it can be returned as a bank error."""

    received: ev.MoneyReceived
    event_id: str
    returned_by: str | None = None  # the ReceiptReturned's event id


def _event_version(event_id_: str) -> int:
    return int(event_id_.rpartition(".")[2])


def _bill_order(bill: OpenBill) -> tuple[date, int]:
    """Open bills are applied oldest first: by the day they count from, then in the order they were closed."""
    return bill.bill.counts_from, _event_version(bill.event_id)


class PayerAccount(LedgerAggregate):
    """One payer's collections: its bills, the money it sent, what was applied, refunded and is left unapplied.

    One aggregate per payer, so that money is applied to bills under one version check: two receipts for the same
    employer cannot both spend the same credit. The bills' member lines live in `BillLines` aggregates (one per bill),
    so that loading an account stays cheap for an employer of thousands of workers.

    Its settlements and receipts are kept (`settlements`, `receipts`) so that `ledger reverse` can undo one: a
    `SettlementReversed` reopens the bill and puts the money it took back into the lots it came from, in their
    place; a `ReceiptReturned` takes a receipt's lot out whole.
    """

    KEEP_RECORDED = False

    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        return payer_account_id(data.get("npp"), data.get("kpj"))

    def _begin(self, contract: ev.LedgerEvent) -> None:
        self.npp: str | None = getattr(contract, "npp", None)
        self.kpj: str | None = getattr(contract, "kpj", None)
        self.open_bills: list[OpenBill] = []  # oldest first: by counts_from, then as closed
        self.bills_by_month: dict[tuple[str, str], list[str]] = {}  # (month, segment) -> bill ids
        # Money received and not yet applied or refunded, as lots, oldest first: money is spent from the oldest
        # lot, so a settlement names the receipts that paid it.
        # Tuples, replaced rather than changed: a copy of the aggregate (`__deepcopy__`) shares what lists hold.
        self.lots: list[Lot] = []
        self.codes: frozenset[str] = frozenset()  # the payment codes of its bills
        # Rupiah totals. Not `applied`: that name is `LedgerAggregate`'s count of events applied (the version).
        self.received_total: int = 0
        self.applied_total: int = 0
        self.refunded_total: int = 0
        self.returned_total: int = 0
        # By event id; frozen values, replaced rather than changed (see `lots`).
        self.settlements: dict[str, Settlement] = {}
        self.receipts: dict[str, Receipt] = {}
        self.receipt_ids: dict[str, str] = {}  # reference -> the MoneyReceived's event id

    def when(self, contract: ev.LedgerEvent) -> None:
        if not hasattr(self, "open_bills"):
            self._begin(contract)
        if isinstance(contract, ev.BillClosed):
            key = (contract.month, contract.segment.value)
            self.bills_by_month[key] = [*self.bills_by_month.get(key, []), contract.bill_id]
            self.codes = self.codes | {contract.payment_code}
            self.open_bills.append(OpenBill(contract, event_id(self.id, self.applied)))
            self.open_bills.sort(key=lambda b: b.bill.counts_from)  # stable: bills of one date stay as closed
        elif isinstance(contract, ev.MoneyReceived):
            self.lots.append((contract.reference, contract.amount, contract.received_on, contract.payer.value))
            self.received_total += contract.amount
            receipt_id = event_id(self.id, self.applied)
            self.receipts[receipt_id] = Receipt(contract, receipt_id)
            self.receipt_ids[contract.reference] = receipt_id
        elif isinstance(contract, ev.BillSettled):
            self._settle(contract)
        elif isinstance(contract, ev.MoneyRefunded):
            self.spend(contract.amount)
            self.refunded_total += contract.amount
        elif isinstance(contract, ev.SettlementReversed):
            self._reverse_settlement(contract)
        elif isinstance(contract, ev.ReceiptReturned):
            self._return_receipt(contract)

    def _settle(self, contract: ev.BillSettled) -> None:
        bill = next(b for b in self.open_bills if b.bill.bill_id == contract.bill_id)
        self.open_bills = [b for b in self.open_bills if b is not bill]
        taken = self._take(contract.total)
        self.settlements[event_id(self.id, self.applied)] = Settlement(bill, contract, taken)
        self.applied_total += contract.total

    def _reverse_settlement(self, contract: ev.SettlementReversed) -> None:
        settlement = self.settlements[contract.reverses]
        self.settlements[contract.reverses] = replace(settlement, reversed_by=event_id(self.id, self.applied))
        reopened = replace(settlement.bill, reopened_on=contract.reversed_on)
        self.open_bills = sorted([*self.open_bills, reopened], key=_bill_order)
        for part in settlement.taken:
            self._restore(part, contract.reversed_on)
        self.applied_total -= contract.total

    def _return_receipt(self, contract: ev.ReceiptReturned) -> None:
        receipt = self.receipts[contract.reverses]
        self.receipts[contract.reverses] = replace(receipt, returned_by=event_id(self.id, self.applied))
        self.lots = [lot for lot in self.lots if lot[0] != contract.reference]
        self.returned_total += contract.amount

    def _restore(self, part: Lot, back_on: date) -> None:
        """Put money taken from a lot back, as the payer's credit from `back_on` (the reversal's date: it was applied
        until then, so it may not be refunded, returned nor applied again before): into the lot if some of it is
        left with that date, else as a lot of its own, after the money received before it (the order the money was
        received in)."""
        reference, amount, received_on, role = part
        available = max(received_on, back_on)
        for index, (ref, left, on, _role) in enumerate(self.lots):
            if ref == reference and on == available:
                self.lots[index] = (reference, left + amount, available, role)
                return
        order = self._receipt_order(reference)
        index = next((i for i, lot in enumerate(self.lots) if self._receipt_order(lot[0]) > order), len(self.lots))
        self.lots.insert(index, (reference, amount, available, role))

    def _receipt_order(self, reference: str) -> int:
        return _event_version(self.receipt_ids[reference])

    @property
    def unapplied(self) -> int:
        return sum(lot[1] for lot in self.lots)

    def _take(self, amount: int) -> tuple[Lot, ...]:
        """Take `amount` from the oldest lots; returns what it took from each."""
        taken: list[Lot] = []
        while amount > 0:
            reference, left, received_on, role = self.lots[0]
            use = min(amount, left)
            amount -= use
            taken.append((reference, use, received_on, role))
            if use == left:
                self.lots.pop(0)
            else:
                self.lots[0] = (reference, left - use, received_on, role)
        return tuple(taken)

    def spend(self, amount: int) -> list[str]:
        """Take `amount` from the oldest lots; returns the references it came from."""
        return [part[0] for part in self._take(amount)]

    def sources(self, amount: int) -> list[str]:
        """The references `spend(amount)` would take from, without spending."""
        taken: list[str] = []
        left = amount
        for reference, rupiah, _received_on, _role in self.lots:
            if left <= 0:
                break
            if not taken or taken[-1] != reference:  # a receipt's money given back by a reversal: a lot of its own
                taken.append(reference)
            left -= rupiah
        return taken

    def lot_left(self, reference: str) -> int:
        """What is left unapplied of one receipt."""
        return sum(lot[1] for lot in self.lots if lot[0] == reference)

    def credit_from(self, reference: str) -> date | None:
        """The day all that is left of one receipt is the payer's credit: the latest of the day it arrived and the
        days reversals gave parts of it back. None when none of it is left."""
        return max((lot[2] for lot in self.lots if lot[0] == reference), default=None)

    def settlements_from(self, reference: str) -> list[str]:
        """The event ids of the settlements (not reversed) that spent money of one receipt."""
        return [settled_id for settled_id, s in self.settlements.items()
                if s.reversed_by is None and any(part[0] == reference for part in s.taken)]

    def event_with_id(self, version: int) -> ev.LedgerEvent | None:
        """Its settlements and receipts (what `ledger reverse` undoes); its other events are not kept."""
        key = event_id(self.id, version)
        if key in self.settlements:
            return self.settlements[key].settled
        if key in self.receipts:
            return self.receipts[key].received
        return None

    def bill_count(self, month: str, segment: Segment) -> int:
        return len(self.bills_by_month.get((month, segment.value), []))

    def open_bill_months(self) -> set[str]:
        return {b.bill.month for b in self.open_bills}


class BillLines(LedgerAggregate):
    """The member lines of one bill, in parts of at most `events.BILL_PART_LINES_MAX`."""

    KEEP_RECORDED = False

    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        return bill_lines_id(data["bill_id"])

    def when(self, contract: ev.LedgerEvent) -> None:
        if isinstance(contract, ev.BillLinesAdded):
            if not hasattr(self, "lines"):
                self.bill_id = contract.bill_id
                self.lines: list[ev.BillLine] = []
            self.lines.extend(contract.lines)


class HeldMoney(LedgerAggregate):
    """A bank credit that named no known payer, held in suspense by its reference until it is matched to a payer.

    One aggregate per reference, so that the same credit is never matched twice: two clerks matching it at once
    collide on its version."""

    KEEP_RECORDED = False

    @staticmethod
    def key(data: dict[str, Any]) -> UUID:
        return held_money_id(data["reference"])

    def when(self, contract: ev.LedgerEvent) -> None:
        if isinstance(contract, ev.MoneyUnidentified):
            self.held = contract
            self.identified: ev.MoneyIdentified | None = None
        elif isinstance(contract, ev.MoneyIdentified):
            self.identified = contract


class CommandRecord(Aggregate):
    """What a command produced, kept under the client's command id so a repeat returns it and writes nothing."""

    @staticmethod
    def create_id(command_id: str, name: str, fingerprint: str, result: dict[str, Any]) -> UUID:  # noqa: ARG004
        return command_record_id(command_id)

    @event("Accepted")
    def __init__(self, command_id: str, name: str, fingerprint: str, result: dict[str, Any]) -> None:
        self.command_id = command_id
        self.name = name
        self.fingerprint = fingerprint
        self.result = result


# Stored events that are not part of the public contract: the relay skips them and gives them no position.
INTERNAL_EVENT_TOPICS = frozenset({get_topic(CommandRecord.Accepted)})  # type: ignore[attr-defined]  # made by @event


def check_segment_programs(segment: Segment, programs: frozenset[Program]) -> None:
    if segment is Segment.BPU and Program.JP in programs:
        raise RuleViolation("JP is not offered to BPU (informal) members; enrol them in JHT, JKK and/or JKM")
    if segment is Segment.PU and not {Program.JKK, Program.JKM} <= programs:
        raise RuleViolation("a PU (wage earner) member is enrolled in at least JKK and JKM")
