"""A value the write side accepts is one every reader can store: the amount limits of ledger/commands.py, checked
against both real view stores.

Hypothesis draws short histories whose amounts (wages, declared incomes, claim amounts, yield rates, months paid at
once) are ordinary, at their limit, one above it, or far beyond 64 bits, with payments up to a century late (fines
of 24 times the contribution) when the clock is set a century ahead. An amount above its limit must be refused as
`InvalidInput`; whatever is accepted is shaped as the relay publishes it and applied through the real projections
into SQLite (with its JSON path, as the runner does) and into PostgreSQL, whose invariants must hold and whose
queries, which add the amounts up, must answer alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.commands import (
    CLAIM_AMOUNT_MAX,
    MONTHS_PER_PAYMENT_MAX,
    WAGE_MAX,
    YIELD_RATE_PERCENT_MAX,
    ChangeWage,
    Command,
    CreditYield,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    PayClaim,
    PayContribution,
    RegisterEmployer,
)
from ledger.errors import InvalidInput, LedgerError
from ledger.settings import Settings
from projections import queries
from projections.store import ViewStore
from tests.support.views import project, published

pytestmark = pytest.mark.integration

BRANCH = "BEKASI-KOTA"
COMPANY, CITY = "10000001", "10000002"
BIRTH = date(1970, 5, 15)
ENROLLED_ON = date(2016, 1, 1)
TODAY, A_CENTURY_ON = date(2026, 11, 23), date(2115, 6, 30)
STEPS_MAX = 8
BEYOND_64_BITS = [2**63 - 1, 2**63, 2**64 - 1, 10**30]


def kpj(n: int) -> str:
    return f"{15_000_000_000 + n:011d}"


def nik(serial: int) -> str:
    return f"327501{BIRTH.day:02d}{BIRTH.month:02d}{BIRTH.year % 100:02d}{serial:04d}"


def amounts(limit: int) -> st.SearchStrategy[int]:
    """Mostly at or around `limit`, sometimes anywhere up to far beyond 64 bits."""
    edges = st.sampled_from([1, limit - 1, limit, limit + 1, *BEYOND_64_BITS])
    return st.one_of(edges, edges, st.integers(1, 2 * limit), st.integers(1, 10**31))


RATES = st.one_of(st.sampled_from([Decimal(0), YIELD_RATE_PERCENT_MAX, YIELD_RATE_PERCENT_MAX + Decimal("0.0001"),
                                   Decimal("99.9999")]),
                  st.decimals(min_value=0, max_value=30, places=4))


@dataclass
class History:
    """A ledger with a clock, and the commands run on it: refused ones must be refused for the right reason."""

    clock: date
    app: Ledger = field(init=False)
    accepted: int = 0

    def __post_init__(self) -> None:
        self.app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=lambda: self.clock,
                          nik_key=b"integration-tests-only-nik-hmac-key-0123")  # in memory, never published

    def run(self, command_class: type[Command], *, beyond: str | None = None, **raw: Any) -> bool:
        """Build and run a command; `beyond` names the limit an amount of it exceeds, which must refuse it."""
        try:
            self.app.execute(command_class.build(**raw))
        except InvalidInput as error:
            if beyond is not None:
                assert beyond in str(error), str(error)  # noqa: PT017 - run() answers refusals with False
            return False
        except LedgerError:
            assert beyond is None, f"{command_class.NAME} with an amount above {beyond} was not refused as such"
            return False
        assert beyond is None, f"{command_class.NAME} accepted an amount above {beyond}: {raw}"
        self.accepted += 1
        return True


def wage_beyond(wage: int) -> str | None:
    return "WAGE_MAX" if wage > WAGE_MAX else None


def build_history(data: st.DataObject) -> History:
    history = History(clock=data.draw(st.sampled_from([TODAY, A_CENTURY_ON]), label="clock"))
    for npp, kind in ((COMPANY, "company"), (CITY, "government")):
        assert history.run(RegisterEmployer, npp=npp, name=f"Employer {npp}", branch=BRANCH, kind=kind,
                           risk_class="very-high", registered_on=date(2015, 7, 1))
    members = [(kpj(1), COMPANY, "PU"), (kpj(2), CITY, "PU"), (kpj(3), None, "BPU")]
    for serial, (number, npp, segment) in enumerate(members, start=1):
        wage = data.draw(amounts(WAGE_MAX), label=f"wage of {number}")
        row = {"kpj": number, "nik": nik(serial), "name": f"Pekerja {serial}", "birth_date": BIRTH,
               "segment": segment, "wage": wage}
        enrollment = {"npp": npp, "branch": None if npp else BRANCH, "effective": ENROLLED_ON}
        if not history.run(EnrollMember, beyond=wage_beyond(wage), member=row, **enrollment):
            # Refused (above the limit, or a BPU income off the government's list): enrolled at the limit instead,
            # so that the steps below meet the largest amounts the ledger accepts.
            fallback = WAGE_MAX if segment == "PU" else 20_700_000
            assert history.run(EnrollMember, member={**row, "wage": fallback}, **enrollment)
    days = (history.clock - ENROLLED_ON).days
    for _ in range(data.draw(st.integers(1, STEPS_MAX), label="steps")):
        step = data.draw(st.sampled_from(["pay", "pay", "wage", "bulk", "claim", "claim", "exit", "yield"]),
                         label="step")
        number = data.draw(st.sampled_from([kpj(1), kpj(2), kpj(3)]), label="member")
        on = ENROLLED_ON + timedelta(days=data.draw(st.integers(0, days), label="day"))
        if step == "pay":
            payer = data.draw(st.sampled_from([{"npp": COMPANY}, {"npp": CITY}, {"kpj": kpj(3)}]), label="payer")
            months = data.draw(st.integers(1, MONTHS_PER_PAYMENT_MAX + 1), label="months")
            history.run(PayContribution, beyond="less than or equal to 12" if months > MONTHS_PER_PAYMENT_MAX else None,
                        month=f"{on.year:04d}-{on.month:02d}", months=months,
                        paid_on=min(history.clock, on + timedelta(days=data.draw(st.integers(0, 36_500)))), **payer)
        elif step == "wage":
            wage = data.draw(amounts(WAGE_MAX), label="wage")
            history.run(ChangeWage, beyond=wage_beyond(wage), kpj=number, wage=wage, effective=on)
        elif step == "bulk":
            wages = data.draw(st.lists(amounts(WAGE_MAX), min_size=1, max_size=3), label="bulk wages")
            first = 10 + history.accepted * 10
            rows = [{"kpj": kpj(first + i), "nik": nik(first + i), "name": f"Pekerja {first + i}", "birth_date": BIRTH,
                     "wage": wage} for i, wage in enumerate(wages)]
            history.run(EnrollMembers, beyond=wage_beyond(max(wages)), npp=COMPANY, effective=on, members=rows)
        elif step == "claim":
            amount = data.draw(st.one_of(st.none(), amounts(CLAIM_AMOUNT_MAX)), label="claim amount")
            kind = data.draw(st.sampled_from(["care", "disability", "full"]), label="claim kind")
            program = "JHT" if kind == "full" else "JKK"
            paid_on = min(history.clock, on + timedelta(days=data.draw(st.integers(0, 1_500), label="claim delay")))
            history.run(PayClaim, beyond="CLAIM_AMOUNT_MAX" if amount and amount > CLAIM_AMOUNT_MAX else None,
                        kpj=number, program=program, kind=kind, incident_date=on, paid_on=paid_on,
                        amount=amount)
        elif step == "exit":
            history.run(ExitMember, kpj=number, reason=data.draw(st.sampled_from(["disability", "resignation"])),
                        exit_date=on)
        else:
            rate = data.draw(RATES, label="yield rate")
            history.run(CreditYield, beyond="less than or equal to 20" if rate > YIELD_RATE_PERCENT_MAX else None,
                        year=data.draw(st.integers(2016, history.clock.year - 1), label="year"), rate_percent=rate)
    return history


# --- the two view stores --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stores(tmp_path_factory, postgres_settings: Settings) -> Iterator[list[ViewStore]]:
    """An SQLite view file and a PostgreSQL schema of this module's own; each example builds new versions in them."""
    schema = f"limits_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres_settings.postgres_conninfo(), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    sqlite = ViewStore("sqlite", sqlite_path=Path(tmp_path_factory.mktemp("limits")) / "views.db")
    postgres = ViewStore("postgres",
                         conninfo=postgres_settings.postgres_conninfo() + f" options=-csearch_path={schema}")
    yield [sqlite, postgres]
    sqlite.close()
    postgres.close()
    with psycopg.connect(postgres_settings.postgres_conninfo(), autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


def answers(store: ViewStore, kpjs: list[str], on: date) -> dict[str, Any]:
    """What readers ask, every one of which adds amounts up in SQL."""
    return {"branch": queries.branch_report(store, BRANCH, on), "jht": queries.jht_balances(store, on),
            "members": {k: queries.member_balance(store, k, on) for k in kpjs}}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_accepted_amount_is_stored_and_summed_alike_by_both_view_stores(stores, data) -> None:
    history = build_history(data)
    records = published(history.app)
    assert records and all(env["data"] is not None for env, _ in records)

    for store in stores:
        project(store, records)
    kpjs = sorted({env["data"]["kpj"] for env, _ in records if env["type"] == "MemberEnrolled"})
    sqlite, postgres = (answers(store, kpjs, history.clock) for store in stores)
    assert sqlite == postgres
    for member in sqlite["members"].values():
        assert member["jht_balance"] >= 0


def test_the_largest_accepted_amounts_fit_both_view_stores(stores) -> None:
    """Every amount at its limit at once, with sixty years of yield at its limit and a year paid a century late: the
    corners the limits' derivation is about."""
    history = History(clock=A_CENTURY_ON)
    assert history.run(RegisterEmployer, npp=CITY, name="Pemerintah Kota", branch=BRANCH, kind="government",
                       risk_class="very-high", registered_on=date(2015, 7, 1))
    rows = [{"kpj": kpj(i), "nik": nik(i), "name": f"Pekerja {i}", "birth_date": BIRTH, "wage": WAGE_MAX}
            for i in range(1, 11)]
    assert history.run(EnrollMembers, npp=CITY, effective=ENROLLED_ON, members=rows)
    # A year at once for the whole roster, prepaid; the next year a century late (a fine of ~24 times the shares).
    assert history.run(PayContribution, npp=CITY, month="2016-01", months=MONTHS_PER_PAYMENT_MAX,
                       paid_on=date(2016, 1, 10))
    assert history.run(PayContribution, npp=CITY, month="2017-01", months=MONTHS_PER_PAYMENT_MAX,
                       paid_on=date(2115, 1, 20))
    for year in range(2016, 2076):  # sixty years compounding at the highest rate accepted
        assert history.run(CreditYield, year=year, rate_percent=YIELD_RATE_PERCENT_MAX)
    assert history.run(ExitMember, kpj=kpj(1), reason="disability", exit_date=date(2115, 2, 1))
    assert history.run(PayClaim, kpj=kpj(1), program="JKK", kind="disability", incident_date=date(2115, 2, 1),
                       paid_on=date(2115, 3, 1))
    assert history.run(PayClaim, kpj=kpj(2), program="JKK", kind="care", incident_date=date(2115, 2, 1),
                       paid_on=date(2115, 3, 1), amount=CLAIM_AMOUNT_MAX)
    assert history.run(PayClaim, kpj=kpj(1), program="JHT", kind="full", incident_date=date(2115, 2, 1),
                       paid_on=date(2115, 3, 1))
    records = published(history.app)

    for store in stores:
        project(store, records)
    sqlite, postgres = (answers(store, [kpj(1), kpj(2)], A_CENTURY_ON) for store in stores)
    assert sqlite == postgres
    report = sqlite["branch"]
    assert report["late_fines"] > 10 * report["contributions_total"]
    assert report["claims"]["JKK"]["amount"] == 56 * WAGE_MAX + CLAIM_AMOUNT_MAX
    assert 10**13 < sqlite["jht"][kpj(2)] < 2**63 // 10_000  # sixty years of 20% on a year of the largest wage
