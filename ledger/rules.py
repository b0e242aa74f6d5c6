"""The fund's rules: contribution rates, caps, discounts and benefits as dated data, plus pure computations.

Every value that the regulations have changed, or may change, is a `Table` of `Period`s. A contribution uses
the rules in force on the FIRST DAY of its contribution month; a benefit uses the rules in force on the date
of the INCIDENT (death, accident), never the claim date. The tables start on 2015-07-01, the day the fund
began operating under the 2015 regulations (and the day JP began); asking for an earlier date raises
`NoRuleInForce` (a `LookupError`) that names the table and the date.

Money is whole rupiah `int`; rates are exact `Decimal`s. Rounding rule (the regulations do not state one):
each program's share per member per month is computed with exact decimals, discounts included, and rounded
half up to the whole rupiah ONCE, at that point (`round_rupiah`). Amounts derived from rounded shares
(deferred JP, totals) are computed by integer subtraction or addition, so the parts always add up.
"""

from calendar import monthrange
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from enum import Enum
from functools import lru_cache
from itertools import pairwise
from typing import Any, Generic, Protocol, TypeVar

LEDGER_EPOCH = date(2015, 7, 1)  # the first day any table covers
JP_START = date(2015, 7, 1)  # the pension program began with the ledger; earlier months have no JP at all
ONE = Decimal(1)


def shift_month(key: str, delta: int) -> str:
    """The month `delta` months after (or, negative, before) the month `key` ("YYYY-MM")."""
    year, number = divmod(int(key[:4]) * 12 + int(key[5:7]) - 1 + delta, 12)
    return f"{year:04d}-{number + 1:02d}"


class Program(str, Enum):
    JHT = "JHT"  # old-age savings, an individual account
    JKK = "JKK"  # work-accident insurance
    JKM = "JKM"  # death benefit
    JP = "JP"  # pension


class Segment(str, Enum):
    PU = "PU"  # wage earner, paid for by an employer
    BPU = "BPU"  # informal worker, pays for themself (or a third party pays)


class RiskClass(str, Enum):
    VERY_LOW = "very-low"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    VERY_HIGH = "very-high"


class JhtPartialKind(str, Enum):
    HOUSING = "housing"
    OTHER = "other"


class NoRuleInForce(LookupError):
    """No period of a rule table covers the date asked for."""


T = TypeVar("T")  # what a table holds: a rate (Decimal), an amount or a ceiling (int), a JkmBenefit, ...


@dataclass(frozen=True)
class Period(Generic[T]):
    valid_from: date
    valid_to: date | None  # exclusive; None = open-ended
    value: T

    def covers(self, on: date) -> bool:
        return self.valid_from <= on and (self.valid_to is None or on < self.valid_to)


@dataclass(frozen=True, eq=False)  # hashed by identity: each table is one module constant
class Table(Generic[T]):
    name: str
    periods: tuple[Period[T], ...]

    def __post_init__(self) -> None:
        # A table with overlapping periods would make the answer depend on lookup order: a programmer error.
        for earlier, later in pairwise(self.periods):
            assert earlier.valid_to is not None and earlier.valid_to <= later.valid_from, self.name
        for period in self.periods:
            assert period.valid_to is None or period.valid_from < period.valid_to, self.name


IN_FORCE_CACHE_MAX = 4_096  # (table, date) answers kept: a month's payment asks the same few thousands of times


@lru_cache(maxsize=IN_FORCE_CACHE_MAX)
def _in_force(table: Table[Any], on: date) -> Any:
    for period in table.periods:
        if period.covers(on):
            return period.value
    first = table.periods[0].valid_from.isoformat() if table.periods else "never"
    raise NoRuleInForce(f"no {table.name} rule in force on {on.isoformat()} (the table starts {first})")


class _Lookup(Protocol):
    def __call__(self, table: Table[T], on: date, /) -> T: ...


# The value of `table` in force on `on`; NoRuleInForce (a LookupError) when no period covers it. The cache forgets
# the table's type (an lru_cache wrapper returns Any), so this name restores it: a rate is a Decimal to the type
# checker, a ceiling an int, at no cost per call.
in_force: _Lookup = _in_force


