"""Worked examples through the write side's application service, on the in-memory backend, on 23 November 2026.

Each test states a case from domain.md in rupiah and checks what the ledger recorded, read back from the member's
history (the stored contract events), not from the command's own answer alone.
"""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest

from ledger.commands import (
    ChangeWage,
    CreditYield,
    EnrollMember,
    ExitMember,
    PayClaim,
    Reverse,
)
from ledger.errors import AlreadyExists, RuleViolation
from ledger.rules import Program, Segment
from tests.support.scenario import (
    NPP,
    TODAY,
    enroll,
    enroll_many,
    events_of,
    kpj,
    new_ledger,
    notifications,
    pay,
    register,
    row,
)

BUDI = kpj(1)
SITI = kpj(2)


@pytest.fixture
def app():
    return new_ledger()


def shares_of(line: dict) -> dict[str, tuple[int, int]]:
    return {p: (s["employer"], s["worker"]) for p, s in line["shares"].items()}


def exit_member(app, kpj_, reason, exit_date):
    return app.execute(ExitMember(kpj=kpj_, reason=reason, exit_date=exit_date))


def claim(app, kpj_, program, incident, paid_on, *, kind=None, amount=None, beneficiary="self", name=None):
    return app.execute(PayClaim(kpj=kpj_, program=program, kind=kind, incident_date=incident, paid_on=paid_on,
                                beneficiary=beneficiary, beneficiary_name=name, amount=amount))


# --- contributions -----------------------------------------------------------------------------------------------


def test_the_pu_worked_example_of_march_2024(app):
    register(app, risk_class="low")
    enroll(app, BUDI, wage=5_000_000, effective=date(2024, 2, 1))

    result = pay(app, "2024-03", date(2024, 4, 10))

    (line,) = [r["data"] for r in events_of(app, "ContributionPaid", kpj_=BUDI)]
    assert shares_of(line) == {"JHT": (185_000, 100_000), "JKK": (27_000, 0), "JKM": (15_000, 0),
                               "JP": (100_000, 50_000)}
    assert (line["jkp_from_jkk"], line["jkp_from_jkm"], line["jp_deferred"]) == (7_000, 5_000, 0)
    assert (line["months_late"], line["fine"], line["total"]) == (0, 0, 477_000)
    assert (line["month"], line["wage"], line["payer"], line["npp"]) == ("2024-03", 5_000_000, "employer", NPP)
    assert result["program_totals"] == {"JHT": 285_000, "JKK": 27_000, "JKM": 15_000, "JP": 150_000}
    assert (result["total"], result["lines"], result["repeated"]) == (477_000, 1, False)
    assert app.jht_balance(BUDI) == 285_000


def test_jp_is_computed_on_the_wage_capped_at_the_ceiling_in_force_for_the_month(app):
    register(app)
    enroll(app, BUDI, wage=15_000_000, effective=date(2024, 2, 1))

    pay(app, "2024-02", date(2024, 3, 10), months=2)  # February: ceiling 9,559,600; March: 10,042,300

    lines = {r["data"]["month"]: r["data"] for r in events_of(app, "ContributionPaid", kpj_=BUDI)}
    assert shares_of(lines["2024-02"])["JP"] == (191_192, 95_596)
    assert shares_of(lines["2024-03"])["JP"] == (200_846, 100_423)
    for line in lines.values():  # the other programs are never capped
        assert shares_of(line)["JHT"] == (555_000, 300_000)
        assert shares_of(line)["JKK"] == (81_000, 0)
        assert line["fine"] == 0
    # JKP is recomposed from the wage capped at Rp5,000,000.
    assert (lines["2024-03"]["jkp_from_jkk"], lines["2024-03"]["jkp_from_jkm"]) == (7_000, 5_000)


def test_a_bpu_member_on_the_cheapest_package_prepays_three_months_by_kpj(app):
    app.execute(EnrollMember(member=row(SITI, 1_000_000, segment=Segment.BPU), npp=None, branch="BEKASI-KOTA",
                             effective=date(2026, 10, 1)))

    result = pay(app, "2026-11", date(2026, 11, 10), kpj_=SITI, months=3)

    lines = sorted((r["data"] for r in events_of(app, "ContributionPaid", kpj_=SITI)), key=lambda d: d["month"])
    assert [line["month"] for line in lines] == ["2026-11", "2026-12", "2027-01"]
    for line in lines:
        assert shares_of(line) == {"JKK": (0, 10_000), "JKM": (0, 6_800)}
        assert (line["total"], line["fine"], line["segment"], line["npp"]) == (16_800, 0, "BPU", None)
        assert line["payer"] == "member"  # the member pays for themself: a role, never the name
    assert (result["total"], result["members"], result["lines"]) == (50_400, 1, 3)
    assert result["months"] == ["2026-11", "2026-12", "2027-01"]


