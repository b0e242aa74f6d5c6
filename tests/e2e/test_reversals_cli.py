"""`ledger reverse` of whole payments, settlements and money received, and `ledger statement`, through the real CLI
against an SQLite file, as docs/cli.md shows them ("Reversals of whole payments", "Account statements").

The bills and money are written with the ledger's own commands (`CloseBills`, `ReceiveMoney`) on the same SQLite file
the CLI uses; every reversal and statement is the CLI's. Employer 10012345, risk class low, two members on
Rp5,000,000: Rp954,000 a month (Rp477,000 each), due the 15th of the next month."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

import pytest

from ledger.application import Ledger
from ledger.commands import CloseBills, ReceiveMoney
from ledger.domain import payer_account_id
from tests.support.cli_runner import Cli

pytestmark = pytest.mark.e2e

NPP = "10012345"
KPJS = ("15000000001", "15000000002")
BILL = 954_000


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {**os.environ, "LEDGER_PERSISTENCE": "sqlite", "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
           "LEDGER_ACCESS_LOG_SQLITE_PATH": str(tmp_path / "access-log.db")}
    lines = [{"command": "register-employer", "id": "register", "npp": NPP, "name": "PT Maju Jaya",
              "branch": "BEKASI-KOTA", "kind": "company", "risk_class": "low", "registered_on": "2015-07-01"}]
    lines += [{"command": "enroll-member", "id": f"enroll-{kpj}", "npp": NPP, "effective": "2024-01-01",
               "member": {"kpj": kpj, "nik": f"32750115059000{n:02d}", "name": "Budi Santoso",
                          "birth_date": "1990-05-15", "wage": 5_000_000}} for n, kpj in enumerate(KPJS, start=1)]
    runner = Cli(env=env, folder=tmp_path)
    runner("submit", runner.jsonl("seed.jsonl", lines))
    return runner


def books(cli: Cli) -> Ledger:
    """The same store, opened by the test: to write the bills and money the CLI has no command for on this branch."""
    return Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": cli.env["LEDGER_SQLITE_PATH"]},
                  clock=lambda: date(2024, 6, 30), nik_key=None)


def test_a_whole_contribution_payment_is_reversed_by_its_payment_id_in_one_command(cli: Cli) -> None:
    paid = cli.json("contribution", "pay", "--npp", NPP, "--month", "2024-01", "--months", "1", "--paid-on",
                    "2024-02-10", "--command-id", "2024-02-10/pay")
    assert paid["lines"] == 2 and paid["event_id"].endswith(".1")
    reversed_ = cli("reverse", "2024-02-10/pay", "--reason", "paid twice by the employer", "--on", "2024-02-12")
    first_reversal = json.loads(cli("history", "--kpj", KPJS[0], "--json").stdout)[-1]
    assert first_reversal["type"] == "ContributionReversed"
    assert reversed_.stdout.strip() == (f"reversed ContributionPaymentReceived {paid['event_id']}: Rp954,000 (event "
                                        f"{first_reversal['event_id']}); 2 contribution line(s) reversed")
    again = cli("reverse", paid["event_id"], "--reason", "paid twice by the employer", "--on", "2024-02-12",
                expect=4)
    assert f"every line of payment {paid['event_id']} (2024-02-10/pay) was already reversed" in again.stderr


def test_a_settlement_and_a_receipt_reversed_and_the_statement_that_shows_them(cli: Cli) -> None:
    ledger = books(cli)
    ledger.execute(CloseBills.build(month="2024-01", npps=[NPP]))
    received = ledger.execute(ReceiveMoney.build(reference="BNI-240210-001", npp=NPP, amount=BILL,
                                                 received_on=date(2024, 2, 10)))
    wrong = ledger.execute(ReceiveMoney.build(reference="BNI-240211-002", npp=NPP, amount=2_500_000,
                                              received_on=date(2024, 2, 11)))
    (settled,) = ledger.find(payer_account_id(NPP, None)).settlements

    refused = cli("reverse", received["event_id"], "--reason", "bank error", "--on", "2024-02-12", expect=5)
    assert f"reverse the settlement(s) {settled} first" in refused.stderr
    returned = cli.json("reverse", wrong["event_id"], "--reason", "credited to the wrong account by the bank",
                        "--on", "2024-02-12")
    assert (returned["type"], returned["amount"], returned["unapplied"]) == ("MoneyReceived", 2_500_000, 0)
    undone = cli("reverse", settled, "--reason", "the bank recalled the transfer", "--on", "2024-02-20")
    assert undone.stdout.strip().endswith("; 2 contribution line(s) reversed; the payer's unapplied money is now "
                                          "Rp954,000")

    statement = cli.json("statement", "--npp", NPP, "--from", "2024-02-01", "--to", "2024-02-29")
    assert [(r["type"], r["debit"], r["credit"], r["balance"]) for r in statement["lines"]] == [
        ("BillClosed", BILL, 0, BILL), ("MoneyReceived", 0, BILL, 0), ("BillSettled", 0, 0, 0),
        ("MoneyReceived", 0, 2_500_000, -2_500_000), ("ReceiptReturned", 2_500_000, 0, 0),
        ("SettlementReversed", 0, 0, 0)]
    assert (statement["bills_open"], statement["outstanding"], statement["unapplied"]) == (1, BILL, BILL)
    assert statement["lines"][2]["event_id"] == settled
    printed = cli("statement", "--npp", NPP, "--from", "2024-02-01", "--to", "2024-02-29").stdout.splitlines()
    assert printed[0] == "ACCOUNT STATEMENT  employer 10012345 (PT Maju Jaya), branch BEKASI-KOTA"
    assert printed[-1] == "on 2024-02-29: 1 bill(s) open, outstanding Rp954,000; unapplied money (credit) Rp954,000"
    wrong_way = cli("statement", "--kpj", KPJS[0], "--from", "2024-02-01", "--to", "2024-02-29", expect=5)
    assert f"ask for its statement with --npp {NPP}" in wrong_way.stderr
