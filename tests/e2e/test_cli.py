"""The `ledger` command line, end to end: each test runs the real CLI in subprocesses against an SQLite file of its own
and checks what a clerk would see (output, exit code) and what the books then hold (history, balance).

The scenario's numbers: employer 10012345, risk class low; member 15000000001 earns Rp5,000,000 a month from
March 2024; March is paid on 10 April 2024, on time. That month costs JHT 5.7% = 285,000, JKK 0.54% = 27,000,
JKM 0.30% = 15,000 and JP 3% = 150,000: 477,000 in all, of which the member's JHT balance keeps 285,000.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.cli_runner import Cli

pytestmark = pytest.mark.e2e

NPP = "10012345"
KPJ = "15000000001"
MARCH_TOTALS = {"JHT": 285_000, "JKK": 27_000, "JKM": 15_000, "JP": 150_000}


def nik(serial: int, day: int = 15) -> str:
    """A valid NIK of someone born on `day` May 1990 (day + 40 for a woman)."""
    return f"327501{day:02d}0590{serial:04d}"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {**os.environ, "LEDGER_PERSISTENCE": "sqlite", "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
           "LEDGER_ACCESS_LOG_SQLITE_PATH": str(tmp_path / "access-log.db")}
    return Cli(env=env, folder=tmp_path)


REGISTER = {"command": "register-employer", "id": "seed-register", "npp": NPP, "name": "PT Maju Jaya",
            "branch": "BEKASI-KOTA", "kind": "company", "risk_class": "low", "registered_on": "2015-07-01"}
ENROLL = {"command": "enroll-member", "id": "seed-enroll", "npp": NPP, "effective": "2024-03-01",
          "member": {"kpj": KPJ, "nik": nik(1), "name": "Budi Santoso", "birth_date": "1990-05-15",
                     "wage": 5_000_000}}
PAY = {"command": "pay-contribution", "id": "seed-pay", "npp": NPP, "month": "2024-03", "paid_on": "2024-04-10"}


@pytest.fixture
def seeded(cli: Cli) -> Cli:
    """The scenario's employer, member and March payment, written in one `submit`."""
    cli("submit", cli.jsonl("seed.jsonl", [REGISTER, ENROLL, PAY]))
    return cli


def test_register_enroll_pay_and_read_back_the_history_and_balance(cli: Cli) -> None:
    registered = cli("employer", "register", "--npp", NPP, "--name", "PT Maju Jaya", "--branch", "BEKASI-KOTA",
                     "--kind", "company", "--risk", "low", "--registered-on", "2015-07-01")
    assert registered.stdout.startswith(f"registered employer {NPP}")
    enrolled = cli.json("member", "enroll", "--kpj", KPJ, "--nik", nik(1), "--name", "Budi Santoso",
                        "--birth-date", "1990-05-15", "--segment", "PU", "--npp", NPP, "--wage", "5000000",
                        "--effective", "2024-03-01")
    assert (enrolled["kpj"], enrolled["branch"], enrolled["repeated"]) == (KPJ, "BEKASI-KOTA", False)

    paid = cli.json("contribution", "pay", "--npp", NPP, "--month", "2024-03", "--paid-on", "2024-04-10")
    assert paid["program_totals"] == MARCH_TOTALS
    assert (paid["total"], paid["fine"], paid["members"], paid["repeated"]) == (477_000, 0, 1, False)

    member_history = cli.history("--kpj", KPJ)
    assert [row["type"] for row in member_history] == ["MemberEnrolled", "ContributionPaid"]
    assert member_history[1]["data"]["total"] == 477_000
    timeline = cli("history", "--kpj", KPJ).stdout.splitlines()
    assert timeline[1].startswith("2024-04-10  ContributionPaid")
    assert "month 2024-03" in timeline[1] and "total Rp477,000" in timeline[1]
    employer_timeline = cli("history", "--npp", NPP).stdout
    assert "EmployerRegistered" in employer_timeline and "WorkersJoined" in employer_timeline

    assert cli.json("balance", "--from-store", KPJ)["jht_balance"] == 285_000
    assert cli.json("balance", "--from-store", KPJ, "--as-of", "2024-04-09")["jht_balance"] == 0  # paid the day after
    assert cli("balance", "--from-store", KPJ).stdout.rstrip().endswith(": Rp285,000")


