"""The generated histories follow the ledger's rules: they are written through its commands, so a history that
breaks a rule stops with the ledger's refusal instead of being written."""

from __future__ import annotations

from datetime import date

from ledger.generator import BranchPlan, generate_branch
from ledger.rules import month_owed
from tests.support.scenario import new_ledger

# One worker per employer over four years: some employers lose their only worker (1.2% a month), and one of them
# on the 1st of a month (seed found by trying). Hires follow the staff left, so such an employer stays empty.
ONE_WORKER_EACH = BranchPlan(employers=40, members=40, bpu_members=0, first_month="2017-01", months=48, seed=2)


def test_an_employer_whose_last_worker_left_is_billed_only_the_months_someone_owes():
    app = new_ledger()

    counts = generate_branch(app, ONE_WORKER_EACH)

    events = [row for n in range(ONE_WORKER_EACH.employers)
              for row in app.history(kpj=f"{ONE_WORKER_EACH.first_kpj + n:011d}")]
    exits = {row["data"]["kpj"]: date.fromisoformat(row["data"]["exit_date"]) for row in events
             if row["type"] == "MemberExited"}
    enrolled = {row["data"]["kpj"]: date.fromisoformat(row["data"]["effective"]) for row in events
                if row["type"] == "MemberEnrolled"}
    billed = [(row["data"]["kpj"], row["data"]["month"]) for row in events if row["type"] == "ContributionPaid"]
    assert counts["exits"] >= len(exits) >= 3 and any(day.day == 1 for day in exits.values())
    assert billed and all(month_owed(month, enrolled[kpj], exits.get(kpj)) for kpj, month in billed)
