"""One contract for the write side, run against each real event store: an SQLite file and PostgreSQL.

Each PostgreSQL test gets a schema of its own (eventsourcing's `POSTGRES_SCHEMA`), created before and dropped after,
so tests never see each other's rows. Each SQLite test gets a fresh file. A "restart" is a second `Ledger` built
from the same environment: it shares nothing with the first but the store.

The library's own PostgreSQL recorder hangs on saves over about 10 MB (see ledger/persistence.py); the city
government's 7,000-member enrollment below is such a save. Every test has a timeout so that a hang fails fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError

from ledger import events as ev
from ledger.application import Ledger
from ledger.commands import (
    ChangeWage,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    MemberRow,
    PayClaim,
    PayContribution,
    RegisterEmployer,
    Reverse,
)
from ledger.errors import AlreadyExists, CommandIdConflict, NotFound
from ledger.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TODAY = date(2026, 11, 23)
NPP = "10012345"
BRANCH = "BEKASI-KOTA"
BIRTH = date(1990, 5, 15)
BULK_ROWS = 3_000
BAD_ROW = 1_500  # 1-based, as a clerk counts the rows of a file: half-way
ROSTER_READ_BACK = 600  # more than one chunk of ledger.persistence.IDS_PER_QUERY_MAX
TKK_STAFF = 7_000  # the city government's contract staff, enrolled and paid for in one command each


def kpj(n: int) -> str:
    return f"{15_000_000_000 + n:011d}"


def member_row(n: int, wage: int = 5_000_000) -> MemberRow:
    return MemberRow(kpj=kpj(n), nik=f"3275011505{BIRTH.year % 100:02d}{1 + n % 9_999:04d}", name=f"Pekerja {n}",
                     birth_date=BIRTH, wage=wage)


def stored_events(app: Ledger) -> int:
    return app.recorder.max_notification_id() or 0


@pytest.fixture(params=["sqlite", "postgres"])
def store_env(request, tmp_path, unique) -> Iterator[dict[str, str]]:
    """The eventsourcing environment of a fresh, empty event store on each backend."""
    if request.param == "sqlite":
        yield Settings(persistence="sqlite", sqlite_path=tmp_path / "ledger.db").eventsourcing_env()
        return
    pg: Settings = request.getfixturevalue("postgres_settings")
    schema = f"ledger_test_{unique}"
    connect = dict(host=pg.postgres_host, port=pg.postgres_port, user=pg.postgres_user, dbname=pg.postgres_dbname,
                   password=pg.postgres_password or None, autocommit=True)
    with psycopg.connect(**connect) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    yield {**pg.eventsourcing_env(), "POSTGRES_SCHEMA": schema}
    with psycopg.connect(**connect) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def open_ledger(store_env, settings) -> Iterator[Callable[[], Ledger]]:
    """Opens a `Ledger` on the test's store (call it again for a restart); all are closed at the end."""
    opened: list[Ledger] = []

    def open_() -> Ledger:
        app = Ledger(env=dict(store_env), clock=lambda: TODAY, nik_key=settings.nik_hmac_key_bytes())
        opened.append(app)
        return app

    yield open_
    for app in opened:
        app.close()


def register_and_enroll(app: Ledger, *members: int) -> None:
    app.execute(RegisterEmployer(npp=NPP, name="PT Maju Jaya", branch=BRANCH, kind="company", risk_class="low",
                                 registered_on=date(2020, 1, 2)))
    for n in members:
        app.execute(EnrollMember(member=member_row(n), npp=NPP, effective=date(2024, 1, 1)))