def _stepped(name: str, start: date, steps: list[tuple[date, T]], first: T) -> Table[T]:
    """A table that holds `first` from `start`, then each (from, value) step until the next one; the last is open."""
    starts = [(start, first), *steps]
    periods = []
    for i, (valid_from, value) in enumerate(starts):
        valid_to = starts[i + 1][0] if i + 1 < len(starts) else None
        periods.append(Period(valid_from, valid_to, value))
    return Table(name, tuple(periods))


def _constant(name: str, value: T) -> Table[T]:
    return Table(name, (Period(LEDGER_EPOCH, None, value),))


# --- PU contribution rates (% of the monthly wage = basic wage + fixed allowances) -------------------------------

JHT_EMPLOYER_RATE = _constant("JHT employer rate", Decimal("0.037"))
JHT_WORKER_RATE = _constant("JHT worker rate", Decimal("0.02"))
JKK_RATE = _constant("JKK rate by risk class", {
    RiskClass.VERY_LOW: Decimal("0.0024"),
    RiskClass.LOW: Decimal("0.0054"),
    RiskClass.MEDIUM: Decimal("0.0089"),
    RiskClass.HIGH: Decimal("0.0127"),
    RiskClass.VERY_HIGH: Decimal("0.0174"),
})
JKM_RATE = _constant("JKM rate", Decimal("0.003"))
JP_EMPLOYER_RATE = _constant("JP employer rate", Decimal("0.02"))
JP_WORKER_RATE = _constant("JP worker rate", Decimal("0.01"))

# JP is computed on the wage capped at this ceiling. It changes each March (domain.md table 2a; the 2016 change
# month is uncertain and taken as March like the others). It fell in 2021 because 2020 growth was negative.
JP_WAGE_CEILING = _stepped("JP wage ceiling", LEDGER_EPOCH, [
    (date(2016, 3, 1), 7_335_300),
    (date(2017, 3, 1), 7_703_500),
    (date(2018, 3, 1), 8_094_000),
    (date(2019, 3, 1), 8_512_400),
    (date(2020, 3, 1), 8_939_700),
    (date(2021, 3, 1), 8_754_600),
    (date(2022, 3, 1), 9_077_600),
    (date(2023, 3, 1), 9_559_600),
    (date(2024, 3, 1), 10_042_300),
    (date(2025, 3, 1), 10_547_400),
    (date(2026, 3, 1), 11_086_300),  # announced
], first=7_000_000)

# --- Temporary discounts: the fraction of the normal amount payable now ------------------------------------------

# COVID relief (Aug 2020 - Jan 2021): JKK and JKM cut by 99%, for PU and BPU alike; 99% of JP deferred, not waived.
COVID_RELIEF_START, COVID_RELIEF_END = date(2020, 8, 1), date(2021, 2, 1)
JKK_JKM_PAYABLE_FACTOR = _stepped("JKK/JKM payable factor", LEDGER_EPOCH, [
    (COVID_RELIEF_START, Decimal("0.01")), (COVID_RELIEF_END, ONE)], first=ONE)
JP_PAYABLE_FACTOR = _stepped("JP payable factor", LEDGER_EPOCH, [
    (COVID_RELIEF_START, Decimal("0.01")), (COVID_RELIEF_END, ONE)], first=ONE)
# Feb 2025 - Jan 2026: JKK halved for labour-intensive employers (the caller decides who qualifies).
JKK_LABOUR_INTENSIVE_FACTOR = _stepped("JKK labour-intensive factor", LEDGER_EPOCH, [
    (date(2025, 2, 1), Decimal("0.5")), (date(2026, 2, 1), ONE)], first=ONE)

# --- JKP recomposition: the part of the JKK / JKM payment credited to the JKP fund (not an extra payment) ---------

JKP_FROM_JKK_RATE = _stepped("JKP share of JKK", LEDGER_EPOCH, [(date(2021, 2, 1), Decimal("0.0014"))],
                             first=Decimal(0))
