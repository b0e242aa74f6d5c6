"""No sequence of commands, valid or refused, breaks the books.

Hypothesis draws sequences of commands over a small world (two employers, four KPJs, dates from 2014 to the
clock's day) so that commands meet each other often: enrollments, payments, wage changes, exits, claims with random
amounts, yield credits and reversals of random earlier events. Refused commands (`LedgerError`) are part of the
game. After each sequence the books are read back from the event store and checked.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import events as ev
from ledger.commands import (
    ChangeWage,
    CreditYield,
    EnrollMember,
    ExitMember,
    MemberRow,
    PayClaim,
    PayContribution,
    RegisterEmployer,
    Reverse,
)
from ledger.domain import ContributionMonth, Member, Payment
from ledger.errors import LedgerError
from ledger.rules import Program, Segment
from tests.support.scenario import BIRTH, TODAY, kpj, new_ledger, nik

COMPANY, CITY = "10000001", "10000002"
NPPS = [COMPANY, CITY]
KPJS = [kpj(i) for i in range(1, 5)]
FIRST_DAY = date(2014, 1, 1)  # before the rule tables begin (July 2015): some commands must be refused for it
ROSTER_FIRST_DAY = date(2015, 1, 1)  # long enough ago for partial JHT payouts (10 years)
NOTIFICATION_PAGE = 1_000
STEPS_MAX = 30

KINDS = {Program.JHT: ["full", "partial-housing", "partial-other"], Program.JKK: ["death", "disability", "care"],
         Program.JKM: ["death-benefit"], Program.JP: ["lump-sum"]}
STEP_KINDS = ["enroll", "pay", "pay", "pay", "wage", "exit", "exit", "claim", "claim", "claim", "claim", "claim",
              "reverse", "reverse", "reverse", "yield"]


def clamp(day: date) -> date:
    return min(day, TODAY)


def month_key(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_keys(first: date, last: date) -> list[str]:
    keys, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


class World:
    """A fresh ledger, steps drawn from what it holds (mostly sensible, sometimes not), and what the checks need."""

    def __init__(self) -> None:
        self.app = new_ledger()
        self.claims_checked = 0
        self.accepted: dict[str, int] = defaultdict(int)
        for npp, kind in ((COMPANY, "company"), (CITY, "government")):
            self.app.execute(RegisterEmployer(npp=npp, name=f"Employer {npp}", branch="BEKASI-KOTA", kind=kind,
                                              risk_class="medium", registered_on=date(2023, 1, 2)))

    # --- drawing a step ----------------------------------------------------------------------------------------

    def enrolled(self) -> list[Member]:
        found = []
        for k in KPJS:
            with contextlib.suppress(LedgerError):
                found.append(self.app.member(k))
        return found

    def draw_enroll(self, data, index: int | None = None, first: date = FIRST_DAY, last: date = TODAY) -> tuple:
        index = data.draw(st.integers(0, len(KPJS) - 1)) if index is None else index
        npp = data.draw(st.sampled_from([COMPANY, COMPANY, COMPANY, CITY, None]))
        sensible = st.integers(1_000_000, 20_000_000)
        wage = data.draw(st.one_of(sensible, sensible, sensible, st.integers(1, 25_000_000)))
        programs = data.draw(st.one_of(st.none(), st.none(), st.none(),
                                       st.sets(st.sampled_from(list(Program)), min_size=1).map(sorted)))
        return ("enroll", index, npp, wage, programs, data.draw(st.dates(first, last)))

    def draw(self, data) -> tuple:
        kind = data.draw(st.sampled_from(STEP_KINDS))
        members = self.enrolled()
        if kind == "enroll" or not members:
            return self.draw_enroll(data)
        member = members[data.draw(st.integers(0, len(members) - 1))]
        index = KPJS.index(member.kpj)
        since = st.dates(member.enrolled_on, TODAY)
        if kind == "pay":
            payer = data.draw(st.sampled_from([member.npp or index, member.npp or index, COMPANY, CITY]))
            month = data.draw(st.sampled_from(month_keys(member.enrolled_on, TODAY)))
            return ("pay", payer, month, data.draw(st.integers(1, 3)), data.draw(st.integers(0, 120)))
        if kind == "wage":
            return ("wage", index, data.draw(st.integers(1_000_000, 20_000_000)), data.draw(since))
        if kind == "exit":
            return ("exit", index, data.draw(st.sampled_from(list(ev.ExitReason))), data.draw(since))
        if kind == "claim":
            # Mostly members who left, claiming from their own accounts (JHT, JP) the usual kind of claim, on or
            # after the exit date: the claims that move balances. Sometimes anything at all.
            exited = [m for m in members if m.exit is not None]
            if exited and data.draw(st.integers(0, 3)) > 0:
                member = exited[data.draw(st.integers(0, len(exited) - 1))]
                index, since = KPJS.index(member.kpj), st.dates(member.enrolled_on, TODAY)
            accounts = [p for p in (Program.JHT, Program.JP) if p in member.programs]
            program = data.draw(st.sampled_from(sorted(member.programs | {Program.JKK}) + accounts * 2))
            fitting = st.sampled_from([ev.ClaimKind(k) for k in KINDS[program]])
            claim_kind = data.draw(st.one_of(st.none(), st.none(), fitting, st.sampled_from(list(ev.ClaimKind))))
            incident = member.exit.exit_date if member.exit is not None and data.draw(st.integers(0, 3)) > 0 \
                else data.draw(since)
            amount = data.draw(st.one_of(st.none(), st.none(), st.integers(1, 3_000_000)))
            return ("claim", index, program, claim_kind, incident, data.draw(st.integers(0, 400)), amount)
        if kind == "reverse":
            return ("reverse", data.draw(st.integers(0, 10_000)), data.draw(st.integers(0, 90)))
        return ("yield", data.draw(st.sampled_from([2023, 2024, 2025])),
                data.draw(st.decimals(min_value=0, max_value=10, places=2)))

    # --- running a step ----------------------------------------------------------------------------------------

    def run(self, step: tuple) -> None:
        try:
            if getattr(self, f"_{step[0]}")(*step[1:]) is not None:
                self.accepted[step[0]] += 1
        except LedgerError:
            pass  # a refusal is a fine outcome; the checks look at what was written

    def _enroll(self, index, npp, wage, programs, effective):
        segment = Segment.PU if npp == COMPANY else Segment.BPU
        row = MemberRow(kpj=KPJS[index], nik=nik(BIRTH, index + 1), name=f"Pekerja {index}", birth_date=BIRTH,
                        segment=segment, wage=wage, programs=programs)
        return self.app.execute(EnrollMember(member=row, npp=npp, branch=None if npp else "BEKASI-KOTA",
                                             effective=effective))

    def _pay(self, payer, month, count, delay_days):
        last = month_keys(date(int(month[:4]), int(month[5:]), 1), TODAY)[:count][-1]
        paid_on = clamp(date(int(last[:4]), int(last[5:]), 10) + timedelta(days=delay_days))
        if isinstance(payer, int):
            return self.app.execute(PayContribution(kpj=KPJS[payer], month=month, months=count, paid_on=paid_on))
        return self.app.execute(PayContribution(npp=payer, month=month, months=count, paid_on=paid_on))

    def _wage(self, index, wage, effective):
        return self.app.execute(ChangeWage(kpj=KPJS[index], wage=wage, effective=effective))

    def _exit(self, index, reason, exit_date):
        return self.app.execute(ExitMember(kpj=KPJS[index], reason=reason, exit_date=exit_date))

    def _claim(self, index, program, kind, incident, delay_days, amount):
        member = self.app.member(KPJS[index])
        paid_on = clamp(incident + timedelta(days=delay_days))
        before = self.app.program_balance(member, program, paid_on)  # what the books say before the claim
        died = member.exit is not None and member.exit.reason.value in ("death", "work-death")
        heir = {"beneficiary": "other-heir", "beneficiary_name": "Ahli Waris"} if died or kind in (
            "death", "death-benefit") else {}
        result = self.app.execute(PayClaim(kpj=KPJS[index], program=program, kind=kind, incident_date=incident,
                                           paid_on=paid_on, amount=amount, **heir))
        if program in (Program.JHT, Program.JP):  # the individual accounts
            assert result["amount"] <= before, f"a claim of {result['amount']} exceeded the balance {before}"
            self.claims_checked += 1
        return result

    def _reverse(self, pick, delay_days):
        # Contributions and claims first, so that most picks are reversible; any other event is refused.
        rows = [row for member in self.enrolled() for row in self.app.history(kpj=member.kpj)]
        reversible = ("ContributionPaid", "ClaimPaid")
        candidates = [r for r in rows if r["type"] in reversible] + [r for r in rows if r["type"] not in reversible]
        if not candidates:
            return None
        target = candidates[pick % len(candidates)]
        reversed_on = clamp(date.fromisoformat(target["effective_date"]) + timedelta(days=delay_days))
        return self.app.execute(Reverse(event_id=target["event_id"], reason="property test", reversed_on=reversed_on))

    def _yield(self, year, rate_percent):
        return self.app.execute(CreditYield(year=year, rate_percent=Decimal(rate_percent)))

    # --- reading the books back --------------------------------------------------------------------------------

    def aggregates(self) -> list:
        ids, start = [], 1
        while True:
            page = self.app.recorder.select_notifications(start=start, limit=NOTIFICATION_PAGE)
            ids.extend(n.originator_id for n in page)
            if len(page) < NOTIFICATION_PAGE:
                break
            start = page[-1].id + 1
        return [self.app.repository.get(i) for i in dict.fromkeys(ids)]


def check_individual_accounts_never_go_negative(world: World, members: list[Member]) -> None:
    app = world.app
    for member in members:
        months = app.contribution_months(member)
        days = {TODAY} | {c.effective_date() for r in [member, *months] for _, c in r.recorded}
        for program in (Program.JHT, Program.JP):
            for day in sorted(days):
                balance = app.program_balance(member, program, day, months)
                assert balance >= 0, f"{program.value} balance of {member.kpj} is {balance} on {day}"


def check_contribution_lines(months: list[ContributionMonth]) -> list[ev.ContributionPaid]:
    lines = []
    for record in months:
        current = None
        for _, contract in record.recorded:
            if isinstance(contract, ev.ContributionPaid):
                assert contract.total == sum(s.employer + s.worker for s in contract.shares.values()) + contract.fine
                jkk = contract.shares.get(Program.JKK)
                assert contract.fine >= 0 and contract.jkp_from_jkk <= (jkk.employer + jkk.worker if jkk else 0)
                assert current is None, f"month {record.month} of {record.kpj} paid twice without a reversal"
                current = contract
                lines.append(contract)
            elif isinstance(contract, ev.ContributionReversed):
                assert current is not None, "a reversal of nothing"
                assert (contract.shares, contract.fine, contract.total) == (current.shares, current.fine,
                                                                            current.total)
                current = None
    return lines


def check_payments(payments: list[Payment], lines: list[ev.ContributionPaid]) -> None:
    by_payment: dict[str, list[ev.ContributionPaid]] = defaultdict(list)
    for line in lines:
        by_payment[line.payment_id].append(line)
    assert set(by_payment) == {p.receipt.payment_id for p in payments}, "a line without a receipt, or vice versa"
    for payment in payments:
        receipt, its_lines = payment.receipt, by_payment[payment.receipt.payment_id]
        assert receipt.total == sum(line.total for line in its_lines)
        assert receipt.fine == sum(line.fine for line in its_lines)
        assert receipt.line_count == len(its_lines)
        assert receipt.member_count == len({line.kpj for line in its_lines})
        program_totals = {p: sum(line.shares[p].employer + line.shares[p].worker for line in its_lines
                                 if p in line.shares) for p in Program}
        assert receipt.program_totals == {p: t for p, t in program_totals.items() if t}
        assert sum(receipt.program_totals.values()) + receipt.fine == receipt.total


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_sequence_of_commands_breaks_the_books(data):
    world = World()
    for index in range(len(KPJS)):  # a roster first, enrolled early, so that later steps meet real members
        world.run(world.draw_enroll(data, index, first=ROSTER_FIRST_DAY, last=date(2024, 12, 31)))
    for _ in range(data.draw(st.integers(5, STEPS_MAX), label="steps")):
        world.run(world.draw(data))

    everything = world.aggregates()
    members = [a for a in everything if isinstance(a, Member)]
    months = [a for a in everything if isinstance(a, ContributionMonth)]
    payments = [a for a in everything if isinstance(a, Payment)]

    check_individual_accounts_never_go_negative(world, members)
    lines = check_contribution_lines(months)
    check_payments(payments, lines)
    for member in members:  # a claim recorded is a claim within the rules' limits, read back from the store
        for claim in member.claims.values():
            assert claim.amount > 0
            if claim.kind is ev.ClaimKind.JHT_FULL:
                assert member.exit is not None


def test_the_generator_reaches_the_interesting_commands():
    """The property above is only as good as what it runs: a fixed long sequence must get every kind accepted."""
    world = World()
    script = [
        ("enroll", 0, COMPANY, 5_000_000, None, date(2024, 1, 1)),
        ("enroll", 1, None, 1_000_000, None, date(2024, 1, 1)),
        ("enroll", 2, COMPANY, 7_000_000, None, date(2024, 1, 1)),
        ("pay", COMPANY, "2024-01", 3, 0),
        ("pay", 1, "2024-01", 3, 0),
        ("wage", 0, 6_000_000, date(2024, 4, 1)),
        ("pay", COMPANY, "2024-04", 1, 20),
        ("yield", 2024, Decimal("5.63")),
        ("exit", 0, ev.ExitReason.RESIGNATION, date(2024, 6, 30)),
        ("claim", 0, Program.JHT, None, date(2024, 6, 30), 40, None),
        ("claim", 0, Program.JP, None, date(2024, 6, 30), 40, None),
    ]
    for step in script:
        world.run(step)
    assert world.claims_checked == 2
    assert world.app.jht_balance(KPJS[0], as_of=date(2024, 8, 9)) == 0  # the yield of 2024 comes later

    world.run(("reverse", 4, 5))  # member 0's fifth contribution-or-claim by date: one of the two claims

    assert set(world.accepted) == {"enroll", "pay", "wage", "yield", "exit", "claim", "reverse"}
    assert dict(world.accepted) == {"enroll": 3, "pay": 3, "wage": 1, "yield": 1, "exit": 1, "claim": 2,
                                    "reverse": 1}
