"""The event contract: what the ledger records, and what downstream consumers and auditors read.

Every event is a frozen pydantic model with a type name (past tense) and a schema version. The JSON shape of each is
pinned by `tests/unit/test_event_contract.py`, so that a change to this file is always deliberate: a changed model
gets a new version, and an upcaster in `UPCASTERS` turns every older version into the current one, because the
history is replayed forever.

Money is whole rupiah (`int`); rates travel as decimal strings; dates as ISO strings. Personal data (a NIK, a
person's name, a birth date) is marked per type in `PERSONAL_FIELDS`: it is kept here, in the system of record, and
the relay publishes every event without those fields. What is published in their place is a role or a relationship
(`PayerRole`, `Beneficiary`), a keyed NIK hash and a birth year.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ledger.rules import Program, RiskClass, Segment

Rupiah = int


class EmployerKind(str, Enum):
    COMPANY = "company"
    GOVERNMENT = "government"


class ExitReason(str, Enum):
    RESIGNATION = "resignation"
    DISMISSAL = "dismissal"
    END_OF_CONTRACT = "end-of-contract"
    RETIREMENT = "retirement"
    DEATH = "death"  # not caused by work: JKM
    WORK_DEATH = "work-death"  # a work accident or occupational disease: JKK
    DISABILITY = "disability"
    EMIGRATION = "emigration"


class ClaimKind(str, Enum):
    JHT_FULL = "full"
    JHT_PARTIAL_HOUSING = "partial-housing"  # up to 30% after 10 years
    JHT_PARTIAL_OTHER = "partial-other"  # up to 10% after 10 years
    JKK_DEATH = "death"  # 48 x last wage, to an heir
    JKK_DISABILITY = "disability"  # 56 x last wage
    JKK_CARE = "care"  # medical care or wage replacement: the amount is the bill
    JKM_DEATH = "death-benefit"  # the cash total by date of death
    JP_LUMP_SUM = "lump-sum"  # under 15 years of contributions


class PayerRole(str, Enum):
    """Who paid, as a role: the contract never carries a person's name (the name stays in the system of record)."""

    EMPLOYER = "employer"  # an employer pays for its roster (the default for a payment by NPP)
    MEMBER = "member"  # a BPU member pays for themself (the default for a payment by KPJ)
    INSTITUTION = "institution"  # a third party, e.g. a regional budget (APBD) paying for vulnerable workers


class Beneficiary(str, Enum):
    """Who a claim is paid to, as their relationship to the member: never a name (it stays in the store)."""

    SELF = "self"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    OTHER_HEIR = "other-heir"
    CARE_PROVIDER = "care-provider"  # a hospital or clinic paid directly for a JKK claim's medical care


# Claim kinds that are paid because the member died: their beneficiary is an heir, never the member.
DEATH_CLAIM_KINDS = frozenset({ClaimKind.JKK_DEATH, ClaimKind.JKM_DEATH})


