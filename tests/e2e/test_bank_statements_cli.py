"""`ledger payment import | unmatched | match` end to end, run exactly as docs/cli.md ("Bank statements") writes them,
on the example statements in docs/examples/, against an SQLite file holding the payers those examples name (the
demo's: PT Bekasi Baja 10004430, the city government 10000017, generated employers 20000001 and 20000002, and the
self-paying BPU member 17100003001)."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import pytest

from tests.support.cli_runner import Cli

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECTION = "## Bank statements"


def documented_commands() -> list[list[str]]:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8").split(SECTION, 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    lines = [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("ledger ")]
    return [shlex.split(line, comments=True)[1:] for line in lines]


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {**os.environ, "LEDGER_PERSISTENCE": "sqlite", "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
           "LEDGER_ACCESS_LOG_SQLITE_PATH": str(tmp_path / "access-log.db")}
    cli = Cli(env=env, folder=tmp_path, cwd=ROOT)  # the documented paths are relative to the repository
    employers = [{"command": "register-employer", "id": f"seed-{npp}", "npp": npp, "name": name,
                  "branch": "BEKASI-KOTA", "kind": kind, "risk_class": "low", "registered_on": "2016-01-04"}
                 for npp, name, kind in (("10004430", "PT Bekasi Baja", "company"),
                                         ("10000017", "Pemerintah Kota Bekasi", "government"),
                                         ("20000001", "PT Usaha 20000001", "company"),
                                         ("20000002", "PT Usaha 20000002", "company"))]
    member = {"command": "enroll-member", "id": "seed-bpu", "npp": None, "branch": "BEKASI-KOTA",
              "effective": "2017-01-01",
              "member": {"kpj": "17100003001", "nik": "3275011505900001", "name": "Pekerja 17100003001",
                         "birth_date": "1990-05-15", "segment": "BPU", "wage": 1_000_000}}
    cli("submit", cli.jsonl("seed.jsonl", [*employers, member]))
    return cli


def test_the_documented_commands_work_as_written(cli: Cli) -> None:
    commands = documented_commands()
    assert [args[:2] for args in commands] == [["payment", "import"]] * 3 + [["payment", "unmatched"],
                                                                              ["payment", "match"]]
    first = cli(*commands[0]).stdout.splitlines()
    assert first[0] == "line 2: matched BNI-20171002-0001 Rp2,500,000 of 2017-10-02 from employer 10004430"
    assert first[1] == "line 3: matched BNI-20171002-0002 Rp16,800 of 2017-10-02 from member 17100003001"
    assert first[3] == ("line 5: held BNI-20171002-0004 Rp1,250,000 of 2017-10-02: the credit names no payment code, "
                        "NPP or KPJ")
    assert first[4] == "line 6: duplicate BNI-20171002-0001 Rp2,500,000 of 2017-10-02: the same money as line 2"
    assert first[-1] == "matched 3, held 1, duplicate 1, skipped 0"

    mt940 = cli.json(*commands[1][:-1])  # the documented line ends with --json; Cli.json adds it
    assert mt940["summary"] == {"matched": 1, "held": 2, "duplicate": 0, "skipped": 1}
    assert [(row["line"], row["status"]) for row in mt940["lines"]] == [(5, "matched"), (7, "held"),
                                                                         (9, "skipped"), (11, "held")]
    assert mt940["lines"][1]["reason"] == "no bill of employer 20000002 carries payment code 12000000217091011"

    again = cli(*commands[2]).stdout.splitlines()
    assert again[-1] == "matched 0, held 0, duplicate 5, skipped 0"

    held = cli(*commands[3]).stdout.splitlines()
    assert held[0].startswith("BNI-20171002-0004  2017-10-02  Rp1,250,000  BEKASI-KOTA  TRANSFER TANPA")
    assert held[-1] == "3 held, Rp5,400,000 in all"

    matched = cli(*commands[4]).stdout
    assert matched.startswith("matched BNI-20171002-0004 (Rp1,250,000 of 2017-10-02) to employer 20000001")
    assert [row["reference"] for row in cli.json("payment", "unmatched")] == ["BNI171003002", "BNI171003004"]
    # The same match again is a repeat; another payer is refused (exit 6), the first match stands.
    assert "repeated" in cli(*commands[4]).stdout
    refused = cli("payment", "match", "BNI-20171002-0004", "--npp", "10004430", "--on", "2017-10-05", expect=6)
    assert "already matched" in refused.stderr


def test_one_bad_line_records_nothing_and_is_named(cli: Cli, tmp_path: Path) -> None:
    statement = tmp_path / "bad.csv"
    statement.write_text("reference,received_on,amount,payment_code,npp,kpj,payer_name,description\r\n"
                         "REF-1,2017-10-02,5000,,10004430,,,\r\n"
                         "REF-2,2017-10-02,5000.50,,10004430,,Siti Rahayu,\r\n", encoding="utf-8")
    done = cli("payment", "import", str(statement), "--branch", "BEKASI-KOTA", expect=2)
    assert "line 3: the amount must be whole rupiah" in done.stderr and "nothing was imported" in done.stderr
    assert "Siti" not in done.stderr and done.stdout == ""
    error = cli.json("payment", "import", str(statement), "--branch", "BEKASI-KOTA", expect=2)["error"]
    assert error["type"] == "InvalidInput" and "line 3" in error["message"]
    assert cli.json("payment", "unmatched") == []
    assert not [row for row in cli.history("--npp", "10004430") if row["type"] == "MoneyReceived"]


@pytest.mark.parametrize(("content", "expected"), [
    (b"", "the file is empty"),
    (b"%PDF-1.7\n", "neither an MT940 statement"),
])
def test_what_is_not_a_statement_is_refused(cli: Cli, tmp_path: Path, content: bytes, expected: str) -> None:
    statement = tmp_path / "statement.txt"
    statement.write_bytes(content)
    assert expected in cli("payment", "import", str(statement), "--branch", "BEKASI-KOTA", expect=2).stderr


def test_an_mt940_file_the_parser_refuses_prints_none_of_its_text(cli: Cli, tmp_path: Path) -> None:
    statement = tmp_path / "statement.sta"
    statement.write_text(":20:X\n:25:1\n:28C:1/1\n:60F:C171002IDR0,00\n:61:1710031003C5000,00NTRFNONREF//B1\n"
                         "SITI RAHAYU\nJL MAWAR 1\n:86:SITI RAHAYU\n:62F:C171003IDR5000,00\n", encoding="utf-8")
    done = cli("payment", "import", str(statement), "--branch", "BEKASI-KOTA", expect=2)
    assert "not a valid MT940 statement" in done.stderr and "SITI" not in done.stderr + done.stdout


def test_a_bad_branch_code_and_a_missing_file_are_refused(cli: Cli) -> None:
    assert "branch code" in cli("payment", "import", "docs/examples/statement.csv", "--branch", "bekasi",
                                expect=2).stderr
    assert "cannot be read" in cli("payment", "import", "nowhere.csv", "--branch", "BEKASI-KOTA", expect=2).stderr
