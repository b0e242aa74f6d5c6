"""The fund's rules, pinned with worked examples from domain.md and a property over the whole rate history."""

from calendar import monthrange
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.rules import (
    JP_MONTHLY_PENSION_MIN_MONTHS,
    JP_WAGE_CEILING,
    Contribution,
    JhtPartialKind,
    JkmBenefit,
    Program,
    RiskClass,
    Share,
    bpu_contribution,
    bpu_due_date,
    employed_on,
    in_force,
    jht_partial_allowed,
    jht_partial_max,
    jht_yield,
    jkk_death_benefit,
    jkk_disability_benefit,
    jkm_benefit,
    jp_lump_sum_allowed,
    late_fine,
    month_owed,
    months_late,
    pu_contribution,
    pu_due_date,
    retirement_age,
    round_rupiah,
)

ALL_PU = frozenset(Program)
JHT, JKK, JKM, JP = Program.JHT, Program.JKK, Program.JKM, Program.JP


# --- PU contributions --------------------------------------------------------------------------------------------


def test_pu_worked_example_march_2024():
    c = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2024, 3, 1))
    assert c.shares == {
        JHT: Share(employer=185_000, worker=100_000),
        JKK: Share(employer=27_000, worker=0),
        JKM: Share(employer=15_000, worker=0),
        JP: Share(employer=100_000, worker=50_000),
    }
    assert (c.jkp_from_jkk, c.jkp_from_jkm, c.jp_deferred) == (7_000, 5_000, 0)
    assert c.employer_total == 327_000
    assert c.worker_total == 150_000
    assert c.total == 477_000


def test_any_day_of_the_month_means_that_month():
    assert pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2024, 3, 31)) == pu_contribution(
        5_000_000, RiskClass.LOW, ALL_PU, date(2024, 3, 1))


def test_only_enrolled_programs_appear():
    c = pu_contribution(5_000_000, RiskClass.LOW, frozenset({JKK, JKM}), date(2024, 3, 1))
    assert set(c.shares) == {JKK, JKM}
    assert c.total == 42_000


def test_risk_classes_set_the_jkk_rate():
    expected = {"very-low": 12_000, "low": 27_000, "medium": 44_500, "high": 63_500, "very-high": 87_000}
    for risk, jkk in expected.items():
        c = pu_contribution(5_000_000, RiskClass(risk), frozenset({JKK}), date(2024, 3, 1))
        assert c.shares[JKK] == Share(jkk, 0)


def test_jp_is_computed_on_the_wage_capped_at_the_ceiling():
    c = pu_contribution(15_000_000, RiskClass.LOW, ALL_PU, date(2024, 3, 1))
    assert c.shares[JP] == Share(employer=200_846, worker=100_423)
    # JHT, JKK and JKM have no cap.
    assert c.shares[JHT] == Share(555_000, 300_000)
    assert c.shares[JKK] == Share(81_000, 0)


def test_jp_ceiling_changes_at_the_march_boundary():
    feb = pu_contribution(15_000_000, RiskClass.LOW, frozenset({JP}), date(2024, 2, 29))
    mar = pu_contribution(15_000_000, RiskClass.LOW, frozenset({JP}), date(2024, 3, 1))
    assert feb.shares[JP] == Share(employer=191_192, worker=95_596)  # on 9,559,600
    assert mar.shares[JP] == Share(employer=200_846, worker=100_423)  # on 10,042,300
    assert in_force(JP_WAGE_CEILING, date(2015, 7, 1)) == 7_000_000
    assert in_force(JP_WAGE_CEILING, date(2021, 3, 1)) == 8_754_600  # fell after 2020


def test_jp_before_july_2015_is_a_clear_error():
    with pytest.raises(LookupError, match="JP began on 2015-07-01"):
        pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2015, 6, 1))


def test_months_before_the_ledger_epoch_have_no_rules():
    with pytest.raises(LookupError, match="JHT employer rate.*2015-06-01"):
        pu_contribution(5_000_000, RiskClass.LOW, frozenset({JHT}), date(2015, 6, 15))


def test_covid_relief_cuts_jkk_jkm_and_defers_jp():
    c = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2020, 9, 1))
    assert c.shares == {
        JHT: Share(185_000, 100_000),  # JHT is untouched by the relief
        JKK: Share(270, 0),  # 1% of 27,000
        JKM: Share(150, 0),  # 1% of 15,000
        JP: Share(1_000, 500),  # 1% of 100,000 and 50,000 payable now
    }
    assert c.jp_deferred == 99_000 + 49_500
    assert (c.jkp_from_jkk, c.jkp_from_jkm) == (0, 0)  # no JKP before Feb 2021