class ProgramShare(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    employer: Rupiah = Field(ge=0)
    worker: Rupiah = Field(ge=0)


def check_total(shares: dict[Program, ProgramShare], fine: int, total: int) -> None:
    """A contribution line's total is its shares plus its fine: a line that does not add up is not a line."""
    parts = sum(s.employer + s.worker for s in shares.values()) + fine
    if parts != total:
        raise ValueError(f"total {total} is not the sum of shares and fine ({parts})")


class LedgerEvent(BaseModel):
    """Base of every event in the contract."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    # Fields that are personal data: kept in the system of record, never published (see `public_data`).
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ()

    def effective_date(self) -> date:
        """The date the fact takes effect in the books: what as-of queries filter on."""
        raise NotImplementedError


class EmployerRegistered(LedgerEvent):
    TYPE: ClassVar[str] = "EmployerRegistered"
    npp: str
    name: str
    branch: str
    kind: EmployerKind
    risk_class: RiskClass
    programs: list[Program]
    labour_intensive: bool = False
    registered_on: date

    def effective_date(self) -> date:
        return self.registered_on


class EmployerRiskClassChanged(LedgerEvent):
    TYPE: ClassVar[str] = "EmployerRiskClassChanged"
    npp: str
    risk_class: RiskClass
    effective: date

    def effective_date(self) -> date:
        return self.effective


class WorkersJoined(LedgerEvent):
    """The employer's roster grew: the KPJs it registered, in one command (one person or a bulk enrollment)."""

    TYPE: ClassVar[str] = "WorkersJoined"
    npp: str
    kpjs: list[str]
    effective: date

    def effective_date(self) -> date:
        return self.effective


class MemberEnrolled(LedgerEvent):
    """v2: `birth_year` added and `birth_date` kept in the store only. Consumers need an age band (retirement age,
    pension eligibility are decided here, on the write side); the full birth date is part of the NIK (digits 7-12),
    and publishing it with the district shrank a NIK hash's search space to a few thousand guesses."""

    TYPE: ClassVar[str] = "MemberEnrolled"
    VERSION: ClassVar[int] = 2
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ("nik", "name", "birth_date")
    kpj: str
    nik: str
    nik_hmac: str  # HMAC-SHA256 of the NIK under the fund's key: links one person's KPJs without revealing the NIK
    name: str
    birth_date: date
    birth_year: int = Field(ge=1900, le=2200)
    segment: Segment
    npp: str | None  # the employer (PU), or the body that pays for a BPU member; None for a self-paying BPU member
    branch: str
    wage: Rupiah = Field(gt=0)  # PU: monthly wage; BPU: declared income
    programs: list[Program]
    effective: date

    def effective_date(self) -> date:
        return self.effective

    @model_validator(mode="after")
    def _birth_year_of_birth_date(self) -> MemberEnrolled:
        if self.birth_year != self.birth_date.year:
            raise ValueError(f"birth_year {self.birth_year} is not the year of birth_date")
        return self


class MemberWageChanged(LedgerEvent):
    TYPE: ClassVar[str] = "MemberWageChanged"
    kpj: str
    wage: Rupiah = Field(gt=0)
    effective: date

    def effective_date(self) -> date:
        return self.effective


class MemberExited(LedgerEvent):
    TYPE: ClassVar[str] = "MemberExited"
    kpj: str
    reason: ExitReason
    exit_date: date

    def effective_date(self) -> date:
        return self.exit_date


class ContributionPaid(LedgerEvent):
    """One member's contribution for one month: the unit every balance and branch total is built from."""

    TYPE: ClassVar[str] = "ContributionPaid"
    VERSION: ClassVar[int] = 2  # v2: `payer` is a role, no longer a name
    kpj: str
    npp: str | None
    branch: str
    segment: Segment
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    paid_on: date
    payer: PayerRole
    payment_id: str
    wage: Rupiah  # the wage (PU) or declared income (BPU) the shares were computed on
    shares: dict[Program, ProgramShare]
    jkp_from_jkk: Rupiah = 0  # parts of the JKK / JKM shares credited to the JKP fund: a split, not extra
    jkp_from_jkm: Rupiah = 0
    jp_deferred: Rupiah = 0  # JP owed but deferred by the 2020 relief; not in `total`
    months_late: int = Field(ge=0)
    fine: Rupiah = Field(ge=0)  # borne by the employer
    total: Rupiah  # sum of the shares plus the fine

    @model_validator(mode="after")
    def _total_adds_up(self) -> ContributionPaid:
        check_total(self.shares, self.fine, self.total)
        return self

    def effective_date(self) -> date:
        return self.paid_on


class ContributionPaymentReceived(LedgerEvent):
    """One payment as the payer made it: it covers members and months; its lines are the `ContributionPaid` events."""

    TYPE: ClassVar[str] = "ContributionPaymentReceived"
    VERSION: ClassVar[int] = 2  # v2: `payer` is a role; the payer's name, if given, is `payer_name`, never published
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ("payer_name",)
    payment_id: str
    npp: str | None
    kpj: str | None  # a BPU member paying for themself
    branch: str
    payer: PayerRole
    payer_name: str | None = None  # as on the bank slip: may be a person's name, so it stays in the store
    paid_on: date
    months: list[str]
    member_count: int = Field(ge=1)
    line_count: int = Field(ge=1)
    program_totals: dict[Program, Rupiah]
    fine: Rupiah = Field(ge=0)
    total: Rupiah

    def effective_date(self) -> date:
        return self.paid_on


class YieldCredited(LedgerEvent):
    TYPE: ClassVar[str] = "YieldCredited"
    kpj: str
    year: int
    rate: Decimal  # serialized as a string: never a float near money
    balance_basis: Rupiah  # the average month-end JHT balance the rate was applied to
    amount: Rupiah = Field(ge=0)
    credited_on: date

    def effective_date(self) -> date:
        return self.credited_on


class ClaimPaid(LedgerEvent):
    TYPE: ClassVar[str] = "ClaimPaid"
    VERSION: ClassVar[int] = 2  # v2: `beneficiary` is the relationship to the member; the name stays in the store
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ("beneficiary_name",)
    claim_id: str
    kpj: str
    branch: str
    program: Program
    kind: ClaimKind
    incident_date: date
    paid_on: date
    beneficiary: Beneficiary
    beneficiary_name: str | None = None  # the person paid, when not the member: personal, never published
    amount: Rupiah = Field(gt=0)
    statutory_amount: Rupiah | None  # what the rules give, where they give an amount

    def effective_date(self) -> date:
        return self.paid_on


class ContributionReversed(LedgerEvent):
    """v2: carries the original payment's `npp` and `segment`, so that a reader books the reversal to the account the
    payment was booked to (the employer's, or a self-paying member's) and undoes it exactly."""

    TYPE: ClassVar[str] = "ContributionReversed"
    VERSION: ClassVar[int] = 2
    reverses: str  # the event id of the ContributionPaid
    kpj: str
    npp: str | None  # the original payment's: the employer or paying body, None for a self-paying BPU member
    segment: Segment  # the original payment's
    branch: str
    month: str
    reason: str = Field(min_length=1)
    shares: dict[Program, ProgramShare]  # the amounts taken back, equal to the original's
    fine: Rupiah
    total: Rupiah
    reversed_on: date

    def effective_date(self) -> date:
        return self.reversed_on


class ClaimReversed(LedgerEvent):
    TYPE: ClassVar[str] = "ClaimReversed"
    reverses: str  # the event id of the ClaimPaid
    claim_id: str
    kpj: str
    branch: str
    program: Program
    amount: Rupiah
    reason: str = Field(min_length=1)
    reversed_on: date

    def effective_date(self) -> date:
        return self.reversed_on


# --- Collections: dues billed, money received, money applied (v1, issue 17) -----------------------------------------

BILL_PART_LINES_MAX = 1_000  # member lines per `BillLinesAdded`: keeps each published event far below 1 MB


class BillKind(str, Enum):
    REGULAR = "regular"  # the month's first bill for a payer
    ADJUSTMENT = "adjustment"  # members found owed for a month already billed (a back-dated enrollment), or more owed
    # for members billed before (a wage or risk class raised back into the month): lines with `adjustment` true


class BillClosed(LedgerEvent):
    """A bill: what one payer owes for one month (and segment), frozen when the month is closed. Its member lines
    follow in `BillLinesAdded` parts, in the same transaction. It counts in the books from `counts_from`, a date fixed
    by the month (the first day of the next month for PU, of the month itself for BPU), never the day the close ran."""

    TYPE: ClassVar[str] = "BillClosed"
    bill_id: str
    payment_code: str = Field(pattern=r"^[0-9]{16,19}$")
    npp: str | None  # the employer or paying body; None for a self-paying BPU member
    kpj: str | None  # the self-paying BPU member; None for a bill to an employer
    branch: str
    segment: Segment
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    kind: BillKind
    counts_from: date
    due_date: date
    closed_on: date  # the day the close ran: for the record only, nothing is computed from it
    member_count: int = Field(ge=1)
    parts: int = Field(ge=1)
    program_totals: dict[Program, Rupiah]
    total: Rupiah = Field(gt=0)

    def effective_date(self) -> date:
        return self.counts_from


class BillLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    kpj: str
    wage: Rupiah
    shares: dict[Program, ProgramShare]
    jkp_from_jkk: Rupiah = 0
    jkp_from_jkm: Rupiah = 0
    jp_deferred: Rupiah = 0
    amount: Rupiah = Field(gt=0)  # the sum of the shares
    # True: the member's month was billed before and now costs more (a wage or risk class raised back into it); the
    # shares (and the JKP splits, JP deferred) are the differences, `wage` the new one. Settled as a
    # `ContributionAdjusted`, never a second `ContributionPaid`.
    adjustment: bool = False

    @model_validator(mode="after")
    def _amount_adds_up(self) -> BillLine:
        parts = sum(s.employer + s.worker for s in self.shares.values())
        if parts != self.amount:
            raise ValueError(f"amount {self.amount} is not the sum of the shares ({parts})")
        return self


class BillLinesAdded(LedgerEvent):
    """One part of a bill's member lines (at most `BILL_PART_LINES_MAX`), recorded with its `BillClosed`."""

    TYPE: ClassVar[str] = "BillLinesAdded"
    bill_id: str
    branch: str
    part: int = Field(ge=1)
    counts_from: date
    lines: list[BillLine] = Field(min_length=1, max_length=BILL_PART_LINES_MAX)

    def effective_date(self) -> date:
        return self.counts_from


class MoneyReceived(LedgerEvent):
    """Money as it arrived from a payer, by bank transfer or at a teller. The bank reference is unique in the ledger:
    the same reference again is a repeat, never more money."""

    TYPE: ClassVar[str] = "MoneyReceived"
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ("payer_name",)
    reference: str
    npp: str | None
    kpj: str | None
    branch: str
    payer: PayerRole
    payer_name: str | None = None  # as on the bank slip: may be a person's name, so it stays in the store
    payment_code: str | None = None  # the code the payer quoted, if any
    amount: Rupiah = Field(gt=0)
    received_on: date

    def effective_date(self) -> date:
        return self.received_on


class BillSettled(LedgerEvent):
    """A bill paid in full with its late fine to the settlement date, from the payer's money (`rules.
    MONEY_APPLICATION`). Its member lines are recorded as `ContributionPaid` events with `payment_id` = the bill id."""

    TYPE: ClassVar[str] = "BillSettled"
    bill_id: str
    npp: str | None
    kpj: str | None
    branch: str
    month: str
    rule: str  # the money application rule in force, e.g. "oldest-bill-first-whole/1"
    settled_on: date
    months_late: int = Field(ge=0)
    amount: Rupiah = Field(gt=0)  # the bill's total
    fine: Rupiah = Field(ge=0)
    total: Rupiah  # amount + fine: what was taken from the payer's money
    references: list[str] = Field(min_length=1)  # the receipts whose money settled it, oldest first

    @model_validator(mode="after")
    def _total_adds_up(self) -> BillSettled:
        if self.amount + self.fine != self.total:
            raise ValueError(f"total {self.total} is not amount + fine ({self.amount + self.fine})")
        return self

    def effective_date(self) -> date:
        return self.settled_on


class ContributionAdjusted(LedgerEvent):
    """More of one member's contribution for one month, billed before: the difference an adjustment bill's line
    (`BillLine.adjustment`) billed after a wage or risk class was raised back into the month, recorded when that bill
    is settled (`payment_id` = its bill id), on the month's contribution record. Every reader of balances and branch
    totals adds it as it adds a `ContributionPaid`; it does not count as a second payment of the month."""

    TYPE: ClassVar[str] = "ContributionAdjusted"
    kpj: str
    npp: str | None
    branch: str
    segment: Segment
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    paid_on: date
    payer: PayerRole
    payment_id: str
    wage: Rupiah  # the new wage (PU) or declared income (BPU) the month is now priced on
    shares: dict[Program, ProgramShare]  # the differences: what the month costs now less what was billed before
    jkp_from_jkk: Rupiah = 0
    jkp_from_jkm: Rupiah = 0
    jp_deferred: Rupiah = 0
    months_late: int = Field(ge=0)
    fine: Rupiah = Field(ge=0)  # the late fine on the difference, from the month's due date
    total: Rupiah  # sum of the shares plus the fine

    @model_validator(mode="after")
    def _total_adds_up(self) -> ContributionAdjusted:
        check_total(self.shares, self.fine, self.total)
        return self

    def effective_date(self) -> date:
        return self.paid_on


class MoneyRefunded(LedgerEvent):
    """Money the payer had in credit (received, not applied) paid back to them."""

    TYPE: ClassVar[str] = "MoneyRefunded"
    refund_id: str
    npp: str | None
    kpj: str | None
    branch: str
    amount: Rupiah = Field(gt=0)
    refunded_on: date
    reason: str = Field(min_length=1)

    def effective_date(self) -> date:
        return self.refunded_on


class SettlementReversed(LedgerEvent):
    """A settlement undone (`ledger reverse` of a `BillSettled`): the bill is open again and the money that settled it
    (`total`, the bill's amount and its fine) is back in the payer's unapplied money. It is not applied again by
    itself: the money application rule runs when more money arrives or the next bill closes. The bill's member lines
    are reversed in the same transaction, one `ContributionReversed` each."""

    TYPE: ClassVar[str] = "SettlementReversed"
    reverses: str  # the event id of the BillSettled
    bill_id: str
    npp: str | None
    kpj: str | None
    branch: str
    month: str
    amount: Rupiah = Field(gt=0)  # the bill's total, as settled
    fine: Rupiah = Field(ge=0)  # the fine the settlement took
    total: Rupiah  # amount + fine: returned to the payer's unapplied money
    reason: str = Field(min_length=1)
    reversed_on: date

    @model_validator(mode="after")
    def _total_adds_up(self) -> SettlementReversed:
        if self.amount + self.fine != self.total:
            raise ValueError(f"total {self.total} is not amount + fine ({self.amount + self.fine})")
        return self

    def effective_date(self) -> date:
        return self.reversed_on


class ReceiptReturned(LedgerEvent):
    """Money recorded as received that was not the payer's (a bank error, `ledger reverse` of a `MoneyReceived`):
    taken out of the payer's unapplied money whole. Only money not applied to bills nor refunded can be returned."""

    TYPE: ClassVar[str] = "ReceiptReturned"
    reverses: str  # the event id of the MoneyReceived
    reference: str
    npp: str | None
    kpj: str | None
    branch: str
    amount: Rupiah = Field(gt=0)
    reason: str = Field(min_length=1)
    returned_on: date

    def effective_date(self) -> date:
        return self.returned_on


# --- Money held until matched: bank credits that named no known payer (v1, issue 17) ---------------------------------


class MoneyUnidentified(LedgerEvent):
    """A credit on the fund's bank statement that names no known payer: held in suspense at the branch whose account
    received it until a clerk matches it (`MoneyIdentified`). The bank reference is unique in the ledger, as for
    `MoneyReceived`: the same reference is never held twice, nor held and received."""

    TYPE: ClassVar[str] = "MoneyUnidentified"
    # The bank's text often names the sender, and the payer's name may be a person's: both stay in the store.
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ("description", "payer_name")
    reference: str
    branch: str  # the branch whose bank account received the money
    amount: Rupiah = Field(gt=0)
    received_on: date
    payment_code: str | None = None  # a well-formed code the sender quoted that no bill carries, if any
    description: str | None = None  # the statement's text for the credit, as the bank wrote it
    payer_name: str | None = None  # the sender, as on the statement

    def effective_date(self) -> date:
        return self.received_on


class MoneyIdentified(LedgerEvent):
    """Money held in suspense matched to its payer by a clerk. In the same transaction the money is recorded as
    `MoneyReceived` (same reference, received on the day it arrived) on the payer's account and applied."""

    TYPE: ClassVar[str] = "MoneyIdentified"
    reference: str
    branch: str  # the branch that held it
    npp: str | None  # the payer: an employer or paying body ...
    kpj: str | None  # ... or a self-paying BPU member
    amount: Rupiah = Field(gt=0)
    identified_on: date

    def effective_date(self) -> date:
        return self.identified_on


EVENT_TYPES: dict[str, type[LedgerEvent]] = {
    cls.TYPE: cls
    for cls in (
        EmployerRegistered,
        EmployerRiskClassChanged,
        WorkersJoined,
        MemberEnrolled,
        MemberWageChanged,
        MemberExited,
        ContributionPaid,
        ContributionPaymentReceived,
        YieldCredited,
        ClaimPaid,
        ContributionReversed,
        ClaimReversed,
        BillClosed,
        BillLinesAdded,
        MoneyReceived,
        BillSettled,
        MoneyRefunded,
        SettlementReversed,
        ReceiptReturned,
        MoneyUnidentified,
        MoneyIdentified,
        ContributionAdjusted,
    )
}

class UnknownEventType(ValueError):
    pass


class UpcastNeedsMember(LookupError):
    """An older event can only be upcast with a fact about its member that the event itself lacks (see
    `UpcastContext`), and the reader does not know that member yet. A reader that sees events out of order across
    aggregates keeps the event aside and upcasts it once it has seen the member's enrollment."""

    def __init__(self, event_type: str, kpj: str) -> None:
        self.event_type, self.kpj = event_type, kpj
        super().__init__(f"{event_type} of member {kpj} needs the member's enrollment, not seen yet")


class UpcastContext(Protocol):
    """What an upcaster may ask of the reader beyond the event's own JSON: facts of a member that are fixed when
    the member is enrolled and never change for that KPJ (a KPJ belongs to one employer or paying body, in one
    segment, for life; every `ContributionPaid` of the member carries the same two)."""

    def member_facts(self, kpj: str) -> tuple[str | None, str] | None:
        """(npp, segment) of the member, or None when the reader has not seen the member."""


class MemberFacts:
    """An `UpcastContext` fed with the events a reader has already seen (`see` each one, in any order)."""

    FACT_TYPES = ("MemberEnrolled", "ContributionPaid")

    def __init__(self) -> None:
        self._facts: dict[str, tuple[str | None, str]] = {}

    def see(self, event_type: str, data: dict[str, Any]) -> None:
        if event_type in self.FACT_TYPES:
            self._facts[data["kpj"]] = (data.get("npp"), data["segment"])

    def member_facts(self, kpj: str) -> tuple[str | None, str] | None:
        return self._facts.get(kpj)


def _payer_role_v1(data: dict[str, Any]) -> str:
    """v1 published the payer's name. The role it stood for: a payment by KPJ was the member's own, and a payment by
    NPP was the employer's (v1 did not tell a paying institution from an employer)."""
    return PayerRole.MEMBER.value if data.get("npp") is None else PayerRole.EMPLOYER.value


def _contribution_paid_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "payer": _payer_role_v1(data)}


