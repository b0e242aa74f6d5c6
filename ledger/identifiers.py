"""Validators for the identifiers the ledger stores: KPJ, NPP, NIK and the project's branch codes.

Each validator returns its input unchanged when it is valid and raises `ValueError` otherwise, with a message a
clerk can act on: it names the field and says what is wrong. Nothing is trimmed or normalised silently: a stray
space is an error to fix at the counter, not something to guess about. Messages never repeat a malformed number:
a NIK is personal data and error messages end up in logs, and a malformed KPJ or NPP may well be a NIK typed into
the wrong field.

`nik_hmac` is the one-way hash of a NIK that `MemberEnrolled` publishes in place of the NIK itself.
"""

import hashlib
import hmac
import re
from calendar import monthrange
from datetime import date

KPJ_LENGTH = 11
NPP_LENGTH = 8
NIK_LENGTH = 16
NIK_FEMALE_DAY_OFFSET = 40  # women's NIKs carry the birth day plus 40
MONTHS_IN_YEAR = 12
DAYS_IN_MONTH_MAX = 31
LEAP_DAY = (2, 29)  # (month, day): 29 February
BRANCH_CODE_LENGTH_MIN = 2
BRANCH_CODE_LENGTH_MAX = 40

_ASCII_DIGITS = re.compile(r"[0-9]+")
# Upper-case letters, digits and single hyphens between them: BEKASI-KOTA, KCP-CIKARANG-2.
# The first character is a letter, so that no number (a NIK, a KPJ typed into the wrong field) is ever a branch code:
# branch codes are published on every event.
_BRANCH_CODE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)*")


def _check_digits(field: str, value: object, length: int) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{field} must be text of {length} digits, got {type(value).__name__}")
    if len(value) != length:
        raise ValueError(f"{field} must be exactly {length} digits, got {len(value)} characters")
    if not _ASCII_DIGITS.fullmatch(value):
        raise ValueError(f"{field} must contain only the digits 0-9 (no spaces, dots or letters)")
    return value


def validate_kpj(s: str) -> str:
    """A member's KPJ number: exactly 11 digits."""
    return _check_digits("KPJ number", s, KPJ_LENGTH)


def validate_npp(s: str) -> str:
    """An employer's NPP registration number: exactly 8 digits."""
    return _check_digits("NPP number", s, NPP_LENGTH)


def _nik_fields(s: object) -> tuple[int, int, int]:
    """Check the NIK's shape and return the raw (day field, month, yy) of its birth-date part."""
    nik = _check_digits("NIK", s, NIK_LENGTH)
    if nik[0:2] == "00":
        raise ValueError("NIK: the province code (digits 1-2) must not be 00")
    if nik[12:16] == "0000":
        raise ValueError("NIK: the serial number (digits 13-16) must not be 0000")
    return int(nik[6:8]), int(nik[8:10]), int(nik[10:12])


def _birth_day_month(day_field: int, month: int) -> int:
    """The real birth day from the NIK's day field (women: day + 40), checked against the month's length."""
    day = day_field - NIK_FEMALE_DAY_OFFSET if day_field > NIK_FEMALE_DAY_OFFSET else day_field
    if not 1 <= month <= MONTHS_IN_YEAR:
        raise ValueError(f"NIK: the birth month (digits 9-10) must be 01-12, got {month:02d}")
    if not 1 <= day <= DAYS_IN_MONTH_MAX:
        raise ValueError(
            f"NIK: the birth day (digits 7-8) must be 01-31 for men or 41-71 for women, got {day_field:02d}")
    # 29 February is possible for any yy divisible by 4, since 2000 was a leap year; the exact century check
    # happens in nik_birth_date when the caller can say which century is meant.
    if day > monthrange(2000, month)[1]:
        raise ValueError(f"NIK: the birth date (digits 7-12) is not a real date: day {day} of month {month:02d}")
    return day


def validate_nik(s: str) -> str:
    """A national ID number: 16 digits = province, regency, district (2 each), birth date DDMMYY, serial (4)."""
    day_field, month, yy = _nik_fields(s)
    day = _birth_day_month(day_field, month)
    if (month, day) == LEAP_DAY and yy % 4 != 0:
        raise ValueError(f"NIK: the birth date (digits 7-12) is not a real date: 29 February in a year "
                         f"ending {yy:02d}")
    return s


def nik_birth_date(nik: str, century_hint: date | None = None) -> tuple[int, int, int]:
    """The birth (day, month, yy) a valid NIK encodes, with women's day + 40 undone.

    A NIK carries only two year digits. With `century_hint` (usually today), the birth year is taken as the latest
    one on or before the hint that ends in those digits; then 29 February is checked against that exact year (a
    NIK dated 290200 is impossible for someone born in 1900) and a birth date after the hint is refused.
    """
    validate_nik(nik)
    day_field, month, yy = _nik_fields(nik)
    day = _birth_day_month(day_field, month)
    if century_hint is not None:
        year = century_hint.year - (century_hint.year - yy) % 100
        if (month, day) > (century_hint.month, century_hint.day) and year == century_hint.year:
            year -= 100
        if day > monthrange(year, month)[1]:
            raise ValueError(f"NIK: the birth date (digits 7-12) is not a real date: {day} {month:02d} {year}")
    return day, month, yy


def nik_is_female(nik: str) -> bool:
    validate_nik(nik)
    return _nik_fields(nik)[0] > NIK_FEMALE_DAY_OFFSET


def nik_matches_birth_date(nik: str, birth_date: date) -> bool:
    """Whether the NIK's day, month and two-digit year agree with a birth date recorded elsewhere."""
    return nik_birth_date(nik) == (birth_date.day, birth_date.month, birth_date.year % 100)


def nik_hmac(key: bytes, nik: str) -> str:
    """The NIK's HMAC-SHA256 under the fund's secret key, in hex (`docs/kafka.md`, "Personal data"): one person's
    KPJs share it, and without the key nobody can compute or reverse it. The caller brings a checked key
    (`Settings.nik_hmac_key_bytes`)."""
    return hmac.new(key, nik.encode(), hashlib.sha256).hexdigest()


def validate_branch_code(s: str) -> str:
    """A branch code of the project's own scheme: upper-case letters, digits and hyphens, 2-40 characters."""
    if not isinstance(s, str):
        raise ValueError(f"branch code must be text like 'BEKASI-KOTA', got {type(s).__name__}")
    if not BRANCH_CODE_LENGTH_MIN <= len(s) <= BRANCH_CODE_LENGTH_MAX:
        raise ValueError(f"branch code must be {BRANCH_CODE_LENGTH_MIN}-{BRANCH_CODE_LENGTH_MAX} characters, "
                         f"got {len(s)}")
    if not _BRANCH_CODE.fullmatch(s):
        # The value is not repeated: it may be personal data typed into the wrong field.
        raise ValueError("branch code must start with an upper-case letter A-Z and use only upper-case letters, "
                         "digits and single hyphens between them, like 'BEKASI-KOTA'")
    return s


def luhn_check_digit(digits: str) -> str:
    """The Luhn (mod 10) check digit of a string of digits, as payment codes and card numbers carry."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:  # doubled: every second digit from the right, counting the check digit's place as first
            value = value * 2 - 9 if value * 2 > 9 else value * 2  # noqa: PLR2004  (the digits of a doubled digit)
        total += value
    return str((10 - total % 10) % 10)


def luhn_valid(code: str) -> bool:
    return code.isascii() and code.isdigit() and len(code) > 1 and luhn_check_digit(code[:-1]) == code[-1]
