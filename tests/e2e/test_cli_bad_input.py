"""Bad input at the command line, end to end: every way a clerk or a batch file hands the ledger a wrong value ends
with exit code 2, a message that names the field (and the row or line), no traceback, and not one event written.

Each test runs the real CLI in subprocesses against an SQLite file of its own, seeded with the scenario of
test_cli.py (employer 10012345, member 15000000001 paid for March 2024), and counts the events in the store before
and after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ledger import bulk
from ledger.application import Ledger
from ledger.settings import Settings
from tests.support.cli_runner import Cli

pytestmark = pytest.mark.e2e

NPP = "10012345"
KPJ = "15000000001"
WAGE_LIMIT = "must be at most Rp1,000,000,000 (WAGE_MAX in ledger/commands.py)"
BEYOND_64_BITS = [2**63, 10**30]
SAFE_MEMORY_BYTES = 2 * 1024**3  # the CLI under test gets this much address space: an unbounded read fails, not swaps
SAFE_TIMEOUT_S = 60


def nik(serial: int, day: int = 15) -> str:
    """A valid NIK of someone born on `day` May 1990 (day + 40 for a woman)."""
    return f"327501{day:02d}0590{serial:04d}"


REGISTER = {"command": "register-employer", "id": "seed-register", "npp": NPP, "name": "PT Maju Jaya",
            "branch": "BEKASI-KOTA", "kind": "company", "risk_class": "low", "registered_on": "2015-07-01"}
ENROLL = {"command": "enroll-member", "id": "seed-enroll", "npp": NPP, "effective": "2024-03-01",
          "member": {"kpj": KPJ, "nik": nik(1), "name": "Budi Santoso", "birth_date": "1990-05-15",
                     "wage": 5_000_000}}
PAY = {"command": "pay-contribution", "id": "seed-pay", "npp": NPP, "month": "2024-03", "paid_on": "2024-04-10"}
CSV_HEADER = "kpj,nik,name,birth_date,segment,wage,programs"


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {**os.environ, "LEDGER_PERSISTENCE": "sqlite", "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db")}
    cli = Cli(env=env, folder=tmp_path)
    cli("submit", cli.jsonl("seed.jsonl", [REGISTER, ENROLL, PAY]))
    return cli


def stored_events(cli: Cli) -> int:
    """How many events the store holds: the measure of 'nothing was written'."""
    store = Settings(persistence="sqlite", sqlite_path=Path(cli.env["LEDGER_SQLITE_PATH"]))
    app = Ledger(env=store.eventsourcing_env(), nik_key=None)  # for reading: it hashes no NIK
    try:
        return app.recorder.max_notification_id() or 0
    finally:
        app.close()


def enroll_args(*, kpj: str = "15000000002", nik_: str = nik(2), name: str = "Siti Aminah",
                birth_date: str = "1990-05-15", wage: str = "4000000") -> tuple[str, ...]:
    return ("member", "enroll", "--kpj", kpj, "--nik", nik_, "--name", name, "--birth-date", birth_date, "--npp", NPP,
            "--wage", wage, "--effective", "2024-03-01")


def enroll_line(id_: str = "e-1", **member: object) -> dict[str, object]:
    return {"command": "enroll-member", "id": id_, "npp": NPP, "effective": "2024-03-01",
            "member": {"kpj": "15000000002", "nik": nik(2), "name": "Siti Aminah", "birth_date": "1990-05-15",
                       "wage": 4_000_000, **member}}


# --- amounts -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("amount", BEYOND_64_BITS)
def test_an_amount_beyond_its_limit_is_refused_at_every_entry_and_nothing_is_written(cli: Cli, amount: int) -> None:
    before = stored_events(cli)

    enrolled = cli(*enroll_args(wage=str(amount)), expect=2)
    assert enrolled.stderr == f"error: enroll-member: member.wage: {WAGE_LIMIT}\n"
    changed = cli.json("member", "wage", "--kpj", KPJ, "--wage", str(amount), "--effective", "2024-06-01", expect=2)
    assert changed["error"] == {"type": "InvalidInput", "message": f"change-wage: wage: {WAGE_LIMIT}"}
    claimed = cli("claim", "pay", "--kpj", KPJ, "--program", "JKK", "--kind", "care", "--incident-date",
                  "2024-03-05", "--amount", str(amount), "--paid-on", "2024-04-01", expect=2)
    assert "amount: must be at most Rp100,000,000,000 (CLAIM_AMOUNT_MAX" in claimed.stderr
    submitted = cli("submit", cli.jsonl("wage.jsonl", [enroll_line(wage=amount)]), expect=2)
    assert submitted.stderr == f"error: line 1: enroll-member: member.wage: {WAGE_LIMIT}\n"
    csv_file = cli.file("wage.csv", [CSV_HEADER, f"15000000002,{nik(2)},Siti Aminah,1990-05-15,PU,{amount},"])
    bulk_enrolled = cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv", csv_file,
                        expect=2)
    assert f"row 1 (line 2): wage: {WAGE_LIMIT}" in bulk_enrolled.stderr

    assert stored_events(cli) == before


def test_a_yield_rate_above_its_limit_is_refused(cli: Cli) -> None:
    before = stored_events(cli)
    refused = cli("yield", "credit", "--year", "2024", "--rate", "25", expect=2)
    assert refused.stderr == "error: credit-yield: rate_percent: Input should be less than or equal to 20\n"
    assert stored_events(cli) == before


# --- money in a batch file is a JSON integer -------------------------------------------------------------------------


@pytest.mark.parametrize(("wage", "kind"), [(True, "true/false"), ("5000000", "text"),
                                            (5_000_000.0, "a number with a decimal point")])
def test_money_in_a_submitted_file_is_a_json_integer_and_nothing_else(cli: Cli, wage: object, kind: str) -> None:
    before = stored_events(cli)
    line = {"command": "change-wage", "id": "w-1", "kpj": KPJ, "wage": wage, "effective": "2024-06-01"}
    refused = cli.json("submit", cli.jsonl("wage.jsonl", [line]), expect=2)
    assert refused["error"]["message"] == (f"line 1: change-wage: wage: must be whole rupiah written as an integer, "
                                           f"like 5000000, not {kind}")
    assert stored_events(cli) == before
    assert cli.history("--kpj", KPJ)[0]["data"]["wage"] == 5_000_000


# --- names ----------------------------------------------------------------------------------------------------------


BAD_NAMES = {"only spaces": "   ", "a newline": "Siti\nAminah", "a terminal escape sequence": "Siti\x1b[2J\x1b[31m",
             "a bidi override": "\u202eSiti"}


@pytest.mark.parametrize("what", BAD_NAMES)
def test_a_name_that_is_blank_or_holds_control_characters_is_refused_at_every_entry(cli: Cli, what: str) -> None:
    bad = BAD_NAMES[what]
    before = stored_events(cli)
    problem = "must not be empty or only spaces" if not bad.strip() else "must not contain control characters"
    outputs = [
        cli("employer", "register", "--npp", "10054321", "--name", bad, "--branch", "BEKASI-KOTA", "--kind",
            "company", "--risk", "low", "--registered-on", "2020-01-01", expect=2),
        cli(*enroll_args(name=bad), expect=2),
        cli("submit", cli.jsonl("name.jsonl", [enroll_line(name=bad)]), expect=2),
        cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv",
            cli.file("name.csv", [CSV_HEADER, f'15000000002,{nik(2)},"{bad}",1990-05-15,PU,4000000,']), expect=2),
        cli("contribution", "pay", "--npp", NPP, "--month", "2024-04", "--paid-on", "2024-05-10", "--payer-name", bad,
            expect=2),
        cli("claim", "pay", "--kpj", KPJ, "--program", "JKK", "--kind", "care", "--incident-date", "2024-03-05",
            "--beneficiary", "care-provider", "--beneficiary-name", bad, "--amount", "100000", "--paid-on",
            "2024-04-01", expect=2),
        cli("reverse", f"{'0' * 8}-0000-0000-0000-{'0' * 12}.1", "--reason", bad, expect=2),
    ]
    fields = ["name", "member.name", "member.name", "name", "payer_name", "beneficiary_name", "reason"]
    for field, done in zip(fields, outputs, strict=True):
        assert f"{field}: {problem}" in done.stderr, done.stderr
        assert "Siti" not in done.stderr and "\x1b" not in done.stderr + done.stdout
    assert "row 1 (line " in outputs[3].stderr
    assert stored_events(cli) == before


def test_a_csv_name_with_a_nul_byte_is_refused_by_row(cli: Cli) -> None:
    csv_file = cli.file("nul.csv", [CSV_HEADER, f"15000000002,{nik(2)},Siti\x00Aminah,1990-05-15,PU,4000000,"])
    refused = cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv", csv_file, expect=2)
    assert "row 1 (line 2): name: must not contain control characters" in refused.stderr
    assert "U+0000 at character 5" in refused.stderr
    cli("history", "--kpj", "15000000002", expect=3)


def test_a_name_is_recorded_trimmed(cli: Cli) -> None:
    cli("employer", "register", "--npp", "10054321", "--name", "  CV Sinar Abadi  ", "--branch", "BEKASI-KOTA",
        "--kind", "company", "--risk", "low", "--registered-on", "2020-01-01")
    assert cli.history("--npp", "10054321")[0]["data"]["name"] == "CV Sinar Abadi"


# --- reads are bounded ------------------------------------------------------------------------------------------------


def test_a_csv_that_is_a_device_ends_with_an_error_not_a_hang(cli: Cli) -> None:
    refused = cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv", "/dev/zero", expect=2,
                  timeout_s=SAFE_TIMEOUT_S, memory_max_bytes=SAFE_MEMORY_BYTES)
    assert refused.stderr.startswith("error: /dev/zero: not a regular file")


def test_a_submitted_file_that_is_a_device_ends_with_an_error_not_a_hang(cli: Cli) -> None:
    refused = cli("submit", "/dev/zero", expect=2, timeout_s=SAFE_TIMEOUT_S, memory_max_bytes=SAFE_MEMORY_BYTES)
    assert refused.stderr.startswith("error: /dev/zero: not a regular file")


def test_a_csv_or_submitted_file_larger_than_its_limit_is_refused_before_it_is_read(cli: Cli) -> None:
    big_csv, big_jsonl = cli.folder / "big.csv", cli.folder / "big.jsonl"
    with big_csv.open("wb") as handle:  # sparse: the size is what is checked, before any reading
        handle.truncate(bulk.CSV_FILE_BYTES_MAX + 1)
    with big_jsonl.open("wb") as handle:
        handle.truncate(bulk.SUBMIT_FILE_BYTES_MAX + 1)

    csv_refused = cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv", str(big_csv),
                      expect=2, timeout_s=SAFE_TIMEOUT_S, memory_max_bytes=SAFE_MEMORY_BYTES)
    assert csv_refused.stderr == (f"error: {big_csv}: 67,108,865 bytes, more than the 67,108,864 allowed "
                                  f"(CSV_FILE_BYTES_MAX); split the file\n")
    submit_refused = cli("submit", str(big_jsonl), expect=2, timeout_s=SAFE_TIMEOUT_S,
                         memory_max_bytes=SAFE_MEMORY_BYTES)
    assert submit_refused.stderr == (f"error: {big_jsonl}: 1,073,741,825 bytes, more than the 1,073,741,824 allowed "
                                     f"(SUBMIT_FILE_BYTES_MAX); split the file\n")


def test_a_csv_line_without_an_end_is_refused_after_a_bounded_read(cli: Cli) -> None:
    endless = cli.folder / "endless.csv"
    endless.write_bytes(CSV_HEADER.encode() + b"\n" + b"1" * (4 * 1024 * 1024))
    refused = cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv", str(endless), expect=2)
    assert refused.stderr == f"error: {endless}: line 2 is longer than 8,000 characters\n"


def test_json_nested_100000_deep_is_refused_naming_the_line(cli: Cli) -> None:
    before = stored_events(cli)
    deep = cli.file("deep.jsonl", [json.dumps(PAY), "[" * 100_000 + "]" * 100_000])
    refused = cli("submit", deep, expect=2)
    assert refused.stderr.startswith("error: line 2: JSON nested more than 8 levels deep (SUBMIT_JSON_DEPTH_MAX)")
    assert stored_events(cli) == before


# --- an empty batch ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["", "\n", "  \n\t\n\n"])
def test_a_submitted_file_without_commands_is_refused(cli: Cli, content: str) -> None:
    empty = cli.folder / "empty.jsonl"
    empty.write_text(content, encoding="utf-8")
    refused = cli("submit", str(empty), expect=2)
    assert refused.stderr == f"error: {empty}: no commands: the file is empty or holds only blank lines\n"
    assert cli.json("submit", str(empty), expect=2)["error"]["type"] == "InvalidInput"


# --- --programs -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("programs", ["", "  "])
def test_programs_given_as_empty_text_is_refused_not_taken_for_all(cli: Cli, programs: str) -> None:
    before = stored_events(cli)
    message = ("error: --programs is empty: give at least one of JHT,JKK,JKM,JP, or leave the option out for the "
               "default\n")
    assert cli("employer", "register", "--npp", "10054321", "--name", "CV Sinar", "--branch", "BEKASI-KOTA", "--kind",
               "company", "--risk", "low", "--registered-on", "2020-01-01", "--programs", programs,
               expect=2).stderr == message
    assert cli(*enroll_args(), "--programs", programs, expect=2).stderr == message
    assert stored_events(cli) == before


def test_an_empty_programs_cell_of_a_csv_still_means_the_default(cli: Cli) -> None:
    csv_file = cli.file("programs.csv", [CSV_HEADER, f"15000000002,{nik(2)},Siti Aminah,1990-05-15,PU,4000000,"])
    cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv", csv_file)
    assert cli.history("--kpj", "15000000002")[0]["data"]["programs"] == ["JHT", "JKK", "JKM", "JP"]


# --- a NIK never appears in what the CLI prints -----------------------------------------------------------------------


BAD_NIKS = {  # of someone born on 15 May 1990, each wrong in one way; the last is valid but disagrees with the date
    "15 digits": ("327501150590002", "1990-05-15"),
    "a letter": ("32750115O5900002", "1990-05-15"),
    "day 32": ("3275013205900002", "1990-05-15"),
    "serial 0000": ("3275011505900000", "1990-05-15"),
    "another birth date": ("3275011605900002", "1990-05-15"),
    "birth date not the NIK's": (nik(2), "1991-05-15"),
}


@pytest.mark.parametrize("what", BAD_NIKS)
def test_a_bad_nik_is_never_repeated_by_the_cli(cli: Cli, what: str) -> None:
    number, born = BAD_NIKS[what]
    row = f"15000000002,{number},Siti Aminah,{born},PU,4000000,"
    bulk_line = {"command": "enroll-members", "id": "b-1", "npp": NPP, "effective": "2024-03-01",
                 "members": [enroll_line(nik=number, birth_date=born)["member"]]}
    outputs = [
        cli(*enroll_args(nik_=number, birth_date=born), expect=2),
        cli(*enroll_args(nik_=number, birth_date=born), "--json", expect=2),
        cli("submit", cli.jsonl("nik.jsonl", [enroll_line(nik=number, birth_date=born)]), expect=2),
        cli("submit", cli.jsonl("niks.jsonl", [bulk_line]), "--json", expect=2),
        cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv",
            cli.file("nik.csv", [CSV_HEADER, row]), expect=2),
        # A CSV without its header line: the first member's NIK and name are taken for column names.
        cli("member", "enroll-bulk", "--npp", NPP, "--effective", "2024-03-01", "--csv",
            cli.file("headless.csv", [row]), expect=2),
        # A NIK typed into the KPJ field.
        cli("member", "wage", "--kpj", number, "--wage", "5000000", "--effective", "2024-06-01", expect=2),
        cli("history", "--kpj", number, expect=2),
    ]
    for done in outputs:
        printed = done.stdout + done.stderr
        assert "nik" in printed.lower() or "column" in printed or "KPJ" in printed, printed
        assert number not in printed and born not in printed and "Siti" not in printed, printed


# --- ledger generate ------------------------------------------------------------------------------------------------


def test_generated_budget_members_without_collections_are_refused(cli: Cli) -> None:
    before = stored_events(cli)
    refused = cli("generate", "--budget", "5", "--employers", "1", "--members", "1", "--bpu", "0", "--months", "1",
                  expect=2)
    assert refused.stderr == "error: budget members are generated with collections only (--collections)\n"
    assert stored_events(cli) == before