def test_a_repeated_command_id_answers_the_first_result_and_writes_nothing(seeded: Cli) -> None:
    cli = seeded
    events_before = len(cli.history("--kpj", KPJ))
    def pay(paid_on: str) -> tuple[str, ...]:
        return ("contribution", "pay", "--npp", NPP, "--month", "2024-03", "--paid-on", paid_on,
                "--command-id", "seed-pay")

    repeat = cli.json(*pay("2024-04-10"))  # the seed's payment, sent again by the CLI under the same id
    assert (repeat["repeated"], repeat["total"], repeat["command_id"]) == (True, 477_000, "seed-pay")
    assert "nothing was written" in cli(*pay("2024-04-10")).stdout
    assert len(cli.history("--kpj", KPJ)) == events_before

    other_content = cli(*pay("2024-04-11"), expect=6)
    assert other_content.stderr.startswith("error: command id 'seed-pay' was already used")
    assert len(cli.history("--kpj", KPJ)) == events_before


def test_bad_input_exits_2_with_a_message_and_writes_nothing(seeded: Cli) -> None:
    cli = seeded
    enroll = ("member", "enroll", "--kpj", "15000000002", "--name", "Siti", "--birth-date", "1990-05-15",
              "--npp", NPP, "--wage", "5000000", "--effective", "2024-03-01")

    short_nik = cli(*enroll, "--nik", nik(2)[:-1], expect=2)
    assert short_nik.stderr == "error: enroll-member: member.nik: NIK must be exactly 16 digits, got 15 characters\n"
    error = cli.json(*enroll, "--nik", nik(2, day=16), expect=2)["error"]
    assert error["type"] == "InvalidInput" and "NIK" in error["message"] and "birth date" in error["message"]

    assert "no member with KPJ 15000000002" in cli("history", "--kpj", "15000000002", expect=3).stderr
    assert [row["type"] for row in cli.history("--npp", NPP)] == ["EmployerRegistered", "WorkersJoined"]


def test_enroll_bulk_writes_the_whole_csv_or_nothing(seeded: Cli) -> None:
    cli = seeded
    header = "kpj,nik,name,birth_date,segment,wage,programs"
    good = cli.file("good.csv", [header, f"15000000011,{nik(11)},Ani,1990-05-15,PU,4000000,JHT|JKK|JKM|JP",
                                 f"15000000012,{nik(12)},Bayu,1990-05-15,,4500000,",
                                 f"15000000013,{nik(13, day=55)},Citra,1990-05-15,PU,4600000,JHT;JKK;JKM"])
    bad = cli.file("bad.csv", [header, f"15000000021,{nik(21)},Dedi,1990-05-15,PU,4000000,",
                               f"15000000022,{nik(22)[:-1]}X,Eka,1990-05-15,PU,4000000,",
                               f"15000000023,{nik(23)},Fajar,1990-05-15,PU,4000000,"])
    enroll_bulk = ("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv")

    refused = cli(*enroll_bulk, bad, expect=2)
    assert "row 2 (line 3): nik: NIK must contain only the digits" in refused.stderr
    assert "row 1" not in refused.stderr and "row 3" not in refused.stderr
    cli("history", "--kpj", "15000000021", expect=3)

    enrolled = cli.json(*enroll_bulk, good)
    assert (enrolled["enrolled"], enrolled["kpjs"]) == (3, ["15000000011", "15000000012", "15000000013"])
    citra = cli.history("--kpj", "15000000013")[0]["data"]
    assert (citra["segment"], citra["programs"]) == ("PU", ["JHT", "JKK", "JKM"])
    joined = [row for row in cli.history("--npp", NPP) if row["type"] == "WorkersJoined"]
    assert [len(row["data"]["kpjs"]) for row in joined] == [1, 3]


def test_submit_checks_every_line_first_then_runs_them_in_order(cli: Cli) -> None:
    first = cli("submit", cli.jsonl("day.jsonl", [REGISTER, ENROLL, PAY]))
    assert first.stdout.splitlines()[-1] == "executed 3, repeated 0"
    assert first.stdout.splitlines()[2].startswith("line 3: payment seed-pay by employer")
    again = [json.loads(line) for line in cli("submit", str(cli.folder / "day.jsonl"), "--json").stdout.splitlines()]
    assert [result["repeated"] for result in again[:3]] == [True, True, True]
    assert again[3] == {"summary": {"executed": 0, "repeated": 3}}

    raise_wage = {"command": "change-wage", "id": "wage-1", "kpj": KPJ, "wage": 5_500_000, "effective": "2024-06-01"}
    invalid = cli("submit", cli.jsonl("invalid.jsonl", [raise_wage, {**raise_wage, "id": "wage-2", "wage": -1}]),
                  expect=2)
    assert invalid.stderr.startswith("error: line 2: change-wage: wage: Input should be greater than 0")
    assert "MemberWageChanged" not in [row["type"] for row in cli.history("--kpj", KPJ)]

    unknown_member = {**raise_wage, "id": "wage-3", "kpj": "15000000099"}
    failing = cli.jsonl("failing.jsonl", [raise_wage, unknown_member, PAY])
    error = json.loads(cli("submit", failing, "--json", expect=3).stdout.splitlines()[-1])["error"]
    assert error == {"type": "NotFound", "message": "no member with KPJ 15000000099 is enrolled", "line": 2,
                     "executed": 1, "repeated": 0}
    assert "MemberWageChanged" in [row["type"] for row in cli.history("--kpj", KPJ)]

    fixed = cli("submit", cli.jsonl("fixed.jsonl", [raise_wage, PAY]))
    assert fixed.stdout.splitlines()[-1] == "executed 0, repeated 2"