def _payment_received_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # The v1 name moves to the personal `payer_name` (kept in the store, dropped from what is published).
    return {**data, "payer": _payer_role_v1(data), "payer_name": data.get("payer")}


def _claim_paid_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    # v1 recorded a name, not a relationship: a death benefit is paid to an heir (which one was not recorded), any
    # other claim is taken as paid to the member.
    heir = data.get("kind") in {kind.value for kind in DEATH_CLAIM_KINDS}
    return {**data, "beneficiary": (Beneficiary.OTHER_HEIR if heir else Beneficiary.SELF).value,
            "beneficiary_name": data.get("beneficiary")}


def _member_enrolled_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "birth_year": int(data["birth_date"][:4])}


def _contribution_reversed_v1_to_v2(data: dict[str, Any], context: UpcastContext | None) -> dict[str, Any]:
    # v1 lacked the payment's account; it is the member's: the payment's npp and segment are the member's own.
    facts = context.member_facts(data["kpj"]) if context is not None else None
    if facts is None:
        raise UpcastNeedsMember("ContributionReversed", data["kpj"])
    npp, segment = facts
    return {**data, "npp": npp, "segment": segment}


# (type, old version) -> function that turns that version's JSON into the next version's JSON. A test checks that
# each registered chain ends at the current version. `CONTEXT_UPCASTERS` also take the reader's `UpcastContext`.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("ContributionPaid", 1): _contribution_paid_v1_to_v2,
    ("ContributionPaymentReceived", 1): _payment_received_v1_to_v2,
    ("ClaimPaid", 1): _claim_paid_v1_to_v2,
    ("MemberEnrolled", 1): _member_enrolled_v1_to_v2,
}
CONTEXT_UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any], UpcastContext | None], dict[str, Any]]] = {
    ("ContributionReversed", 1): _contribution_reversed_v1_to_v2,
}

