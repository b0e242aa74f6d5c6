"""Pricing as pure functions: contributions, late fines, balances, yields and claim amounts, in rupiah.

The amounts are the ones the ledger records for the worked examples of `tests/unit/test_application.py` (domain.md's
cases), computed here from plain values and contract events, without a ledger.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger import events as ev
from ledger import pricing
from ledger.errors import InvalidInput, RuleViolation
from ledger.rules import Program, RiskClass, Segment

ALL_PROGRAMS = frozenset(Program)
BPU_CHEAPEST = frozenset({Program.JKK, Program.JKM})
KPJ = "15000000001"


def shares_of(price: pricing.MonthPrice) -> dict[str, tuple[int, int]]:
    return {p.value: (s.employer, s.worker) for p, s in price.owed.shares.items()}


def paid(month: str, paid_on: date, shares: dict[Program, tuple[int, int]], fine: int = 0) -> ev.ContributionPaid:
    """A PU contribution line as the ledger records it."""
    parts = {p: ev.ProgramShare(employer=e, worker=w) for p, (e, w) in shares.items()}
    return ev.ContributionPaid(
        kpj=KPJ, npp="10012345", branch="BEKASI-KOTA", segment=Segment.PU, month=month, paid_on=paid_on,
        payer=ev.PayerRole.EMPLOYER, payment_id=f"pay-{month}-{paid_on}", wage=5_000_000, shares=parts,
        months_late=0, fine=fine, total=sum(e + w for e, w in shares.values()) + fine)


def reversed_(line: ev.ContributionPaid, on: date) -> ev.ContributionReversed:
    return ev.ContributionReversed(
        reverses="x.1", kpj=line.kpj, npp=line.npp, segment=line.segment, branch=line.branch, month=line.month,
        reason="paid for the wrong worker", shares=line.shares, fine=line.fine, total=line.total, reversed_on=on)


def claim(program: Program, amount: int, paid_on: date,
          kind: ev.ClaimKind = ev.ClaimKind.JHT_FULL) -> ev.ClaimPaid:
    return ev.ClaimPaid(claim_id=f"claim-{paid_on}", kpj=KPJ, branch="BEKASI-KOTA", program=program, kind=kind,
                        incident_date=paid_on, paid_on=paid_on, beneficiary=ev.Beneficiary.SELF, amount=amount,
                        statutory_amount=amount)


def claim_reversed(original: ev.ClaimPaid, on: date) -> ev.ClaimReversed:
    return ev.ClaimReversed(reverses="x.2", claim_id=original.claim_id, kpj=KPJ, branch="BEKASI-KOTA",
                            program=original.program, amount=original.amount, reason="wrong account", reversed_on=on)


# A month's PU contribution on a wage of Rp5,000,000 (low risk, 2024): JHT 285,000, JP 150,000.
FULL_MONTH = {Program.JHT: (185_000, 100_000), Program.JKK: (27_000, 0), Program.JKM: (15_000, 0),
              Program.JP: (100_000, 50_000)}


# --- months --------------------------------------------------------------------------------------------------------


def test_months_run_across_a_year_end_and_end_on_their_last_day():
    assert pricing.months_from("2024-11", 3) == ["2024-11", "2024-12", "2025-01"]
    assert pricing.months_from("2024-11", 0) == []
    assert [pricing.month_end(m) for m in ("2024-02", "2023-02", "2024-12", "2024-04")] == [
        date(2024, 2, 29), date(2023, 2, 28), date(2024, 12, 31), date(2024, 4, 30)]


# --- contributions and fines ---------------------------------------------------------------------------------------


def test_the_pu_worked_example_of_march_2024_paid_on_time():
    price = pricing.price_month(Segment.PU, 5_000_000, ALL_PROGRAMS, "2024-03", date(2024, 4, 10),
                                risk_class=RiskClass.LOW)

    assert shares_of(price) == {"JHT": (185_000, 100_000), "JKK": (27_000, 0), "JKM": (15_000, 0),
                                "JP": (100_000, 50_000)}
    assert (price.owed.jkp_from_jkk, price.owed.jkp_from_jkm, price.owed.jp_deferred) == (7_000, 5_000, 0)
    assert (price.months_late, price.fine, price.total) == (0, 0, 477_000)


def test_a_pu_payment_three_started_months_late_carries_a_fine_of_two_percent_a_month():
    # Due 15 April 2024; paid 20 June: 3 started months late, 2% x 3 of Rp477,000.
    price = pricing.price_month(Segment.PU, 5_000_000, ALL_PROGRAMS, "2024-03", date(2024, 6, 20),
                                risk_class=RiskClass.LOW)

    assert (price.months_late, price.fine, price.total) == (3, 28_620, 505_620)


def test_jp_is_priced_on_the_wage_capped_at_the_ceiling_of_the_month():
    before, after = (pricing.price_month(Segment.PU, 15_000_000, ALL_PROGRAMS, month, date(2024, 3, 10),
                                         risk_class=RiskClass.LOW) for month in ("2024-02", "2024-03"))

    assert shares_of(before)["JP"] == (191_192, 95_596)  # ceiling 9,559,600
    assert shares_of(after)["JP"] == (200_846, 100_423)  # ceiling 10,042,300 from March
    assert shares_of(after)["JHT"] == (555_000, 300_000) and shares_of(after)["JKK"] == (81_000, 0)
    assert (after.owed.jkp_from_jkk, after.owed.jkp_from_jkm) == (7_000, 5_000)  # on the wage capped at 5,000,000


def test_the_covid_relief_cuts_jkk_and_jkm_and_defers_jp():
    price = pricing.price_month(Segment.PU, 5_000_000, ALL_PROGRAMS, "2020-08", date(2020, 9, 10),
                                risk_class=RiskClass.LOW)

    assert shares_of(price) == {"JHT": (185_000, 100_000), "JKK": (270, 0), "JKM": (150, 0), "JP": (1_000, 500)}
    assert (price.owed.jp_deferred, price.total) == (148_500, 286_920)


def test_the_labour_intensive_discount_halves_jkk_for_employers_of_fifty_or_more():
    assert not pricing.labour_intensive_discount(True, 49)
    assert pricing.labour_intensive_discount(True, 50)
    assert not pricing.labour_intensive_discount(False, 7_000)

    discounted, normal = (pricing.price_month(Segment.PU, 5_000_000, ALL_PROGRAMS, "2025-03", date(2025, 4, 15),
                                              risk_class=RiskClass.VERY_LOW, labour_intensive=flag)
                          for flag in (True, False))

    assert (shares_of(discounted)["JKK"], shares_of(normal)["JKK"]) == ((6_000, 0), (12_000, 0))
    # The JKP part of JKK (0.14% of 5,000,000 = 7,000) never exceeds the JKK actually paid.
    assert (discounted.owed.jkp_from_jkk, normal.owed.jkp_from_jkk) == (6_000, 7_000)
    assert (discounted.total, normal.total) == (456_000, 462_000)


def test_a_bpu_member_on_the_cheapest_package_pays_16800_and_never_a_fine():
    price = pricing.price_month(Segment.BPU, 1_000_000, BPU_CHEAPEST, "2026-11", date(2027, 8, 1),
                                risk_class=None)

    assert shares_of(price) == {"JKK": (0, 10_000), "JKM": (0, 6_800)}
    assert (price.months_late, price.fine, price.total) == (0, 0, 16_800)


def test_what_the_rules_refuse_is_raised_as_they_raise_it():
    with pytest.raises(LookupError, match="no JP contribution exists for 2015-06"):
        pricing.price_month(Segment.PU, 5_000_000, ALL_PROGRAMS, "2015-06", date(2015, 7, 10),
                            risk_class=RiskClass.LOW)
    with pytest.raises(ValueError, match="declared income must be between"):
        pricing.price_month(Segment.BPU, 900_000, BPU_CHEAPEST, "2024-01", date(2024, 1, 10), risk_class=None)


def test_a_payments_program_totals_add_its_lines_and_leave_out_programs_with_nothing():
    bpu = {Program.JKK: (0, 10_000), Program.JKM: (0, 6_800)}
    lines = [paid("2024-03", date(2024, 4, 10), FULL_MONTH), paid("2024-03", date(2024, 4, 10), bpu)]

    assert pricing.program_totals(lines) == {Program.JHT: 285_000, Program.JKK: 37_000, Program.JKM: 21_800,
                                             Program.JP: 150_000}
    assert list(pricing.program_totals([lines[1]])) == [Program.JKK, Program.JKM]


# --- balances ------------------------------------------------------------------------------------------------------


def test_a_balance_adds_contributions_and_yield_and_takes_off_claims_each_from_its_own_date():
    january = paid("2024-01", date(2024, 2, 10), FULL_MONTH)
    february = paid("2024-02", date(2024, 3, 10), FULL_MONTH)
    yield_ = ev.YieldCredited(kpj=KPJ, year=2024, rate=Decimal("0.05"), balance_basis=100_000, amount=5_000,
                              credited_on=date(2024, 12, 31))
    payout = claim(Program.JHT, 575_000, date(2025, 2, 1))
    contracts = [january, february, reversed_(february, date(2024, 3, 20)), yield_, payout]

    def jht(on: date) -> int:
        return pricing.program_balance(contracts, Program.JHT, on)

    assert [jht(date(2024, 2, 9)), jht(date(2024, 2, 10)), jht(date(2024, 3, 10)), jht(date(2024, 3, 20))] == [
        0, 285_000, 570_000, 285_000]
    assert (jht(date(2024, 12, 31)), jht(date(2025, 2, 1))) == (290_000, 290_000 - 575_000)
    assert pricing.program_balance(contracts, Program.JP, date(2025, 2, 1)) == 150_000  # no yield, no JP claim
    assert pricing.program_balance(contracts, Program.JKK, date(2025, 2, 1)) == 27_000


def test_the_lowest_balance_looks_at_every_later_booking_day():
    january = paid("2024-01", date(2024, 2, 10), FULL_MONTH)
    payout = claim(Program.JHT, 285_000, date(2024, 3, 5))
    contracts = [january, payout]

    # On 20 February the books show 285,000, but a claim dated 5 March takes it all: nothing is free on 20 February.
    assert pricing.program_balance(contracts, Program.JHT, date(2024, 2, 20)) == 285_000
    assert pricing.lowest_balance(contracts, Program.JHT, date(2024, 2, 20)) == 0
    restored = [*contracts, claim_reversed(payout, date(2024, 3, 6))]
    assert pricing.lowest_balance(restored, Program.JHT, date(2024, 3, 6)) == 285_000


# --- yield ---------------------------------------------------------------------------------------------------------


def test_the_yield_is_the_rate_on_the_average_month_end_balance_rounded_half_up():
    # JHT of 171,010 at every month end of 2025: 12 x 171,010 x 5% / 12 = 8,550.5, half up 8,551.
    budi = [paid("2024-12", date(2025, 1, 10), {Program.JHT: (111_006, 60_004), Program.JKK: (16_201, 0)})]
    # 285,000 paid in July: held at 6 month ends, 6 x 285,000 x 5% / 12 = 7,125.
    siti = [paid("2024-12", date(2025, 7, 10), FULL_MONTH)]

    assert pricing.jht_yield(budi, 2025, Decimal("0.05")) == (171_010, 8_551)
    assert pricing.jht_yield(siti, 2025, Decimal("0.05")) == (142_500, 7_125)


def test_a_month_end_balance_below_zero_counts_as_zero():
    # 285,000 paid in January, a claim of 570,000 paid on 20 January and reversed on 1 July: the month ends of
    # January to June are at -285,000, counted as 0; those of July to December at 285,000.
    payout = claim(Program.JHT, 570_000, date(2025, 1, 20))
    contracts = [paid("2024-12", date(2025, 1, 10), FULL_MONTH), payout, claim_reversed(payout, date(2025, 7, 1))]

    assert pricing.jht_yield(contracts, 2025, Decimal("0.05")) == (142_500, 7_125)


# --- claims --------------------------------------------------------------------------------------------------------


def test_a_full_jht_payout_is_the_whole_balance_and_a_partial_one_a_share_after_ten_years():
    assert pricing.jht_claim_amounts(ev.ClaimKind.JHT_FULL, 570_000, kpj=KPJ, enrolled_on=date(2024, 1, 1),
                                     paid_on=date(2024, 5, 2)) == (570_000, 570_000)
    housing = pricing.jht_claim_amounts(ev.ClaimKind.JHT_PARTIAL_HOUSING, 285_000, kpj=KPJ,
                                        enrolled_on=date(2016, 11, 23), paid_on=date(2026, 11, 23))
    other = pricing.jht_claim_amounts(ev.ClaimKind.JHT_PARTIAL_OTHER, 285_000, kpj=KPJ,
                                      enrolled_on=date(2016, 11, 23), paid_on=date(2026, 11, 23))
    assert (housing, other) == ((85_500, 85_500), (28_500, 28_500))
    with pytest.raises(RuleViolation, match=f"needs 10 years of membership; member {KPJ} enrolled on 2016-11-24"):
        pricing.jht_claim_amounts(ev.ClaimKind.JHT_PARTIAL_HOUSING, 285_000, kpj=KPJ,
                                  enrolled_on=date(2016, 11, 24), paid_on=date(2026, 11, 23))


def test_jkk_death_and_disability_are_wage_multiples_and_care_has_no_statutory_amount():
    def jkk(kind: ev.ClaimKind) -> pricing.ClaimAmounts:
        return pricing.jkk_claim_amounts(kind, 4_500_000, incident_date=date(2024, 5, 10), paid_on=date(2024, 6, 3))

    assert jkk(ev.ClaimKind.JKK_DEATH) == (216_000_000, None)
    assert jkk(ev.ClaimKind.JKK_DISABILITY) == (252_000_000, None)
    assert jkk(ev.ClaimKind.JKK_CARE) == (None, None)


def test_a_jkk_claim_for_an_accident_on_29_february_expires_five_years_later_on_1_march():
    assert pricing.jkk_claim_expires(date(2020, 2, 29)) == date(2025, 3, 1)
    assert pricing.jkk_claim_expires(date(2020, 5, 10)) == date(2025, 5, 10)
    assert pricing.jkk_claim_amounts(ev.ClaimKind.JKK_CARE, 4_000_000, incident_date=date(2020, 2, 29),
                                     paid_on=date(2025, 3, 1)) == (None, None)
    with pytest.raises(RuleViolation, match=r"expires 5 years after the accident \(2020-02-29\)"):
        pricing.jkk_claim_amounts(ev.ClaimKind.JKK_CARE, 4_000_000, incident_date=date(2020, 2, 29),
                                  paid_on=date(2025, 3, 2))


@pytest.mark.parametrize("death, cash_total", [(date(2019, 12, 1), 24_000_000), (date(2019, 12, 2), 42_000_000)])
def test_the_jkm_benefit_follows_the_date_of_death(death, cash_total):
    assert pricing.jkm_claim_amounts(kpj=KPJ, incident_date=death, exit_date=death) == (cash_total, None)


def test_a_jkm_claim_is_dated_on_the_death_and_not_before_the_rules_begin():
    with pytest.raises(InvalidInput, match="the date of death, 2025-05-05, not 2025-05-06"):
        pricing.jkm_claim_amounts(kpj=KPJ, incident_date=date(2025, 5, 6), exit_date=date(2025, 5, 5))
    with pytest.raises(RuleViolation, match=f"member {KPJ}: no JKM benefit rule in force on 2015-06-30"):
        pricing.jkm_claim_amounts(kpj=KPJ, incident_date=date(2015, 6, 30), exit_date=None)


def test_jp_under_fifteen_years_pays_back_the_balance_as_a_lump_sum():
    months = [paid(f"2024-0{m}", date(2024, 3, 10), FULL_MONTH) for m in (1, 2, 3)]
    no_jp = paid("2024-04", date(2024, 5, 10), {Program.JKK: (27_000, 0), Program.JKM: (15_000, 0)})

    assert pricing.jp_paid_months([*months, no_jp, None]) == 3
    assert pricing.jp_claim_amounts(kpj=KPJ, paid_months=3, balance=450_000) == (450_000, 450_000)
    assert pricing.jp_claim_amounts(kpj=KPJ, paid_months=179, balance=1) == (1, 1)
    with pytest.raises(RuleViolation, match="180 months of JP contributions: 15 years or more give a monthly"):
        pricing.jp_claim_amounts(kpj=KPJ, paid_months=180, balance=450_000)


def test_a_claim_pays_the_amount_given_or_the_statutory_one_within_its_ceiling():
    def amount(given: int | None, amounts: pricing.ClaimAmounts, program: Program = Program.JHT,
               kind: ev.ClaimKind = ev.ClaimKind.JHT_PARTIAL_HOUSING) -> int:
        return pricing.claim_amount(given, amounts, kpj=KPJ, program=program, kind=kind)

    assert amount(None, (85_500, 85_500)) == 85_500
    assert amount(50_000, (85_500, 85_500)) == 50_000
    assert amount(12_500_000, (None, None), Program.JKK, ev.ClaimKind.JKK_CARE) == 12_500_000
    with pytest.raises(RuleViolation, match=f"claim of Rp85,501 is above what member {KPJ} can be paid from JHT "
                                            r"\(Rp85,500\)"):
        amount(85_501, (85_500, 85_500))
    with pytest.raises(RuleViolation, match="a full JHT payout pays the whole balance, Rp570,000, not Rp5"):
        amount(5, (570_000, 570_000), kind=ev.ClaimKind.JHT_FULL)
    with pytest.raises(InvalidInput, match="a JKK care claim has no statutory amount: give --amount"):
        amount(None, (None, None), Program.JKK, ev.ClaimKind.JKK_CARE)
    with pytest.raises(RuleViolation, match=f"member {KPJ} has nothing to pay out from JHT"):
        amount(None, (0, 0), kind=ev.ClaimKind.JHT_FULL)
