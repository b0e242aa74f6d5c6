"""Commands: what a clerk, a batch file or another system asks the ledger to do. Imperative names.

Each command carries a `command_id` chosen by the client. Repeating a command with the same id returns the first
result and writes nothing; the same id with different content is refused. The fingerprint that tells the two apart
is a hash of everything but the id.

Shape checks (digits, ranges, formats) happen here, when a command is built; checks against the ledger's state and
the clock happen in the application. Either way a bad command raises `InvalidInput` and nothing is written.

Types are strict where a batch file could smuggle in a wrong one: money is a whole number (a JSON integer; never
`true`, text or a fraction), counts and years are integers, flags are booleans. Every amount has an upper limit
(below) that keeps whatever is derived from it inside the 64-bit integers of every store that keeps it. Free text
(names, the payer's and the beneficiary's names, a reversal's reason) is trimmed and may hold no control characters.
No message repeats a NIK, a name or a birth date: they are personal data, and error messages end up in logs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from uuid import uuid4

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ledger import identifiers
from ledger.errors import InvalidInput
from ledger.events import Beneficiary, ClaimKind, EmployerKind, ExitReason, PayerRole
from ledger.rules import Program, RiskClass, Segment

BULK_ENROLLMENT_MAX = 100_000  # one employer's bulk enrollment; the largest employers are far below this
MONTHS_PER_PAYMENT_MAX = 12  # governments and BPU members pay up to a year at once

# --- Amount limits -------------------------------------------------------------------------------------------------
# Every number a command accepts that is money, or multiplies money, has an upper limit, so that every sum derived
# from accepted input fits the signed 64-bit integers of the event store's JSON encoder, SQLite's INTEGER and
# PostgreSQL's BIGINT (INT64_MAX = 2**63 - 1, about 9.2e18) with a wide margin. Without them a wage of 2**63 was
# written, relayed, and then stopped the balances projection for good. The derivation, with W = WAGE_MAX:
# - one member's month: the shares are at most 10.74% of the wage (JHT 5.7 + JKK 1.74 + JKM 0.3 + JP 3), < 1.1e8;
#   the late fine is 2% of them per month late, so even 100 years (1,200 months) late a line is < 25 x 1.1e8 =
#   2.8e9;
# - one payment: 100,000 members (BULK_ENROLLMENT_MAX; a roster ten times that still fits) x 12 months
#   (MONTHS_PER_PAYMENT_MAX) x 2.8e9 = 3.3e15, 1/2,800 of INT64_MAX;
# - claims: the JKK death benefit is 48 x W = 4.8e10 and the disability benefit 56 x W = 5.6e10, both below
#   CLAIM_AMOUNT_MAX = 1e11;
# - one member's JHT balance: 60 years at W, 5.7% a month, each year's yield at YIELD_RATE_PERCENT_MAX and
#   compounding: 6.84e8 x (1.2**60 - 1) / 0.2 = 1.9e14, 1/48,000 of INT64_MAX;
# - a branch's sums over 100 years (the projections add up flows per branch): a million members (three times the
#   average branch) all paid at W every month, 1e6 x 1,200 x 1.1e8 = 1.3e17; a million claims at
#   CLAIM_AMOUNT_MAX, 1e17: each under 1/70 of INT64_MAX.
WAGE_MAX = 1_000_000_000  # Rp1 billion a month: a PU wage (basic + fixed allowances) or a BPU declared income
CLAIM_AMOUNT_MAX = 100_000_000_000  # Rp100 billion: a claim's amount when given (statutory amounts stay below it)
YIELD_RATE_PERCENT_MAX = Decimal(20)  # % a year; the fund has announced 5.63% (2020) to 7.19% (2016)

# Money received (one transfer) and refunded: Rp1 trillion is above any one payer's year of contributions (the
# largest employers owe a few hundred billion a year) and keeps a payer's sums over a century inside int64.
MONEY_AMOUNT_MAX = 1_000_000_000_000
CLOSE_PAYERS_MAX = 2_000  # employers in one close batch (one transaction); the CLI closes a branch batch by batch
CLOSE_MEMBERS_MAX = 20_000  # self-paying BPU members in one close batch
REFERENCE_CHARS_MAX = 35  # a bank reference: SWIFT's field 20/61 reference is at most 16, MT940's :86: texts 35

NAME_CHARS_MAX = 200  # a name, the payer's, the beneficiary's
REASON_CHARS_MAX = 500  # a reversal's reason

MONTH_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])$"  # ASCII digits: `\d` would also take other scripts' digits
ALL_PROGRAMS = [Program.JHT, Program.JKK, Program.JKM, Program.JP]
BPU_DEFAULT_PROGRAMS = [Program.JKK, Program.JKM]  # the cheapest package, Rp16,800 a month at the lowest income


def _new_command_id() -> str:
    return uuid4().hex


def _kind(value: object) -> str:
    """What a value of the wrong type is, in JSON's words, without repeating it."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (Decimal, float)):
        return "a number with a decimal point"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int):
        return "an integer"
    return type(value).__name__