def test_covid_relief_starts_in_august_2020_and_ends_after_january_2021():
    normal = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2020, 7, 1))
    first = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2020, 8, 1))
    last = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2021, 1, 1))
    after = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2021, 2, 1))
    assert normal.shares[JKK].employer == after.shares[JKK].employer == 27_000
    assert first.shares[JKK].employer == last.shares[JKK].employer == 270
    assert normal.jp_deferred == after.jp_deferred == 0


def test_jkp_recomposition_drops_the_jkm_part_from_february_2025():
    jan = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2025, 1, 1))
    feb = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2025, 2, 1))
    assert (jan.jkp_from_jkk, jan.jkp_from_jkm) == (7_000, 5_000)
    assert (feb.jkp_from_jkk, feb.jkp_from_jkm) == (7_000, 0)
    # The recomposition is a split of what is paid, not an extra payment.
    assert jan.shares[JKM] == feb.shares[JKM] == Share(15_000, 0)


def test_jkp_recomposition_starts_february_2021():
    jan = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2021, 1, 1))
    feb = pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, date(2021, 2, 1))
    assert (jan.jkp_from_jkk, jan.jkp_from_jkm) == (0, 0)
    assert (feb.jkp_from_jkk, feb.jkp_from_jkm) == (7_000, 5_000)


def test_jkp_recomposition_uses_the_wage_capped_at_five_million():
    c = pu_contribution(15_000_000, RiskClass.LOW, ALL_PU, date(2024, 3, 1))
    assert (c.jkp_from_jkk, c.jkp_from_jkm) == (7_000, 5_000)


def test_labour_intensive_employers_pay_half_jkk_from_february_2025_to_january_2026():
    def jkk(month, labour_intensive):
        return pu_contribution(5_000_000, RiskClass.LOW, ALL_PU, month, labour_intensive).shares[JKK].employer

    assert jkk(date(2025, 1, 1), True) == 27_000
    assert jkk(date(2025, 2, 1), True) == 13_500
    assert jkk(date(2026, 1, 1), True) == 13_500
    assert jkk(date(2026, 2, 1), True) == 27_000
    assert jkk(date(2025, 6, 1), False) == 27_000


def test_halved_jkk_never_credits_jkp_more_than_was_paid():
    c = pu_contribution(5_000_000, RiskClass.VERY_LOW, ALL_PU, date(2025, 3, 1), labour_intensive=True)
    assert c.shares[JKK].employer == 6_000  # 0.12% after halving, below the 0.14% recomposition
    assert c.jkp_from_jkk == 6_000


def test_rounding_is_half_up_once_per_share():
    assert round_rupiah(Decimal("2.5")) == 3
    assert round_rupiah(Decimal("2.4999")) == 2
    # 2% of 1,000,025 is 20,000.5: half up gives 20,001 (half-even would give 20,000).
    c = pu_contribution(1_000_025, RiskClass.LOW, frozenset({JHT}), date(2024, 3, 1))
    assert c.shares[JHT].worker == 20_001
    # 0.3% of 1,000,500 is 3,001.5.
    assert pu_contribution(1_000_500, RiskClass.LOW, frozenset({JKM}), date(2024, 3, 1)).shares[JKM].employer == 3_002


@pytest.mark.parametrize("wage", [0, -1, 5_000_000.0, "5000000", True, Decimal("5000000")])
def test_wage_must_be_a_positive_int(wage):
    with pytest.raises(ValueError, match="wage"):
        pu_contribution(wage, RiskClass.LOW, ALL_PU, date(2024, 3, 1))


def test_programs_must_not_be_empty():
    with pytest.raises(ValueError, match="at least one program"):
        pu_contribution(5_000_000, RiskClass.LOW, frozenset(), date(2024, 3, 1))


@given(
    wage=st.integers(1, 100_000_000),
    risk=st.sampled_from(RiskClass),
    programs=st.frozensets(st.sampled_from(Program), min_size=1),
    month=st.dates(date(2015, 7, 1), date(2026, 12, 31)),
    labour_intensive=st.booleans(),
)
def test_pu_shares_are_non_negative_ints_that_add_up(wage, risk, programs, month, labour_intensive):
    c = pu_contribution(wage, risk, programs, month, labour_intensive)
    assert set(c.shares) == programs
    amounts = [a for s in c.shares.values() for a in (s.employer, s.worker)]
    amounts += [c.jkp_from_jkk, c.jkp_from_jkm, c.jp_deferred]
    assert all(type(a) is int and a >= 0 for a in amounts)
    assert c.total == c.employer_total + c.worker_total == sum(s.total for s in c.shares.values())
    assert c.jkp_from_jkk <= (c.shares[JKK].employer if JKK in programs else 0)
    assert c.jkp_from_jkm <= (c.shares[JKM].employer if JKM in programs else 0)


# --- BPU contributions -------------------------------------------------------------------------------------------


