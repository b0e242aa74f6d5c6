"""Bad input gets a typed error with a message a clerk can act on, and nothing is written.

Commands are built the way the CLI and batch files build them, from raw values with `Command.build`, so a
malformed value is refused as `InvalidInput` before the ledger sees it; refusals that need the ledger's state or
the clock come from `execute`. Every case checks the error class, a key phrase of its message, and that the event
store holds exactly as many events afterwards as before.
"""

from __future__ import annotations

from datetime import date

import pytest

from ledger.commands import (
    ChangeWage,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    PayClaim,
    PayContribution,
    RegisterEmployer,
    Reverse,
)
from ledger.errors import AlreadyExists, CommandIdConflict, InvalidInput, NotFound, RuleViolation

from ledger_scenario import BIRTH, NPP, TODAY, enroll, kpj, new_ledger, nik, notifications, pay, register, row

BUDI, SITI, ANI = kpj(1), kpj(2), kpj(3)
BULK_ROWS = 7_000
BAD_ROW = 5_000  # 1-based, as a clerk counts the rows of a file


@pytest.fixture
def app():
    """An employer with three workers since January 2024; Budi and Siti paid up to February, Budi resigned."""
    app = new_ledger()
    register(app, registered_on=date(2023, 12, 1))
    enroll(app, BUDI, effective=date(2024, 1, 1))
    enroll(app, SITI, effective=date(2024, 1, 1), serial=2)
    pay(app, "2024-01", date(2024, 2, 10), months=2)
    enroll(app, ANI, effective=date(2024, 3, 1), serial=3)
    app.execute(ExitMember(kpj=BUDI, reason="resignation", exit_date=date(2024, 2, 29)))
    return app


def refused(app, error: type[Exception], phrase: str, command_class, **raw):
    """Build the command from raw values and run it: it must fail with `error` and `phrase`, writing nothing."""
    before = notifications(app)
    with pytest.raises(error, match=phrase) as caught:
        app.execute(command_class.build(**raw))
    assert notifications(app) == before, "a refused command wrote something"
    return str(caught.value)


def member_fields(kpj_: str = kpj(9), **changes) -> dict:
    return {"kpj": kpj_, "nik": nik(BIRTH, 9), "name": "Dewi Lestari", "birth_date": BIRTH, "wage": 4_000_000,
            **changes}


def enrollment(**changes) -> dict:
    return {"member": member_fields(**changes), "npp": NPP, "effective": date(2024, 6, 1)}


# --- identifiers -------------------------------------------------------------------------------------------------


def test_a_nik_that_is_not_16_digits_is_refused_without_echoing_it(app):
    message = refused(app, InvalidInput, "member.nik: NIK must be exactly 16 digits", EnrollMember,
                      **enrollment(nik="327501150590001"))
    assert "327501150590001" not in message, "a NIK is personal data: error messages end up in logs"
    refused(app, InvalidInput, "NIK must contain only the digits", EnrollMember, **enrollment(nik="3275O11505900001"))


def test_a_nik_with_an_impossible_birth_date_is_refused(app):
    refused(app, InvalidInput, "not a real date: day 31 of month 02", EnrollMember,
            **enrollment(nik="3275013102900001"))
    refused(app, InvalidInput, "birth month .* must be 01-12, got 13", EnrollMember,
            **enrollment(nik="3275011513900001"))
    refused(app, InvalidInput, "NIK .* encodes another birth date than 1990-05-16", EnrollMember,
            **enrollment(birth_date=date(1990, 5, 16)))


def test_a_kpj_that_is_not_11_digits_is_refused(app):
    refused(app, InvalidInput, "member.kpj: KPJ number must be exactly 11 digits, got 10", EnrollMember,
            **enrollment(kpj_="1500000009"))
    refused(app, InvalidInput, "kpj: KPJ number must contain only the digits", ChangeWage,
            kpj="1500000000A", wage=5_000_000, effective=date(2024, 6, 1))


def test_an_unknown_employer_is_named(app):
    refused(app, NotFound, "no employer with NPP 99999999 is registered", PayContribution,
            npp="99999999", month="2024-03", paid_on=date(2024, 4, 10))
    refused(app, NotFound, "no employer with NPP 99999999 is registered", EnrollMember,
            **{**enrollment(), "npp": "99999999"})


