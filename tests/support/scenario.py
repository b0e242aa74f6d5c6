"""Builders for the unit tests of the write side: a ledger on the in-memory backend with a fixed clock, and the
few commands most scenarios start with. Values are realistic; every test states the ones it depends on."""

from __future__ import annotations

from datetime import date
from typing import Any

from ledger.application import Ledger
from ledger.commands import (
    EnrollMember,
    EnrollMembers,
    MemberRow,
    PayContribution,
    RegisterEmployer,
)
from ledger.rules import Program, Segment

TODAY = date(2026, 11, 23)
POPO_ENV = {"PERSISTENCE_MODULE": "eventsourcing.popo"}
# The unit tests' NIK hash key: fixed, so results repeat; as long as a fund's key must be (NIK_HMAC_KEY_BYTES_MIN).
TEST_NIK_KEY = b"unit-tests-only-nik-hmac-key-0123456789"
NPP = "10012345"
BRANCH = "BEKASI-KOTA"
BIRTH = date(1990, 5, 15)


def new_ledger(env: dict[str, str] | None = None) -> Ledger:
    return Ledger(env=dict(env or POPO_ENV), clock=lambda: TODAY, nik_key=TEST_NIK_KEY)


def kpj(n: int) -> str:
    return f"{15_000_000_000 + n:011d}"


def nik(birth: date = BIRTH, serial: int = 1, female: bool = False) -> str:
    """A valid NIK for a person born on `birth`: Kota Bekasi codes, the birth date, a serial."""
    day = birth.day + 40 if female else birth.day
    return f"327501{day:02d}{birth.month:02d}{birth.year % 100:02d}{serial:04d}"


def row(kpj_: str, wage: int = 5_000_000, *, segment: Segment = Segment.PU, programs: list[Program] | None = None,
        birth: date = BIRTH, serial: int = 1, name: str = "Budi Santoso") -> MemberRow:
    return MemberRow(kpj=kpj_, nik=nik(birth, serial), name=name, birth_date=birth, segment=segment, wage=wage,
                     programs=programs)


def register(app: Ledger, npp: str = NPP, *, risk_class: str = "low", kind: str = "company",
             registered_on: date = date(2015, 7, 1), name: str = "PT Maju Jaya", **extra: Any) -> dict[str, Any]:
    return app.execute(RegisterEmployer(npp=npp, name=name, branch=BRANCH, kind=kind, risk_class=risk_class,
                                        registered_on=registered_on, **extra))


def enroll(app: Ledger, kpj_: str, *, npp: str | None = NPP, effective: date = date(2024, 1, 1),
           wage: int = 5_000_000, segment: Segment = Segment.PU, programs: list[Program] | None = None,
           branch: str | None = None, **row_fields: Any) -> dict[str, Any]:
    member = row(kpj_, wage, segment=segment, programs=programs, **row_fields)
    return app.execute(EnrollMember(member=member, npp=npp, branch=branch, effective=effective))


def enroll_many(app: Ledger, count: int, *, npp: str = NPP, effective: date = date(2024, 1, 1),
                wage: int = 3_000_000, first: int = 1) -> tuple[list[str], dict[str, Any]]:
    kpjs = [kpj(first + i) for i in range(count)]
    rows = [row(k, wage, serial=1 + i % 9999) for i, k in enumerate(kpjs)]
    return kpjs, app.execute(EnrollMembers(npp=npp, effective=effective, members=rows))


def pay(app: Ledger, month: str, paid_on: date, *, npp: str | None = NPP, kpj_: str | None = None,
        months: int = 1, **extra: Any) -> dict[str, Any]:
    return app.execute(PayContribution(npp=None if kpj_ else npp, kpj=kpj_, month=month, months=months,
                                       paid_on=paid_on, **extra))


def notifications(app: Ledger) -> int:
    """How many stored events the whole ledger holds: the measure of 'nothing was written'."""
    return app.recorder.max_notification_id() or 0


def events_of(app: Ledger, type_name: str, *, kpj_: str | None = None, npp: str | None = None) -> list[dict[str, Any]]:
    """The history rows of one type, oldest first."""
    return [r for r in app.history(kpj=kpj_, npp=npp) if r["type"] == type_name]