def test_bpu_cheapest_package_is_16_800():
    c = bpu_contribution(1_000_000, frozenset({JKK, JKM}), date(2024, 3, 1))
    assert c.shares == {JKK: Share(0, 10_000), JKM: Share(0, 6_800)}
    assert c.total == c.worker_total == 16_800
    assert c.employer_total == 0
    assert (c.jkp_from_jkk, c.jkp_from_jkm, c.jp_deferred) == (0, 0, 0)


def test_bpu_top_income_with_jht():
    c = bpu_contribution(20_700_000, frozenset({JHT, JKK, JKM}), date(2024, 3, 1))
    assert c.shares == {JHT: Share(0, 414_000), JKK: Share(0, 207_000), JKM: Share(0, 6_800)}


@pytest.mark.parametrize("income", [999_999, 20_700_001])
def test_bpu_declared_income_outside_the_list_is_refused(income):
    with pytest.raises(ValueError, match="1,000,000 and Rp20,700,000"):
        bpu_contribution(income, frozenset({JKK, JKM}), date(2024, 3, 1))


def test_bpu_cannot_join_jp():
    with pytest.raises(ValueError, match="JP is not offered to BPU"):
        bpu_contribution(1_000_000, frozenset({JKK, JKM, JP}), date(2024, 3, 1))


def test_bpu_covid_relief_applies_to_jkk_and_jkm():
    c = bpu_contribution(1_000_000, frozenset({JKK, JKM}), date(2020, 9, 1))
    assert c.shares == {JKK: Share(0, 100), JKM: Share(0, 68)}


# --- Due dates and fines -----------------------------------------------------------------------------------------


def test_due_dates():
    assert pu_due_date(date(2024, 3, 20)) == date(2024, 4, 15)
    assert pu_due_date(date(2024, 12, 1)) == date(2025, 1, 15)
    assert bpu_due_date(date(2024, 3, 20)) == date(2024, 3, 15)


@pytest.mark.parametrize(("paid_on", "late"), [
    (date(2024, 4, 1), 0),
    (date(2024, 4, 15), 0),
    (date(2024, 4, 16), 1),
    (date(2024, 5, 15), 1),
    (date(2024, 5, 16), 2),
    (date(2025, 4, 15), 12),
    (date(2025, 4, 16), 13),
])
def test_months_late_counts_a_started_month_as_one(paid_on, late):
    assert months_late(date(2024, 4, 15), paid_on) == late


def test_months_late_from_a_month_end_due_date():
    assert months_late(date(2024, 1, 31), date(2024, 2, 29)) == 1
    assert months_late(date(2024, 1, 31), date(2024, 3, 1)) == 2


def test_late_fine_is_two_percent_per_month():
    assert late_fine(1_000_000, 3) == 60_000
    assert late_fine(1_000_000, 0) == 0
    assert late_fine(25, 1) == 1  # 0.5 rounds half up
    assert late_fine(1_000_000, 3, due=date(2024, 4, 15)) == 60_000


@pytest.mark.parametrize(("amount", "months"), [(-1, 1), (100, -1), (100.0, 1)])
def test_late_fine_refuses_bad_input(amount, months):
    with pytest.raises(ValueError):
        late_fine(amount, months)


# --- Benefits ----------------------------------------------------------------------------------------------------


def test_jkm_benefit_by_date_of_death():
    old = jkm_benefit(date(2019, 12, 1))
    new = jkm_benefit(date(2019, 12, 2))
    assert old == JkmBenefit(lump_sum=16_200_000, periodic_grant=4_800_000, funeral=3_000_000)
    assert old.cash_total == 24_000_000
    assert new == JkmBenefit(lump_sum=20_000_000, periodic_grant=12_000_000, funeral=10_000_000)
    assert new.cash_total == 42_000_000


def test_jkk_death_and_disability_are_wage_multiples():
    assert jkk_death_benefit(5_000_000) == 240_000_000
    assert jkk_disability_benefit(5_000_000) == 280_000_000
    with pytest.raises(ValueError, match="wage"):
        jkk_death_benefit(0)


def test_jht_partial_payout():
    assert jht_partial_max(10_000_000, JhtPartialKind.HOUSING) == 3_000_000
    assert jht_partial_max(10_000_000, "other") == 1_000_000
    assert jht_partial_max(5, "other") == 1  # 0.5 rounds half up
    with pytest.raises(ValueError):
        jht_partial_max(10_000_000, "holiday")


def test_jht_partial_needs_ten_years_of_membership():
    assert not jht_partial_allowed(date(2014, 5, 10), date(2024, 5, 9))
    assert jht_partial_allowed(date(2014, 5, 10), date(2024, 5, 10))
    assert not jht_partial_allowed(date(2016, 2, 29), date(2026, 2, 28))
    assert jht_partial_allowed(date(2016, 2, 29), date(2026, 3, 1))