JKP_FROM_JKM_RATE = _stepped("JKP share of JKM", LEDGER_EPOCH, [
    (date(2021, 2, 1), Decimal("0.0010")), (date(2025, 2, 1), Decimal(0))], first=Decimal(0))
# The JKP contribution is defined on the wage capped at Rp5,000,000 (domain.md puts the cap in the wage-cap column
# of the JKP row), so the recomposed amounts use the capped wage while JKK and JKM themselves stay uncapped.
JKP_WAGE_CAP = _constant("JKP wage cap", 5_000_000)

# --- BPU (informal) contributions --------------------------------------------------------------------------------

BPU_JKK_RATE = _constant("BPU JKK rate", Decimal("0.01"))
BPU_JKM_AMOUNT = _constant("BPU JKM amount", 6_800)
BPU_JHT_RATE = _constant("BPU JHT rate", Decimal("0.02"))
BPU_INCOME_BOUNDS = _constant("BPU declared income bounds", (1_000_000, 20_700_000))  # inclusive

# --- Due dates and fines -----------------------------------------------------------------------------------------

PU_DUE_DAY = 15  # of the month after the contribution month
BPU_DUE_DAY = 15  # of the contribution month itself
# A BPU membership lapses (becomes inactive) after this many consecutive unpaid months; paying again reactivates it.
BPU_UNPAID_MONTHS_INACTIVE = 3
LATE_FINE_RATE_PER_MONTH = _constant("PU late fine rate per month", Decimal("0.02"))  # of the unpaid amount

# How money received is applied to a payer's bills, as dated data like every other rule, so that a replay applies it
# the way the rule in force did. "oldest-bill-first-whole/1": bills oldest first (by the date they count from); a
# bill is settled only whole, with its late fine to the settlement date; money that does not settle the next bill
# stays unapplied (a credit) until more arrives, the next bill closes, or it is refunded.
OLDEST_BILL_FIRST_WHOLE = "oldest-bill-first-whole/1"
MONEY_APPLICATION = _constant("money application rule", OLDEST_BILL_FIRST_WHOLE)


def bill_counts_from(segment: Segment, month: date) -> date:
    """The day a bill for `month` counts in the books: the first day of the next month for PU (the month is over and
    its wages known), the first day of the month itself for BPU (paid in advance)."""
    return _add_months(first_of_month(month), 1) if segment is Segment.PU else first_of_month(month)


def bill_due_date(segment: Segment, month: date) -> date:
    return pu_due_date(month) if segment is Segment.PU else bpu_due_date(month)


# --- Membership: who is employed on a day, and which months are owed ----------------------------------------------
# The enrollment date is the first day employed; the exit date is the first day NO LONGER employed (the day after the
# last working day). The write side (which months a payment bills), the projections (active counts) and the
# auditor's recount all decide with the two functions below, so an exit on the 1st of a month is never billed for
# that month anywhere. The projections' SQL spells `employed_on` as `enrolled_on <= D AND (exited_on IS NULL OR
# exited_on > D)`; a test checks it agrees.

_Day = TypeVar("_Day", date, str)


def employed_on(day: _Day, enrolled_on: _Day, exit_date: _Day | None) -> bool:
    """Whether a member is employed (active) on `day`: enrolled_on <= day < exit_date.

    Dates or ISO-8601 date strings ("2024-07-01"), all of one kind: ISO strings order exactly as the dates they
    spell, so the auditor, which reads them from envelopes, need not parse millions of them.
    """
    return enrolled_on <= day and (exit_date is None or day < exit_date)


def month_owed(month: str, enrolled_on: date, exit_date: date | None) -> bool:
    """Whether a contribution is owed for `month` ("YYYY-MM"): the member was employed on at least one of its days.

    That is enrolled_on <= the month's last day and exit_date > its first day (and exit_date > enrolled_on: a member
    who exits on the day they enrolled was employed on no day). An exit on 1 July owes nothing for July; an exit on
    2 July owes July; an enrollment on 31 July owes July.
    """
    first = date(int(month[:4]), int(month[5:7]), 1)
    last = first.replace(day=monthrange(first.year, first.month)[1])
    employed_from = max(first, enrolled_on)
    return employed_from <= last and employed_on(employed_from, enrolled_on, exit_date)

