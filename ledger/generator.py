"""Synthetic but valid members and branch histories, for the demo, the benchmarks, the tests and `scripts/generate`.

Every row passes the real validators: an 11-digit KPJ from a running number, and a NIK whose birth-date part
(DDMMYY) matches the birth date, from region 327501 (Bekasi) with a non-zero serial.
"""

from __future__ import annotations

import random
from calendar import monthrange
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from ledger import events as ev
from ledger import rules
from ledger.commands import (
    CLOSE_MEMBERS_MAX,
    CLOSE_PAYERS_MAX,
    CloseBills,
    Command,
    CreditYield,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    MemberRow,
    PayClaim,
    PayContribution,
    ReceiveMoney,
    RefundMoney,
    RegisterEmployer,
)
from ledger.domain import OpenBill, PayerAccount, bill_lines_id, payer_account_id
from ledger.errors import RuleViolation
from ledger.events import Beneficiary, ClaimKind, PayerRole
from ledger.rules import Program, Segment, month_owed, shift_month

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
    collections: bool = False  # bills at each monthly close and money as it arrives, instead of `contribution pay`
    budget_members: int = 0  # with collections: BPU members whose contributions the regional budget (APBD) pays

    def __post_init__(self) -> None:
        if not 1 <= self.employers <= self.members <= GENERATE_MEMBERS_MAX:
            raise ValueError(f"need 1 <= employers <= members <= {GENERATE_MEMBERS_MAX:,}")
        if not 1 <= self.months <= GENERATE_MONTHS_MAX:
            raise ValueError(f"months must be between 1 and {GENERATE_MONTHS_MAX}")
        if not 0 <= self.bpu_members <= GENERATE_MEMBERS_MAX:
            raise ValueError(f"bpu members must be between 0 and {GENERATE_MEMBERS_MAX:,}")
        if not 0 <= self.budget_members <= GENERATE_MEMBERS_MAX:
            raise ValueError(f"budget members must be between 0 and {GENERATE_MEMBERS_MAX:,}")
        if self.budget_members and not self.collections:
            raise ValueError("budget members are generated with collections only (--collections)")


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

    With `plan.collections`, contributions are billed and paid as money instead (`_CollectingBranch`): each month is
    closed (`CloseBills`) and the payers' money recorded as it arrives (`ReceiveMoney`, `RefundMoney`).
    """
    branch = _CollectingBranch(app, plan) if plan.collections else _BranchHistory(app, plan)
    branch.register_employers()
    branch.enroll_staff()
    branch.enroll_bpu()
    if isinstance(branch, _CollectingBranch):
        branch.enroll_budget_members()
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
    if isinstance(branch, _CollectingBranch):
        branch.counts.update(branch.money_totals())
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


# --- Collections (`ledger generate --collections`): bills at each monthly close, money as it arrives --------------
# The payers' habits. The draws come from a generator of their own (`_CollectingBranch.money`), so the roster's
# draws (exits, hires, claims) do not depend on the money's.

LATE_EMPLOYER_SHARE = 0.08  # companies that pay every bill 1 to LATE_MONTHS_MAX months after it is due (fined)
LATE_MONTHS_MAX = 3
SHORT_EMPLOYER_SHARE = 0.05  # companies that pay short for a few months, then catch up with the fines
SHORT_MONTHS = (2, 3)  # how many months they pay short
SHORT_PAID_PERCENT = (80, 95)  # of each bill, while they pay short
SHORT_STEPS_MIN = 3  # months of money a short payer needs: an on-time one, one paid short, one to catch up
SHORT_ROUNDING = 1_000  # a short payment is a round figure
BUDGET_MONTHS = 6  # the regional budget (APBD) pays the city's dues a half-year at a time, in one transfer
BUDGET_MARGIN_PERCENT = 3  # the budget plans the coming months at the last month's bills plus this, for new hires
BUDGET_ROUNDING = 1_000_000  # a budget transfer is a round figure: the excess stays as credit for the next bill
BUDGET_PAYER_NAME = "APBD Kota Bekasi"
BUDGET_MEMBER_INCOME = 1_000_000  # vulnerable workers the budget pays for: the lowest income, JKK + JKM (Rp16,800)
ON_TIME_DAYS = (3, 15)  # days of the month on which on-time money arrives (due the 15th)
LATE_DAYS = (1, 15)  # days on which late money arrives: a bill paid k months after its due month is fined k months
REFUND_DAYS = (20, 28)  # the fund refunds the mistaken second transfer later in the month it arrived
DUPLICATE_DELAY_DAYS = (1, 3)  # the mistaken second transfer arrives a few days after the first
BPU_CATCH_UP_SHARE = 0.5  # BPU members behind with their bills who pay everything they owe when they pay again


MONEY_FIGURES = ("billed", "received", "applied", "fines", "refunded", "unapplied", "open_bills", "outstanding")


def fine_on(app: Any, bill: OpenBill, day: date) -> int:
    """The late fine of an open bill settled on `day`, as the application rule computes it: PU only, per line."""
    if bill.bill.segment is not Segment.PU:
        return 0
    months_late = rules.months_late(bill.bill.due_date, day)
    if months_late == 0:
        return 0
    lines = app.find(bill_lines_id(bill.bill.bill_id)).lines
    return sum(rules.late_fine(line.amount, months_late, bill.bill.due_date) for line in lines)


def owed_on(app: Any, account: PayerAccount | None, day: date, bills: int | None = None) -> int:
    """What money arriving on `day` must bring to settle the account's oldest `bills` open bills (all without
    `bills`), fines included, after the credit it holds: each settles on `day` (the rule applies the new money last)."""
    if account is None:
        return 0
    chosen = account.open_bills if bills is None else account.open_bills[:bills]
    return max(0, sum(b.bill.total + fine_on(app, b, day) for b in chosen) - account.unapplied)


@dataclass
class _Habit:
    """How one employer pays: on time (the default), late by `late` months, or short in the steps of `short`."""

    late: int = 0
    short: tuple[int, ...] = ()
    catch_up: int | None = None  # the step at which a short payer pays everything owed


class _CollectingBranch(_BranchHistory):
    """A branch whose contributions are billed and paid as money (`BranchPlan.collections`).

    At step k (month M) the previous month is closed for the employers (and the paying body's BPU members), month M
    for the self-paying BPU members; then the money of the month arrives. Most employers pay their bill by the 15th,
    quoting its payment code; a few pay 1-3 months late, with the fine; a few pay short for two or three months and
    then catch up; one pays the same bill twice by mistake and the fund refunds the second transfer; the city's
    regional budget pays a half-year at a time, in advance, in one transfer (its credit settles each bill as it closes).
    """

    def __init__(self, app: Any, plan: BranchPlan) -> None:
        super().__init__(app, plan)
        self.money = random.Random(f"collections-{plan.seed}")  # noqa: S311 - made-up data, as `rng`
        self.counts.update({"budget_members": 0, "bills": 0, "receipts": 0, "bills_settled": 0, "refunds": 0})
        self.habits: dict[str, _Habit] = {}
        self.twice: str | None = None  # the employer that pays a bill twice, until it has
        self.twice_step = 0
        self.references = 0

    # --- who pays how ---

    def register_employers(self) -> None:
        super().register_employers()
        money, steps = self.money, self.plan.months  # money arrives at steps 1..months
        companies = money.sample(self.npps[1:], len(self.npps) - 1)
        late = max(1, round(len(companies) * LATE_EMPLOYER_SHARE))
        short = max(1, round(len(companies) * SHORT_EMPLOYER_SHARE)) if steps >= SHORT_STEPS_MIN else 0
        self.habits = {npp: _Habit() for npp in self.npps}
        for npp in companies[:late]:
            self.habits[npp].late = money.randint(1, LATE_MONTHS_MAX)
        for npp in companies[late:late + short]:
            length = min(money.randint(*SHORT_MONTHS), steps - 2)
            first = money.randint(1, steps - length - 1)
            self.habits[npp].short = tuple(range(first, first + length))
            self.habits[npp].catch_up = first + length
        on_time = companies[late + short:]
        if on_time:
            self.twice = money.choice(on_time)
            self.twice_step = money.randint(1, steps)

    def enroll_budget_members(self) -> None:
        """Vulnerable workers the city's budget pays for: BPU members with the city government as paying body."""
        count = self.plan.budget_members
        if not count:
            return
        rows = [_person(self.rng, self.next_kpj + i, BUDGET_MEMBER_INCOME, segment="BPU", programs=["JKK", "JKM"],
                        name="Pekerja Rentan") for i in range(count)]
        self.next_kpj += count
        self.run(EnrollMembers(npp=self.npps[0], effective=self.start, members=rows))
        self.counts["budget_members"] = count

    # --- the monthly close ---

    def close(self, month: str, *, npps: Sequence[str] = (), kpjs: Sequence[str] = ()) -> None:
        for i in range(0, len(npps), CLOSE_PAYERS_MAX):
            self.closed(self.run(CloseBills(month=month, npps=list(npps[i:i + CLOSE_PAYERS_MAX]))))
        for i in range(0, len(kpjs), CLOSE_MEMBERS_MAX):
            self.closed(self.run(CloseBills(month=month, kpjs=list(kpjs[i:i + CLOSE_MEMBERS_MAX]))))

    def closed(self, result: dict[str, Any]) -> None:
        self.counts["bills"] += result["bills"]
        self.counts["bills_settled"] += result["settled_from_credit"]

    # --- money ---

    def account(self, npp: str | None, kpj: str | None = None) -> PayerAccount | None:
        account: PayerAccount | None = self.app.find(payer_account_id(npp, kpj))
        return account

    def reference(self, day: date) -> str:
        """A bank transfer's reference: unique in the branch (its first NPP), in the order the money arrives."""
        self.references += 1
        return f"BNI{self.plan.first_npp:08d}{day:%y%m%d}{self.references:05d}"

    def receive(self, day: date, amount: int, *, npp: str | None = None, kpj: str | None = None,
                code: str | None = None, institution: bool = False) -> str:
        reference = self.reference(day)
        result = self.run(ReceiveMoney(
            reference=reference, code=code, npp=None if code else npp, kpj=None if code else kpj, amount=amount,
            received_on=day, payer=PayerRole.INSTITUTION if institution else None,
            payer_name=BUDGET_PAYER_NAME if institution else None))
        self.counts["receipts"] += 1
        self.counts["bills_settled"] += result["bills_settled"]
        return reference

    def pay_employers(self, month: str, previous: str, *, in_period: bool) -> None:
        """Close last month for the employers (and the budget's BPU members), then their money of this month."""
        step = self.months.index(month) if in_period else len(self.months)
        self.close(previous, npps=self.npps)
        self.pay_budget(month, step)
        for npp in self.npps[1:]:
            habit = self.habits[npp]
            if habit.late:
                self.pay_late_bill(npp, month, habit.late)
            elif step in habit.short:
                self.pay_short(npp, month)
            elif step == habit.catch_up:
                self.pay_all(npp, _month_date(month, self.money.randint(*LATE_DAYS)))
            else:
                self.pay_on_time(npp, month, step)

    def pay_on_time(self, npp: str, month: str, step: int) -> None:
        account = self.account(npp)
        if account is None or not account.open_bills:
            return
        day = _month_date(month, self.money.randint(*ON_TIME_DAYS))
        amount = owed_on(self.app, account, day)
        if not amount:
            return
        code = account.open_bills[0].bill.payment_code if len(account.open_bills) == 1 else None
        self.receive(day, amount, npp=npp, code=code)
        if npp == self.twice and step >= self.twice_step:
            # The same transfer again by mistake, a few days on; the fund refunds it later in the month.
            again = day + timedelta(days=self.money.randint(*DUPLICATE_DELAY_DAYS))
            duplicate = self.receive(again, amount, npp=npp, code=code)
            refunded_on = _month_date(month, self.money.randint(*REFUND_DAYS))
            self.run(RefundMoney(npp=npp, amount=amount, refunded_on=refunded_on, command_id=f"refund:{duplicate}",
                                 reason=f"paid twice by mistake: transfer {duplicate} returned"))
            self.counts["refunds"] += 1
            self.twice = None

    def pay_late_bill(self, npp: str, month: str, late: int) -> None:
        """A late payer settles, by the 15th, the bills due `late` months before (and any older), with the fine of
        `late` months."""
        account = self.account(npp)
        if account is None:
            return
        due_by = rules.pu_due_date(_month_date(shift_month(month, -late - 1), 1))
        overdue = sum(1 for b in account.open_bills if b.bill.due_date <= due_by)
        if not overdue:
            return
        day = _month_date(month, self.money.randint(*LATE_DAYS))
        amount = owed_on(self.app, account, day, overdue)
        if amount:
            self.receive(day, amount, npp=npp)

    def pay_short(self, npp: str, month: str) -> None:
        account = self.account(npp)
        if account is None or not account.open_bills:
            return
        day = _month_date(month, self.money.randint(*ON_TIME_DAYS))
        share = self.money.randint(*SHORT_PAID_PERCENT)
        amount = account.open_bills[-1].bill.total * share // 100 // SHORT_ROUNDING * SHORT_ROUNDING
        if amount:
            self.receive(day, amount, npp=npp, code=account.open_bills[-1].bill.payment_code)

    def pay_all(self, npp: str, day: date) -> None:
        amount = owed_on(self.app, self.account(npp), day)
        if amount:
            self.receive(day, amount, npp=npp)

    def pay_budget(self, month: str, step: int) -> None:
        """The regional budget pays in advance for the city government, a half-year in one transfer: at the first
        close what it owes and the rest of the half-year, then at the start of every BUDGET_MONTHS the next ones,
        the coming months at the last month's bills with a margin, rounded up to a round figure."""
        if step == 1:
            ahead = BUDGET_MONTHS - 1
        elif step % BUDGET_MONTHS == 0:
            ahead = BUDGET_MONTHS
        else:
            return
        npp = self.npps[0]
        account = self.account(npp)
        if account is None or not account.bills_by_month:
            return
        day = _month_date(month, self.money.randint(*ON_TIME_DAYS))
        last = max(m for m, _segment in account.bills_by_month)
        last_total = sum(line.amount for (m, _segment), ids in account.bills_by_month.items() if m == last
                         for bill_id in ids for line in self.app.find(bill_lines_id(bill_id)).lines)
        coming = ahead * last_total * (100 + BUDGET_MARGIN_PERCENT) // 100
        amount = owed_on(self.app, account, day) + coming
        amount = -(-amount // BUDGET_ROUNDING) * BUDGET_ROUNDING
        if amount:
            self.receive(day, amount, npp=npp, institution=True)

    def pay_late(self, month: str) -> None:
        """Late money is part of `pay_employers` here."""

    def pay_bpu(self, month: str) -> None:
        """Close this month for the self-paying BPU members; those who pay do by the 15th, quoting the bill's code:
        this month's contribution, or (some of those behind) everything they owe."""
        self.close(month, kpjs=[kpj for kpj, _lapse in self.bpu])
        money = self.money
        for kpj, lapse_after in self.bpu:
            if (lapse_after is not None and month > lapse_after) or money.random() > BPU_PAYING_SHARE:
                continue
            account = self.account(None, kpj)
            bill = next((b for b in account.open_bills if b.bill.month == month), None) if account else None
            if account is None or bill is None:
                continue
            day = _month_date(month, money.randint(1, 15))
            amount = bill.bill.total
            if len(account.open_bills) > 1 and money.random() < BPU_CATCH_UP_SHARE:
                amount = owed_on(self.app, account, day)
            self.receive(day, amount, kpj=kpj, code=bill.bill.payment_code)

    # --- the books at the end ---

    def payers(self) -> list[tuple[str | None, str | None]]:
        return [(npp, None) for npp in self.npps] + [(None, kpj) for kpj, _lapse in self.bpu]

    def money_totals(self) -> dict[str, int]:
        """The branch's money at the end, from its payers' accounts: received = applied + refunded + unapplied."""
        totals = dict.fromkeys(MONEY_FIGURES, 0)
        for npp, kpj in self.payers():
            for key, value in account_money(self.app, npp, kpj).items():
                totals[key] += value
        return totals


def account_money(app: Any, npp: str | None, kpj: str | None) -> dict[str, int]:
    """A payer's money from its account's events: billed; received, applied to bills (with the fines), refunded, and
    what is left unapplied; its open bills and their amount (fines not included)."""
    money = dict.fromkeys(MONEY_FIGURES, 0)
    account: PayerAccount | None = app.find(payer_account_id(npp, kpj))
    if account is None:
        return money
    for _version, contract in app.stored_contracts(account.id):
        if isinstance(contract, ev.BillClosed):
            money["billed"] += contract.total
        elif isinstance(contract, ev.MoneyReceived):
            money["received"] += contract.amount
        elif isinstance(contract, ev.BillSettled):
            money["applied"] += contract.total
            money["fines"] += contract.fine
        elif isinstance(contract, ev.MoneyRefunded):
            money["refunded"] += contract.amount
    money["unapplied"] = account.unapplied
    money["open_bills"] = len(account.open_bills)
    money["outstanding"] = sum(b.bill.total for b in account.open_bills)
    return money
