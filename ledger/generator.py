"""Synthetic but valid members and branch histories, for the demo, the benchmarks, the tests and `scripts/generate`.

Every row passes the real validators: an 11-digit KPJ from a running number, and a NIK whose birth-date part
(DDMMYY) matches the birth date, from region 327501 (Bekasi) with a non-zero serial.
"""

from __future__ import annotations

import random
from calendar import monthrange
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ledger.commands import MemberRow
from ledger.rules import month_owed, shift_month

BIRTH_YEARS = 10  # birth years cycle over a decade, so NIKs differ in more than the serial


def member_rows(first_kpj: int, count: int, *, name: str = "Pekerja", first_birth_year: int = 1990,
                wage_base: int = 3_000_000, wage_step: int = 50_000, wage_steps: int = 200) -> list[MemberRow]:
    """`count` PU members with KPJs from `first_kpj` up and wages spread over `wage_steps` steps from `wage_base`."""
    rows = []
    for i in range(count):
        number = first_kpj + i
        year = first_birth_year + i % BIRTH_YEARS
        rows.append(MemberRow(kpj=f"{number:011d}", nik=f"3275011505{year % 100:02d}{number % 9_999 + 1:04d}",
                              name=f"{name} {number}", birth_date=date(year, 5, 15),
                              wage=wage_base + number % wage_steps * wage_step))
    return rows


# --- A branch-sized history (`scripts/generate`, the demo, the projection tests) -------------------------------------

WAGE_MEDIAN = 4_500_000  # Bekasi wages cluster just above the city minimum wage, with a long tail
WAGE_SIGMA = 0.45  # of the wage's natural log
WAGE_FLOOR = 3_530_438  # Kota Bekasi minimum wage (UMK) 2017
WAGE_CEILING = 60_000_000
BPU_INCOMES = (1_000_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000, 4_000_000, 5_000_000)
MONTHLY_EXIT_RATE = 0.012
MONTHLY_HIRE_RATE = 0.015
LATE_PAYER_SHARE = 0.06  # employer-months paid after the due date (and fined)
BPU_PAYING_SHARE = 0.88  # BPU member-months paid on time; the rest unpaid (3 in a row: inactive)
BPU_LAPSING_SHARE = 0.10  # BPU members who stop paying for good at a random month
EXIT_REASONS = (("resignation", 62), ("end-of-contract", 18), ("retirement", 9), ("dismissal", 5), ("death", 3),
                ("work-death", 2), ("disability", 1))
RISK_CLASSES = (("very-low", 25), ("low", 35), ("medium", 25), ("high", 10), ("very-high", 5))
ANNOUNCED_YIELD_PERCENT = {2016: "7.19", 2020: "5.63"}  # rates seen; other years use the default below
DEFAULT_YIELD_PERCENT = "6.00"
GENERATE_MONTHS_MAX = 120
GENERATE_MEMBERS_MAX = 5_000_000


@dataclass(frozen=True)
class BranchPlan:
    """What to generate. Seeded: the same plan writes the same history, event for event."""

    branch: str = "BEKASI-KOTA"
    employers: int = 40
    members: int = 3_000  # PU members enrolled at the start; hires add more
    bpu_members: int = 150
    first_month: str = "2017-01"
    months: int = 9
    seed: int = 2017
    first_npp: int = 20_000_001
    first_kpj: int = 17_100_000_001

    def __post_init__(self) -> None:
        if not 1 <= self.employers <= self.members <= GENERATE_MEMBERS_MAX:
            raise ValueError(f"need 1 <= employers <= members <= {GENERATE_MEMBERS_MAX:,}")
        if not 1 <= self.months <= GENERATE_MONTHS_MAX:
            raise ValueError(f"months must be between 1 and {GENERATE_MONTHS_MAX}")
        if not 0 <= self.bpu_members <= GENERATE_MEMBERS_MAX:
            raise ValueError(f"bpu members must be between 0 and {GENERATE_MEMBERS_MAX:,}")


def _month_date(month: str, day: int) -> date:
    year, number = int(month[:4]), int(month[5:7])
    return date(year, number, min(day, monthrange(year, number)[1]))