class TestLedgerOnEachBackend:
    def test_register_enroll_pay_and_claim(self, open_ledger):
        app = open_ledger()
        register_and_enroll(app, 1, 2)
        paid = app.execute(PayContribution(npp=NPP, month="2024-01", months=2, paid_on=date(2024, 2, 10)))
        app.execute(ExitMember(kpj=kpj(1), reason="resignation", exit_date=date(2024, 2, 29)))
        claim = app.execute(PayClaim(kpj=kpj(1), program="JHT", incident_date=date(2024, 2, 29),
                                     paid_on=date(2024, 4, 2)))

        assert (paid["members"], paid["lines"], paid["total"]) == (2, 4, 4 * 477_000)
        assert claim["amount"] == 2 * 285_000
        # Read back by a fresh process: everything came from the store, nothing from memory.
        again = open_ledger()
        assert again.jht_balance(kpj(1)) == 0
        assert again.jht_balance(kpj(2)) == 570_000
        types = [row["type"] for row in again.history(kpj=kpj(1))]
        assert types.count("ContributionPaid") == 2 and types.count("ClaimPaid") == 1
        assert again.employer(NPP).roster == [kpj(1), kpj(2)]
        lines = [r["data"] for r in again.history(kpj=kpj(2)) if r["type"] == "ContributionPaid"]
        assert {line["month"]: line["total"] for line in lines} == {"2024-01": 477_000, "2024-02": 477_000}

    def test_a_repeated_command_after_a_restart_answers_the_first_result_and_writes_nothing(self, open_ledger):
        first_process = open_ledger()
        register_and_enroll(first_process, 1)
        command = PayContribution(command_id="bank-ref-2024-02-0001", npp=NPP, month="2024-01",
                                  paid_on=date(2024, 2, 10))
        first = first_process.execute(command)
        first_process.close()

        second_process = open_ledger()
        before = stored_events(second_process)
        again = second_process.execute(PayContribution.build(
            command_id="bank-ref-2024-02-0001", npp=NPP, month="2024-01", paid_on=date(2024, 2, 10)))

        assert (first["repeated"], again["repeated"]) == (False, True)
        assert {**again, "repeated": False} == first
        assert stored_events(second_process) == before
        with pytest.raises(CommandIdConflict, match="already used for a different pay-contribution"):
            second_process.execute(PayContribution(command_id="bank-ref-2024-02-0001", npp=NPP, month="2024-02",
                                                   paid_on=date(2024, 3, 10)))
        assert stored_events(second_process) == before

    def test_the_second_of_two_writers_on_one_member_is_refused_by_the_store(self, open_ledger):
        setup = open_ledger()
        register_and_enroll(setup, 1)
        writer_a, writer_b = open_ledger(), open_ledger()
        member_a, member_b = writer_a.member(kpj(1)), writer_b.member(kpj(1))
        member_a.record(ev.MemberWageChanged(kpj=kpj(1), wage=6_000_000, effective=date(2024, 7, 1)))
        member_b.record(ev.MemberWageChanged(kpj=kpj(1), wage=7_000_000, effective=date(2024, 7, 1)))

        writer_a.save(member_a)
        before = stored_events(writer_a)
        with pytest.raises(IntegrityError):
            writer_b.save(member_b)

        assert stored_events(writer_a) == before
        assert open_ledger().member(kpj(1)).wage_on(TODAY) == 6_000_000

    def test_two_writers_racing_through_execute_both_succeed_thanks_to_the_retry(self, open_ledger, monkeypatch):
        setup = open_ledger()
        register_and_enroll(setup, 1)
        writer_a, writer_b = open_ledger(), open_ledger()
        original = writer_b._handlers[ChangeWage]
        calls: list[bool] = []

        def change_wage_while_a_commits_first(command, careful):
            result = original(command, careful)  # B has loaded the member and decided ...
            if not calls:  # ... and, the first time only, A commits its own change before B saves.
                writer_a.execute(ChangeWage(kpj=kpj(1), wage=6_000_000, effective=date(2024, 7, 1)))
            calls.append(careful)
            return result

        monkeypatch.setitem(writer_b._handlers, ChangeWage, change_wage_while_a_commits_first)

        result = writer_b.execute(ChangeWage(kpj=kpj(1), wage=6_500_000, effective=date(2024, 10, 1)))

        assert result["repeated"] is False
        assert calls == [False, True], "B's first save failed on A's change and the retry ran the careful path"
        member = open_ledger().member(kpj(1))
        assert [(d.effective, d.value) for d in member.wage_history] == [
            (date(2024, 1, 1), 5_000_000), (date(2024, 7, 1), 6_000_000), (date(2024, 10, 1), 6_500_000)]

    @staticmethod
    def spy_on_attempts(app: Ledger, command_type: type, monkeypatch) -> list[bool]:
        """The `careful` flag of each attempt the ledger makes at commands of this type."""
        original, attempts = app._handlers[command_type], []

        def handler(command, careful):
            attempts.append(careful)
            return original(command, careful)

        monkeypatch.setitem(app._handlers, command_type, handler)
        return attempts

    def test_a_writer_saving_a_cached_member_another_writer_changed_rereads_and_keeps_both(self, open_ledger,
                                                                                           monkeypatch):
        setup = open_ledger()
        register_and_enroll(setup, 1)
        writer_a, writer_b = open_ledger(), open_ledger()
        writer_a.execute(ChangeWage(kpj=kpj(1), wage=6_000_000, effective=date(2024, 4, 1)))  # A caches the member
        writer_b.execute(ChangeWage(kpj=kpj(1), wage=6_500_000, effective=date(2024, 7, 1)))  # A's copy is stale
        attempts = self.spy_on_attempts(writer_a, ChangeWage, monkeypatch)

        writer_a.execute(ChangeWage(kpj=kpj(1), wage=7_000_000, effective=date(2024, 10, 1)))

        assert attempts == [False, True], "the stale copy's save was refused, and the retry read the store"
        member = open_ledger().member(kpj(1))
        assert [(d.effective, d.value) for d in member.wage_history] == [
            (date(2024, 1, 1), 5_000_000), (date(2024, 4, 1), 6_000_000), (date(2024, 7, 1), 6_500_000),
            (date(2024, 10, 1), 7_000_000)]
        assert member.version == 4

    def test_a_command_refused_on_a_stale_cached_member_is_decided_again_on_the_store(self, open_ledger,
                                                                                        monkeypatch):
        setup = open_ledger()
        register_and_enroll(setup, 1)
        setup.execute(PayContribution(npp=NPP, month="2024-01", paid_on=date(2024, 2, 10)))
        writer_a, writer_b = open_ledger(), open_ledger()
        writer_a.execute(ExitMember(kpj=kpj(1), reason="death", exit_date=date(2024, 2, 20)))
        jkm = dict(kpj=kpj(1), program="JKM", incident_date=date(2024, 2, 20), paid_on=date(2024, 3, 5),
                   beneficiary="spouse", beneficiary_name="Ahli waris 1")
        first = writer_a.execute(PayClaim(**jkm))  # A caches the member with its JKM claim
        writer_b.execute(Reverse(event_id=first["event_id"], reason="paid to the wrong heir",
                                 reversed_on=date(2024, 3, 6)))
        attempts = self.spy_on_attempts(writer_a, PayClaim, monkeypatch)

        # A's cached copy still shows the claim, so it refuses a second JKM claim for the same death; the store
        # says that claim was reversed, so the careful attempt pays it.
        again = writer_a.execute(PayClaim(**{**jkm, "beneficiary_name": "Ahli waris 2"}))

        assert attempts == [False, True]
        assert again["amount"] == first["amount"] > 0
        claims = open_ledger().member(kpj(1)).claims
        assert [c.beneficiary_name for c in claims.values()] == ["Ahli waris 2"]

    def test_a_bulk_enrollment_failing_half_way_leaves_no_new_member(self, open_ledger):
        app = open_ledger()
        register_and_enroll(app, 1)
        rows = [member_row(100 + i) for i in range(BULK_ROWS)]
        rows[BAD_ROW - 1] = member_row(1)  # already enrolled
        before = stored_events(app)

        with pytest.raises(AlreadyExists, match=f"a member with KPJ {kpj(1)} is already enrolled"):
            app.execute(EnrollMembers(npp=NPP, effective=date(2024, 6, 1), members=rows))

        assert stored_events(app) == before
        restarted = open_ledger()
        assert restarted.employer(NPP).roster == [kpj(1)]
        for index in (0, BAD_ROW - 2, BULK_ROWS - 1):
            with pytest.raises(NotFound):
                restarted.member(rows[index].kpj)
        # Good rows go in whole, and a payment reads the whole roster back from the store in batches.
        good = rows[:ROSTER_READ_BACK]
        assert restarted.execute(EnrollMembers(npp=NPP, effective=date(2024, 6, 1), members=good))["enrolled"] \
            == ROSTER_READ_BACK
        paid = restarted.execute(PayContribution(npp=NPP, month="2024-06", paid_on=date(2024, 7, 10)))
        assert (paid["members"], paid["total"]) == (ROSTER_READ_BACK + 1, (ROSTER_READ_BACK + 1) * 477_000)

    def test_a_city_government_enrolls_and_pays_for_its_7000_contract_staff_in_one_command_each(self, open_ledger):
        app = open_ledger()
        app.execute(RegisterEmployer(npp=NPP, name="Pemerintah Kota Bekasi", branch=BRANCH, kind="government",
                                     risk_class="very-low", registered_on=date(2017, 9, 1)))
        rows = [member_row(10_000 + i, wage=4_500_000) for i in range(TKK_STAFF)]

        enrolled = app.execute(EnrollMembers(npp=NPP, effective=date(2024, 1, 1), members=rows))
        paid = app.execute(PayContribution(npp=NPP, month="2024-01", months=3, paid_on=date(2024, 1, 20),
                                           payer="institution", payer_name="APBD Kota Bekasi"))

        assert enrolled["enrolled"] == TKK_STAFF
        assert (paid["members"], paid["lines"], paid["payer"]) == (TKK_STAFF, 3 * TKK_STAFF, "institution")
        # 4,500,000 at very-low risk, Jan 2024: JHT 256,500 + JKK 10,800 + JKM 13,500 + JP 135,000 = 415,800.
        assert paid["total"] == 3 * TKK_STAFF * 415_800
        assert len(open_ledger().employer(NPP).roster) == TKK_STAFF