def test_jp_lump_sum_below_fifteen_years():
    assert JP_MONTHLY_PENSION_MIN_MONTHS == 180
    assert jp_lump_sum_allowed(179)
    assert not jp_lump_sum_allowed(180)


@pytest.mark.parametrize(("on", "age"), [
    (date(2015, 7, 1), 56),
    (date(2018, 12, 31), 56),
    (date(2019, 1, 1), 57),
    (date(2022, 1, 1), 58),
    (date(2025, 6, 1), 59),
    (date(2028, 1, 1), 60),
    (date(2042, 12, 31), 64),
    (date(2043, 1, 1), 65),
    (date(2070, 1, 1), 65),
])
def test_retirement_age_rises_every_three_years_to_65(on, age):
    assert retirement_age(on) == age


def test_jht_yield_is_the_yearly_rate_on_the_average_month_end_balance():
    assert jht_yield([1_000_000] * 12, Decimal("0.0563")) == 56_300
    # Money paid in December earns one twelfth of a year.
    assert jht_yield([0] * 11 + [12_000_000], Decimal("0.0719")) == 71_900
    assert jht_yield([0] * 12, Decimal("0")) == 0


@pytest.mark.parametrize("rate", [Decimal("1"), Decimal("-0.01"), 0.05])
def test_jht_yield_refuses_impossible_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        jht_yield([1_000_000] * 12, rate)


def test_jht_yield_needs_twelve_balances():
    with pytest.raises(ValueError, match="12"):
        jht_yield([1_000_000] * 11, Decimal("0.05"))


def test_contribution_does_not_alias_the_callers_dict():
    shares = {JHT: Share(1, 1)}
    c = Contribution(shares)
    shares[JKK] = Share(5, 0)
    assert set(c.shares) == {JHT}


# --- Membership: the exit date is the first day no longer employed ------------------------------------------------


@pytest.mark.parametrize("enrolled, exited, owes_july", [
    (date(2024, 1, 1), date(2024, 7, 1), False),  # exit on the 1st: employed up to 30 June, nothing owed for July
    (date(2024, 1, 1), date(2024, 7, 2), True),  # exit on the 2nd: employed on 1 July, July owed
    (date(2024, 1, 1), date(2024, 7, 31), True),  # exit on the last day
    (date(2024, 1, 1), date(2024, 8, 1), True),  # exit on the 1st of the next month: all of July employed
    (date(2024, 1, 1), date(2024, 6, 30), False),  # exited before July
    (date(2024, 1, 1), None, True),
    (date(2024, 7, 31), None, True),  # enrolled on the last day of July: one day employed, July owed
    (date(2024, 8, 1), None, False),  # enrolled after July
    (date(2024, 7, 31), date(2024, 8, 1), True),  # employed on 31 July only
    (date(2024, 7, 2), date(2024, 7, 2), False),  # exited the day of enrollment: employed on no day
])
def test_a_month_is_owed_when_the_member_was_employed_on_at_least_one_of_its_days(enrolled, exited, owes_july):
    assert month_owed("2024-07", enrolled, exited) is owes_july


def test_a_month_is_owed_by_its_own_calendar_in_february_of_a_leap_year():
    assert month_owed("2024-02", date(2024, 2, 29), None)
    assert not month_owed("2024-03", date(2024, 1, 1), date(2024, 3, 1))
    assert month_owed("2024-02", date(2024, 1, 1), date(2024, 3, 1))


@pytest.mark.parametrize("day, active", [
    (date(2024, 2, 29), False), (date(2024, 3, 1), True), (date(2024, 6, 30), True), (date(2024, 7, 1), False),
])
def test_a_member_is_active_from_enrollment_to_the_day_before_the_exit_date(day, active):
    enrolled, exited = date(2024, 3, 1), date(2024, 7, 1)
    assert employed_on(day, enrolled, exited) is active
    # The auditor passes the envelopes' ISO strings as they are: the same answer.
    assert employed_on(day.isoformat(), enrolled.isoformat(), exited.isoformat()) is active
    assert employed_on(day, enrolled, None) is (day >= enrolled)


@given(st.dates(date(2015, 7, 1), date(2030, 12, 31)), st.one_of(st.none(), st.integers(0, 400)),
       st.dates(date(2015, 1, 1), date(2031, 12, 31)))
def test_a_month_is_owed_exactly_when_some_day_of_it_is_an_active_day(enrolled, days_employed, any_day):
    exited = None if days_employed is None else enrolled + timedelta(days=days_employed)
    month = f"{any_day.year:04d}-{any_day.month:02d}"
    days = [date(any_day.year, any_day.month, d) for d in range(1, monthrange(any_day.year, any_day.month)[1] + 1)]
    assert month_owed(month, enrolled, exited) is any(employed_on(d, enrolled, exited) for d in days)