def _person(rng: random.Random, number: int, wage: int, *, segment: str = "PU", programs: list[str] | None = None,
            name: str = "Peserta") -> MemberRow:
    birth = date(rng.randint(1960, 1998), rng.randint(1, 12), rng.randint(1, 28))
    female = rng.random() < 0.45
    day = birth.day + 40 if female else birth.day
    nik = f"327501{day:02d}{birth.month:02d}{birth.year % 100:02d}{number % 9_999 + 1:04d}"
    return MemberRow(kpj=f"{number:011d}", nik=nik, name=f"{name} {number}", birth_date=birth, segment=segment,
                     wage=wage, programs=programs)


def generate_branch(app: Any, plan: BranchPlan, *, progress: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Write a branch's history through the ledger's own commands, month by month, in date order.

    Employers (one city government, the rest companies, sizes from a Pareto spread) enrol their staff at the start
    with log-normal wages; every month some members leave (resignation, end of contract, retirement, death, a work
    accident) and some are hired; employers pay the month by the 15th of the next (a few late, and fined); BPU
    members pay for themselves (some lapse); leavers' claims are paid the month after (JHT, JP lump sum, JKM, JKK);
    each December's JHT yield is credited at the year's announced rate.
    """
    from ledger.commands import (
        CreditYield,
        EnrollMember,
        EnrollMembers,
        ExitMember,
        PayClaim,
        PayContribution,
        RegisterEmployer,
    )
    from ledger.errors import RuleViolation

    rng = random.Random(plan.seed)
    counts = {"commands": 0, "employers": 0, "members": 0, "bpu_members": 0, "exits": 0, "claims": 0,
              "payments": 0, "claims_refused": 0}

    def run(command: Any) -> dict[str, Any]:
        counts["commands"] += 1
        return app.execute(command)

    start = _month_date(plan.first_month, 1)
    npps = [f"{plan.first_npp + i:08d}" for i in range(plan.employers)]
    for i, npp in enumerate(npps):
        government = i == 0
        risk = rng.choices([r for r, _ in RISK_CLASSES], [w for _, w in RISK_CLASSES])[0]
        registered = start - timedelta(days=rng.randint(30, 500))
        run(RegisterEmployer(npp=npp, name=f"Dinas Kota {npp}" if government else f"PT Usaha {npp}",
                             branch=plan.branch, kind="government" if government else "company",
                             risk_class="very-low" if government else risk, registered_on=registered))
    counts["employers"] = plan.employers

    weights = [rng.paretovariate(1.1) for _ in npps]
    sizes = [1] * plan.employers
    for index in rng.choices(range(plan.employers), weights, k=plan.members - plan.employers):
        sizes[index] += 1
    next_kpj = plan.first_kpj
    staff: dict[str, list[str]] = {npp: [] for npp in npps}  # active PU members per employer
    employer_of: dict[str, str] = {}
    enrolled_on: dict[str, date] = {}
    gone: dict[str, list[tuple[date, date]]] = {npp: [] for npp in npps}  # (enrolled, exited) of leavers

    def owes(npp: str, month: str) -> bool:
        """Whether anyone on the employer's roster owes `month` (`rules.month_owed`): a payment that bills nobody
        is refused, as for an employer whose last worker left on the 1st of the month or before."""
        return bool(staff[npp]) or any(month_owed(month, enrolled, exited) for enrolled, exited in gone[npp])

    def wage() -> int:
        value = rng.lognormvariate(0, WAGE_SIGMA) * WAGE_MEDIAN
        return int(min(max(value, WAGE_FLOOR), WAGE_CEILING)) // 1_000 * 1_000

    def hire(npp: str, count: int, effective: date) -> None:
        nonlocal next_kpj
        rows = [_person(rng, next_kpj + i, wage(), name="Pekerja") for i in range(count)]
        next_kpj += count
        run(EnrollMembers(npp=npp, effective=effective, members=rows))
        for row in rows:
            staff[npp].append(row.kpj)
            employer_of[row.kpj] = npp
            enrolled_on[row.kpj] = effective
        counts["members"] += count

    for npp, size in zip(npps, sizes):
        hire(npp, size, start)
    bpu: list[tuple[str, str | None]] = []  # (kpj, the month after which they stop paying, or None)
    months = [shift_month(plan.first_month, k) for k in range(plan.months)]
    for _ in range(plan.bpu_members):
        programs = ["JKK", "JKM", "JHT"] if rng.random() < 0.3 else ["JKK", "JKM"]
        row = _person(rng, next_kpj, rng.choice(BPU_INCOMES), segment="BPU", programs=programs, name="Mandiri")
        next_kpj += 1
        run(EnrollMember(member=row, npp=None, branch=plan.branch, effective=start))
        bpu.append((row.kpj, rng.choice(months) if rng.random() < BPU_LAPSING_SHARE else None))
    counts["bpu_members"] = plan.bpu_members
    progress(f"enrolled {counts['members']:,} PU members with {plan.employers:,} employers and "
             f"{plan.bpu_members:,} BPU members")

    late: dict[str, list[str]] = {}  # month in which to pay -> employer NPPs paying an earlier month late
    leavers: list[tuple[str, str, date]] = []  # (kpj, reason, exit date) whose claims are paid next month
    reasons, reason_weights = [r for r, _ in EXIT_REASONS], [w for _, w in EXIT_REASONS]
    for step, month in enumerate(months + [shift_month(months[-1], 1)]):
        in_period = step < len(months)
        previous = shift_month(month, -1)
        # Employers pay last month's contributions by the 15th (late ones a month on, fined).
        if step > 0:
            for npp in npps:
                if not owes(npp, previous):
                    continue
                if rng.random() < LATE_PAYER_SHARE and in_period:
                    late.setdefault(shift_month(month, 1), []).append((npp, previous))
                    continue
                run(PayContribution(npp=npp, month=previous, paid_on=_month_date(month, rng.randint(3, 15)),
                                    **({"payer": "institution", "payer_name": "APBD Kota Bekasi"}
                                       if npp == npps[0] else {})))
                counts["payments"] += 1
        for npp, owed in late.pop(month, []):
            run(PayContribution(npp=npp, month=owed, paid_on=_month_date(month, rng.randint(16, 28))))
            counts["payments"] += 1
        # Claims of last month's leavers.
        for kpj, reason, exited in leavers:
            paid_on = _month_date(month, rng.randint(18, 28))
            programs: list[tuple[str, str | None, str]] = [("JHT", None, "self")]
            if reason == "death":
                programs = [("JKM", None, "spouse"), ("JHT", None, "spouse")]
            elif reason == "work-death":
                programs = [("JKK", "death", "child"), ("JHT", None, "child")]
            elif reason in ("resignation", "end-of-contract", "retirement"):
                programs.append(("JP", None, "self"))
            for program, kind, beneficiary in programs:
                heir = {} if beneficiary == "self" else {"beneficiary_name": f"Ahli Waris {kpj[-4:]}"}
                try:
                    run(PayClaim(kpj=kpj, program=program, kind=kind, incident_date=exited, paid_on=paid_on,
                                 beneficiary=beneficiary, **heir))
                    counts["claims"] += 1
                except RuleViolation:  # nothing to pay yet (no contribution landed before the claim)
                    counts["claims_refused"] += 1
        leavers = []
        # BPU members pay this month by the 15th.
        if in_period:
            for kpj, lapse_after in bpu:
                if (lapse_after is not None and month > lapse_after) or rng.random() > BPU_PAYING_SHARE:
                    continue
                run(PayContribution(kpj=kpj, month=month, paid_on=_month_date(month, rng.randint(1, 15))))
                counts["payments"] += 1
        # December's yield, credited on the 31st once December's contributions are in.
        if previous.endswith("-12") and step > 0:
            year = int(previous[:4])
            run(CreditYield(year=year, rate_percent=Decimal(ANNOUNCED_YIELD_PERCENT.get(year, DEFAULT_YIELD_PERCENT)),
                            credited_on=date(year + 1, 1, 31)))
        if not in_period:
            break
        # Leavers and hires of this month.
        for npp in npps:
            for kpj in list(staff[npp]):
                if rng.random() < MONTHLY_EXIT_RATE:
                    reason = rng.choices(reasons, reason_weights)[0]
                    exited = _month_date(month, rng.randint(1, 28))
                    run(ExitMember(kpj=kpj, reason=reason, exit_date=exited))
                    staff[npp].remove(kpj)
                    gone[npp].append((enrolled_on[kpj], exited))
                    leavers.append((kpj, reason, exited))
                    counts["exits"] += 1
            hires = sum(1 for _ in staff[npp] if rng.random() < MONTHLY_HIRE_RATE)
            if hires and step + 1 < len(months):
                hire(npp, hires, _month_date(month, 1))
        progress(f"{month}: {counts['commands']:,} commands so far")
    return counts
