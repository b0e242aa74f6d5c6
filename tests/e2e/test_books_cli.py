"""Reading the books through the `ledger` command line (docs/cli.md, "The fund's books"): `ledger books chart`,
`trial-balance`, `account` and `journal`, run as a user runs them, in subprocesses, on a history written by the
clerks' commands, relayed to the real Kafka and projected by `ledger projections run`.

The history is docs/cli.md's collections scenario, its amounts computed here by hand:
- employer 10012345 (risk low) employs Budi (15000000001) at Rp5,000,000 from January 2024: the January bill is
  Rp477,000 = JHT 5.7% 285,000 + JKK 0.54% 27,000 (0.14% of the wage, 7,000, recomposed to JKP) + JKM 0.30% 15,000
  (0.10%, 5,000, to JKP) + JP 3% 150,000; it counts from 1 February, due 15 February;
- Sari (15000000002), BPU, declares Rp1,000,000: JKK 1% 10,000 + JKM 6,800 = Rp16,800, counting from 1 January;
- 10 Feb: Rp300,000 from the employer, not enough for the bill; 20 Apr: Rp210,000, and the bill is settled three months
  late with its fine, 3 x 2% x 477,000 = 28,620: 505,620 taken from the employer's 510,000; the Rp4,380 left is
  refunded on 22 Apr;
- 12 Jan: Rp16,800 for Sari from the city's budget settles her bill that day.
"""

from __future__ import annotations

import csv
import io
import os
import shlex
import uuid
from collections import defaultdict
from pathlib import Path

import pytest

from tests.support.cli_runner import Cli
from tests.support.kafka_roles import KafkaRoles

pytestmark = pytest.mark.e2e

NPP, BUDI, SARI = "10012345", "15000000001", "15000000002"
BRANCH = "BEKASI-KOTA"
READING = ("chart", "trial-balance", "account", "journal")  # the commands of this test (`check` is tested elsewhere)
HISTORY = [
    ("employer", "register", "--npp", NPP, "--name", "PT Maju Jaya", "--branch", BRANCH, "--kind", "company",
     "--risk", "low", "--registered-on", "2015-07-01"),
    ("member", "enroll", "--kpj", BUDI, "--nik", "3275011505900001", "--name", "Budi Santoso", "--birth-date",
     "1990-05-15", "--npp", NPP, "--wage", "5000000", "--effective", "2024-01-01"),
    ("member", "enroll", "--kpj", SARI, "--nik", "3275015505900002", "--name", "Sari Dewi", "--birth-date",
     "1990-05-15", "--segment", "BPU", "--branch", BRANCH, "--wage", "1000000", "--effective", "2024-01-01"),
    ("billing", "close", "--month", "2024-01", "--branch", BRANCH),
    ("payment", "receive", "--npp", NPP, "--amount", "300000", "--received-on", "2024-02-10", "--reference",
     "BCA-240210-001"),
    ("payment", "receive", "--npp", NPP, "--amount", "210000", "--received-on", "2024-04-20", "--reference",
     "BCA-240420-007"),
    ("payment", "refund", "--npp", NPP, "--amount", "4380", "--on", "2024-04-22", "--reason",
     "overpaid: the April transfer"),
    ("payment", "receive", "--kpj", SARI, "--amount", "16800", "--received-on", "2024-01-12", "--reference",
     "BRI-240112-3", "--payer", "institution", "--payer-name", "APBD Kota Bekasi"),
]
# The trial balance on 31 December 2024, by hand: code -> (debit column, credit column); every other account is zero.
YEAR_END = {
    "1110": (300_000 + 210_000 - 4_380, 0),  # the employer's money, less the refund
    "1120": (16_800, 0),  # Sari's
    "2200": (0, 285_000),  # Budi's JHT
    "3100": (0, 27_000 - 7_000 + 10_000),  # JKK less its JKP share, and Sari's JKK
    "3200": (0, 15_000 - 5_000 + 6_800),
    "3300": (0, 150_000),
    "3410": (0, 7_000),
    "3420": (0, 5_000),
    "4100": (0, 28_620),
}
YEAR_END_TOTAL = 522_420  # 505,620 + 16,800
# On 31 March: the employer's bill outstanding and its Rp300,000 not applied; Sari's month paid.
MARCH_END = {"1110": (300_000, 0), "1120": (16_800, 0), "1200": (477_000, 0), "2100": (0, 300_000),
             "2300": (0, 477_000), "3100": (0, 10_000), "3200": (0, 6_800)}


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory, kafka_roles: KafkaRoles) -> Cli:
    folder = tmp_path_factory.mktemp("books")
    unique = uuid.uuid4().hex[:10]
    cli = Cli(env={**os.environ, "LEDGER_PERSISTENCE": "sqlite", "LEDGER_SQLITE_PATH": str(folder / "ledger.db"),
                   "LEDGER_PROJECTION_SQLITE_PATH": str(folder / "views.db"),
                   "LEDGER_ACCESS_LOG_SQLITE_PATH": str(folder / "access-log.db"),
                   "LEDGER_KAFKA_TOPIC_PREFIX": f"test-books-{unique}", "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}"},
              folder=folder, kafka=kafka_roles)
    for command in HISTORY:
        cli(*command)
    cli.kafka_init()
    cli("relay")
    assert cli.json("projections", "run")["applied"]["general_ledger"] > 0
    return cli


