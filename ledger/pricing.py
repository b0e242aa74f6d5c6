"""Pricing: what a contribution, its late fine, a year's yield and a claim come to, as pure functions.

No I/O and no application: the inputs are plain values (wages, dates, risk classes, programs, rates), the contract
events already recorded on a member and its contribution months, and the dated rules of `ledger.rules`; the answers
are whole rupiah. The handlers (`ledger.handlers`) load the aggregates, ask these functions, and record the answer.

Balances are computed here too, because claims and yields are priced from them: a program's balance on a day is the
sum of what the contract events booked up to that day (contributions paid minus reversed, JHT yield, claims paid
minus reversed). A refusal that depends on the price alone (a partial JHT payout before ten years, an expired JKK
claim, an amount above the balance) is raised here, as the operating error the command answers with.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from ledger import events as ev
from ledger import rules
from ledger.domain import LedgerAggregate, month_start
from ledger.errors import InvalidInput, RuleViolation
from ledger.rules import Program, RiskClass, Segment, shift_month

# The JKK discount of Feb 2025 - Jan 2026 is for labour-intensive employers with at least this many workers.
LABOUR_INTENSIVE_WORKERS_MIN = 50
JKK_CLAIM_EXPIRY_YEARS = 5  # from the accident; 2 before December 2019 (not modelled: older claims are all paid)

# (statutory amount, ceiling) of a claim: what the rules give (None: no statutory amount, the claim names one) and
# the most that may be paid (None: no ceiling).
ClaimAmounts = tuple[int | None, int | None]


# --- months --------------------------------------------------------------------------------------------------------


def months_from(first: str, count: int) -> list[str]:
    """`count` consecutive months ("YYYY-MM") from `first`."""
    return [shift_month(first, i) for i in range(count)]


def month_end(month: str) -> date:
    """The last day of `month`: a contribution is computed on the wage in force that day, a yield on the balances."""
    start = month_start(month)
    return date(start.year + start.month // 12, start.month % 12 + 1, 1) - timedelta(days=1)


# --- contributions and fines ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MonthPrice:
    """One member's contribution for one month, as paid on a given day."""

    owed: rules.Contribution
    months_late: int
    fine: int

    @property
    def total(self) -> int:
        return self.owed.total + self.fine


def labour_intensive_discount(labour_intensive: bool, workers: int) -> bool:
    """Whether an employer's JKK is priced with the labour-intensive discount (`rules.JKK_LABOUR_INTENSIVE_FACTOR`)."""
    return labour_intensive and workers >= LABOUR_INTENSIVE_WORKERS_MIN


def price_month(segment: Segment, wage: int, programs: frozenset[Program], month: str, paid_on: date, *,
                risk_class: RiskClass | None, labour_intensive: bool = False) -> MonthPrice:
    """The contribution for `month` on `wage` (a BPU member's declared income), with the late fine of a PU payment
    made on `paid_on`. `risk_class`: the employer's on the month's first day (PU only). Raises what `ledger.rules`
    raises: `LookupError` for a month no rule covers, `ValueError` for a wage out of bounds."""
    start = month_start(month)
    if segment is Segment.BPU:
        # BPU members pay no fine; unpaid months make them inactive instead.
        return MonthPrice(rules.bpu_contribution(wage, programs, start), months_late=0, fine=0)
    assert risk_class is not None, "a PU contribution is priced with its employer's risk class"
    owed = rules.pu_contribution(wage, risk_class, programs, start, labour_intensive=labour_intensive)
    due = rules.pu_due_date(start)
    late = rules.months_late(due, paid_on)
    return MonthPrice(owed, months_late=late, fine=rules.late_fine(owed.total, late, due))


def program_totals(lines: Iterable[ev.ContributionPaid]) -> dict[Program, int]:
    """What a payment's lines bring to each program (employer and worker shares together), programs with none left
    out, in the programs' order."""
    totals = dict.fromkeys(Program, 0)
    for line in lines:
        for program, share in line.shares.items():
            totals[program] += share.employer + share.worker
    return {program: total for program, total in totals.items() if total}


# --- balances ------------------------------------------------------------------------------------------------------


def booked(records: Iterable[LedgerAggregate]) -> list[ev.LedgerEvent]:
    """The contract events recorded on a member and its contribution months: what its balances are computed from."""
    return [contract for record in records for _, contract in record.recorded]


def share_total(shares: dict[Program, ev.ProgramShare], program: Program) -> int:
    """What a contribution brings to `program`: its employer and worker shares together."""
    share = shares.get(program)
    return share.employer + share.worker if share else 0


def _movement(contract: ev.LedgerEvent, program: Program) -> tuple[date, int]:
    """The day from which a contract event counts, and what it adds to (or, negative, takes from) `program`."""
    if isinstance(contract, (ev.ContributionPaid, ev.ContributionAdjusted)):
        return contract.paid_on, share_total(contract.shares, program)
    if isinstance(contract, ev.ContributionReversed):
        return contract.reversed_on, -share_total(contract.shares, program)
    if isinstance(contract, ev.YieldCredited):
        return contract.credited_on, contract.amount if program is Program.JHT else 0
    if isinstance(contract, ev.ClaimPaid):
        return contract.paid_on, -contract.amount if contract.program is program else 0
    if isinstance(contract, ev.ClaimReversed):
        return contract.reversed_on, contract.amount if contract.program is program else 0
    return _NO_MOVEMENT


_NO_MOVEMENT = (date.min, 0)


def _movements(contracts: Iterable[ev.LedgerEvent], program: Program) -> list[tuple[date, int]]:
    return [(day, amount) for day, amount in (_movement(c, program) for c in contracts) if amount]


def _balance_on(movements: Iterable[tuple[date, int]], as_of: date) -> int:
    return sum(amount for day, amount in movements if day <= as_of)


