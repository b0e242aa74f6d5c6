"""The event contract: what the ledger records, and what downstream consumers and auditors read.

Every event is a frozen pydantic model with a type name (past tense) and a schema version. The JSON shape of each is
pinned by `tests/unit/test_event_contract.py`, so that a change to this file is always deliberate: a changed model
gets a new version, and an upcaster in `UPCASTERS` turns every older version into the current one, because the
history is replayed forever.

Money is whole rupiah (`int`); rates travel as decimal strings; dates as ISO strings. Personal data (the NIK and the
name) is in `MemberEnrolled` here, in the system of record; the relay to Kafka replaces it (see the relay's docs).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import Any, ClassVar

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


class ProgramShare(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    employer: Rupiah = Field(ge=0)
    worker: Rupiah = Field(ge=0)


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
    TYPE: ClassVar[str] = "MemberEnrolled"
    PERSONAL_FIELDS: ClassVar[tuple[str, ...]] = ("nik", "name")
    kpj: str
    nik: str
    nik_hmac: str  # HMAC-SHA256 of the NIK under the fund's key: links one person's KPJs without revealing the NIK
    name: str
    birth_date: date
    segment: Segment
    npp: str | None  # the employer (PU), or the body that pays for a BPU member; None for a self-paying BPU member
    branch: str
    wage: Rupiah = Field(gt=0)  # PU: monthly wage; BPU: declared income
    programs: list[Program]
    effective: date

    def effective_date(self) -> date:
        return self.effective


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
    kpj: str
    npp: str | None
    branch: str
    segment: Segment
    month: str = Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")
    paid_on: date
    payer: str
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
        parts = sum(s.employer + s.worker for s in self.shares.values()) + self.fine
        if parts != self.total:
            raise ValueError(f"total {self.total} is not the sum of shares and fine ({parts})")
        return self

    def effective_date(self) -> date:
        return self.paid_on


class ContributionPaymentReceived(LedgerEvent):
    """One payment as the payer made it: it covers members and months; its lines are the `ContributionPaid` events."""

    TYPE: ClassVar[str] = "ContributionPaymentReceived"
    payment_id: str
    npp: str | None
    kpj: str | None  # a BPU member paying for themself
    branch: str
    payer: str
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
    claim_id: str
    kpj: str
    branch: str
    program: Program
    kind: ClaimKind
    incident_date: date
    paid_on: date
    beneficiary: str
    amount: Rupiah = Field(gt=0)
    statutory_amount: Rupiah | None  # what the rules give, where they give an amount

    def effective_date(self) -> date:
        return self.paid_on


class ContributionReversed(LedgerEvent):
    TYPE: ClassVar[str] = "ContributionReversed"
    reverses: str  # the event id of the ContributionPaid
    kpj: str
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
    )
}

# (type, old version) -> function that turns that version's JSON into the next version's JSON.
# Empty while every type is at version 1; a test checks each registered chain ends at the current version.
UPCASTERS: dict[tuple[str, int], Callable[[dict[str, Any]], dict[str, Any]]] = {}


class UnknownEventType(ValueError):
    pass


def upcast(event_type: str, version: int, data: dict[str, Any],
           models: dict[str, type[LedgerEvent]] | None = None) -> dict[str, Any]:
    """An event's JSON of any known version, turned into the current version's JSON (not validated). `models`:
    whose current version (the stored ones by default, or `PUBLISHED_EVENT_TYPES`)."""
    cls = (EVENT_TYPES if models is None else models).get(event_type)
    if cls is None:
        raise UnknownEventType(f"unknown event type {event_type!r}")
    if not isinstance(version, int) or version > cls.VERSION:
        raise UnknownEventType(f"{event_type} version {version} is newer than this code knows ({cls.VERSION})")
    while version < cls.VERSION:
        data = UPCASTERS[(event_type, version)](data)
        version += 1
    return data


def envelope_data(envelope: dict[str, Any], *, upgrade: str) -> dict[str, Any]:
    """A published envelope's data at the current contract version (older versions through the upcasters). An
    unknown type or a newer version raises `UnknownEventType` naming the event and what to `upgrade`."""
    try:
        return upcast(envelope["type"], envelope["version"], envelope["data"])
    except UnknownEventType as error:
        raise UnknownEventType(f"event {envelope.get('event_id')} (position {envelope.get('position')}): {error}; "
                               f"upgrade {upgrade} before replaying it") from None


def parse_event(event_type: str, version: int, data: dict[str, Any]) -> LedgerEvent:
    """Parse stored or received JSON of any known version into the current model, upcasting on the way."""
    current = upcast(event_type, version, data)  # first: it names an unknown type or version
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


def parse_published(event_type: str, version: int, data: dict[str, Any]) -> LedgerEvent:
    """Parse a published event's data of any known version into the current published model, upcasting on the way.

    Upcasters see published JSON here (no personal fields), so they must not need those fields.
    """
    current = upcast(event_type, version, data, PUBLISHED_EVENT_TYPES)  # first: it names an unknown type or version
    return PUBLISHED_EVENT_TYPES[event_type].model_validate(current)


def to_json_dict(event: LedgerEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def public_data(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """An event's JSON as published: without the fields its type marks personal. Needs no parsing."""
    personal = EVENT_TYPES[event_type].PERSONAL_FIELDS
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