# Fields that were personal in an older version (the relay publishes a stored event as it was stored, minus the
# personal fields of *its* version, because its hash was computed over exactly that when it was written).
OLDER_PERSONAL_FIELDS: dict[tuple[str, int], tuple[str, ...]] = {("MemberEnrolled", 1): ("nik", "name")}


def upcast(event_type: str, version: int, data: dict[str, Any],
           models: dict[str, type[LedgerEvent]] | None = None, context: UpcastContext | None = None) -> dict[str, Any]:
    """An event's JSON of any known version, turned into the current version's JSON (not validated). `models`:
    whose current version (the stored ones by default, or `PUBLISHED_EVENT_TYPES`). `context`: what the reader knows
    of members, for the upcasters that need it; without it they raise `UpcastNeedsMember`."""
    cls = (EVENT_TYPES if models is None else models).get(event_type)
    if cls is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnknownEventType(f"{event_type} version {version!r} is not a schema version (1, 2, ...)")
    if version > cls.VERSION:
        raise UnknownEventType(f"{event_type} version {version} is newer than this code knows ({cls.VERSION})")
    while version < cls.VERSION:
        step = UPCASTERS.get((event_type, version))
        data = step(data) if step is not None else CONTEXT_UPCASTERS[(event_type, version)](data, context)
        version += 1
    return data