# --- Benefits ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JkmBenefit:
    lump_sum: int
    periodic_grant: int  # 24 monthly grants paid at once
    funeral: int

    @property
    def cash_total(self) -> int:
        return self.lump_sum + self.periodic_grant + self.funeral


# Deaths up to and including 1 Dec 2019 get the old amounts; from 2 Dec 2019 the new ones.
JKM_BENEFIT = _stepped("JKM benefit", LEDGER_EPOCH, [
    (date(2019, 12, 2), JkmBenefit(20_000_000, 12_000_000, 10_000_000))],
    first=JkmBenefit(16_200_000, 4_800_000, 3_000_000))

# The JKK wage multiples are the same under the 2015 and the 2019 regulations, so they need no dated table.
JKK_DEATH_WAGE_MONTHS = 48
JKK_DISABILITY_WAGE_MONTHS = 56

JHT_PARTIAL_RATE = {JhtPartialKind.HOUSING: Decimal("0.30"), JhtPartialKind.OTHER: Decimal("0.10")}
JHT_PARTIAL_MIN_MEMBERSHIP_YEARS = 10

JP_MONTHLY_PENSION_MIN_MONTHS = 180

# 56 until 2018, 57 from 2019, then one more year every three years until 65 (from 2043, open-ended).
RETIREMENT_AGE = _stepped("retirement age", LEDGER_EPOCH,
                          [(date(2019 + 3 * i, 1, 1), 57 + i) for i in range(9)], first=56)


# === Computations ================================================================================================