def test_a_work_death_pays_jkk_to_the_heir_and_the_whole_jht_balance(seeded: Cli) -> None:
    cli = seeded
    cli("member", "exit", "--kpj", KPJ, "--reason", "work-death", "--date", "2024-05-02")
    heir = ("--kpj", KPJ, "--incident-date", "2024-05-02", "--beneficiary", "spouse", "--beneficiary-name",
            "Ahmad Hidayat", "--paid-on", "2024-06-01")

    refused = cli("claim", "pay", "--program", "JKK", "--kind", "death", "--kpj", KPJ, "--incident-date",
                  "2024-05-02", "--paid-on", "2024-06-01", expect=2)
    assert "died: the claim is paid to an heir" in refused.stderr
    nameless = cli("claim", "pay", "--program", "JKK", "--kind", "death", *heir[:6], *heir[8:], expect=2)
    assert "beneficiary_name: a claim paid to the member's spouse needs the name" in nameless.stderr
    jkk = cli("claim", "pay", "--program", "JKK", "--kind", "death", "--amount", "193795790", *heir)
    assert jkk.stdout.startswith("paid Rp193,795,790 (statutory Rp240,000,000) from JKK (death) to the spouse for "
                                 f"member {KPJ}")
    jht = cli.json("claim", "pay", "--program", "JHT", *heir)
    assert (jht["kind"], jht["amount"], jht["statutory_amount"]) == ("full", 285_000, 285_000)

    assert cli.json("balance", "--from-store", KPJ)["jht_balance"] == 0
    assert cli.json("balance", "--from-store", KPJ, "--as-of", "2024-05-31")["jht_balance"] == 285_000


def test_reversing_a_contribution_takes_it_out_of_the_balance(seeded: Cli) -> None:
    cli = seeded
    [payment] = [row["event_id"] for row in cli.history("--kpj", KPJ) if row["type"] == "ContributionPaid"]

    reversal = cli.json("reverse", payment, "--reason", "paid for the wrong employer", "--on", "2024-04-20")
    assert (reversal["type"], reversal["amount"]) == ("ContributionPaid", 477_000)
    assert cli.json("balance", "--from-store", KPJ)["jht_balance"] == 0
    assert cli.json("balance", "--from-store", KPJ, "--as-of", "2024-04-19")["jht_balance"] == 285_000

    twice = cli("reverse", payment, "--reason", "again", expect=4)
    assert twice.stderr == f"error: contribution {payment} was already reversed\n"


def test_a_members_history_is_written_to_the_access_log_first_or_not_shown(seeded: Cli, tmp_path: Path) -> None:
    """`ledger history --kpj` shows a member's events: their data, read like `ledger balance` as the local user and
    logged before it is shown; an employer's history (--npp) is no member's data. Neither opens the projections'
    database, which they do not read."""
    from projections.access_log import AccessLogStore

    views = tmp_path / "views-never-opened.db"
    cli = seeded.with_env(LEDGER_PROJECTION_SQLITE_PATH=str(views))
    assert cli.history("--kpj", KPJ)[0]["type"] == "MemberEnrolled"
    cli("history", "--npp", NPP)
    cli("history", "--kpj", "15000000009", expect=3)  # no such member: nothing read, nothing logged
    store = AccessLogStore("sqlite", sqlite_path=Path(cli.env["LEDGER_ACCESS_LOG_SQLITE_PATH"]))
    try:
        logged = store.after(0, 100)
    finally:
        store.close()
    assert [(entry.subject.split(":")[0], entry.role, entry.kpj, entry.endpoint) for entry in logged] == [
        ("local", "auditor", KPJ, "ledger history --kpj")]
    assert not views.exists()
    # An access log that cannot be written: the member's events are not shown (exit 18); an employer's still are.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the access log's folder should be")
    broken = cli.with_env(LEDGER_ACCESS_LOG_SQLITE_PATH=str(blocker / "access-log.db"))
    refused = broken("history", "--kpj", KPJ, expect=18)
    assert refused.stdout == "" and "access log" in refused.stderr
    assert "EmployerRegistered" in broken("history", "--npp", NPP).stdout