def test_an_unknown_member_is_named(app):
    unknown = kpj(404)
    refused(app, NotFound, f"no member with KPJ {unknown} is enrolled", ChangeWage,
            kpj=unknown, wage=5_000_000, effective=date(2024, 6, 1))
    refused(app, NotFound, f"no member with KPJ {unknown} is enrolled", PayClaim,
            kpj=unknown, program="JHT", incident_date=date(2024, 6, 1), paid_on=date(2024, 6, 2))


@pytest.mark.parametrize("wage", [0, -5_000_000])
def test_a_wage_of_zero_or_less_is_refused(app, wage):
    refused(app, InvalidInput, "member.wage: Input should be greater than 0", EnrollMember, **enrollment(wage=wage))
    refused(app, InvalidInput, "wage: Input should be greater than 0", ChangeWage,
            kpj=SITI, wage=wage, effective=date(2024, 6, 1))


# --- dates -------------------------------------------------------------------------------------------------------


def test_a_contribution_month_before_enrollment_is_refused(app):
    refused(app, RuleViolation, "no member of employer 10012345 is covered in 2023-12: the months are before "
                                "enrollment", PayContribution, npp=NPP, month="2023-12", paid_on=date(2024, 1, 10))


def test_a_contribution_month_in_the_future_is_refused(app):
    refused(app, InvalidInput, "contribution month 2026-12 is in the future for a payment made on 2026-11-23",
            PayContribution, npp=NPP, month="2026-12", paid_on=TODAY)
    refused(app, InvalidInput, "contribution month 2026-12 is in the future", PayContribution,
            npp=NPP, month="2026-10", months=3, paid_on=TODAY)


@pytest.mark.parametrize("command_class, raw", [
    (PayContribution, {"npp": NPP, "month": "2024-03", "paid_on": date(2917, 1, 1)}),
    (ExitMember, {"kpj": SITI, "reason": "resignation", "exit_date": date(2917, 1, 1)}),
    (RegisterEmployer, {"npp": "10054321", "name": "CV Sinar", "branch": "BEKASI-KOTA", "kind": "company",
                        "risk_class": "low", "registered_on": date(2917, 1, 1)}),
    (ChangeWage, {"kpj": SITI, "wage": 6_000_000, "effective": date(2917, 1, 1)}),
])
def test_a_date_centuries_ahead_is_taken_for_the_typo_it_is(app, command_class, raw):
    refused(app, InvalidInput, "2917-01-01 is in the future .* a typo such as a wrong year", command_class, **raw)


def test_a_date_before_the_fund_existed_is_refused(app):
    refused(app, InvalidInput, "1917-01-01 is before 1977-01-01", ExitMember,
            kpj=SITI, reason="resignation", exit_date=date(1917, 1, 1))


# --- claims ------------------------------------------------------------------------------------------------------


def test_a_jht_claim_above_the_balance_is_refused(app):
    assert app.jht_balance(BUDI) == 570_000
    refused(app, RuleViolation, r"claim of Rp570,001 is above what member .* can be paid from JHT \(Rp570,000\)",
            PayClaim, kpj=BUDI, program="JHT", kind="full", incident_date=date(2024, 2, 29),
            paid_on=date(2024, 4, 1), amount=570_001)
    refused(app, RuleViolation, "a full JHT payout pays the whole balance, Rp570,000, not Rp100,000", PayClaim,
            kpj=BUDI, program="JHT", kind="full", incident_date=date(2024, 2, 29), paid_on=date(2024, 4, 1), amount=100_000)


def test_a_second_jkm_claim_for_the_same_death_is_refused(app):
    app.execute(ExitMember(kpj=SITI, reason="death", exit_date=date(2024, 5, 3)))
    first = app.execute(PayClaim(kpj=SITI, program="JKM", incident_date=date(2024, 5, 3), paid_on=date(2024, 6, 1),
                                 beneficiary="spouse", beneficiary_name="Rudi"))
    assert first["amount"] == 42_000_000

    refused(app, AlreadyExists, "the JKM benefit for the death of member .* was already paid", PayClaim,
            kpj=SITI, program="JKM", incident_date=date(2024, 5, 3), paid_on=date(2024, 6, 2),
            beneficiary="child", beneficiary_name="Rina")