def test_a_late_payment_carries_a_fine_of_two_percent_per_started_month(app):
    register(app)
    enroll(app, BUDI, wage=5_000_000, effective=date(2024, 2, 1))

    result = pay(app, "2024-03", date(2024, 6, 20))  # due 15 April: 3 started months late

    (line,) = [r["data"] for r in events_of(app, "ContributionPaid", kpj_=BUDI)]
    assert (line["months_late"], line["fine"], line["total"]) == (3, 28_620, 505_620)
    assert (result["fine"], result["total"]) == (28_620, 505_620)
    assert app.jht_balance(BUDI) == 285_000, "the fine is the employer's, never the member's JHT"


def test_a_wage_change_applies_from_its_effective_month(app):
    register(app)
    enroll(app, BUDI, wage=5_000_000, effective=date(2024, 1, 1))
    app.execute(ChangeWage(kpj=BUDI, wage=6_000_000, effective=date(2024, 3, 1)))

    pay(app, "2024-02", date(2024, 3, 10), months=2)

    lines = {r["data"]["month"]: r["data"] for r in events_of(app, "ContributionPaid", kpj_=BUDI)}
    assert (lines["2024-02"]["wage"], lines["2024-03"]["wage"]) == (5_000_000, 6_000_000)
    assert shares_of(lines["2024-03"])["JHT"] == (222_000, 120_000)


def test_an_exit_on_the_first_of_july_is_not_billed_for_july_and_one_on_the_second_is(app):
    register(app)
    enroll(app, BUDI, effective=date(2024, 1, 1))
    enroll(app, SITI, effective=date(2024, 1, 1), serial=2)
    exit_member(app, BUDI, "resignation", date(2024, 7, 1))  # last working day 30 June
    exit_member(app, SITI, "resignation", date(2024, 7, 2))  # worked on 1 July

    result = pay(app, "2024-06", date(2024, 8, 10), months=2)

    billed = sorted((r["data"]["kpj"], r["data"]["month"]) for r in events_of(app, "ContributionPaid", kpj_=BUDI)
                    + events_of(app, "ContributionPaid", kpj_=SITI))
    assert billed == [(BUDI, "2024-06"), (SITI, "2024-06"), (SITI, "2024-07")]
    assert (result["members"], result["lines"]) == (2, 3)


def test_paying_only_the_month_of_an_exit_on_its_first_day_is_refused_and_writes_nothing(app):
    register(app)
    enroll(app, BUDI, effective=date(2024, 1, 1))
    exit_member(app, BUDI, "resignation", date(2024, 7, 1))
    before = notifications(app)

    with pytest.raises(RuleViolation, match="no member of employer 10012345 is covered in 2024-07"):
        pay(app, "2024-07", date(2024, 8, 10))

    assert notifications(app) == before


def test_a_member_enrolled_on_the_last_day_of_a_month_owes_that_month(app):
    register(app)
    enroll(app, BUDI, effective=date(2024, 7, 31))

    pay(app, "2024-07", date(2024, 8, 10))

    assert [r["data"]["month"] for r in events_of(app, "ContributionPaid", kpj_=BUDI)] == ["2024-07"]


# --- claims ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("death", "cash_total"), [(date(2019, 12, 1), 24_000_000), (date(2019, 12, 2), 42_000_000)])
def test_the_jkm_death_benefit_follows_the_date_of_death_not_the_claim_date(app, death, cash_total):
    register(app)
    enroll(app, BUDI, effective=date(2018, 1, 1))
    exit_member(app, BUDI, "death", death)

    result = claim(app, BUDI, Program.JKM, death, date(2020, 1, 10), beneficiary="spouse", name="Siti Aminah")

    assert (result["amount"], result["statutory_amount"], result["kind"]) == (cash_total, cash_total,
                                                                               "death-benefit")
    (paid,) = [r["data"] for r in events_of(app, "ClaimPaid", kpj_=BUDI)]
    assert (paid["amount"], paid["incident_date"], paid["paid_on"]) == (cash_total, death.isoformat(), "2020-01-10")
    assert (paid["beneficiary"], paid["beneficiary_name"]) == ("spouse", "Siti Aminah")