def balances(report: dict[str, object]) -> dict[str, tuple[int, int]]:
    rows = report["accounts"]
    assert isinstance(rows, list)
    return {row["code"]: (row["debit"], row["credit"]) for row in rows if row["debit"] or row["credit"]}


def test_the_chart_on_a_date(books: Cli) -> None:
    before = books.json("books", "chart", "--as-of", "2021-01-31")
    after = books.json("books", "chart", "--as-of", "2021-02-01")
    assert len(before["accounts"]) == 19 and len(after["accounts"]) == 21
    assert {a["code"] for a in after["accounts"]} - {a["code"] for a in before["accounts"]} == {"3410", "3420"}
    jht = next(a for a in after["accounts"] if a["code"] == "2200")
    assert (jht["slug"], jht["kind"], jht["normal_side"], jht["program"]) == ("jht", "liability", "credit", "JHT")
    table = books("books", "chart", "--as-of", "2024-12-31").stdout
    assert table.startswith("Chart of accounts on 2024-12-31: 21 accounts\n")
    assert "  2200  jht                 JHT: members' balances" in table


def test_the_trial_balance_to_the_rupiah(books: Cli) -> None:
    report = books.json("books", "trial-balance", "--as-of", "2024-12-31")
    assert report["branch"] is None and report["as_of"] == "2024-12-31"
    assert balances(report) == YEAR_END
    assert report["totals"]["debit"] == report["totals"]["credit"] == YEAR_END_TOTAL and report["balanced"]
    assert books.json("books", "trial-balance", "--as-of", "2024-12-31", "--branch", BRANCH)["accounts"] == \
        report["accounts"]
    assert balances(books.json("books", "trial-balance", "--as-of", "2024-03-31", "--branch", BRANCH)) == MARCH_END
    table = books("books", "trial-balance", "--as-of", "2024-12-31").stdout.splitlines()
    assert table[0] == "Trial balance of the fund on 2024-12-31"
    assert table[1].split() == ["code", "account", "debit", "credit"]
    assert "  1110  Bank: money from employers and paying bodies             Rp505,620" in table
    assert "  2200  JHT: members' balances                                                       Rp285,000" in table
    assert "  1130  Bank: credits not yet identified" in table  # an account without a movement: both columns empty
    assert table[-2].split() == ["total", "Rp522,420", "Rp522,420"]
    assert table[-1] == "  balanced: debits equal credits, Rp522,420"
    # Before anything happened, every account is zero, and it balances.
    early = books("books", "trial-balance", "--as-of", "2023-12-31", "--branch", BRANCH).stdout.splitlines()
    assert early[0] == f"Trial balance of branch {BRANCH} on 2023-12-31" and early[-1].endswith("Rp0")


