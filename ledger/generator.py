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

from ledger.commands import (
    Command,
    CreditYield,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    MemberRow,
    PayClaim,
    PayContribution,
    RegisterEmployer,
)
from ledger.errors import RuleViolation
from ledger.events import Beneficiary, ClaimKind, PayerRole
from ledger.rules import Program, month_owed, shift_month

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
BPU_JHT_SHARE = 0.3  # BPU members who also save for old age (JHT); the rest take JKK and JKM only
FEMALE_SHARE = 0.45  # of the generated members (a woman's NIK adds 40 to the day of birth)
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
    female = rng.random() < FEMALE_SHARE
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
    branch = _BranchHistory(app, plan)
    branch.register_employers()
    branch.enroll_staff()
    branch.enroll_bpu()
    progress(f"enrolled {branch.counts['members']:,} PU members with {plan.employers:,} employers and "
             f"{plan.bpu_members:,} BPU members")
    months = branch.months
    for step, month in enumerate([*months, shift_month(months[-1], 1)]):
        in_period = step < len(months)
        previous = shift_month(month, -1)
        if step > 0:
            branch.pay_employers(month, previous, in_period=in_period)
        branch.pay_late(month)
        branch.pay_claims(month)
        if in_period:
            branch.pay_bpu(month)
        if previous.endswith("-12") and step > 0:
            branch.credit_yield(int(previous[:4]))
        if not in_period:
            break
        branch.exits_and_hires(month, hiring=step + 1 < len(months))
        progress(f"{month}: {branch.counts['commands']:,} commands so far")
    return branch.counts


def _claims(reason: str) -> list[tuple[Program, ClaimKind | None, Beneficiary]]:
    """The (program, kind, beneficiary) claims a leaver's exit reason gives rise to."""
    if reason == "death":
        return [(Program.JKM, None, Beneficiary.SPOUSE), (Program.JHT, None, Beneficiary.SPOUSE)]
    if reason == "work-death":
        return [(Program.JKK, ClaimKind.JKK_DEATH, Beneficiary.CHILD), (Program.JHT, None, Beneficiary.CHILD)]
    if reason in ("resignation", "end-of-contract", "retirement"):
        return [(Program.JHT, None, Beneficiary.SELF), (Program.JP, None, Beneficiary.SELF)]
    return [(Program.JHT, None, Beneficiary.SELF)]


