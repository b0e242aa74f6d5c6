"""Synthetic but valid members, for the demo, the benchmarks and the tests (and later `scripts/generate`).

Every row passes the real validators: an 11-digit KPJ from a running number, and a NIK whose birth-date part
(DDMMYY) matches the birth date, from region 327501 (Bekasi) with a non-zero serial.
"""

from __future__ import annotations

from datetime import date

from ledger.commands import MemberRow

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
