"""Identifier validators: what a clerk may type, and the messages that tell them what to fix."""

from datetime import date

import pytest

from ledger.identifiers import (
    nik_birth_date,
    nik_is_female,
    nik_matches_birth_date,
    validate_branch_code,
    validate_kpj,
    validate_nik,
    validate_npp,
)

MALE_NIK = "3275011508900001"  # Bekasi, born 15 Aug 1990
FEMALE_NIK = "3275015508900002"  # day 15 + 40


def test_kpj_is_exactly_eleven_digits():
    assert validate_kpj("12345678901") == "12345678901"


@pytest.mark.parametrize("kpj", ["1234567890", "123456789012", "1234567890A", "12345 67890", "", "١٢٣٤٥٦٧٨٩٠١"])
def test_kpj_of_the_wrong_shape_is_refused(kpj):
    with pytest.raises(ValueError, match="KPJ number must"):
        validate_kpj(kpj)


def test_kpj_must_be_text():
    with pytest.raises(ValueError, match="KPJ number must be text"):
        validate_kpj(12345678901)


def test_npp_is_exactly_eight_digits():
    assert validate_npp("12345678") == "12345678"
    for npp in ["1234567", "123456789", "1234567X"]:
        with pytest.raises(ValueError, match="NPP number must"):
            validate_npp(npp)


def test_valid_male_nik():
    assert validate_nik(MALE_NIK) == MALE_NIK
    assert nik_birth_date(MALE_NIK) == (15, 8, 90)
    assert not nik_is_female(MALE_NIK)


def test_valid_female_nik_carries_day_plus_forty():
    assert validate_nik(FEMALE_NIK) == FEMALE_NIK
    assert nik_birth_date(FEMALE_NIK) == (15, 8, 90)
    assert nik_is_female(FEMALE_NIK)


def test_woman_born_on_the_31st_is_day_71_when_the_month_has_31_days():
    assert nik_birth_date("3275017101950003") == (31, 1, 95)
    with pytest.raises(ValueError, match="not a real date"):
        validate_nik("3275017104950003")  # 31 April


@pytest.mark.parametrize(("nik", "problem"), [
    ("3275013002800001", "not a real date"),  # 30 February
    ("3275013102990001", "not a real date"),  # 31 February
    ("3275012902010001", "29 February"),  # 2001 was not a leap year
    ("3275010001900001", "birth day"),  # day 00
    ("3275013501900001", "birth day"),  # days 32-40 belong to no one
    ("3275017201900001", "birth day"),  # 72 - 40 = 32
    ("3275011513900001", "birth month"),
    ("0075011508900001", "province code"),
    ("3275011508900000", "serial number"),
    ("327501150890001", "exactly 16 digits"),
    ("32750115089000011", "exactly 16 digits"),
    ("32750115089O0001", "only the digits"),  # a letter O
    ("3275-11508900001", "only the digits"),
])
def test_impossible_niks_are_refused(nik, problem):
    with pytest.raises(ValueError, match=problem) as refused:
        validate_nik(nik)
    assert "NIK" in str(refused.value)
    assert nik not in str(refused.value)  # a NIK is personal data: never echoed into logs


def test_29_february_depends_on_the_century_when_a_hint_is_given():
    nik = "3275012902000001"
    assert validate_nik(nik) == nik  # 2000 was a leap year
    assert nik_birth_date(nik, century_hint=date(2024, 1, 1)) == (29, 2, 0)
    with pytest.raises(ValueError, match="not a real date"):
        nik_birth_date(nik, century_hint=date(1950, 1, 1))  # so born 1900, not a leap year


def test_century_hint_never_places_a_birth_after_the_hint():
    # Born 29 Feb yy=24, seen on 1 Feb 2024: the birth was in 1924, a leap year, so the date stands.
    assert nik_birth_date("3275012902240001", century_hint=date(2024, 2, 1)) == (29, 2, 24)
    # Born 29 Feb yy=00, seen on 1 Feb 2000: the birth was in 1900, not a leap year.
    with pytest.raises(ValueError, match="not a real date"):
        nik_birth_date("3275012902000001", century_hint=date(2000, 2, 1))


def test_nik_matches_birth_date():
    assert nik_matches_birth_date(FEMALE_NIK, date(1990, 8, 15))
    assert not nik_matches_birth_date(FEMALE_NIK, date(1990, 8, 16))
    assert not nik_matches_birth_date(FEMALE_NIK, date(1991, 8, 15))


@pytest.mark.parametrize("code", ["BEKASI-KOTA", "KC", "KCP-CIKARANG-2", "A" * 40])
def test_branch_codes_accepted(code):
    assert validate_branch_code(code) == code


@pytest.mark.parametrize("code", ["bekasi-kota", "B", "A" * 41, "BEKASI KOTA", "-BEKASI", "BEKASI-", "BEKASI--KOTA",
                                  "BÉKASI"])
def test_branch_codes_refused(code):
    with pytest.raises(ValueError, match="branch code must"):
        validate_branch_code(code)