def _whole_rupiah(limit: int, limit_name: str) -> BeforeValidator:
    """The validator of a money field: an `int` (never a bool, text or a fraction) from 1 to `limit`."""
    def check(value: object) -> int:
        # `type(...) is int`, not isinstance: True is an int to Python, and was stored as Rp1.
        if type(value) is not int:
            raise ValueError(f"must be whole rupiah written as an integer, like 5000000, not {_kind(value)}")
        if value <= 0:
            raise ValueError("Input should be greater than 0")  # pydantic's words, as for every other field
        if value > limit:
            raise ValueError(f"must be at most Rp{limit:,} ({limit_name} in ledger/commands.py)")
        return value
    return BeforeValidator(check)


Wage = Annotated[int, _whole_rupiah(WAGE_MAX, "WAGE_MAX")]
ClaimAmount = Annotated[int, _whole_rupiah(CLAIM_AMOUNT_MAX, "CLAIM_AMOUNT_MAX")]
MoneyAmount = Annotated[int, _whole_rupiah(MONEY_AMOUNT_MAX, "MONEY_AMOUNT_MAX")]


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_day(value: object) -> object:
    """A date field takes a date written YYYY-MM-DD (or a `date` from the CLI), nothing else: pydantic alone would
    also take a JSON number as seconds since 1970 (1704067200 is 1 January 2024) or a date with a time of day."""
    if type(value) is date or (isinstance(value, str) and _ISO_DAY.fullmatch(value)):
        return value
    raise ValueError(f"must be a date written YYYY-MM-DD, like 2024-03-01, not {_kind(value)}")


Day = Annotated[date, BeforeValidator(_iso_day)]

# Characters refused in free text: C0 and C1 controls and DEL (a newline, a tab, the ESC of a terminal escape
# sequence, NUL), the Unicode line and paragraph separators, the bidirectional embeddings, overrides and isolates
# that make text display in another order than it is stored, and lone surrogates (not encodable as UTF-8).
_FORBIDDEN_IN_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


_INVISIBLE_CATEGORIES = frozenset({"Cf", "Co", "Cn"})
# The 66 noncharacters: the last two code points of every plane (U+FFFE, U+FFFF, U+1FFFE, ...) and U+FDD0..U+FDEF.
_PLANE_LAST_TWO = 0xFFFE  # a code point with these bits all set is one of its plane's last two
_NONCHARACTERS_IN_ARABIC_FORMS = range(0xFDD0, 0xFDEF + 1)