def test_a_jkk_death_pays_48_times_the_last_wage_to_an_heir(app):
    register(app)
    enroll(app, SITI, wage=4_000_000, effective=date(2016, 1, 1))
    app.execute(ChangeWage(kpj=SITI, wage=4_500_000, effective=date(2024, 1, 1)))
    exit_member(app, SITI, "work-death", date(2024, 5, 10))

    result = claim(app, SITI, Program.JKK, date(2024, 5, 10), date(2024, 6, 3), kind="death",
                   beneficiary="spouse", name="Ahmad Hidayat")

    assert result["amount"] == 48 * 4_500_000 == 216_000_000
    (paid,) = [r["data"] for r in events_of(app, "ClaimPaid", kpj_=SITI)]
    assert (paid["beneficiary"], paid["beneficiary_name"]) == ("spouse", "Ahmad Hidayat")
    assert (paid["program"], paid["kind"], paid["amount"], paid["statutory_amount"]) == (
        "JKK", "death", 216_000_000, 216_000_000)
    with pytest.raises(AlreadyExists, match=r"JKK death benefit .* was already paid"):
        claim(app, SITI, Program.JKK, date(2024, 5, 10), date(2024, 6, 4), kind="death", beneficiary="child",
              name="Rina")


def test_a_jkk_claim_for_an_accident_on_29_february_expires_five_years_later_on_1_march(app):
    register(app)
    enroll(app, BUDI, wage=4_000_000, effective=date(2016, 1, 1))

    result = claim(app, BUDI, Program.JKK, date(2020, 2, 29), date(2025, 3, 1), kind="care", amount=12_500_000,
                   beneficiary="care-provider", name="RS Mitra Keluarga Bekasi")

    assert (result["amount"], result["statutory_amount"]) == (12_500_000, None)
    with pytest.raises(RuleViolation, match="expires 5 years after the accident"):
        claim(app, BUDI, Program.JKK, date(2020, 2, 29), date(2025, 3, 2), kind="care", amount=1_000_000)


def test_a_full_jht_claim_pays_the_whole_balance_and_leaves_zero(app):
    register(app)
    enroll(app, BUDI, wage=5_000_000, effective=date(2024, 1, 1))
    pay(app, "2024-01", date(2024, 2, 10))
    pay(app, "2024-02", date(2024, 3, 10))
    exit_member(app, BUDI, "resignation", date(2024, 3, 31))
    assert app.jht_balance(BUDI) == 570_000

    result = claim(app, BUDI, Program.JHT, date(2024, 3, 31), date(2024, 5, 2))

    assert (result["kind"], result["amount"]) == ("full", 570_000)
    assert app.jht_balance(BUDI) == 0
    assert app.jht_balance(BUDI, as_of=date(2024, 5, 1)) == 570_000, "the books as of the day before still show it"


def test_a_partial_jht_payout_needs_ten_years_and_is_taken_once(app):
    register(app)
    enroll(app, BUDI, wage=5_000_000, effective=date(2016, 11, 23))  # ten years on the clock's day
    enroll(app, SITI, wage=5_000_000, effective=date(2016, 11, 24), serial=2)  # one day short
    pay(app, "2016-12", date(2017, 1, 10))  # both: JHT 285,000 each
    assert app.jht_balance(BUDI) == app.jht_balance(SITI) == 285_000

    with pytest.raises(RuleViolation, match="needs 10 years of membership"):
        claim(app, SITI, Program.JHT, TODAY, TODAY, kind="partial-housing")
    with pytest.raises(RuleViolation, match=r"above what member .* can be paid"):
        claim(app, BUDI, Program.JHT, TODAY, TODAY, kind="partial-housing", amount=85_501)

    result = claim(app, BUDI, Program.JHT, TODAY, TODAY, kind="partial-housing")  # 30% of 285,000

    assert result["amount"] == 85_500
    assert app.jht_balance(BUDI) == 199_500
    with pytest.raises(AlreadyExists, match="already took the one partial JHT payout"):
        claim(app, BUDI, Program.JHT, TODAY, TODAY, kind="partial-other")