def test_a_full_jht_claim_needs_the_member_to_have_exited(app):
    assert app.jht_balance(SITI) == 570_000
    refused(app, RuleViolation, "needs the member to have exited .* member 15000000002 is still active", PayClaim,
            kpj=SITI, program="JHT", incident_date=date(2024, 3, 1), paid_on=date(2024, 4, 1))


def test_a_jkm_claim_needs_a_recorded_death(app):
    refused(app, RuleViolation, "a JKM claim needs the member's death recorded first", PayClaim,
            kpj=SITI, program="JKM", incident_date=date(2024, 5, 3), paid_on=date(2024, 6, 1), beneficiary="spouse", beneficiary_name="Rudi")
    refused(app, RuleViolation, "a JKM claim needs the member's death recorded first", PayClaim,
            kpj=BUDI, program="JKM", incident_date=date(2024, 2, 29), paid_on=date(2024, 6, 1), beneficiary="spouse", beneficiary_name="Rudi")


def test_a_jkm_claim_for_a_death_before_the_rule_tables_is_refused_not_crashed(app):
    app.execute(EnrollMember(member=row(kpj(7), serial=7), npp=NPP, effective=date(2010, 1, 1)))
    app.execute(ExitMember(kpj=kpj(7), reason="death", exit_date=date(2014, 3, 1)))
    refused(app, RuleViolation, "no JKM benefit rule in force on 2014-03-01", PayClaim,
            kpj=kpj(7), program="JKM", incident_date=date(2014, 3, 1), paid_on=date(2014, 4, 1), beneficiary="other-heir", beneficiary_name="Ahli Waris")


# --- duplicates and corrections ----------------------------------------------------------------------------------


def test_facts_already_recorded_are_refused_by_name(app):
    refused(app, AlreadyExists, "an employer with NPP 10012345 is already registered", RegisterEmployer,
            npp=NPP, name="PT Lain", branch="BEKASI-KOTA", kind="company", risk_class="low",
            registered_on=date(2024, 1, 1))
    refused(app, AlreadyExists, f"a member with KPJ {SITI} is already enrolled", EnrollMember,
            **enrollment(kpj_=SITI))
    refused(app, AlreadyExists, f"the contribution of member {BUDI} for 2024-02 is already paid", PayContribution,
            npp=NPP, month="2024-02", paid_on=date(2024, 3, 12))
    refused(app, AlreadyExists, f"member {BUDI} already exited on 2024-02-29", ExitMember,
            kpj=BUDI, reason="dismissal", exit_date=date(2024, 3, 1))


def test_a_reversal_of_an_event_that_does_not_exist_is_refused(app):
    refused(app, NotFound, "no event 00000000-0000-0000-0000-000000000000.1 in the ledger", Reverse,
            event_id="00000000-0000-0000-0000-000000000000.1", reason="typo", reversed_on=TODAY)
    refused(app, InvalidInput, "is not an event id", Reverse, event_id="payment-42", reason="typo",
            reversed_on=TODAY)


# --- a bulk enrollment is written whole or not at all ------------------------------------------------------------


def bulk_rows(first: int) -> list[dict]:
    return [member_fields(kpj(first + i), nik=nik(BIRTH, 1 + i % 9_999)) for i in range(BULK_ROWS)]


def test_a_bulk_enrollment_with_a_repeated_kpj_at_row_5000_is_refused_whole(app):
    rows = bulk_rows(10_000)
    rows[BAD_ROW - 1] = {**rows[BAD_ROW - 1], "kpj": rows[10]["kpj"]}
    refused(app, InvalidInput, f"KPJ {rows[10]['kpj']} appears twice \\(again at row {BAD_ROW}\\)", EnrollMembers,
            npp=NPP, effective=date(2024, 6, 1), members=rows)