def test_an_accounts_running_balance(books: Cli) -> None:
    report = books.json("books", "account", "unapplied", "--from", "2024-02-01", "--to", "2024-04-21", "--branch",
                        BRANCH)
    assert (report["account"], report["opening_on"], report["opening"]) == ("2100", "2024-01-31", 0)
    assert [(d["date"], d["debit"], d["credit"], d["balance"]) for d in report["days"]] == [
        ("2024-02-10", 0, 300_000, 300_000), ("2024-04-20", 505_620, 210_000, 4_380)]
    assert (report["debits"], report["credits"], report["closing"]) == (505_620, 510_000, 4_380)
    assert books.json("books", "account", "2100", "--from", "2024-02-01", "--to", "2024-04-21") == \
        {**report, "branch": None}
    text = books("books", "account", "jht", "--from", "2024-01-01", "--to", "2024-12-31").stdout.splitlines()
    assert text == [
        ("Account 2200 JHT: members' balances (liability, balance on the credit side) of the fund, 2024-01-01 to "
         "2024-12-31"),
        "  opening balance on 2023-12-31                                        Rp0",
        "  date                       debit              credit             balance",
        "  2024-04-20                                 Rp285,000           Rp285,000",
        "  total                        Rp0           Rp285,000",
        "  closing balance on 2024-12-31                                  Rp285,000",
    ]