def test_jp_under_fifteen_years_pays_a_lump_sum_of_the_contributions(app):
    register(app)
    enroll(app, BUDI, wage=5_000_000, effective=date(2024, 1, 1))
    pay(app, "2024-01", date(2024, 3, 10), months=3)  # JP 150,000 a month
    exit_member(app, BUDI, "end-of-contract", date(2024, 3, 31))

    result = claim(app, BUDI, Program.JP, date(2024, 3, 31), date(2024, 4, 20))

    assert (result["kind"], result["amount"]) == ("lump-sum", 450_000)
    assert app.program_balance(app.member(BUDI), Program.JP, TODAY) == 0


# --- corrections -------------------------------------------------------------------------------------------------


def test_reversing_a_contribution_takes_its_amounts_back_once_and_the_month_can_be_paid_again(app):
    register(app)
    enroll(app, BUDI, wage=5_000_000, effective=date(2024, 1, 1))
    pay(app, "2024-01", date(2024, 2, 10))
    pay(app, "2024-02", date(2024, 3, 10))
    (jan, _feb) = events_of(app, "ContributionPaid", kpj_=BUDI)

    typed = f" {jan['event_id'].upper()} "  # copied from a print-out: the same event, however it is typed
    result = app.execute(Reverse(event_id=typed, reason="paid for the wrong worker", reversed_on=date(2024, 3, 20)))

    assert (result["type"], result["amount"], result["reverses"]) == ("ContributionPaid", 477_000, jan["event_id"])
    (reversal,) = [r["data"] for r in events_of(app, "ContributionReversed", kpj_=BUDI)]
    assert (reversal["reverses"], reversal["month"], reversal["total"]) == (jan["event_id"], "2024-01", 477_000)
    assert reversal["shares"] == jan["data"]["shares"]
    assert app.jht_balance(BUDI) == 285_000
    with pytest.raises(AlreadyExists, match="already reversed"):
        app.execute(Reverse(event_id=jan["event_id"], reason="again", reversed_on=date(2024, 3, 21)))

    pay(app, "2024-01", date(2024, 3, 25))  # the corrected payment, late now

    assert app.jht_balance(BUDI) == 570_000
    assert len(events_of(app, "ContributionPaid", kpj_=BUDI)) == 3, "the history keeps the reversed payment"


def test_reversing_a_claim_restores_the_balance_once(app):
    register(app)
    enroll(app, BUDI, wage=5_000_000, effective=date(2024, 1, 1))
    pay(app, "2024-01", date(2024, 2, 10))
    exit_member(app, BUDI, "resignation", date(2024, 1, 31))
    paid = claim(app, BUDI, Program.JHT, date(2024, 1, 31), date(2024, 3, 5))
    assert app.jht_balance(BUDI) == 0

    typed = paid["event_id"].upper()  # an id read back from a print-out: the same event
    result = app.execute(Reverse(event_id=typed, reason="paid to the wrong account", reversed_on=date(2024, 3, 6)))

    assert (result["type"], result["amount"], result["reverses"]) == ("ClaimPaid", 285_000, paid["event_id"])
    assert app.jht_balance(BUDI) == 285_000
    with pytest.raises(AlreadyExists, match="already reversed"):
        app.execute(Reverse(event_id=paid["event_id"], reason="again", reversed_on=date(2024, 3, 7)))
    again = claim(app, BUDI, Program.JHT, date(2024, 1, 31), date(2024, 3, 8), beneficiary="self")
    assert again["amount"] == 285_000 and app.jht_balance(BUDI) == 0


def test_other_facts_are_not_reversed_but_corrected_by_a_new_command(app):
    register(app)
    enrolled = enroll(app, BUDI)
    with pytest.raises(RuleViolation, match="is a MemberEnrolled; only contributions"):
        app.execute(Reverse(event_id=enrolled["event_id"], reason="typo", reversed_on=TODAY))


# --- yield -------------------------------------------------------------------------------------------------------


