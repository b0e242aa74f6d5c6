"""Commands: what a clerk, a batch file or another system asks the ledger to do. Imperative names.

Each command carries a `command_id` chosen by the client. Repeating a command with the same id returns the first
result and writes nothing; the same id with different content is refused. The fingerprint that tells the two apart
is a hash of everything but the id.

Shape checks (digits, ranges, formats) happen here, when a command is built; checks against the ledger's state and
the clock happen in the application. Either way a bad command raises `InvalidInput` and nothing is written.
"""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Any, ClassVar
from uuid import uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ledger import identifiers
from ledger.errors import InvalidInput
from ledger.events import Beneficiary, ClaimKind, EmployerKind, ExitReason, PayerRole
from ledger.rules import Program, RiskClass, Segment

BULK_ENROLLMENT_MAX = 100_000  # one employer's bulk enrollment; the largest employers are far below this
MONTHS_PER_PAYMENT_MAX = 12  # governments and BPU members pay up to a year at once
MONTH_PATTERN = r"^\d{4}-(0[1-9]|1[0-2])$"
ALL_PROGRAMS = [Program.JHT, Program.JKK, Program.JKM, Program.JP]
BPU_DEFAULT_PROGRAMS = [Program.JKK, Program.JKM]  # the cheapest package, Rp16,800 a month at the lowest income


def _new_command_id() -> str:
    return uuid4().hex


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    NAME: ClassVar[str]

    command_id: str = Field(default_factory=_new_command_id, min_length=1, max_length=200)

    def fingerprint(self) -> str:
        body = self.model_dump_json(exclude={"command_id"})
        return hashlib.sha256(f"{self.NAME}:{body}".encode()).hexdigest()

    @classmethod
    def build(cls, **fields: Any) -> Command:
        """Construct the command, turning pydantic's validation errors into one `InvalidInput` a user can read."""
        try:
            return cls(**fields)
        except ValidationError as error:
            raise InvalidInput(describe_validation_error(cls.NAME, error)) from None