class _BranchHistory:
    """One branch while `generate_branch` writes its history: the plan, the seeded randomness, who works where.

    Every draw from `rng` happens in a fixed order, so the same plan writes the same history, event for event.
    """

    def __init__(self, app: Any, plan: BranchPlan) -> None:
        self.app = app
        self.plan = plan
        self.rng = random.Random(plan.seed)  # noqa: S311 - made-up data, the same for the same seed; no secret
        self.counts = {"commands": 0, "employers": 0, "members": 0, "bpu_members": 0, "exits": 0, "claims": 0,
                       "payments": 0, "claims_refused": 0}
        self.start = _month_date(plan.first_month, 1)
        self.months = [shift_month(plan.first_month, k) for k in range(plan.months)]
        self.npps = [f"{plan.first_npp + i:08d}" for i in range(plan.employers)]
        self.next_kpj = plan.first_kpj
        self.staff: dict[str, list[str]] = {npp: [] for npp in self.npps}  # active PU members per employer
        self.enrolled_on: dict[str, date] = {}
        self.gone: dict[str, list[tuple[date, date]]] = {npp: [] for npp in self.npps}  # (enrolled, exited) of leavers
        self.bpu: list[tuple[str, str | None]] = []  # (kpj, the month after which they stop paying, or None)
        self.late: dict[str, list[tuple[str, str]]] = {}  # month in which to pay -> (NPP, earlier month paid late)
        self.leavers: list[tuple[str, str, date]] = []  # (kpj, reason, exit date) whose claims are paid next month

    def run(self, command: Command) -> dict[str, Any]:
        self.counts["commands"] += 1
        result: dict[str, Any] = self.app.execute(command)
        return result

    def register_employers(self) -> None:
        rng = self.rng
        for i, npp in enumerate(self.npps):
            government = i == 0
            risk = rng.choices([r for r, _ in RISK_CLASSES], [w for _, w in RISK_CLASSES])[0]
            registered = self.start - timedelta(days=rng.randint(30, 500))
            self.run(RegisterEmployer(npp=npp, name=f"Dinas Kota {npp}" if government else f"PT Usaha {npp}",
                                      branch=self.plan.branch, kind="government" if government else "company",
                                      risk_class="very-low" if government else risk, registered_on=registered))
        self.counts["employers"] = self.plan.employers

    def enroll_staff(self) -> None:
        plan, rng = self.plan, self.rng
        weights = [rng.paretovariate(1.1) for _ in self.npps]
        sizes = [1] * plan.employers
        for index in rng.choices(range(plan.employers), weights, k=plan.members - plan.employers):
            sizes[index] += 1
        for npp, size in zip(self.npps, sizes, strict=True):
            self.hire(npp, size, self.start)

    def enroll_bpu(self) -> None:
        plan, rng = self.plan, self.rng
        for _ in range(plan.bpu_members):
            programs = ["JKK", "JKM", "JHT"] if rng.random() < BPU_JHT_SHARE else ["JKK", "JKM"]
            row = _person(rng, self.next_kpj, rng.choice(BPU_INCOMES), segment="BPU", programs=programs,
                          name="Mandiri")
            self.next_kpj += 1
            self.run(EnrollMember(member=row, npp=None, branch=plan.branch, effective=self.start))
            self.bpu.append((row.kpj, rng.choice(self.months) if rng.random() < BPU_LAPSING_SHARE else None))
        self.counts["bpu_members"] = plan.bpu_members

    def owes(self, npp: str, month: str) -> bool:
        """Whether anyone on the employer's roster owes `month` (`rules.month_owed`): a payment that bills nobody
        is refused, as for an employer whose last worker left on the 1st of the month or before."""
        return bool(self.staff[npp]) or any(month_owed(month, enrolled, exited) for enrolled, exited in self.gone[npp])

    def wage(self) -> int:
        value = self.rng.lognormvariate(0, WAGE_SIGMA) * WAGE_MEDIAN
        return int(min(max(value, WAGE_FLOOR), WAGE_CEILING)) // 1_000 * 1_000

    def hire(self, npp: str, count: int, effective: date) -> None:
        rows = [_person(self.rng, self.next_kpj + i, self.wage(), name="Pekerja") for i in range(count)]
        self.next_kpj += count
        self.run(EnrollMembers(npp=npp, effective=effective, members=rows))
        for row in rows:
            self.staff[npp].append(row.kpj)
            self.enrolled_on[row.kpj] = effective
        self.counts["members"] += count

    def pay_employers(self, month: str, previous: str, *, in_period: bool) -> None:
        """Employers pay last month's contributions by the 15th (late ones a month on, fined)."""
        rng = self.rng
        for npp in self.npps:
            if not self.owes(npp, previous):
                continue
            if rng.random() < LATE_PAYER_SHARE and in_period:
                self.late.setdefault(shift_month(month, 1), []).append((npp, previous))
                continue
            government = npp == self.npps[0]
            self.run(PayContribution(npp=npp, month=previous, paid_on=_month_date(month, rng.randint(3, 15)),
                                     payer=PayerRole.INSTITUTION if government else None,
                                     payer_name="APBD Kota Bekasi" if government else None))
            self.counts["payments"] += 1

    def pay_late(self, month: str) -> None:
        for npp, owed in self.late.pop(month, []):
            self.run(PayContribution(npp=npp, month=owed, paid_on=_month_date(month, self.rng.randint(16, 28))))
            self.counts["payments"] += 1

    def pay_claims(self, month: str) -> None:
        """The claims of last month's leavers."""
        for kpj, reason, exited in self.leavers:
            paid_on = _month_date(month, self.rng.randint(18, 28))
            for program, kind, beneficiary in _claims(reason):
                heir = None if beneficiary is Beneficiary.SELF else f"Ahli Waris {kpj[-4:]}"
                try:
                    self.run(PayClaim(kpj=kpj, program=program, kind=kind, incident_date=exited, paid_on=paid_on,
                                      beneficiary=beneficiary, beneficiary_name=heir))
                    self.counts["claims"] += 1
                except RuleViolation:  # nothing to pay yet (no contribution landed before the claim)
                    self.counts["claims_refused"] += 1
        self.leavers = []

    def pay_bpu(self, month: str) -> None:
        """BPU members pay this month by the 15th."""
        rng = self.rng
        for kpj, lapse_after in self.bpu:
            if (lapse_after is not None and month > lapse_after) or rng.random() > BPU_PAYING_SHARE:
                continue
            self.run(PayContribution(kpj=kpj, month=month, paid_on=_month_date(month, rng.randint(1, 15))))
            self.counts["payments"] += 1

    def credit_yield(self, year: int) -> None:
        """December's yield, credited on the 31st once December's contributions are in."""
        self.run(CreditYield(year=year, rate_percent=Decimal(ANNOUNCED_YIELD_PERCENT.get(year, DEFAULT_YIELD_PERCENT)),
                             credited_on=date(year + 1, 1, 31)))

    def exits_and_hires(self, month: str, *, hiring: bool) -> None:
        """This month's leavers, and hires (with `hiring`) about as many as a steady workforce needs."""
        rng = self.rng
        reasons, reason_weights = [r for r, _ in EXIT_REASONS], [w for _, w in EXIT_REASONS]
        for npp in self.npps:
            for kpj in list(self.staff[npp]):
                if rng.random() < MONTHLY_EXIT_RATE:
                    reason = rng.choices(reasons, reason_weights)[0]
                    exited = _month_date(month, rng.randint(1, 28))
                    self.run(ExitMember(kpj=kpj, reason=reason, exit_date=exited))
                    self.staff[npp].remove(kpj)
                    self.gone[npp].append((self.enrolled_on[kpj], exited))
                    self.leavers.append((kpj, reason, exited))
                    self.counts["exits"] += 1
            hires = sum(1 for _ in self.staff[npp] if rng.random() < MONTHLY_HIRE_RATE)  # drawn even when not hiring
            if hires and hiring:
                self.hire(npp, hires, _month_date(month, 1))