def test_a_bulk_enrollment_with_a_malformed_kpj_at_row_5000_is_refused_whole(app):
    rows = bulk_rows(10_000)
    rows[BAD_ROW - 1] = {**rows[BAD_ROW - 1], "kpj": "1500001"}
    refused(app, InvalidInput, f"members.{BAD_ROW - 1}.kpj: KPJ number must be exactly 11 digits", EnrollMembers,
            npp=NPP, effective=date(2024, 6, 1), members=rows)


def test_a_bulk_enrollment_whose_row_5000_is_already_a_member_writes_none_of_the_7000(app):
    rows = bulk_rows(10_000)
    rows[BAD_ROW - 1] = {**rows[BAD_ROW - 1], "kpj": SITI}
    roster_before = list(app.employer(NPP).roster)

    refused(app, AlreadyExists, f"a member with KPJ {SITI} is already enrolled", EnrollMembers,
            npp=NPP, effective=date(2024, 6, 1), members=rows)

    assert app.employer(NPP).roster == roster_before
    for index in (0, BAD_ROW - 2, BULK_ROWS - 1):
        with pytest.raises(NotFound):
            app.member(rows[index]["kpj"])


# --- idempotency -------------------------------------------------------------------------------------------------


def test_a_command_id_reused_for_other_content_is_refused(app):
    app.execute(ChangeWage(command_id="hr-2024-06-0001", kpj=SITI, wage=6_000_000, effective=date(2024, 6, 1)))

    refused(app, CommandIdConflict, "command id 'hr-2024-06-0001' was already used for a different change-wage",
            ChangeWage, command_id="hr-2024-06-0001", kpj=SITI, wage=6_500_000, effective=date(2024, 6, 1))
    refused(app, CommandIdConflict, "already used for a different change-wage command; the first one stands",
            ExitMember, command_id="hr-2024-06-0001", kpj=SITI, reason="resignation", exit_date=date(2024, 6, 1))
    assert app.member(SITI).wage_on(TODAY) == 6_000_000


def test_a_repeated_command_returns_the_first_result_and_writes_nothing(app):
    command = PayContribution(command_id="bank-ref-88231", npp=NPP, month="2024-03", paid_on=date(2024, 4, 12))
    first = app.execute(command)
    after_first = notifications(app)

    again = app.execute(PayContribution.build(command_id="bank-ref-88231", npp=NPP, month="2024-03",
                                              paid_on=date(2024, 4, 12)))

    assert first["repeated"] is False and again["repeated"] is True
    assert {**again, "repeated": False} == first
    assert notifications(app) == after_first
    assert first["total"] == 2 * 477_000, "Siti and Ani, Budi having left"


# --- an individual account never goes below zero, whatever the dates typed --------------------------------------


def test_a_backdated_second_full_jht_payout_is_refused(app):
    first = app.execute(PayClaim(kpj=BUDI, program="JHT", incident_date=date(2024, 2, 29), paid_on=date(2024, 6, 1)))
    assert first["amount"] == 570_000

    # On 1 April the balance was 570,000, but paying it then would leave June's payout uncovered.
    refused(app, RuleViolation, "has nothing to pay out from JHT", PayClaim, kpj=BUDI, program="JHT",
            incident_date=date(2024, 2, 29), paid_on=date(2024, 4, 1))
    assert app.jht_balance(BUDI) == 0


def test_a_contribution_already_paid_out_is_reversed_only_after_the_claim(app):
    claim = app.execute(PayClaim(kpj=BUDI, program="JHT", incident_date=date(2024, 2, 29), paid_on=date(2024, 6, 1)))
    january = next(r for r in app.history(kpj=BUDI) if r["type"] == "ContributionPaid"
                   and r["data"]["month"] == "2024-01")

    refused(app, RuleViolation, "would take back Rp285,000 of JHT that member 15000000001 was already paid out; "
                                "reverse that claim first", Reverse,
            event_id=january["event_id"], reason="wrong worker", reversed_on=date(2024, 7, 1))

    app.execute(Reverse(event_id=claim["event_id"], reason="paid before the correction", reversed_on=date(2024, 7, 1)))
    app.execute(Reverse(event_id=january["event_id"], reason="wrong worker", reversed_on=date(2024, 7, 1)))
    assert app.jht_balance(BUDI) == 285_000