def test_the_journal_as_csv_balances_entry_by_entry(books: Cli) -> None:
    out = books("books", "journal", "--from", "2024-01-01", "--to", "2024-12-31", "--csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert out.splitlines()[0] == "date,entry,type,branch,account,account_name,program,kpj,npp,reference,debit,credit"
    per_entry: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        per_entry[row["entry"]][0] += int(row["debit"])
        per_entry[row["entry"]][1] += int(row["credit"])
    assert all(debit == credit > 0 for debit, credit in per_entry.values())
    # 2 bills, 3 receipts, 2 settlements, 2 contribution lines, 1 refund; in date order.
    types: dict[str, str] = {}
    for row in rows:
        types.setdefault(row["entry"], row["type"])
    assert list(types.values()) == ["BillClosed", "MoneyReceived", "BillSettled", "ContributionPaid", "BillClosed",
                                    "MoneyReceived", "MoneyReceived", "BillSettled", "ContributionPaid",
                                    "MoneyRefunded"]
    assert [row["date"] for row in rows] == sorted(row["date"] for row in rows)
    budi = [row for row in rows if row["type"] == "ContributionPaid" and row["kpj"] == BUDI]
    assert {(r["account"], r["program"], int(r["debit"]), int(r["credit"])) for r in budi} == {
        ("2190", "", 505_620, 0), ("2200", "JHT", 0, 285_000), ("3100", "JKK", 0, 20_000),
        ("3410", "JKK", 0, 7_000), ("3200", "JKM", 0, 10_000), ("3420", "JKM", 0, 5_000), ("3300", "JP", 0, 150_000),
        ("4100", "", 0, 28_620)}
    assert {r["npp"] for r in budi} == {NPP} and {r["reference"] for r in budi} == {f"{NPP}/2024-01/PU/1"}
    # The money columns add up to the trial balance's movements.
    assert sum(int(r["debit"]) for r in rows) == sum(int(r["credit"]) for r in rows)
    # One account's entries: those with a leg on it, each whole.
    fines = list(csv.DictReader(io.StringIO(books("books", "journal", "--from", "2024-01-01", "--to", "2024-12-31",
                                                  "--account", "fines", "--branch", BRANCH, "--csv").stdout)))
    assert fines == budi


def test_the_journal_as_text(books: Cli) -> None:
    text = books("books", "journal", "--from", "2024-04-22", "--to", "2024-04-22").stdout.splitlines()
    assert text[0] == "Journal of the fund, 2024-04-22 to 2024-04-22"
    assert text[1].startswith(f"2024-04-22  MoneyRefunded  {BRANCH}  npp {NPP}  ref ")
    assert text[2:] == [
        "    1110  Bank: money from employers and paying bodies                                        Rp4,380",
        "    2100  Unapplied receipts: payers' credit                              Rp4,380"]
    empty = books("books", "journal", "--from", "2023-01-01", "--to", "2023-12-31", "--branch", BRANCH).stdout
    assert empty == f"Journal of branch {BRANCH}, 2023-01-01 to 2023-12-31\n  no entry in the period\n"
    assert books("books", "journal", "--from", "2023-01-01", "--to", "2023-12-31", "--csv").stdout == \
        "date,entry,type,branch,account,account_name,program,kpj,npp,reference,debit,credit\n"


@pytest.mark.parametrize(("args", "code", "message"), [
    (("account", "nope", "--from", "2024-01-01", "--to", "2024-02-01"), 2, "unknown account 'nope'"),
    (("journal", "--from", "2024-01-01", "--to", "2024-02-01", "--account", "9999"), 2, "unknown account '9999'"),
    (("journal", "--from", "2024-03-01", "--to", "2024-02-01"), 2, "--from 2024-03-01 is after --to 2024-02-01"),
    (("account", "jht", "--from", "2024-03-01", "--to", "2024-02-01"), 2, "--from 2024-03-01 is after --to"),
    (("trial-balance", "--as-of", "2024-02-30"), 2, "--as-of must be a date YYYY-MM-DD, got '2024-02-30'"),
    (("journal", "--from", "yesterday", "--to", "2024-02-01"), 2, "--from must be a date YYYY-MM-DD"),
    (("chart", "--as-of", "2024-13-01"), 2, "--as-of must be a date"),
    (("trial-balance", "--as-of", "2024-12-31", "--branch", "NOWHERE"), 3, "unknown branch"),
    (("journal", "--from", "2024-01-01", "--to", "2024-02-01", "--branch", "NOWHERE"), 3, "unknown branch"),
    (("account", "jht", "--from", "2024-01-01", "--to", "2024-02-01", "--branch", "NOWHERE"), 3, "unknown branch"),
])
def test_bad_input_is_a_clear_error(books: Cli, args: tuple[str, ...], code: int, message: str) -> None:
    result = books("books", *args, expect=code)
    assert result.stderr.startswith("error: ") and message in result.stderr, result.stderr
    assert result.stdout == ""


def test_without_the_projection_the_books_are_refused(books: Cli, tmp_path_factory: pytest.TempPathFactory) -> None:
    empty = books.with_env(LEDGER_PROJECTION_SQLITE_PATH=str(tmp_path_factory.mktemp("empty") / "views.db"))
    for args in (("trial-balance", "--as-of", "2024-12-31"), ("journal", "--from", "2024-01-01", "--to", "2024-12-31"),
                 ("account", "jht", "--from", "2024-01-01", "--to", "2024-12-31")):
        result = empty("books", *args, expect=9)
        assert "the general_ledger projection has not been built yet: run `ledger projections run`" in result.stderr


def test_every_documented_books_command_runs_as_written(books: Cli) -> None:
    """docs/cli.md's lines of the reading commands, as written (a `> FILE` redirection: the file it writes)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")
    documented = [line.split("  #")[0].strip() for line in text.splitlines()
                  if line.startswith(tuple(f"ledger books {name} " for name in READING))]
    assert len(documented) >= 5
    for line in documented:
        command, _, target = line.partition(" > ")
        result = books(*shlex.split(command)[1:])
        assert result.stdout, line
        if target:
            rows = list(csv.DictReader(io.StringIO(result.stdout)))
            assert rows and {row["account"] for row in rows} >= {"4100"}, line
