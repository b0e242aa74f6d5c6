"""Bad input gets a typed error with a message a clerk can act on, and nothing is written.

Commands are built the way the CLI and batch files build them, from raw values with `Command.build`, so a
malformed value is refused as `InvalidInput` before the ledger sees it; refusals that need the ledger's state or
the clock come from `execute`. Every case checks the error class, a key phrase of its message, and that the event
store holds exactly as many events afterwards as before.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from ledger import bulk
from ledger.commands import (
    CLAIM_AMOUNT_MAX,
    WAGE_MAX,
    YIELD_RATE_PERCENT_MAX,
    ChangeWage,
    CreditYield,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    PayClaim,
    PayContribution,
    RegisterEmployer,
    Reverse,
)
from ledger.errors import (
    AlreadyExists,
    CommandIdConflict,
    InvalidInput,
    NotFound,
    RuleViolation,
)
from ledger.rules import Segment
from tests.support.scenario import (
    BIRTH,
    NPP,
    TODAY,
    enroll,
    kpj,
    new_ledger,
    nik,
    notifications,
    pay,
    register,
    row,
)

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
    refused(app, InvalidInput, "the birth date the NIK encodes .* does not agree with birth_date", EnrollMember,
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


@pytest.mark.parametrize(("command_class", "raw"), [
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
            kpj=BUDI, program="JHT", kind="full", incident_date=date(2024, 2, 29), paid_on=date(2024, 4, 1),
            amount=100_000)


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
            kpj=SITI, program="JKM", incident_date=date(2024, 5, 3), paid_on=date(2024, 6, 1), beneficiary="spouse",
            beneficiary_name="Rudi")
    refused(app, RuleViolation, "a JKM claim needs the member's death recorded first", PayClaim,
            kpj=BUDI, program="JKM", incident_date=date(2024, 2, 29), paid_on=date(2024, 6, 1), beneficiary="spouse",
            beneficiary_name="Rudi")


def test_a_jkm_claim_for_a_death_before_the_rule_tables_is_refused_not_crashed(app):
    app.execute(EnrollMember(member=row(kpj(7), serial=7), npp=NPP, effective=date(2010, 1, 1)))
    app.execute(ExitMember(kpj=kpj(7), reason="death", exit_date=date(2014, 3, 1)))
    refused(app, RuleViolation, "no JKM benefit rule in force on 2014-03-01", PayClaim,
            kpj=kpj(7), program="JKM", incident_date=date(2014, 3, 1), paid_on=date(2014, 4, 1),
            beneficiary="other-heir", beneficiary_name="Ahli Waris")


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
    refused(app, InvalidInput, "not an event id", Reverse, event_id="payment-42", reason="typo",
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


# --- amounts have upper limits: whatever follows from them fits every store's 64-bit integers ------------------


LIMIT_OF_WAGE = r"must be at most Rp1,000,000,000 \(WAGE_MAX in ledger/commands.py\)"


@pytest.mark.parametrize("wage", [WAGE_MAX + 1, 2**63 - 1, 2**63, 2**64 - 1, 10**30])
def test_a_wage_above_the_limit_is_refused_naming_the_field_and_the_limit(app, wage):
    refused(app, InvalidInput, f"member.wage: {LIMIT_OF_WAGE}", EnrollMember, **enrollment(wage=wage))
    refused(app, InvalidInput, f"^change-wage: wage: {LIMIT_OF_WAGE}$", ChangeWage,
            kpj=SITI, wage=wage, effective=date(2024, 6, 1))
    refused(app, InvalidInput, f"members.1.wage: {LIMIT_OF_WAGE}", EnrollMembers, npp=NPP, effective=date(2024, 6, 1),
            members=[member_fields(kpj(20)), member_fields(kpj(21), wage=wage)])


def test_a_wage_at_the_limit_is_accepted_and_its_payment_stays_far_inside_64_bits(app):
    app.execute(EnrollMember.build(**enrollment(wage=WAGE_MAX)))
    app.execute(ChangeWage.build(kpj=SITI, wage=WAGE_MAX, effective=date(2024, 6, 1)))

    paid = app.execute(PayContribution.build(npp=NPP, month="2024-06", paid_on=date(2026, 11, 1)))  # 29 months late

    assert paid["members"] == 3 and paid["fine"] > 0
    assert paid["total"] < 2**63 // 10**6


@pytest.mark.parametrize("amount", [CLAIM_AMOUNT_MAX + 1, 2**63, 10**30])
def test_a_claim_amount_above_the_limit_is_refused(app, amount):
    refused(app, InvalidInput, r"amount: must be at most Rp100,000,000,000 \(CLAIM_AMOUNT_MAX", PayClaim,
            kpj=SITI, program="JKK", kind="care", incident_date=date(2024, 3, 1), paid_on=date(2024, 4, 1),
            amount=amount)


def test_a_claim_amount_at_the_limit_is_accepted(app):
    paid = app.execute(PayClaim.build(kpj=SITI, program="JKK", kind="care", incident_date=date(2024, 3, 1),
                                      paid_on=date(2024, 4, 1), amount=CLAIM_AMOUNT_MAX))
    assert paid["amount"] == CLAIM_AMOUNT_MAX


def test_a_yield_rate_above_the_limit_is_refused(app):
    assert YIELD_RATE_PERCENT_MAX == 20
    for rate in ("20.0001", "99.99"):
        refused(app, InvalidInput, "rate_percent: Input should be less than or equal to 20", CreditYield,
                year=2025, rate_percent=rate)
    assert app.execute(CreditYield.build(year=2025, rate_percent="20"))["members"] == 3


def test_a_bpu_members_declared_income_stays_within_the_governments_list_when_it_changes(app):
    enroll(app, kpj(30), npp=None, branch="BEKASI-KOTA", segment=Segment.BPU, wage=2_000_000,
           effective=date(2024, 1, 1), serial=30)
    refused(app, InvalidInput, r"member 15000000030: a BPU declared income must be between Rp1,000,000 and "
                               r"Rp20,700,000, got Rp30,000,000", ChangeWage,
            kpj=kpj(30), wage=30_000_000, effective=date(2024, 6, 1))
    assert app.execute(ChangeWage.build(kpj=kpj(30), wage=20_700_000, effective=date(2024, 6, 1)))["wage"] == 20_700_000


# --- money is a whole number in every input, never a flag, text or a fraction -------------------------------------


NOT_WHOLE_RUPIAH = [(True, "true/false"), (False, "true/false"), ("5000000", "text"),
                    (Decimal(5000000), "a number with a decimal point"),
                    (Decimal("5000000.5"), "a number with a decimal point"),
                    (5_000_000.0, "a number with a decimal point")]


@pytest.mark.parametrize(("value", "kind"), NOT_WHOLE_RUPIAH)
def test_money_that_is_not_a_whole_number_is_refused(app, value, kind):
    message = f"must be whole rupiah written as an integer, like 5000000, not {kind}"
    refused(app, InvalidInput, f"member.wage: {message}", EnrollMember, **enrollment(wage=value))
    refused(app, InvalidInput, f"wage: {message}", ChangeWage, kpj=SITI, wage=value, effective=date(2024, 6, 1))
    refused(app, InvalidInput, f"amount: {message}", PayClaim, kpj=SITI, program="JKK", kind="care",
            incident_date=date(2024, 3, 1), paid_on=date(2024, 4, 1), amount=value)


@pytest.mark.parametrize(("field", "text"), [
    ("wage", "true"), ("wage", '"5000000"'), ("wage", "5000000.0"), ("wage", "5e6"), ("wage", "null"),
])
def test_a_submitted_json_line_gives_money_as_a_json_integer(field, text):
    line = f'{{"command": "change-wage", "id": "w-1", "kpj": "{SITI}", "{field}": {text}, "effective": "2024-06-01"}}'
    with pytest.raises(InvalidInput, match=f"^line 7: change-wage: {field}: "):
        bulk.parse_command(7, line)
    assert bulk.parse_command(7, line.replace(text, "5000000")).wage == 5_000_000


@pytest.mark.parametrize(("command_class", "raw", "field"), [
    (PayContribution, {"npp": NPP, "month": "2024-03", "paid_on": date(2024, 4, 10), "months": True}, "months"),
    (PayContribution, {"npp": NPP, "month": "2024-03", "paid_on": date(2024, 4, 10), "months": "2"}, "months"),
    (CreditYield, {"year": "2025", "rate_percent": "5"}, "year"),
    (RegisterEmployer, {"npp": "10054321", "name": "CV Sinar", "branch": "BEKASI-KOTA", "kind": "company",
                        "risk_class": "low", "registered_on": date(2024, 1, 1), "labour_intensive": "yes"},
     "labour_intensive"),
    (RegisterEmployer, {"npp": "10054321", "name": "CV Sinar", "branch": "BEKASI-KOTA", "kind": "company",
                        "risk_class": "low", "registered_on": date(2024, 1, 1), "labour_intensive": 1},
     "labour_intensive"),
])
def test_counts_years_and_flags_take_their_own_type_only(app, command_class, raw, field):
    refused(app, InvalidInput, f"{field}: Input should be a valid (integer|boolean)", command_class, **raw)


# --- free text: trimmed, never empty, no control characters -------------------------------------------------------


BAD_TEXT = {
    "empty": "", "only spaces": "   ", "a newline": "Budi\nSantoso", "a carriage return": "Budi\rSantoso",
    "a tab": "Budi\tSantoso", "a terminal escape sequence": "Budi \x1b[2J\x1b[31mSantoso", "NUL": "Budi\x00",
    "DEL": "Budi\x7f", "a C1 control (NEL)": "Budi\x85", "a line separator": "Budi\u2028Santoso",
    "a paragraph separator": "Budi\u2029", "a bidi override": "\u202eBudi", "a bidi isolate": "Budi\u2066x",
    "a lone surrogate": "Budi\ud800",
}

TEXT_FIELDS = {  # each command with a free-text field: (the field's path in messages, raw fields given the text)
    "employer name": (RegisterEmployer, "name", lambda text: {
        "npp": "10054321", "name": text, "branch": "BEKASI-KOTA", "kind": "company", "risk_class": "low",
        "registered_on": date(2024, 1, 1)}),
    "member name": (EnrollMember, "member.name", lambda text: enrollment(name=text)),
    "bulk member name": (EnrollMembers, "members.0.name", lambda text: {
        "npp": NPP, "effective": date(2024, 6, 1), "members": [member_fields(name=text)]}),
    "payer's name": (PayContribution, "payer_name", lambda text: {
        "npp": NPP, "month": "2024-03", "paid_on": date(2024, 4, 10), "payer_name": text}),
    "beneficiary's name": (PayClaim, "beneficiary_name", lambda text: {
        "kpj": SITI, "program": "JKK", "kind": "care", "incident_date": date(2024, 3, 1), "paid_on": date(2024, 4, 1),
        "beneficiary": "care-provider", "beneficiary_name": text, "amount": 1_000_000}),
    "reversal reason": (Reverse, "reason", lambda text: {
        "event_id": "00000000-0000-0000-0000-000000000000.1", "reason": text, "reversed_on": TODAY}),
}


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("what", BAD_TEXT)
def test_free_text_that_is_blank_or_holds_control_characters_is_refused_by_field(app, field, what):
    command_class, path, raw = TEXT_FIELDS[field]
    expected = {"empty": "must not be empty or only spaces", "only spaces": "must not be empty or only spaces",
                "a lone surrogate": "Input should be a valid string, unable to parse raw data as a unicode string",
                }.get(what, "must not contain control characters")
    message = refused(app, InvalidInput, f"{path}: {expected}", command_class, **raw(BAD_TEXT[what]))
    assert "Budi" not in message and "Santoso" not in message, "the message repeats the text it refuses"


def test_free_text_is_trimmed_before_it_is_recorded(app):
    app.execute(EnrollMember.build(**enrollment(name="  Dewi Lestari ")))
    assert app.member(kpj(9)).name == "Dewi Lestari"
    command = PayContribution.build(npp=NPP, month="2024-03", paid_on=date(2024, 4, 10),
                                    payer_name="\u00a0PT Maju Jaya  ")  # a no-break space is a space
    assert command.payer_name == "PT Maju Jaya"
    register = RegisterEmployer.build(npp="10054321", name=" CV Sinar ", branch="BEKASI-KOTA", kind="company",
                                      risk_class="low", registered_on=date(2024, 1, 1))
    assert register.name == "CV Sinar"


def test_a_command_id_with_control_characters_is_refused(app):
    refused(app, InvalidInput, "command_id: must not contain control characters: U\\+001B", ChangeWage,
            command_id="hr-\x1b[2J", kpj=SITI, wage=6_000_000, effective=date(2024, 6, 1))


# --- no message repeats a NIK or a birth date --------------------------------------------------------------------


BAD_NIKS = {  # NIKs of someone born on 15 May 1990 (BIRTH), each wrong in one way
    "another birth date": ("3275011605900009", {}),
    "a valid NIK, birth date not matching": (nik(BIRTH, 9), {"birth_date": date(1991, 5, 15)}),
    "15 digits": ("327501150590009", {}),
    "17 digits": ("32750115059000091", {}),
    "a letter": ("3275011505900O09", {}),
    "province 00": ("0075011505900009", {}),
    "serial 0000": ("3275011505900000", {}),
    "month 13": ("3275011513900009", {}),
    "day 32": ("3275013205900009", {}),
    "30 February": ("3275013002900009", {}),
    "29 February of a year not a leap year": ("3275012902910009", {}),
}


@pytest.mark.parametrize("what", BAD_NIKS)
def test_an_error_about_a_nik_never_repeats_it_nor_the_birth_date(app, what):
    number, changes = BAD_NIKS[what]
    fields = enrollment(nik=number, **changes)
    with pytest.raises(InvalidInput) as single:
        app.execute(EnrollMember.build(**fields))
    with pytest.raises(InvalidInput) as many:
        app.execute(EnrollMembers.build(npp=NPP, effective=date(2024, 6, 1), members=[fields["member"]]))
    born = fields["member"]["birth_date"]
    for message in (str(single.value), str(many.value)):
        assert "nik" in message.lower()
        assert number not in message and born.isoformat() not in message, message


def test_a_nik_typed_into_a_kpj_or_npp_field_is_not_repeated(app):
    number = nik(BIRTH, 9)
    for message in (refused(app, InvalidInput, "kpj: KPJ number must be exactly 11 digits, got 16 characters$",
                            ChangeWage, kpj=number, wage=5_000_000, effective=date(2024, 6, 1)),
                    refused(app, InvalidInput, "npp: NPP number must be exactly 8 digits, got 16 characters$",
                            PayContribution, npp=number, month="2024-03", paid_on=date(2024, 4, 10)),
                    refused(app, InvalidInput, "kpj: KPJ number must contain only the digits", ChangeWage,
                            kpj=number[:10] + "O", wage=5_000_000, effective=date(2024, 6, 1))):
        assert number[:10] not in message


def test_a_birth_date_after_the_enrollment_is_refused_without_repeating_it(app):
    born = date(2024, 6, 5)
    message = refused(app, InvalidInput, "the birth date is not before the enrollment date 2024-06-01", EnrollMember,
                      **enrollment(nik=nik(born, 9), birth_date=born))
    assert born.isoformat() not in message


# --- a submitted line is read within bounds ------------------------------------------------------------------------


def test_a_json_line_nested_deeper_than_any_command_is_refused_before_it_is_parsed():
    for line in ("[" * 100_000 + "]" * 100_000, '{"a": ' * 100_000 + "1" + "}" * 100_000,
                 '{"command": "change-wage", "id": "x", "wage": ' + "[" * (bulk.SUBMIT_JSON_DEPTH_MAX) + "]" * 8 + "}"):
        with pytest.raises(InvalidInput,
                           match=r"^line 3: JSON nested more than 8 levels deep \(SUBMIT_JSON_DEPTH_MAX\)"):
            bulk.parse_command(3, line)


def test_json_depth_counts_brackets_outside_strings_only():
    assert bulk.json_depth('"[[[[" ') == 0
    assert bulk.json_depth('{"a": "]]]\\"{{{", "b": [1, {"c": []}]}') == 4
    assert bulk.json_depth('{"unterminated: [[[[') == 1
    members = [{"kpj": kpj(i), "programs": ["JHT"]} for i in range(3)]
    import json
    assert bulk.json_depth(json.dumps({"command": "enroll-members", "members": members})) == 4


def test_a_json_number_of_too_many_digits_is_refused_by_line():
    line = (f'{{"command": "change-wage", "id": "w-1", "kpj": "{SITI}", "wage": {"9" * 5_000}, '
            f'"effective": "2024-06-01"}}')
    with pytest.raises(InvalidInput, match=r"^line 2: a number with too many digits"):
        bulk.parse_command(2, line)


def test_an_unknown_command_name_is_repeated_only_when_it_looks_like_one():
    with pytest.raises(InvalidInput, match=r"^line 1: unknown command 'pay-contributions'; known: register-employer"):
        bulk.parse_command(1, '{"command": "pay-contributions", "id": "x"}')
    with pytest.raises(InvalidInput, match=r"^line 1: unknown command; known:") as caught:
        bulk.parse_command(1, '{"command": "3275011505900001 Budi", "id": "x"}')
    assert "3275011505900001" not in str(caught.value)


@pytest.mark.parametrize(("value", "kind"), [(1704067200, "an integer"), ("2024-01-01T00:00:00", "text"),
                                         ("20240101", "text"), (True, "true/false"), (None, "null")])
def test_a_date_is_text_written_yyyy_mm_dd_never_a_timestamp(value, kind):
    """pydantic alone reads 1704067200 as 1 January 2024 and takes a time of day: a batch file's date is refused
    unless it is written as a date."""
    with pytest.raises(InvalidInput, match=r"change-wage: effective: must be a date written YYYY-MM-DD"):
        ChangeWage.build(kpj="15000000001", wage=5_000_000, effective=value)
    assert ChangeWage.build(kpj="15000000001", wage=5_000_000, effective="2024-01-01").effective == date(2024, 1, 1)


# --- found by a second reviewer attacking the first fixes --------------------------------------------------------

@pytest.mark.parametrize("text", ["\u200b", "Budi\u200bSantoso", "\u200fBudi", "\u2060", "\u00ad", "\ue000Budi",
                                  "Budi\U000e0041", "\ufffe", "---", "\u3000"])
def test_a_name_of_invisible_characters_or_without_a_letter_is_refused(app, text):
    message = refused(app, InvalidInput, r"register-employer: name: must (not contain invisible|contain at least one "
                                         r"letter or digit|not be empty)", RegisterEmployer, npp="20000001", name=text,
                      branch="BEKASI-KOTA", kind="company", risk_class="low", registered_on=date(2024, 1, 1))
    assert text.strip("\u3000") == "" or text not in message


def test_an_heir_needs_a_visible_name(app):
    app.execute(ExitMember(kpj=SITI, reason="death", exit_date=date(2024, 3, 5)))
    refused(app, InvalidInput, "beneficiary_name: must not contain invisible", PayClaim, kpj=SITI, program="JKM",
            incident_date=date(2024, 3, 5), paid_on=date(2024, 4, 1), beneficiary="child", beneficiary_name="\u200b")


@pytest.mark.parametrize("code", ["3275011505900002", "1BEKASI", "-BEKASI"])
def test_a_branch_code_starts_with_a_letter_so_no_number_becomes_one(app, code):
    message = refused(app, InvalidInput, "branch code must start with an upper-case letter", EnrollMember,
                      branch=code, effective=date(2024, 3, 1),
                      member=member_fields(segment="BPU", wage=2_000_000, programs=["JKK", "JKM"]))
    assert code not in message, "the value typed is not repeated: it may be a NIK"


def test_an_event_id_that_is_not_one_is_not_repeated(app):
    message = refused(app, InvalidInput, "not an event id", Reverse, event_id="3275011505900001", reason="typo",
                      reversed_on=date(2024, 3, 1))
    assert "3275011505900001" not in message


def test_who_may_be_paid_a_claim_follows_the_claim(app):
    # A living member's own savings go to the member, not to an heir or a hospital.
    refused(app, InvalidInput, "has not died: the claim is paid to the member", PayClaim, kpj=BUDI, program="JHT",
            incident_date=date(2024, 2, 29), paid_on=date(2024, 4, 1), beneficiary="spouse", beneficiary_name="Rina")
    refused(app, InvalidInput, "only a JKK care claim .* is paid to a care provider", PayClaim, kpj=BUDI,
            program="JHT", incident_date=date(2024, 2, 29), paid_on=date(2024, 4, 1), beneficiary="care-provider",
            beneficiary_name="RSUD Bekasi")
    # After a death, the death benefit goes to an heir, never to a hospital; a hospital is paid for JKK care.
    app.execute(ExitMember(kpj=SITI, reason="death", exit_date=date(2024, 3, 5)))
    refused(app, InvalidInput, "only a JKK care claim .* is paid to a care provider", PayClaim, kpj=SITI,
            program="JKM", incident_date=date(2024, 3, 5), paid_on=date(2024, 4, 1), beneficiary="care-provider",
            beneficiary_name="RSUD Bekasi")
    care = app.execute(PayClaim.build(kpj=SITI, program="JKK", kind="care", incident_date=date(2024, 3, 1),
                                      paid_on=date(2024, 4, 1), amount=1_500_000, beneficiary="care-provider",
                                      beneficiary_name="RSUD Bekasi"))
    assert care["beneficiary"] == "care-provider"


def test_an_exit_dated_back_before_a_paid_month_is_refused_until_that_payment_is_reversed(app):
    # Siti's February is paid; an exit on 1 February means February is not owed.
    refused(app, RuleViolation, r"contribution for 2024-02 is paid .* reverse that contribution first", ExitMember,
            kpj=SITI, reason="resignation", exit_date=date(2024, 2, 1))
    assert app.execute(ExitMember.build(kpj=SITI, reason="resignation", exit_date=date(2024, 2, 2)))["kpj"] == SITI


def test_a_month_in_other_digits_and_a_program_listed_twice_are_refused(app):
    refused(app, InvalidInput, "pay-contribution: month: String should match pattern", PayContribution,
            npp=NPP, month="\u0662\u0660\u0662\u0664-03", paid_on=date(2024, 4, 10))
    refused(app, InvalidInput, "programs: JHT is listed more than once", RegisterEmployer, npp="20000001",
            name="PT Dua", branch="BEKASI-KOTA", kind="company", risk_class="low", registered_on=date(2024, 1, 1),
            programs=["JHT", "JHT", "JKK", "JKM"])
