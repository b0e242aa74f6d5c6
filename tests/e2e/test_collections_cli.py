"""Collections through the `ledger` command line, end to end, on SQLite and on PostgreSQL: the commands of docs/cli.md
("Collections: the monthly close, money received, refunds") run as written there, in subprocesses, with the output
the document shows.

The scenario is the document's: employer 10012345 (risk low) employs Budi (15000000001) at Rp5,000,000 from January
2024, so January costs Rp477,000, due 15 February; Sari (15000000002) is a self-paying BPU member declaring
Rp1,000,000: Rp16,800 a month, due the 15th of the month itself. Rp300,000 arrives on 10 February, Rp210,000 on
20 April: three months late, a fine of 3 x 2% = Rp28,620, and Rp4,380 left over, which is refunded.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.settings import Settings
from tests.support.cli_runner import Cli

pytestmark = pytest.mark.e2e

NPP, BUDI, SARI = "10012345", "15000000001", "15000000002"
ACCOUNT = "c2063ad7-f7ed-5b0d-a3f7-ac77f968567a"  # employer 10012345's payer account (ledger.domain.payer_account_id)
SARI_ACCOUNT = "45eeb0a0-e7bb-594d-80bf-179805735d4c"
JANUARY_CODE = "11001234524011013"  # 1 + NPP + 2401 + segment 1 + bill 01 + Luhn check digit

SETUP = [
    ("employer", "register", "--npp", NPP, "--name", "PT Maju Jaya", "--branch", "BEKASI-KOTA", "--kind", "company",
     "--risk", "low", "--registered-on", "2015-07-01"),
    ("member", "enroll", "--kpj", BUDI, "--nik", "3275011505900001", "--name", "Budi Santoso", "--birth-date",
     "1990-05-15", "--npp", NPP, "--wage", "5000000", "--effective", "2024-01-01"),
    ("member", "enroll", "--kpj", SARI, "--nik", "3275015505900002", "--name", "Sari Dewi", "--birth-date",
     "1990-05-15", "--segment", "BPU", "--branch", "BEKASI-KOTA", "--wage", "1000000", "--effective", "2024-01-01"),
]
CLOSE = ("billing", "close", "--month", "2024-01", "--branch", "BEKASI-KOTA")
SHORT = ("payment", "receive", "--code", JANUARY_CODE, "--amount", "300000", "--received-on", "2024-02-10",
         "--reference", "BCA-240210-001")
REST = ("payment", "receive", "--npp", NPP, "--amount", "210000", "--received-on", "2024-04-20", "--reference",
        "BCA-240420-007")
REFUND = ("payment", "refund", "--npp", NPP, "--amount", "4380", "--on", "2024-04-22", "--reason",
          "overpaid: the April transfer")
SARI_PAYS = ("payment", "receive", "--kpj", SARI, "--amount", "16800", "--received-on", "2024-01-12", "--reference",
             "BRI-240112-3", "--payer", "institution", "--payer-name", "APBD Kota Bekasi")


@pytest.fixture(params=["sqlite", "postgres"])
def cli(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cli]:
    """The CLI on a fresh event store: an SQLite file, or a PostgreSQL database of its own."""
    base = {**os.environ, "LEDGER_ACCESS_LOG_SQLITE_PATH": str(tmp_path / "access-log.db")}
    if request.param == "sqlite":
        yield Cli(env={**base, "LEDGER_PERSISTENCE": "sqlite", "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db")},
                  folder=tmp_path)
        return
    import psycopg

    pg: Settings = request.getfixturevalue("postgres_settings")
    database = f"ledger_collections_{uuid.uuid4().hex[:12]}"
    connect = {"host": pg.postgres_host, "port": pg.postgres_port, "user": pg.postgres_user,
               "dbname": pg.postgres_dbname, "password": pg.postgres_password or None, "autocommit": True}
    with psycopg.connect(**connect) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    yield Cli(env={**base, "LEDGER_PERSISTENCE": "postgres", "LEDGER_POSTGRES_DBNAME": database}, folder=tmp_path)
    with psycopg.connect(**connect) as connection:
        connection.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


@pytest.fixture
def enrolled(cli: Cli) -> Cli:
    for command in SETUP:
        cli(*command)
    return cli


def test_the_documented_close_receipts_repeat_and_refund(enrolled: Cli) -> None:
    cli = enrolled
    assert cli(*CLOSE).stdout == ("closed 2024-01 for branch BEKASI-KOTA: 2 bill(s) for 2 member(s), total "
                                  "Rp493,800; 0 settled from credit (2 batch(es))\n")
    assert cli(*SHORT).stdout == (
        f"received Rp300,000 from employer {NPP} on 2024-02-10 (reference BCA-240210-001, event {ACCOUNT}.2); 0 "
        f"bill(s) settled; unapplied Rp300,000, 1 bill(s) open\n")
    settled = (f"received Rp210,000 from employer {NPP} on 2024-04-20 (reference BCA-240420-007, event {ACCOUNT}.3); "
               f"1 bill(s) settled ({NPP}/2024-01/PU/1); unapplied Rp4,380, 0 bill(s) open\n")
    assert cli(*REST).stdout == settled

    repeat = cli(*REST)  # the same bank reference and content: exit 0, nothing written
    assert repeat.stdout == f"bank reference BCA-240420-007 already recorded (repeat): nothing was written\n{settled}"
    conflict = cli(*REST[:5], "210001", *REST[6:], expect=6)
    assert conflict.stderr.endswith(
        "error: bank reference BCA-240420-007 was already recorded with another payer, amount or date; the first "
        "receipt stands (the same money again is answered as a repeat)\n")

    assert cli(*REFUND).stdout == f"refunded Rp4,380 to employer {NPP} (event {ACCOUNT}.5); unapplied Rp0\n"
    assert cli(*SARI_PAYS).stdout == (
        f"received Rp16,800 from member {SARI} on 2024-01-12 (reference BRI-240112-3, event {SARI_ACCOUNT}.2); "
        f"1 bill(s) settled ({SARI}/2024-01/BPU/1); unapplied Rp0, 0 bill(s) open\n")

    # Closing again: every batch is a repeat, nothing new is billed.
    assert cli(*CLOSE).stdout == ("closed 2024-01 for branch BEKASI-KOTA: 0 bill(s) for 0 member(s), total Rp0; 0 "
                                  "settled from credit (2 batch(es), 2 already closed (repeat))\n")
    assert cli.json("billing", "close", "--month", "2024-01") == {
        "month": "2024-01", "branch": None, "batches": 2, "batches_repeated": 2, "bills": 0, "members": 0,
        "total": 0, "settled_from_credit": 0}

    # Budi's January, recorded when the bill was settled: on 20 April, with its fine.
    [_enrolled, paid] = cli.history("--kpj", BUDI)
    assert (paid["type"], paid["effective_date"]) == ("ContributionPaid", "2024-04-20")
    assert (paid["data"]["payment_id"], paid["data"]["months_late"], paid["data"]["fine"], paid["data"]["total"]) == (
        f"{NPP}/2024-01/PU/1", 3, 28_620, 505_620)


def test_a_back_dated_enrollment_is_billed_by_the_next_close_as_an_adjustment(enrolled: Cli) -> None:
    cli = enrolled
    cli(*CLOSE)
    cli("member", "enroll", "--kpj", "15000000003", "--nik", "3275015505900003", "--name", "Siti Aminah",
        "--birth-date", "1990-05-15", "--npp", NPP, "--wage", "5000000", "--effective", "2024-01-10")
    again = cli.json(*CLOSE, "--json")
    assert (again["bills"], again["members"], again["total"], again["batches_repeated"]) == (1, 1, 477_000, 1)
    paid = cli.json("payment", "receive", "--npp", NPP, "--amount", str(2 * 477_000), "--received-on", "2024-02-14",
                    "--reference", "BCA-240214-1", "--json")
    assert paid["settled"] == [f"{NPP}/2024-01/PU/1", f"{NPP}/2024-01/PU/2"]
    assert set(paid) == {"command", "command_id", "reference", "event_id", "npp", "kpj", "amount", "received_on",
                         "bills_settled", "settled", "unapplied", "open_bills", "repeated"}  # as docs/cli.md lists
    assert (paid["command_id"], paid["unapplied"], paid["open_bills"]) == ("money:BCA-240214-1", 0, 0)


def test_bad_input_is_refused_with_its_exit_code_and_writes_nothing(enrolled: Cli) -> None:
    cli = enrolled
    cli(*CLOSE)
    receive = ("payment", "receive", "--npp", NPP, "--received-on", "2024-02-10", "--reference", "BCA-1")
    assert "amount: Input should be greater than 0" in cli(*receive, "--amount", "0", expect=2).stderr
    assert "amount: Input should be greater than 0" in cli(*receive, "--amount", "-5", expect=2).stderr
    assert "at most Rp1,000,000,000,000 (MONEY_AMOUNT_MAX" in cli(*receive, "--amount", "1000000000001",
                                                                  expect=2).stderr
    future = cli("payment", "receive", "--npp", NPP, "--amount", "1000", "--received-on", "2999-01-01",
                 "--reference", "BCA-2", expect=2)
    assert "receipt date 2999-01-01 is in the future" in future.stderr
    unknown = cli("payment", "receive", "--code", "11001234524051019", "--amount", "1000", "--received-on",
                  "2024-02-10", "--reference", "BCA-3", expect=3)
    assert "unknown payment code 11001234524051019" in unknown.stderr
    typo = cli("payment", "receive", "--code", "11001234524011014", "--amount", "1000", "--received-on",
               "2024-02-10", "--reference", "BCA-4", expect=2)
    assert "the check digit does not match" in typo.stderr
    refund = cli(*REFUND, expect=5)
    assert f"a refund of Rp4,380 is larger than employer {NPP}'s credit of Rp0" in refund.stderr
    error = cli.json("billing", "close", "--month", "2024-1", "--json", expect=2)["error"]
    assert error == {"type": "InvalidInput", "message": "--month must be a month YYYY-MM, like 2024-03, got '2024-1'"}
    assert "no employer or member is registered at branch BOGOR" in cli("billing", "close", "--month", "2024-01",
                                                                        "--branch", "BOGOR", expect=3).stderr
    # Nothing of the above was written: the first money recorded is the account's second event, after its bill.
    assert cli(*SHORT).stdout.startswith(f"received Rp300,000 from employer {NPP} on 2024-02-10 (reference "
                                         f"BCA-240210-001, event {ACCOUNT}.2)")