def envelope_data(envelope: dict[str, Any], *, upgrade: str, context: UpcastContext | None = None) -> dict[str, Any]:
    """A published envelope's data at the current contract version (older versions through the upcasters). An
    unknown type or a newer version raises `UnknownEventType` naming the event and what to `upgrade`."""
    try:
        return upcast(envelope["type"], envelope["version"], envelope["data"], context=context)
    except UnknownEventType as error:
        raise UnknownEventType(f"event {envelope.get('event_id')} (position {envelope.get('position')}): {error}; "
                               f"upgrade {upgrade} before replaying it") from None


def parse_event(event_type: str, version: int, data: dict[str, Any],
                context: UpcastContext | None = None) -> LedgerEvent:
    """Parse stored or received JSON of any known version into the current model, upcasting on the way."""
    current = upcast(event_type, version, data, context=context)  # first: it names an unknown type or version
    return EVENT_TYPES[event_type].model_validate(current)


# --- The published contract: what consumers of the events topic read --------------------------------------------------

def _published_model(cls: type[LedgerEvent]) -> type[LedgerEvent]:
    """The model of an event as published: the same fields, minus those it marks personal (see `public_data`)."""
    if not cls.PERSONAL_FIELDS:
        return cls
    fields: dict[str, Any] = {name: (info.annotation, info) for name, info in cls.model_fields.items()
                              if name not in cls.PERSONAL_FIELDS}
    model = create_model(cls.__name__, __base__=LedgerEvent, __doc__=f"{cls.TYPE} as published (no personal data).",
                         **fields)
    model.TYPE, model.VERSION = cls.TYPE, cls.VERSION
    model.effective_date = cls.effective_date  # type: ignore[method-assign]
    return model