def describe_validation_error(name: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "input"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return f"{name}: " + "; ".join(problems)


def _kpj(value: str) -> str:
    return identifiers.validate_kpj(value)


class RegisterEmployer(Command):
    NAME: ClassVar[str] = "register-employer"
    npp: str
    name: str = Field(min_length=1, max_length=200)
    branch: str
    kind: EmployerKind
    risk_class: RiskClass
    programs: list[Program] = Field(default_factory=lambda: list(ALL_PROGRAMS), min_length=1)
    labour_intensive: bool = False
    registered_on: date

    _npp = field_validator("npp")(lambda v: identifiers.validate_npp(v))
    _branch = field_validator("branch")(lambda v: identifiers.validate_branch_code(v))


class ChangeRiskClass(Command):
    NAME: ClassVar[str] = "change-risk-class"
    npp: str
    risk_class: RiskClass
    effective: date

    _npp = field_validator("npp")(lambda v: identifiers.validate_npp(v))


class MemberRow(BaseModel):
    """One person to enroll: a row of a bulk enrollment, or the body of a single one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kpj: str
    nik: str
    name: str = Field(min_length=1, max_length=200)
    birth_date: date
    segment: Segment = Segment.PU
    wage: int = Field(gt=0, description="PU: monthly wage; BPU: declared income; whole rupiah")
    programs: list[Program] | None = None  # None: all four for PU, JKK + JKM for BPU

    _kpj = field_validator("kpj")(lambda v: identifiers.validate_kpj(v))
    _nik = field_validator("nik")(lambda v: identifiers.validate_nik(v))

    @model_validator(mode="after")
    def _nik_matches_birth_date(self) -> MemberRow:
        if not identifiers.nik_matches_birth_date(self.nik, self.birth_date):
            raise ValueError(f"NIK {self.nik} encodes another birth date than {self.birth_date.isoformat()}")
        return self

    def program_set(self) -> list[Program]:
        if self.programs is not None:
            return sorted(set(self.programs), key=ALL_PROGRAMS.index)
        return list(ALL_PROGRAMS) if self.segment is Segment.PU else list(BPU_DEFAULT_PROGRAMS)


class EnrollMember(Command):
    NAME: ClassVar[str] = "enroll-member"
    member: MemberRow
    npp: str | None = None
    branch: str | None = None  # only for a BPU member without an NPP; others take their employer's branch
    effective: date

    _npp = field_validator("npp")(lambda v: v if v is None else identifiers.validate_npp(v))
    _branch = field_validator("branch")(lambda v: v if v is None else identifiers.validate_branch_code(v))

    @model_validator(mode="after")
    def _who_pays(self) -> EnrollMember:
        if self.member.segment is Segment.PU and self.npp is None:
            raise ValueError("a PU (wage earner) member needs the employer's NPP")
        if self.npp is None and self.branch is None:
            raise ValueError("a BPU member without an NPP needs a branch code")
        return self


class EnrollMembers(Command):
    NAME: ClassVar[str] = "enroll-members"
    npp: str
    effective: date
    members: list[MemberRow] = Field(min_length=1, max_length=BULK_ENROLLMENT_MAX)

    _npp = field_validator("npp")(lambda v: identifiers.validate_npp(v))

    @model_validator(mode="after")
    def _distinct_kpjs(self) -> EnrollMembers:
        seen: set[str] = set()
        for index, row in enumerate(self.members, start=1):
            if row.kpj in seen:
                raise ValueError(f"KPJ {row.kpj} appears twice (again at row {index})")
            seen.add(row.kpj)
        return self


class ChangeWage(Command):
    NAME: ClassVar[str] = "change-wage"
    kpj: str
    wage: int = Field(gt=0)
    effective: date

    _kpj = field_validator("kpj")(lambda v: identifiers.validate_kpj(v))


class ExitMember(Command):
    NAME: ClassVar[str] = "exit-member"
    kpj: str
    reason: ExitReason
    exit_date: date

    _kpj = field_validator("kpj")(lambda v: identifiers.validate_kpj(v))


class PayContribution(Command):
    NAME: ClassVar[str] = "pay-contribution"
    npp: str | None = None  # an employer paying for its roster
    kpj: str | None = None  # a BPU member paying for themself
    month: str = Field(pattern=MONTH_PATTERN)
    months: int = Field(default=1, ge=1, le=MONTHS_PER_PAYMENT_MAX)
    paid_on: date
    payer: PayerRole | None = None  # None: the employer (by NPP) or the member (by KPJ)
    # Who paid, as on the bank slip: kept in the event store only, never published (it may be a person's name).
    payer_name: str | None = Field(default=None, min_length=1, max_length=200)

    _npp = field_validator("npp")(lambda v: v if v is None else identifiers.validate_npp(v))
    _kpj = field_validator("kpj")(lambda v: v if v is None else identifiers.validate_kpj(v))

    @model_validator(mode="after")
    def _one_payer_account(self) -> PayContribution:
        if (self.npp is None) == (self.kpj is None):
            raise ValueError("give exactly one of an NPP (employer) or a KPJ (BPU member)")
        if self.npp is not None and self.payer is PayerRole.MEMBER:
            raise ValueError("payer: a payment by NPP is made by the employer or an institution, not a member")
        if self.kpj is not None and self.payer is PayerRole.EMPLOYER:
            raise ValueError("payer: a payment by KPJ is made by the member or an institution, not an employer")
        return self


class CreditYield(Command):
    NAME: ClassVar[str] = "credit-yield"
    year: int = Field(ge=2015, le=2200)
    rate_percent: Decimal = Field(ge=0, lt=100, max_digits=8, decimal_places=4)
    credited_on: date | None = None  # None: 31 December of the year


class PayClaim(Command):
    NAME: ClassVar[str] = "pay-claim"
    kpj: str
    program: Program
    kind: ClaimKind | None = None  # None: the program's usual kind
    incident_date: date
    paid_on: date
    beneficiary: Beneficiary = Beneficiary.SELF  # the relationship to the member: what is published
    # The person paid when it is not the member (an heir): kept in the event store only, never published.
    beneficiary_name: str | None = Field(default=None, min_length=1, max_length=200)
    amount: int | None = Field(default=None, gt=0)

    _kpj = field_validator("kpj")(lambda v: identifiers.validate_kpj(v))

    @model_validator(mode="after")
    def _beneficiary_named_when_not_the_member(self) -> PayClaim:
        if self.beneficiary is Beneficiary.SELF and self.beneficiary_name is not None:
            raise ValueError("beneficiary_name: the member is paid (beneficiary self); the name is already on record")
        if self.beneficiary is not Beneficiary.SELF and self.beneficiary_name is None:
            raise ValueError(f"beneficiary_name: a claim paid to the member's {self.beneficiary.value} needs the "
                             f"name of who is paid (kept in the ledger, never published)")
        return self


class Reverse(Command):
    NAME: ClassVar[str] = "reverse"
    event_id: str = Field(min_length=3, max_length=100)
    reason: str = Field(min_length=1, max_length=500)
    reversed_on: date


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.NAME: cls
    for cls in (RegisterEmployer, ChangeRiskClass, EnrollMember, EnrollMembers, ChangeWage, ExitMember,
                PayContribution, CreditYield, PayClaim, Reverse)
}