def test_the_yearly_yield_is_the_rate_times_the_average_month_end_balance_rounded_half_up(app):
    register(app, NPP)
    register(app, "10054321", name="CV Sinar")
    enroll(app, BUDI, wage=3_000_175, effective=date(2024, 12, 1))  # JHT 111,006 + 60,004 (60,003.5 half up)
    enroll(app, SITI, npp="10054321", wage=5_000_000, effective=date(2024, 12, 1), serial=2)
    enroll(app, kpj(3), npp=None, branch="BEKASI-KOTA", segment=Segment.BPU, wage=1_000_000,
           effective=date(2024, 12, 1), serial=3)  # JKK + JKM only: no JHT account
    pay(app, "2024-12", date(2025, 1, 10))  # Budi: 171,010 at every month end of 2025
    pay(app, "2024-12", date(2025, 7, 10), npp="10054321")  # Siti: 285,000 from the end of July, 6 month ends

    result = app.execute(CreditYield(year=2025, rate_percent=Decimal(5)))

    assert (result["members"], result["total"]) == (2, 8_551 + 7_125)
    budi = [r["data"] for r in events_of(app, "YieldCredited", kpj_=BUDI)]
    siti = [r["data"] for r in events_of(app, "YieldCredited", kpj_=SITI)]
    # 12 x 171,010 x 5% / 12 = 8,550.5: half up gives 8,551 (half even would give 8,550).
    assert budi == [{"kpj": BUDI, "year": 2025, "rate": "0.05", "balance_basis": 171_010, "amount": 8_551,
                     "credited_on": "2025-12-31"}]
    # 6 x 285,000 x 5% / 12 = 7,125: money paid in July earns for the months it was held.
    assert (siti[0]["amount"], siti[0]["balance_basis"]) == (7_125, 142_500)
    assert app.jht_balance(BUDI) == 171_010 + 8_551
    assert app.jht_balance(BUDI, as_of=date(2025, 12, 30)) == 171_010

    # A year's yield is credited once: again, or at another rate, is refused and writes nothing.
    before = notifications(app)
    with pytest.raises(AlreadyExists, match="the 2025 yield was already credited to every JHT member"):
        app.execute(CreditYield(year=2025, rate_percent=Decimal(5)))
    with pytest.raises(AlreadyExists, match=r"the 2025 yield was already credited at 5(\.0*)?%"):
        app.execute(CreditYield(year=2025, rate_percent=Decimal(6)))
    assert notifications(app) == before
    with pytest.raises(RuleViolation, match="no JHT member to credit the 2016 yield to"):
        app.execute(CreditYield(year=2016, rate_percent=Decimal(5)))


def test_a_member_paid_out_in_full_earns_no_later_yield(app):
    register(app)
    enroll(app, BUDI, effective=date(2024, 12, 1))
    enroll(app, SITI, effective=date(2024, 12, 1), serial=2)
    pay(app, "2024-12", date(2025, 1, 10))
    app.execute(ExitMember(kpj=BUDI, reason="resignation", exit_date=date(2025, 7, 31)))
    app.execute(PayClaim(kpj=BUDI, program="JHT", incident_date=date(2025, 7, 31), paid_on=date(2025, 8, 31)))

    result = app.execute(CreditYield(year=2025, rate_percent=Decimal(5)))

    assert result["members"] == 1  # Siti only: Budi's account was closed by the full payout
    assert app.jht_balance(BUDI) == 0
    assert events_of(app, "YieldCredited", kpj_=BUDI) == []


# --- scale -------------------------------------------------------------------------------------------------------

TKK_COUNT = 7_000


def test_a_regional_government_enrolls_7000_contract_staff_in_one_command_and_pays_a_month(app):
    register(app, "20000001", name="Pemerintah Kota Bekasi", kind="government", risk_class="very-low")
    started = time.perf_counter()

    kpjs, result = enroll_many(app, TKK_COUNT, npp="20000001", effective=date(2017, 10, 1), wage=3_000_000)

    assert result["enrolled"] == TKK_COUNT
    (joined,) = events_of(app, "WorkersJoined", npp="20000001")
    assert joined["data"]["kpjs"] == kpjs and len(set(kpjs)) == TKK_COUNT
    assert app.member(kpjs[4_999]).npp == "20000001"

    paid = pay(app, "2017-10", date(2017, 11, 14), npp="20000001")

    # Per member: JHT 111,000 + 60,000, JKK 0.24% 7,200, JKM 9,000, JP 60,000 + 30,000 = 277,200.
    assert (paid["members"], paid["lines"]) == (TKK_COUNT, TKK_COUNT)
    assert paid["program_totals"] == {"JHT": 171_000 * TKK_COUNT, "JKK": 7_200 * TKK_COUNT,
                                      "JKM": 9_000 * TKK_COUNT, "JP": 90_000 * TKK_COUNT}
    assert paid["total"] == 277_200 * TKK_COUNT == 1_940_400_000
    assert app.jht_balance(kpjs[-1]) == 171_000
    assert time.perf_counter() - started < 30