# Type name -> the model a consumer gets for it. Equal to EVENT_TYPES but for MemberEnrolled (no NIK, no name).
PUBLISHED_EVENT_TYPES: dict[str, type[LedgerEvent]] = {name: _published_model(cls) for name, cls in EVENT_TYPES.items()}


class Envelope(BaseModel):
    """One record's value on the events topic: the event's identity, place and hash chain around its `data`."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    VERSION: ClassVar[int] = 1
    event_id: str = Field(description="<aggregate id>.<aggregate version>: unique, stable across replays")
    type: str = Field(description="the event type, as in the `type` header")
    version: int = Field(ge=1, description="the event type's schema version, as in the `version` header")
    aggregate_id: str = Field(description="the record key: one member, employer, contribution month or payment")
    aggregate_version: int = Field(ge=1, description="1, 2, 3, ... within the aggregate")
    position: int = Field(ge=1, description="1, 2, 3, ... over all published events, contiguous")
    effective_date: date = Field(description="the date the fact takes effect in the books")
    recorded_at: str = Field(description="when the ledger recorded it (ISO 8601, UTC)")
    branch: str = Field(description="the branch code the event belongs to")
    prev_hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="`hash` of the aggregate's previous event")
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 chain, see ledger.events.chain_hash")
    data: dict[str, Any] = Field(description="the event's JSON: the schema of `type` at `version`")


def parse_published(event_type: str, version: int, data: dict[str, Any],
                    context: UpcastContext | None = None) -> LedgerEvent:
    """Parse a published event's data of any known version into the current published model, upcasting on the way.

    Upcasters see published JSON here (no personal fields), so they must not need those fields. What an upcaster
    derives into a field that is personal now (a v1 payer's name into `payer_name`) is dropped again.
    """
    current = upcast(event_type, version, data, PUBLISHED_EVENT_TYPES, context)  # first: names an unknown type
    personal = EVENT_TYPES[event_type].PERSONAL_FIELDS
    if personal and version < EVENT_TYPES[event_type].VERSION:
        current = {k: v for k, v in current.items() if k not in personal}
    return PUBLISHED_EVENT_TYPES[event_type].model_validate(current)


def to_json_dict(event: LedgerEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def personal_fields(event_type: str, version: int) -> tuple[str, ...]:
    """The fields that are personal data in `event_type` at `version` (the current one, or an older one)."""
    cls = EVENT_TYPES[event_type]
    return cls.PERSONAL_FIELDS if version == cls.VERSION else OLDER_PERSONAL_FIELDS.get((event_type, version), ())


def public_data(event_type: str, data: dict[str, Any], version: int | None = None) -> dict[str, Any]:
    """An event's JSON as published: without the fields its type marks personal at `version` (default: the
    current one). Needs no parsing."""
    personal = personal_fields(event_type, EVENT_TYPES[event_type].VERSION if version is None else version)
    return {k: v for k, v in data.items() if k not in personal} if personal else data


GENESIS_HASH = "0" * 64  # the "previous hash" of an aggregate's first event


def canonical_json(value: Any) -> bytes:
    """One byte string per JSON value: UTF-8, sorted keys, no spaces. Hashes are taken over this.

    Equal to `json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()` for the JSON
    types events hold (a test pins that), so an auditor can recompute hashes with any JSON library.
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def chain_hash(prev_hash: str, *, aggregate_id: str, aggregate_version: int, event_type: str, version: int,
               effective_date: str, branch: str, data: dict[str, Any]) -> str:
    """SHA-256 over the previous event's hash (same aggregate) and everything an auditor reads of this event.

    Changing, dropping, duplicating or reordering any published event of an aggregate breaks the chain from there.
    """
    body = canonical_json({"aggregate_id": aggregate_id, "aggregate_version": aggregate_version, "type": event_type,
                           "version": version, "effective_date": effective_date, "branch": branch, "data": data})
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