def _printable_text(value: str) -> str:
    """Free text, trimmed of spaces; refused when empty or holding a control character anywhere, its ends included
    (a trailing line break is refused, not trimmed away). The message never repeats the text."""
    found = _FORBIDDEN_IN_TEXT.search(value)
    if found:
        raise ValueError(f"must not contain control characters (a line break, tab, escape, NUL or a bidirectional "
                         f"override): U+{ord(found.group()):04X} at character {found.start() + 1}")
    for index, char in enumerate(value, start=1):
        # Invisible or meaningless characters: format characters (zero-width spaces and joiners, bidi marks, soft
        # hyphens, tags), private-use, unassigned and noncharacter code points. A name made of them looks empty.
        if unicodedata.category(char) in _INVISIBLE_CATEGORIES or (ord(char) & _PLANE_LAST_TWO) == _PLANE_LAST_TWO \
                or ord(char) in _NONCHARACTERS_IN_ARABIC_FORMS:
            raise ValueError(f"must not contain invisible or unassigned characters: U+{ord(char):04X} at character "
                             f"{index}")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty or only spaces")
    if not any(char.isalnum() for char in text):
        raise ValueError("must contain at least one letter or digit")
    return text


# Strict: text only (pydantic would otherwise decode bytes). The length counts the text as given, before trimming.
Name = Annotated[str, Field(strict=True, max_length=NAME_CHARS_MAX), AfterValidator(_printable_text)]
"""An employer's or a member's name, the name of who paid (`payer_name`) or who is paid (`beneficiary_name`)."""
Reason = Annotated[str, Field(strict=True, max_length=REASON_CHARS_MAX), AfterValidator(_printable_text)]
"""Why a contribution or a claim is reversed: the same rules as a name, longer."""


def _command_id(value: str) -> str:
    # Not trimmed (the id is the client's, exactly), but printed back and stored: no control characters.
    found = _FORBIDDEN_IN_TEXT.search(value)
    if found:
        raise ValueError(f"must not contain control characters: U+{ord(found.group()):04X} at character "
                         f"{found.start() + 1}")
    return value


