"""Bank statements (ledger/statements.py) and money held until matched (ledger/suspense.py).

The worked example: employer 10012345 (risk class low) with member 15000000001 earning Rp5,000,000 from March 2024.
March 2024 costs JHT 285,000 + JKK 27,000 + JKM 15,000 + JP 150,000 = Rp477,000, billed when the month is closed
(due 15 April 2024). A statement of 10 April 2024 pays the bill by its payment code (matched, settled without a
fine), holds Rp250,000 from an employer the ledger does not know and Rp100,000 naming no one, and lists the first
credit twice (a duplicate).
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import pytest

from ledger import statements
from ledger.billing import payment_code
from ledger.commands import CloseBills, MatchMoney, ReceiveMoney
from ledger.domain import PayerAccount, payer_account_id
from ledger.errors import AlreadyExists, CommandIdConflict, InvalidInput, NotFound
from ledger.rules import Segment
from tests.support.scenario import NPP, TODAY, enroll, kpj, new_ledger, register

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
HEADER = "reference,received_on,amount,payment_code,npp,kpj,payer_name,description"
MARCH_TOTAL = 477_000
CODE = payment_code(NPP, None, "2024-03", Segment.PU, 1)


def parse(text: str | bytes, fmt: str | None = None, today: date = TODAY) -> list[statements.StatementLine]:
    return statements.parse_statement(text.encode() if isinstance(text, str) else text, fmt, today)


def csv_text(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def mt940_text(*transactions: str, currency: str = "IDR") -> str:
    return "\n".join([":20:STMT1", ":25:0123456789", ":28C:1/1", f":60F:C240409{currency}0,00", *transactions,
                      f":62F:C240410{currency}0,00"]) + "\n"


def refused(text: str | bytes, fmt: str | None = None) -> str:
    with pytest.raises(InvalidInput) as error:
        parse(text, fmt)
    return str(error.value)


# --- parsing: CSV ---------------------------------------------------------------------------------------------------

def test_a_csv_statement_is_read_line_by_line_with_its_payer():
    lines = parse(csv_text(f"REF-1,2024-04-10,477000,{CODE},,,PT Maju Jaya,IURAN MARET",
                           "REF-2,2024-04-10,250000,,99999999,,,",
                           "REF-3,2024-04-10,16800,,,17100003001,,IURAN BPU"))
    assert [(x.line, x.reference, x.amount, x.payment_code, x.npp, x.kpj) for x in lines] == [
        (2, "REF-1", 477_000, CODE, None, None), (3, "REF-2", 250_000, None, "99999999", None),
        (4, "REF-3", 16_800, None, None, "17100003001")]
    assert lines[0].payer_name == "PT Maju Jaya" and lines[0].description == "IURAN MARET"
    assert all(x.credit and x.received_on == date(2024, 4, 10) for x in lines)


def test_a_byte_order_mark_crlf_line_ends_and_columns_in_another_order_are_read():
    text = ("\ufeffamount,reference,received_on,npp,kpj,payment_code,payer_name,description\r\n"
            "477000,REF-1,2024-04-10,10012345,,,,\r\n")
    (line,) = parse(text.encode("utf-8"))
    assert (line.line, line.reference, line.amount, line.npp) == (2, "REF-1", 477_000, "10012345")


def test_letters_of_any_script_are_kept_and_runs_of_spaces_made_one():
    (line,) = parse(csv_text('REF-1,2024-04-10,5000,,,,Koperasi Café Ø,"IURAN  Maret\n  2024 — Bekasi"'))
    assert line.payer_name == "Koperasi Café Ø" and line.description == "IURAN Maret 2024 — Bekasi"


@pytest.mark.parametrize(("row", "expected"), [
    ("REF-1,2024-04-10,0,,,,,", "line 2: the amount must be more than Rp0"),
    ("REF-1,2024-04-10,-5000,,,,,", "line 2: the amount is negative"),
    ("REF-1,2024-04-10,5000.50,,,,,", "line 2: the amount must be whole rupiah"),
    ("REF-1,2024-04-10,\"5,000\",,,,,", "line 2: the amount must be whole rupiah"),
    ("REF-1,2024-04-10,1000000000001,,,,,", "line 2: the amount is more than Rp1,000,000,000,000"),
    ("REF-1,2024-04-10," + "9" * 5000 + ",,,,,", "line 2: the amount is more than Rp1,000,000,000,000"),
    ("REF-1,2024-02-30,5000,,,,,", "line 2: received_on 2024-02-30 is not a date of the calendar"),
    ("REF-1,10/04/2024,5000,,,,,", "line 2: received_on must be a date written YYYY-MM-DD"),
    ("REF-1,2026-11-24,5000,,,,,", "line 2: the date 2026-11-24 is in the future"),
    (f"REF-1,2024-04-10,5000,{CODE[:-1]}{(int(CODE[-1]) + 1) % 10},,,,", "line 2: payment code"),
    ("REF-1,2024-04-10,5000,,1234567,,,", "line 2: NPP number"),
    (f"REF-1,2024-04-10,5000,{CODE},10012345,,,", "line 2: name the payer once"),
    ("REF 1,2024-04-10,5000,,,,,", "line 2: reference: a bank reference is letters, digits"),
    ("REF-1,2024-04-10,5000,,,,Budi\x1b[31m,", "line 2: payer_name: must not contain control characters"),
    ("REF-1,2024-04-10,5000,,,,", "line 2: 7 cells where the header has 8"),
])
def test_one_bad_csv_line_refuses_the_file_naming_the_line(row, expected):
    message = refused(csv_text("REF-0,2024-04-10,5000,,,,,", row).replace("REF-0,2024-04-10,5000,,,,,\n", ""))
    assert expected in message and "nothing was imported" in message


def test_a_message_never_repeats_a_payer_name_or_description():
    message = refused(csv_text("REF-1,2024-04-10,5000,,,,Siti Rahayu\x07,"))
    assert "Siti" not in message


def test_a_reference_twice_in_a_file_is_a_repeat_with_the_same_money_and_refused_with_other_money():
    lines = parse(csv_text("REF-1,2024-04-10,5000,,10012345,,,", "REF-1,2024-04-10,5000,,10012345,,,"))
    assert [x.repeat_of for x in lines] == [None, 2]
    assert "line 3: reference REF-1 is also on line 2" in refused(csv_text("REF-1,2024-04-10,5000,,,,,",
                                                                           "REF-1,2024-04-10,6000,,,,,"))


@pytest.mark.parametrize(("data", "expected"), [
    (b"", "the file is empty"),
    (b"\xef\xbb\xbf\r\n  \n", "the file is empty"),
    (b"hello, world\n", "neither an MT940 statement"),
    (b"%PDF-1.7\n", "neither an MT940 statement"),
    (HEADER.encode() + b"\nREF-1,2024-04-10,5000,,,,\xff\xfe,\n", "line 2: not UTF-8 text"),
    (b"reference,amount\nREF-1,5000\n", "line 1: the header must name the columns"),
])
def test_what_is_not_a_statement_is_refused(data, expected):
    assert expected in refused(data)


def test_a_header_with_spaces_and_quotes_is_told_to_be_csv():
    header = '"reference", received_on ,amount,payment_code,npp,kpj,payer_name,description'
    (line,) = parse(f"{header}\nREF-1,2024-04-10,5000,,{NPP},,,\n")
    assert line.npp == NPP


def test_a_header_alone_is_a_statement_without_lines():
    assert parse(HEADER + "\r\n") == []


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(statements, "STATEMENT_FILE_BYTES_MAX", 100)
    path = tmp_path / "big.csv"
    path.write_text(csv_text(*[f"REF-{i},2024-04-10,5000,,,,," for i in range(10)]))
    with pytest.raises(InvalidInput, match="more than the 100 allowed"):
        statements.read_statement(path, None, TODAY)


def test_more_lines_than_the_limit_are_refused(monkeypatch):
    monkeypatch.setattr(statements, "STATEMENT_LINES_MAX", 2)
    assert "line 4: more than 2 lines" in refused(csv_text(*[f"REF-{i},2024-04-10,5000,,,,," for i in range(3)]))


def test_a_device_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="not a regular file"):
        statements.read_statement(Path("/dev/null"), None, TODAY)


# --- parsing: MT940 -------------------------------------------------------------------------------------------------

def test_an_mt940_statement_gives_credits_with_the_code_in_the_86_text_and_debits_skipped():
    lines = parse(mt940_text(
        ":61:2404100410C477000,00NTRFNONREF//BNI240410001", f":86:IURAN MARET KODE {CODE}",
        "PT MAJU JAYA",
        ":61:2404100410D6500,00NCHGNONREF//BNI240410002", ":86:BIAYA ADM",
        ":61:240410C250000NTRFREF-77", ":86:TRANSFER NPP 10012345"))
    assert [(x.line, x.reference, x.amount, x.credit, x.payment_code, x.npp) for x in lines] == [
        (5, "BNI240410001", 477_000, True, CODE, None), (8, "BNI240410002", 6_500, False, None, None),
        (10, "REF-77", 250_000, True, None, "10012345")]
    assert lines[0].description == f"IURAN MARET KODE {CODE} PT MAJU JAYA"
    assert lines[1].mark == "D"


@pytest.mark.parametrize(("transaction", "expected"), [
    (":61:2404100410C0,00NTRFNONREF//B1", "line 5: the amount must be more than Rp0"),
    (":61:2404100410C477000,50NTRFNONREF//B1", "line 5: the amount is not whole rupiah"),
    (":61:2404100410C999999999999999NTRFNONREF//B1", "line 5: the amount is more than Rp1,000,000,000,000"),
    (":61:2413100410C5000,00NTRFNONREF//B1", "line 5: the value date 241310 is not a date of the calendar"),
    (":61:2612010410C5000,00NTRFNONREF//B1", "line 5: the date 2026-12-01 is in the future"),
    (":61:2404100410C5000,00NTRFNONREF", "line 5: the credit carries no reference"),
    (":61:XYZ", "line 5: not an MT940 statement line"),
    (f":61:2404100410C5000,00NTRFNONREF//B1\n:86:KODE {CODE[:-1]}{(int(CODE[-1]) + 1) % 10}",
     "line 5: payment code"),
])
def test_one_bad_mt940_line_refuses_the_file_naming_the_line(transaction, expected):
    message = refused(mt940_text(":61:2404100410C5000,00NTRFNONREF//B0", transaction).replace(
        ":61:2404100410C5000,00NTRFNONREF//B0\n", ""))
    assert expected in message


def test_an_mt940_statement_in_another_currency_is_refused():
    assert "currency USD" in refused(mt940_text(":61:2404100410C5000,00NTRFNONREF//B1", currency="USD"))


def test_an_mt940_file_without_its_header_tags_is_refused():
    assert "not an MT940 statement" in refused(":20:X\n:61:2404100410C5000,00NTRFNONREF//B1\n", "mt940")


def test_a_csv_given_as_mt940_is_refused():
    assert "not an MT940 statement" in refused(csv_text("REF-1,2024-04-10,5000,,,,,"), "mt940")


def test_the_documented_example_statements_parse():
    csv_lines = statements.read_statement(EXAMPLES / "statement.csv", "csv", TODAY)
    mt940_lines = statements.read_statement(EXAMPLES / "statement.sta", None, TODAY)
    assert [x.repeat_of for x in csv_lines] == [None, None, None, None, 2]
    assert [x.credit for x in mt940_lines] == [True, True, False, True]
    assert mt940_lines[0].npp == "10000017" and mt940_lines[1].payment_code is not None


# --- importing: the worked example ----------------------------------------------------------------------------------

@pytest.fixture
def app():
    app = new_ledger()
    register(app)
    enroll(app, kpj(1), effective=date(2024, 3, 1))
    closed = app.execute(CloseBills.build(month="2024-03", npps=[NPP]))
    assert closed["first_bills"][0]["payment_code"] == CODE and closed["total"] == MARCH_TOTAL
    return app


WORKED = csv_text(f"REF-A,2024-04-10,{MARCH_TOTAL},{CODE},,,PT Maju Jaya,IURAN MARET",
                  "REF-B,2024-04-10,250000,,99999999,,,TRANSFER",
                  f"REF-A,2024-04-10,{MARCH_TOTAL},{CODE},,,PT Maju Jaya,IURAN MARET",
                  "REF-C,2024-04-10,100000,,,,,SETORAN TUNAI")


def run(app, text: str) -> list[dict]:
    lines = parse(text)
    return [outcome.as_dict() for outcome in statements.run_import(app, statements.plan_import(app, lines,
                                                                                              "BEKASI-KOTA"))]


def stored(app) -> int:
    return len(list(app.notifications()))


def account(app) -> PayerAccount:
    return app.find(payer_account_id(NPP, None))


def test_a_statement_with_matched_held_and_duplicate_lines(app):
    rows = run(app, WORKED)
    assert [(r["line"], r["status"]) for r in rows] == [(2, "matched"), (3, "held"), (4, "duplicate"), (5, "held")]
    assert rows[0]["payer"] == f"employer {NPP}" and rows[0]["bills_settled"] == 1
    assert rows[1]["reason"] == "no employer with NPP 99999999 is registered"
    assert rows[3]["reason"] == "the credit names no payment code, NPP or KPJ"
    assert rows[2]["reason"] == "the same money as line 2"
    assert not account(app).open_bills and account(app).unapplied == 0
    held = statements.unmatched(app, "BEKASI-KOTA")
    assert [(h["reference"], h["amount"], h["description"]) for h in held] == [
        ("REF-B", 250_000, "TRANSFER"), ("REF-C", 100_000, "SETORAN TUNAI")]
    assert statements.unmatched(app, "BOGOR") == []


def test_importing_the_same_statement_twice_records_nothing_twice(app):
    run(app, WORKED)
    before = stored(app)
    rows = run(app, WORKED)
    assert [r["status"] for r in rows] == ["duplicate"] * 4
    assert rows[0]["reason"] == "recorded before (received)"
    assert rows[1]["reason"] == "recorded before (held until matched)"
    assert stored(app) == before


def test_a_teller_receipt_with_the_same_reference_is_a_repeat(app):
    run(app, WORKED)
    again = app.execute(ReceiveMoney.build(reference="REF-A", code=CODE, amount=MARCH_TOTAL,
                                           received_on=date(2024, 4, 10), payer_name="PT Maju Jaya"))
    assert again["repeated"] is True
    with pytest.raises(CommandIdConflict):  # the held money's reference at a teller, with a payer: not twice
        app.execute(ReceiveMoney.build(reference="REF-B", npp=NPP, amount=250_000, received_on=date(2024, 4, 10)))


def test_a_line_recorded_before_with_other_money_refuses_the_file(app):
    run(app, WORKED)
    before = stored(app)
    with pytest.raises(InvalidInput, match=r"line 2: reference REF-A was recorded before with Rp477,000"):
        run(app, csv_text(f"REF-A,2024-04-10,{MARCH_TOTAL + 1},{CODE},,,,"))
    assert stored(app) == before


def test_one_bad_line_records_nothing(app):
    before = stored(app)
    with pytest.raises(InvalidInput, match="line 6: the amount must be more than Rp0"):
        run(app, WORKED + "REF-D,2024-04-10,0,,,,,\n")
    assert stored(app) == before and account(app).open_bills


def test_held_money_matched_to_its_payer_is_received_on_the_day_it_arrived_and_applied(app):
    run(app, csv_text("REF-B,2024-04-10,477000,,99999999,,,TRANSFER"))
    assert account(app).open_bills  # held: the bill is still open
    result = app.execute(MatchMoney.build(reference="REF-B", npp=NPP, identified_on=date(2024, 5, 2)))
    # Received 10 April, before the due date: settled without a fine although matched in May.
    assert (result["received_on"], result["bills_settled"], result["unapplied"]) == ("2024-04-10", 1, 0)
    assert statements.unmatched(app, None) == []
    assert app.execute(MatchMoney.build(reference="REF-B", npp=NPP, identified_on=date(2024, 5, 2)))["repeated"]
    with pytest.raises(CommandIdConflict):
        app.execute(MatchMoney.build(reference="REF-B", code=CODE, identified_on=date(2024, 5, 2)))
    with pytest.raises(AlreadyExists):
        app.execute(MatchMoney.build(reference="REF-B", npp=NPP, identified_on=date(2024, 5, 3),
                                     command_id="another-clerk"))


def test_matching_is_refused_for_unknown_money_or_payer_and_before_the_money_arrived(app):
    run(app, csv_text("REF-B,2024-04-10,477000,,,,,"))
    with pytest.raises(NotFound, match="no money is held under bank reference REF-X"):
        app.execute(MatchMoney.build(reference="REF-X", npp=NPP, identified_on=date(2024, 5, 2)))
    with pytest.raises(NotFound, match="no employer with NPP 99999999"):
        app.execute(MatchMoney.build(reference="REF-B", npp="99999999", identified_on=date(2024, 5, 2)))
    with pytest.raises(InvalidInput, match="before the money arrived"):
        app.execute(MatchMoney.build(reference="REF-B", npp=NPP, identified_on=date(2024, 4, 9)))
    assert statements.unmatched(app, None)[0]["reference"] == "REF-B"


def test_a_code_no_bill_carries_is_held_with_the_reason(app):
    other = payment_code(NPP, None, "2024-02", Segment.PU, 1)
    (row,) = run(app, csv_text(f"REF-E,2024-04-10,5000,{other},,,,"))
    assert row["status"] == "held" and row["reason"] == f"no bill of employer {NPP} carries payment code {other}"
    assert statements.unmatched(app, None)[0]["payment_code"] == other


def test_one_payers_credits_in_one_statement_build_on_each_other(app):
    rows = run(app, csv_text(f"REF-1,2024-04-09,400000,{CODE},,,,", f"REF-2,2024-04-12,77000,,{NPP},,,"))
    assert [r["status"] for r in rows] == ["matched", "matched"]
    assert [r["bills_settled"] for r in rows] == [0, 1]  # the second completes the bill, before its due date
    assert not account(app).open_bills and account(app).unapplied == 0


def test_a_long_statement_is_recorded_in_transactions_of_a_bounded_size(app, monkeypatch):
    monkeypatch.setattr(statements, "IMPORT_BATCH_LINES_MAX", 2)
    executed = []
    execute = app.execute
    monkeypatch.setattr(app, "execute", lambda command: executed.append(command.NAME) or execute(command))
    rows = run(app, csv_text(*[f"REF-{i},2024-04-10,1000,,{NPP},,," for i in range(5)]))
    assert [r["status"] for r in rows] == ["matched"] * 5
    assert executed == ["record-statement-lines"] * 3 and account(app).unapplied == 5_000


def test_a_line_recorded_meanwhile_is_a_duplicate_and_other_content_meanwhile_refuses_its_transaction(app):
    lines = parse(csv_text(f"REF-1,2024-04-10,1000,,{NPP},,,", f"REF-2,2024-04-10,2000,,{NPP},,,"))
    planned = statements.plan_import(app, lines, "BEKASI-KOTA")
    app.execute(planned[0].command)  # the same receipt, recorded by someone else after the file was checked
    rows = [o.as_dict() for o in statements.run_import(app, planned)]
    assert [(r["status"], r.get("reason")) for r in rows] == [("duplicate", "recorded before (meanwhile)"),
                                                              ("matched", None)]
    lines = parse(csv_text(f"REF-3,2024-04-10,1000,,{NPP},,,", f"REF-4,2024-04-10,2000,,{NPP},,,"))
    planned = statements.plan_import(app, lines, "BEKASI-KOTA")
    app.execute(ReceiveMoney.build(reference="REF-4", npp=NPP, amount=9_999, received_on=date(2024, 4, 10)))
    before = stored(app)
    with pytest.raises(CommandIdConflict):
        list(statements.run_import(app, planned))
    assert stored(app) == before  # REF-3, in the same transaction, was not recorded either


def test_the_mt940_package_prints_nothing_of_a_file_it_cannot_parse(capfd):
    # Two continuation lines under :61: (one is allowed): the package refuses the tag and logs its text.
    broken = mt940_text(":61:2404100410C5000,00NTRFNONREF//B1", "SITI RAHAYU", "JL MAWAR 1", ":86:Siti Rahayu")
    with pytest.raises(InvalidInput) as error:
        parse(broken)
    assert "not a valid MT940 statement" in str(error.value) and "SITI" not in str(error.value)
    out, err = capfd.readouterr()
    assert "SITI" not in out + err
    # Nor does it reach a handler an application sets up (pytest's own capture is attached to the logger itself).
    assert logging.getLogger("mt940").propagate is False


def test_a_code_of_no_payers_shape_is_held(app):
    code = "1234567812345670"  # 16 digits, its check digit right: no payer's code has 16
    (row,) = run(app, csv_text(f"REF-F,2024-04-10,5000,{code},,,,"))
    assert row["status"] == "held" and row["reason"] == f"no bill carries payment code {code}"