def round_rupiah(amount: Decimal) -> int:
    """Round an exact amount half up to the whole rupiah: the single rounding point of the ledger."""
    return int(amount.quantize(ONE, rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class Share:
    employer: int
    worker: int

    @property
    def total(self) -> int:
        return self.employer + self.worker


@dataclass(frozen=True)
class Contribution:
    """What one member owes for one month, per enrolled program.

    `shares` is the amount payable now. `jkp_from_jkk` / `jkp_from_jkm` are parts of the JKK / JKM shares that
    the fund credits to the JKP account: a split, not an extra payment. `jp_deferred` is JP owed but deferred by
    the COVID relief; it is not in the totals.
    """

    shares: dict[Program, Share] = field(hash=False)
    jkp_from_jkk: int = 0
    jkp_from_jkm: int = 0
    jp_deferred: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "shares", dict(self.shares))  # never alias the caller's dict

    @property
    def employer_total(self) -> int:
        return sum(share.employer for share in self.shares.values())

    @property
    def worker_total(self) -> int:
        return sum(share.worker for share in self.shares.values())

    @property
    def total(self) -> int:
        return self.employer_total + self.worker_total


def first_of_month(day: date) -> date:
    return date(day.year, day.month, 1)


def _check_whole(name: str, value: object, minimum: int) -> int:
    """Input guard: rupiah amounts and counts are plain ints (never bool, float or Decimal) of at least `minimum`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be a whole number >= {minimum:,}, got {value!r}")
    return value


def _check_rupiah(name: str, amount: object) -> int:
    return _check_whole(name, amount, 1)


def _check_programs(programs: Iterable[Program | str]) -> frozenset[Program]:
    enrolled = frozenset(Program(p) for p in programs)
    if not enrolled:
        raise ValueError("programs must name at least one program (JHT, JKK, JKM, JP)")
    return enrolled


def _jkp_wage(wage: int, on: date) -> Decimal:
    return Decimal(min(wage, in_force(JKP_WAGE_CAP, on)))


def pu_contribution(wage: int, risk_class: RiskClass, programs: frozenset[Program], month: date,
                    labour_intensive: bool = False) -> Contribution:
    """A wage earner's contribution for the month containing `month`, by the rules in force on its first day."""
    wage = _check_rupiah("wage", wage)
    risk_class = RiskClass(risk_class)
    enrolled = _check_programs(programs)
    on = first_of_month(month)
    if Program.JP in enrolled and on < JP_START:
        raise NoRuleInForce(f"JP began on {JP_START.isoformat()}: no JP contribution exists for {on:%Y-%m}")
    exact = Decimal(wage)
    shares: dict[Program, Share] = {}
    jkp_from_jkk = jkp_from_jkm = jp_deferred = 0

    if Program.JHT in enrolled:
        shares[Program.JHT] = Share(round_rupiah(exact * in_force(JHT_EMPLOYER_RATE, on)),
                                    round_rupiah(exact * in_force(JHT_WORKER_RATE, on)))
    if Program.JKK in enrolled:
        factor = in_force(JKK_JKM_PAYABLE_FACTOR, on)
        if labour_intensive:
            factor *= in_force(JKK_LABOUR_INTENSIVE_FACTOR, on)
        jkk = round_rupiah(exact * in_force(JKK_RATE, on)[risk_class] * factor)
        shares[Program.JKK] = Share(jkk, 0)
        # The JKP part can never exceed the JKK actually paid: with the labour-intensive halving a very-low-risk
        # JKK (0.12%) is below the 0.14% recomposition. The project's choice is to credit JKP with at most the
        # whole JKK payment, so no fund account ever goes negative.
        jkp_from_jkk = min(jkk, round_rupiah(_jkp_wage(wage, on) * in_force(JKP_FROM_JKK_RATE, on)))
    if Program.JKM in enrolled:
        jkm = round_rupiah(exact * in_force(JKM_RATE, on) * in_force(JKK_JKM_PAYABLE_FACTOR, on))
        shares[Program.JKM] = Share(jkm, 0)
        jkp_from_jkm = min(jkm, round_rupiah(_jkp_wage(wage, on) * in_force(JKP_FROM_JKM_RATE, on)))
    if Program.JP in enrolled:
        jp_wage = Decimal(min(wage, in_force(JP_WAGE_CEILING, on)))
        payable = in_force(JP_PAYABLE_FACTOR, on)
        employer_full = jp_wage * in_force(JP_EMPLOYER_RATE, on)
        worker_full = jp_wage * in_force(JP_WORKER_RATE, on)
        employer, worker = round_rupiah(employer_full * payable), round_rupiah(worker_full * payable)
        shares[Program.JP] = Share(employer, worker)
        jp_deferred = round_rupiah(employer_full) - employer + round_rupiah(worker_full) - worker

    return Contribution(shares, jkp_from_jkk, jkp_from_jkm, jp_deferred)


def bpu_contribution(declared_income: int, programs: frozenset[Program], month: date) -> Contribution:
    """An informal worker's contribution for the month containing `month`; the member pays it all."""
    income = _check_rupiah("declared income", declared_income)
    enrolled = _check_programs(programs)
    on = first_of_month(month)
    if Program.JP in enrolled:
        raise ValueError("JP is not offered to BPU (informal) members; enrol them in JHT, JKK and/or JKM")
    low, high = in_force(BPU_INCOME_BOUNDS, on)
    if not low <= income <= high:
        raise ValueError(f"declared income must be between Rp{low:,} and Rp{high:,} inclusive, got Rp{income:,}")
    exact = Decimal(income)
    relief = in_force(JKK_JKM_PAYABLE_FACTOR, on)
    shares: dict[Program, Share] = {}
    if Program.JHT in enrolled:
        shares[Program.JHT] = Share(0, round_rupiah(exact * in_force(BPU_JHT_RATE, on)))
    if Program.JKK in enrolled:
        shares[Program.JKK] = Share(0, round_rupiah(exact * in_force(BPU_JKK_RATE, on) * relief))
    if Program.JKM in enrolled:
        shares[Program.JKM] = Share(0, round_rupiah(in_force(BPU_JKM_AMOUNT, on) * relief))
    # JKP covers wage earners only, so nothing of a BPU payment is recomposed.
    return Contribution(shares)


def _add_months(day: date, months: int) -> date:
    """`day` moved by whole months, clamped to the last day of the target month (Jan 31 + 1 -> Feb 28/29)."""
    year, month0 = divmod(day.year * 12 + day.month - 1 + months, 12)
    return date(year, month0 + 1, min(day.day, monthrange(year, month0 + 1)[1]))


def pu_due_date(month: date) -> date:
    return _add_months(first_of_month(month), 1).replace(day=PU_DUE_DAY)


def bpu_due_date(month: date) -> date:
    return first_of_month(month).replace(day=BPU_DUE_DAY)


def months_late(due: date, paid_on: date) -> int:
    """Whole months of delay, a started month counting as one: due 15 Apr, paid 16 Apr..15 May -> 1."""
    if paid_on <= due:
        return 0
    months = (paid_on.year - due.year) * 12 + paid_on.month - due.month
    return months if _add_months(due, months) >= paid_on else months + 1


def late_fine(amount: int, months_late: int, due: date | None = None) -> int:
    """The PU late fine: 2% of the unpaid amount per month of delay. BPU contributions never carry a fine.

    The rate is the one in force on the due date; without a date, the current (open-ended) rate.
    """
    _check_whole("unpaid amount", amount, 0)
    _check_whole("months late", months_late, 0)
    rate = in_force(LATE_FINE_RATE_PER_MONTH, due) if due is not None else LATE_FINE_RATE_PER_MONTH.periods[-1].value
    return round_rupiah(Decimal(amount) * rate * months_late)


def jkm_benefit(death_date: date) -> JkmBenefit:
    return in_force(JKM_BENEFIT, death_date)


def jkk_death_benefit(last_monthly_wage: int) -> int:
    return JKK_DEATH_WAGE_MONTHS * _check_rupiah("last monthly wage", last_monthly_wage)


def jkk_disability_benefit(last_monthly_wage: int) -> int:
    return JKK_DISABILITY_WAGE_MONTHS * _check_rupiah("last monthly wage", last_monthly_wage)


def jht_partial_allowed(enrolled_on: date, claim_date: date) -> bool:
    """A partial JHT payout needs 10 full years of membership (enrolled on 29 Feb: the tenth year ends 1 Mar)."""
    years = JHT_PARTIAL_MIN_MEMBERSHIP_YEARS
    try:
        anniversary = enrolled_on.replace(year=enrolled_on.year + years)
    except ValueError:
        anniversary = date(enrolled_on.year + years, 3, 1)
    return claim_date >= anniversary


def jht_partial_max(balance: int, kind: JhtPartialKind | str) -> int:
    _check_whole("JHT balance", balance, 0)
    return round_rupiah(Decimal(balance) * JHT_PARTIAL_RATE[JhtPartialKind(kind)])


def jp_lump_sum_allowed(months_contributed: int) -> bool:
    """Below 180 months of contributions JP pays a lump sum instead of a monthly pension."""
    _check_whole("months contributed", months_contributed, 0)
    return months_contributed < JP_MONTHLY_PENSION_MIN_MONTHS


def retirement_age(on: date) -> int:
    return in_force(RETIREMENT_AGE, on)


JHT_YIELD_MONTHS = 12


def jht_yield(month_end_balances: list[int], rate: Decimal) -> int:
    """The yearly JHT development yield.

    The regulations publish the rate, not a formula. The project's chosen rule: the yearly rate applied to the
    average of the twelve month-end balances, i.e. round_half_up(sum(balances) * rate / 12), so money paid in
    late in the year earns only for the months it was held.
    """
    if not isinstance(rate, Decimal) or not Decimal(0) <= rate < ONE:
        raise ValueError(f"yield rate must be a Decimal with 0 <= rate < 1 (0.0563 for 5.63%), got {rate!r}")
    if len(month_end_balances) != JHT_YIELD_MONTHS:
        raise ValueError(f"need exactly {JHT_YIELD_MONTHS} month-end balances, got {len(month_end_balances)}")
    for balance in month_end_balances:
        _check_whole("month-end balance", balance, 0)
    return round_rupiah(Decimal(sum(month_end_balances)) * rate / JHT_YIELD_MONTHS)