def program_balance(contracts: Iterable[ev.LedgerEvent], program: Program, as_of: date) -> int:
    """Contributions paid (net of reversals) plus yield (JHT) minus claims (net of reversals), as of a date."""
    return _balance_on(_movements(contracts, program), as_of)


def lowest_balance(contracts: Sequence[ev.LedgerEvent], program: Program, from_date: date) -> int:
    """The lowest balance of `program` on `from_date` or any later day something was booked: what can still be
    taken out on `from_date` without a later day going negative (claims and reversals may be dated back)."""
    movements = _movements(contracts, program)
    days = {from_date} | {c.effective_date() for c in contracts if c.effective_date() > from_date}
    return min(_balance_on(movements, day) for day in days)


# --- yield ---------------------------------------------------------------------------------------------------------


def jht_yield(contracts: Iterable[ev.LedgerEvent], year: int, rate: Decimal) -> tuple[int, int]:
    """(balance basis, amount) of one member's JHT yield for `year` at `rate` (`rules.jht_yield`): the twelve
    month-end balances, a negative one counted as zero, and their average."""
    movements = _movements(contracts, Program.JHT)
    balances = [max(0, _balance_on(movements, month_end(f"{year}-{m:02d}")))
                for m in range(1, rules.JHT_YIELD_MONTHS + 1)]
    return sum(balances) // rules.JHT_YIELD_MONTHS, rules.jht_yield(balances, rate)


# --- claims --------------------------------------------------------------------------------------------------------


def jht_claim_amounts(kind: ev.ClaimKind, balance: int, *, kpj: str, enrolled_on: date, paid_on: date) -> ClaimAmounts:
    """A full payout is the whole balance (`balance`: the lowest from the payment day on); a partial one at most
    30% (housing) or 10% (other) of it, after ten years of membership."""
    if kind is ev.ClaimKind.JHT_FULL:
        return balance, balance
    if not rules.jht_partial_allowed(enrolled_on, paid_on):
        raise RuleViolation(f"a partial JHT payout needs 10 years of membership; member {kpj} "
                            f"enrolled on {enrolled_on}")
    partial = rules.JhtPartialKind.HOUSING if kind is ev.ClaimKind.JHT_PARTIAL_HOUSING else rules.JhtPartialKind.OTHER
    most = rules.jht_partial_max(max(balance, 0), partial)
    return most, most


def jkk_claim_expires(incident_date: date) -> date:
    """The last day a JKK claim may be paid; for an accident on 29 February the anniversary falls on 1 March."""
    try:
        return incident_date.replace(year=incident_date.year + JKK_CLAIM_EXPIRY_YEARS)
    except ValueError:
        return date(incident_date.year + JKK_CLAIM_EXPIRY_YEARS, 3, 1)


def jkk_claim_amounts(kind: ev.ClaimKind, wage: int, *, incident_date: date, paid_on: date) -> ClaimAmounts:
    """Death and disability are multiples of `wage`, the wage on the day of the accident; care has no statutory
    amount. Neither has a ceiling."""
    if paid_on > jkk_claim_expires(incident_date):
        raise RuleViolation(f"a JKK claim expires {JKK_CLAIM_EXPIRY_YEARS} years after the accident "
                            f"({incident_date})")
    if kind is ev.ClaimKind.JKK_DEATH:
        return rules.jkk_death_benefit(wage), None
    if kind is ev.ClaimKind.JKK_DISABILITY:
        return rules.jkk_disability_benefit(wage), None
    return None, None


def jkm_claim_amounts(*, kpj: str, incident_date: date, exit_date: date | None) -> ClaimAmounts:
    """The death benefit in force on the day of death, which is the day the member exited."""
    if exit_date is not None and exit_date != incident_date:
        raise InvalidInput(f"the incident date of a JKM claim is the date of death, {exit_date}, not {incident_date}")
    try:
        return rules.jkm_benefit(incident_date).cash_total, None
    except LookupError as error:  # a death before the rule tables begin
        raise RuleViolation(f"member {kpj}: {error}") from None


def jp_paid_months(payments: Iterable[ev.ContributionPaid | None]) -> int:
    """How many months carry a JP contribution, from each contribution month's current payment (None: reversed)."""
    return sum(1 for paid in payments if paid is not None and Program.JP in paid.shares)


def jp_claim_amounts(*, kpj: str, paid_months: int, balance: int) -> ClaimAmounts:
    """Below 15 years of contributions, JP pays back the balance as a lump sum."""
    if not rules.jp_lump_sum_allowed(paid_months):
        raise RuleViolation(f"member {kpj} has {paid_months} months of JP contributions: 15 years or more "
                            f"give a monthly pension, not a lump sum")
    return balance, balance


def claim_amount(given: int | None, amounts: ClaimAmounts, *, kpj: str, program: Program,
                 kind: ev.ClaimKind) -> int:
    """The amount a claim pays: the one given, else the statutory one; within the ceiling, the whole balance for a
    full JHT payout, and more than zero."""
    statutory, ceiling = amounts
    amount = given if given is not None else statutory
    if amount is None:
        raise InvalidInput(f"a {program.value} {kind.value} claim has no statutory amount: give --amount")
    if ceiling is not None and amount > ceiling:
        raise RuleViolation(f"claim of Rp{amount:,} is above what member {kpj} can be paid from "
                            f"{program.value} (Rp{ceiling:,})")
    if kind is ev.ClaimKind.JHT_FULL and amount != ceiling:
        raise RuleViolation(f"a full JHT payout pays the whole balance, Rp{ceiling:,}, not Rp{amount:,}")
    if amount <= 0:
        raise RuleViolation(f"member {kpj} has nothing to pay out from {program.value}")
    return amount