class Command(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    NAME: ClassVar[str]

    command_id: Annotated[str, AfterValidator(_command_id)] = Field(default_factory=_new_command_id, min_length=1,
                                                                   max_length=200, strict=True)

    def conflict_message(self, previous_name: str) -> str:
        """What a repeat of this command id with other content is told."""
        return (f"command id {self.command_id!r} was already used for a different {previous_name} command; the "
                f"first one stands. Use a new command id.")

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
    """One line naming each bad field and what is wrong with it. Built from each error's location and message only:
    pydantic's own text would repeat the input (`input_value=...`), which may be a NIK or a name."""
    problems = []
    for item in error.errors():
        # A location can hold a key of the input (an unknown field): escaped, so that it cannot drive a terminal.
        where = ".".join(_FORBIDDEN_IN_TEXT.sub(lambda m: f"\\u{ord(m.group()):04x}", str(part))
                         for part in item["loc"]) or "input"
        message = item["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}")
    return f"{name}: " + "; ".join(problems)


def _kpj(value: str) -> str:
    return identifiers.validate_kpj(value)


class RegisterEmployer(Command):
    NAME: ClassVar[str] = "register-employer"
    npp: str
    name: Name
    branch: str
    kind: EmployerKind
    risk_class: RiskClass
    programs: list[Program] = Field(default_factory=lambda: list(ALL_PROGRAMS), min_length=1)
    labour_intensive: bool = Field(default=False, strict=True)
    registered_on: Day

    _npp = field_validator("npp")(identifiers.validate_npp)
    _branch = field_validator("branch")(identifiers.validate_branch_code)

    @field_validator("programs")
    @classmethod
    def _programs_once(cls, programs: list[Program]) -> list[Program]:
        repeated = sorted({p.value for p in programs if programs.count(p) > 1})
        if repeated:
            raise ValueError(f"{', '.join(repeated)} is listed more than once")
        return programs


class ChangeRiskClass(Command):
    NAME: ClassVar[str] = "change-risk-class"
    npp: str
    risk_class: RiskClass
    effective: Day

    _npp = field_validator("npp")(identifiers.validate_npp)


class MemberRow(BaseModel):
    """One person to enroll: a row of a bulk enrollment, or the body of a single one."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    kpj: str
    nik: str
    name: Name
    birth_date: Day
    segment: Segment = Segment.PU
    wage: Wage = Field(description="PU: monthly wage; BPU: declared income; whole rupiah")
    programs: list[Program] | None = None  # None: all four for PU, JKK + JKM for BPU

    _kpj = field_validator("kpj")(identifiers.validate_kpj)
    _nik = field_validator("nik")(identifiers.validate_nik)

    @model_validator(mode="after")
    def _nik_matches_birth_date(self) -> MemberRow:
        if not identifiers.nik_matches_birth_date(self.nik, self.birth_date):
            # Neither the NIK nor the birth date is repeated: both are personal data.
            raise ValueError("the birth date the NIK encodes (digits 7-12) does not agree with birth_date")
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
    effective: Day

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
    effective: Day
    members: list[MemberRow] = Field(min_length=1, max_length=BULK_ENROLLMENT_MAX)

    _npp = field_validator("npp")(identifiers.validate_npp)

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
    wage: Wage
    effective: Day

    _kpj = field_validator("kpj")(identifiers.validate_kpj)


class ExitMember(Command):
    NAME: ClassVar[str] = "exit-member"
    kpj: str
    reason: ExitReason
    exit_date: Day

    _kpj = field_validator("kpj")(identifiers.validate_kpj)


class PayContribution(Command):
    NAME: ClassVar[str] = "pay-contribution"
    npp: str | None = None  # an employer paying for its roster
    kpj: str | None = None  # a BPU member paying for themself
    month: str = Field(pattern=MONTH_PATTERN)
    months: int = Field(default=1, ge=1, le=MONTHS_PER_PAYMENT_MAX, strict=True)
    paid_on: Day
    payer: PayerRole | None = None  # None: the employer (by NPP) or the member (by KPJ)
    # Who paid, as on the bank slip: kept in the event store only, never published (it may be a person's name).
    payer_name: Name | None = None

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
    year: int = Field(ge=2015, le=2200, strict=True)
    rate_percent: Decimal = Field(ge=0, le=YIELD_RATE_PERCENT_MAX, max_digits=8, decimal_places=4)
    credited_on: Day | None = None  # None: 31 December of the year


class PayClaim(Command):
    NAME: ClassVar[str] = "pay-claim"
    kpj: str
    program: Program
    kind: ClaimKind | None = None  # None: the program's usual kind
    incident_date: Day
    paid_on: Day
    beneficiary: Beneficiary = Beneficiary.SELF  # the relationship to the member: what is published
    # The person paid when it is not the member (an heir): kept in the event store only, never published.
    beneficiary_name: Name | None = None
    amount: ClaimAmount | None = None

    _kpj = field_validator("kpj")(identifiers.validate_kpj)

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
    reason: Reason
    reversed_on: Day


COMMAND_TYPES: dict[str, type[Command]] = {
    cls.NAME: cls
    for cls in (RegisterEmployer, ChangeRiskClass, EnrollMember, EnrollMembers, ChangeWage, ExitMember,
                PayContribution, CreditYield, PayClaim, Reverse)
}


# --- Collections ---------------------------------------------------------------------------------------------------

_REFERENCE = re.compile(r"[A-Za-z0-9][A-Za-z0-9/\-.:+]*")  # letters, digits and the punctuation banks use in refs
_PAYMENT_CODE = re.compile(r"[0-9]{16,19}")


def _reference(value: str) -> str:
    if not _REFERENCE.fullmatch(value):
        raise ValueError("a bank reference is letters, digits and / - . : + (no spaces), starting with a letter "
                         "or digit")
    return value


def _payment_code(value: str) -> str:
    if not _PAYMENT_CODE.fullmatch(value) or not identifiers.luhn_valid(value):
        raise ValueError("not a payment code: 16 to 19 digits whose last is a check digit, as printed on the bill "
                         "(a typo? the check digit does not match)")
    return value


Reference = Annotated[str, Field(strict=True, min_length=1, max_length=REFERENCE_CHARS_MAX),
                      AfterValidator(_reference)]


class CloseBills(Command):
    """Close `month` for some payers: a bill for each that has members owed and not yet billed or paid."""

    NAME: ClassVar[str] = "close-bills"
    month: str = Field(pattern=MONTH_PATTERN)
    npps: list[str] = Field(default_factory=list, max_length=CLOSE_PAYERS_MAX)
    kpjs: list[str] = Field(default_factory=list, max_length=CLOSE_MEMBERS_MAX)  # self-paying BPU members

    _npps = field_validator("npps")(lambda v: [identifiers.validate_npp(x) for x in v])
    _kpjs = field_validator("kpjs")(lambda v: [identifiers.validate_kpj(x) for x in v])

    @model_validator(mode="after")
    def _each_payer_once(self) -> CloseBills:
        # A payer twice would be billed twice in one command, on two copies of its account: refused, not retried.
        for field, values in (("npps", self.npps), ("kpjs", self.kpjs)):
            if len(set(values)) != len(values):
                repeated = next(v for v in values if values.count(v) > 1)
                raise ValueError(f"{field}: {repeated} is listed more than once")
        return self


class _MoneyByReference(Command):
    """Money known by its bank reference, for a payer named once: by a payment code, an NPP or a KPJ. The command id
    is ID_PREFIX + the reference, so the same command again is a repeat and other content for it is refused."""

    ID_PREFIX: ClassVar[str]
    reference: Reference
    code: str | None = None
    npp: str | None = None
    kpj: str | None = None

    _code = field_validator("code")(lambda v: v if v is None else _payment_code(v))
    _npp = field_validator("npp")(lambda v: v if v is None else identifiers.validate_npp(v))
    _kpj = field_validator("kpj")(lambda v: v if v is None else identifiers.validate_kpj(v))

    @model_validator(mode="before")
    @classmethod
    def _reference_is_the_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "command_id" not in data and isinstance(data.get("reference"), str):
            return {**data, "command_id": f"{cls.ID_PREFIX}{data['reference']}"}
        return data

    @model_validator(mode="after")
    def _one_payer(self) -> _MoneyByReference:
        if sum(x is not None for x in (self.code, self.npp, self.kpj)) != 1:
            raise ValueError("name the payer once: a payment code, an NPP or a KPJ")
        return self


class ReceiveMoney(_MoneyByReference):
    """Money that arrived, from the payer named by a payment code, an NPP or a KPJ. The bank reference is the
    command id: the same money again is a repeat; the same reference with other content is refused."""

    NAME: ClassVar[str] = "receive-money"
    ID_PREFIX: ClassVar[str] = "money:"
    amount: MoneyAmount
    received_on: Day
    payer: PayerRole | None = None  # default: the employer (NPP) or the member (KPJ)
    payer_name: Name | None = None

    def conflict_message(self, previous_name: str) -> str:  # noqa: ARG002
        return (f"bank reference {self.reference} was already recorded with another payer, amount or date; the "
                f"first receipt stands (the same money again is answered as a repeat)")

    @model_validator(mode="after")
    def _receipt_rules(self) -> ReceiveMoney:
        if self.command_id != f"{self.ID_PREFIX}{self.reference}":
            raise ValueError("the command id of a receipt is its bank reference (money:REFERENCE)")
        # As for `PayContribution`: an employer's account is paid by the employer or an institution, a member's by
        # the member or an institution. A payment code names its payer by its first digit (1 employer, 2 member).
        employer = self.npp is not None or (self.code is not None and self.code.startswith("1"))
        if employer and self.payer is PayerRole.MEMBER:
            raise ValueError("payer: money for an employer's account is paid by the employer or an institution, "
                             "not a member")
        if not employer and self.payer is PayerRole.EMPLOYER:
            raise ValueError("payer: money for a member's account is paid by the member or an institution, not an "
                             "employer")
        return self


class RefundMoney(Command):
    NAME: ClassVar[str] = "refund-money"
    npp: str | None = None
    kpj: str | None = None
    amount: MoneyAmount
    refunded_on: Day
    reason: Reason

    _npp = field_validator("npp")(lambda v: v if v is None else identifiers.validate_npp(v))
    _kpj = field_validator("kpj")(lambda v: v if v is None else identifiers.validate_kpj(v))

    @model_validator(mode="after")
    def _one_payer(self) -> RefundMoney:
        if (self.npp is None) == (self.kpj is None):
            raise ValueError("name the payer once: an NPP or a KPJ")
        return self


# --- Money held until matched (bank statements) --------------------------------------------------------------------

# A statement's text for one credit: MT940's field 86 is at most 6 lines of 65 characters (390), joined with spaces.
DESCRIPTION_CHARS_MAX = 390
Description = Annotated[str, Field(strict=True, max_length=DESCRIPTION_CHARS_MAX), AfterValidator(_printable_text)]


class HoldMoney(Command):
    """A bank credit that names no known payer, held in suspense at `branch`. Its command id is its bank reference
    (money:REFERENCE), as a receipt's is: the same credit is never both held and received, nor held twice."""

    NAME: ClassVar[str] = "hold-money"
    reference: Reference
    branch: str
    amount: MoneyAmount
    received_on: Day
    payment_code: str | None = None
    description: Description | None = None
    payer_name: Name | None = None

    _branch = field_validator("branch")(identifiers.validate_branch_code)
    _code = field_validator("payment_code")(lambda v: v if v is None else _payment_code(v))

    @model_validator(mode="before")
    @classmethod
    def _reference_is_the_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "command_id" not in data and isinstance(data.get("reference"), str):
            return {**data, "command_id": f"money:{data['reference']}"}
        return data

    def conflict_message(self, previous_name: str) -> str:  # noqa: ARG002
        return (f"bank reference {self.reference} was already recorded with another payer, amount or date; the "
                f"first record stands (the same money again is answered as a repeat)")

    @model_validator(mode="after")
    def _id_is_the_reference(self) -> HoldMoney:
        if self.command_id != f"money:{self.reference}":
            raise ValueError("the command id of held money is its bank reference (money:REFERENCE)")
        return self


class MatchMoney(_MoneyByReference):
    """Money held in suspense matched by a clerk to the payer named by a payment code, an NPP or a KPJ. Its command
    id is match:REFERENCE: the same match again is a repeat; another payer for the same money is refused."""

    NAME: ClassVar[str] = "match-money"
    ID_PREFIX: ClassVar[str] = "match:"
    identified_on: Day

    def conflict_message(self, previous_name: str) -> str:  # noqa: ARG002
        return (f"held money {self.reference} was already matched to another payer or on another day; the first "
                f"match stands")


IMPORT_BATCH_LINES_MAX = 2_000  # statement lines recorded in one transaction (`ledger payment import`)


class RecordStatementLines(Command):
    """Lines of a bank statement recorded in one transaction, in order: each a receipt (`ReceiveMoney`) or money held
    (`HoldMoney`) under its own command id (money:REFERENCE), exactly as if run alone: a line recorded before, by a
    file or a teller, is answered as a duplicate and recorded again nowhere."""

    NAME: ClassVar[str] = "record-statement-lines"
    lines: list[ReceiveMoney | HoldMoney] = Field(min_length=1, max_length=IMPORT_BATCH_LINES_MAX)
