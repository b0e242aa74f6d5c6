"""Reversals of whole payments (`ledger reverse`, issue 17): a settlement, money received (a bank error) and a whole
`ledger contribution pay` payment, each undone in one command, to the rupiah.

The worked example: employer 10012345 (risk class low), members paid on a wage of Rp5,000,000: JHT 285,000, JKK
27,000, JKM 15,000, JP 150,000 = Rp477,000 a member and month; two members bill Rp954,000 for January 2024 (due
2024-02-15, counted from 2024-02-01)."""

from __future__ import annotations

import os
import tempfile
from datetime import date

import pytest

from ledger import events as ev
from ledger.commands import CloseBills, ExitMember, PayClaim, ReceiveMoney, RefundMoney, Reverse
from ledger.domain import ContributionMonth, PayerAccount, contribution_month_id, event_id, payer_account_id
from ledger.errors import AlreadyExists, InvalidInput, NotFound, RuleViolation
from ledger.formatting import describe
from tests.support.scenario import (
    NPP,
    TODAY,
    enroll,
    enroll_many,
    kpj,
    new_ledger,
    notifications,
    pay,
    register,
)

BUDI, SITI = kpj(1), kpj(2)
LINE = 477_000
BILL = 2 * LINE
JANUARY = "2024-01"


@pytest.fixture
def app():
    return new_ledger()


def two_members(app) -> None:
    register(app)
    enroll(app, BUDI)
    enroll(app, SITI, serial=2)


def close(app, month: str = JANUARY) -> dict:
    return app.execute(CloseBills.build(month=month, npps=[NPP]))


def receive(app, reference: str, amount: int, on: date) -> dict:
    return app.execute(ReceiveMoney.build(reference=reference, npp=NPP, amount=amount, received_on=on))


def reverse(app, target: str, on: date, reason: str = "bank recalled the transfer") -> dict:
    return app.execute(Reverse(event_id=target, reason=reason, reversed_on=on))


def account(app) -> PayerAccount:
    found: PayerAccount = app.find(payer_account_id(NPP, None))
    return found


def month(app, kpj_: str, month_: str = JANUARY) -> ContributionMonth:
    found: ContributionMonth = app.find(contribution_month_id(kpj_, month_))
    return found


def refused(app, error: type[Exception], phrase: str, target: str, on: date) -> str:
    before = notifications(app)
    with pytest.raises(error, match=phrase) as caught:
        reverse(app, target, on)
    assert notifications(app) == before, "a refused reversal wrote something"
    return str(caught.value)


def only_settlement(app) -> str:
    (settled_id,) = [i for i, s in account(app).settlements.items() if s.reversed_by is None]
    return settled_id


# --- a settlement ----------------------------------------------------------------------------------------------------


def test_reversing_a_settlement_reopens_the_bill_returns_its_money_and_reverses_its_lines_in_one_command(app):
    two_members(app)
    close(app)
    receive(app, "REF-1", BILL, date(2024, 2, 10))
    settled_id = only_settlement(app)
    assert account(app).open_bills == [] and account(app).unapplied == 0
    before = notifications(app)

    result = reverse(app, settled_id, date(2024, 3, 20))

    assert result["type"] == "BillSettled" and result["reverses"] == settled_id
    assert result["amount"] == BILL and result["lines_reversed"] == 2 and result["unapplied"] == BILL
    assert notifications(app) == before + 3 + 1  # SettlementReversed, a ContributionReversed per line; the command
    books = account(app)
    assert [b.bill.bill_id for b in books.open_bills] == [f"{NPP}/{JANUARY}/PU/1"]
    assert books.open_bills[0].reopened_on == date(2024, 3, 20)
    # The money is the payer's credit again from the reversal's date (it was applied until then).
    assert books.lots == [("REF-1", BILL, date(2024, 3, 20), "employer")]
    assert (books.received_total, books.applied_total, books.refunded_total) == (BILL, 0, 0)
    assert books.settlements[settled_id].reversed_by == result["event_id"]
    assert month(app, BUDI).current is None and month(app, SITI).current is None
    reversal = dict(app.stored_contracts(books.id))[int(result["event_id"].rpartition(".")[2])]
    assert reversal == ev.SettlementReversed(
        reverses=settled_id, bill_id=f"{NPP}/{JANUARY}/PU/1", npp=NPP, kpj=None, branch="BEKASI-KOTA",
        month=JANUARY, amount=BILL, fine=0, total=BILL, reason="bank recalled the transfer",
        reversed_on=date(2024, 3, 20))
    assert describe(result).endswith("2 contribution line(s) reversed; the payer's unapplied money is now "
                                     "Rp954,000")


def test_a_reversed_settlement_is_not_reversed_twice_and_its_money_waits_until_more_arrives(app):
    two_members(app)
    close(app)
    receive(app, "REF-1", BILL, date(2024, 2, 10))
    settled_id = only_settlement(app)
    reversal = reverse(app, settled_id, date(2024, 3, 20))

    refused(app, AlreadyExists, f"settlement {settled_id} was already reversed \\(event {reversal['event_id']}\\)",
            settled_id, date(2024, 3, 21))
    # The money is not applied again by itself: the bill stays open with the money beside it.
    assert len(account(app).open_bills) == 1 and account(app).unapplied == BILL

    # More money applies it again, settled no earlier than the day it was reopened: 2024-03-25 is 2 months after the
    # due date (16 Feb - 15 Mar, 16 Mar - 15 Apr), a fine of 2% x 2 on each line: 19,080 x 2 = 38,160.
    again = receive(app, "REF-2", 38_160, date(2024, 3, 25))
    assert again["bills_settled"] == 1 and again["unapplied"] == 0
    resettled = account(app).settlements[only_settlement(app)].settled
    assert (resettled.settled_on, resettled.months_late, resettled.fine, resettled.total) == (
        date(2024, 3, 25), 2, 38_160, BILL + 38_160)
    assert resettled.references == ["REF-1", "REF-2"]
    paid = month(app, BUDI).current
    assert paid is not None and (paid.paid_on, paid.fine, paid.total) == (date(2024, 3, 25), 19_080, LINE + 19_080)


def test_a_settlement_is_not_reversed_before_it_was_made_nor_when_its_money_was_paid_out(app):
    two_members(app)
    close(app)
    receive(app, "REF-1", BILL, date(2024, 2, 10))
    settled_id = only_settlement(app)
    refused(app, InvalidInput, "cannot precede the settlement it reverses \\(2024-02-10\\)", settled_id,
            date(2024, 2, 9))
    # Budi leaves and takes his JHT (Rp285,000, all from this settlement): taking it back is refused.
    app.execute(ExitMember(kpj=BUDI, reason="resignation", exit_date=date(2024, 2, 29)))
    app.execute(PayClaim(kpj=BUDI, program="JHT", incident_date=date(2024, 2, 29), paid_on=date(2024, 3, 1)))
    refused(app, RuleViolation, f"would take back Rp285,000 of JHT that member {BUDI} was already paid out",
            settled_id, date(2024, 3, 2))


def test_a_line_a_settlement_paid_is_reversed_with_the_settlement_never_alone(app):
    two_members(app)
    close(app)
    receive(app, "REF-1", BILL, date(2024, 2, 10))
    settled_id = only_settlement(app)
    line = month(app, BUDI)
    assert line.current_id is not None
    refused(app, RuleViolation, f"was paid by the settlement of bill {NPP}/{JANUARY}/PU/1: reverse that settlement "
            f"\\(ledger reverse {settled_id}\\)", line.current_id, date(2024, 2, 20))
    reverse(app, settled_id, date(2024, 2, 20))
    refused(app, AlreadyExists, "was already reversed", line.current_id, date(2024, 2, 21))


def test_a_self_paying_members_settlement_is_reversed_on_the_members_account(app):
    member = kpj(8)
    enroll(app, member, npp=None, branch="BEKASI-KOTA", segment="BPU", wage=1_000_000, programs=["JKK", "JKM"],
           effective=date(2024, 1, 1))
    app.execute(CloseBills.build(month=JANUARY, kpjs=[member]))  # Rp16,800, due 2024-01-15
    app.execute(ReceiveMoney.build(reference="BPU-1", kpj=member, amount=16_800, received_on=date(2024, 1, 10)))
    books: PayerAccount = app.find(payer_account_id(None, member))
    (settled_id,) = books.settlements
    result = reverse(app, settled_id, date(2024, 1, 12))
    assert (result["amount"], result["lines_reversed"], result["unapplied"]) == (16_800, 1, 16_800)
    assert month(app, member).current is None


# --- money received --------------------------------------------------------------------------------------------------


def test_money_received_by_a_bank_error_is_returned_whole_once_but_not_after_it_was_applied(app):
    two_members(app)
    close(app)
    first = receive(app, "REF-1", BILL, date(2024, 2, 10))  # settles January
    second = receive(app, "REF-2", 500_000, date(2024, 2, 12))  # credit: no open bill
    settled_id = only_settlement(app)

    message = refused(app, RuleViolation, "Rp954,000 of receipt REF-1 was applied to bills", first["event_id"],
                      date(2024, 2, 13))
    assert f"reverse the settlement(s) {settled_id} first" in message

    result = reverse(app, second["event_id"], date(2024, 2, 13), reason="credited to the wrong account")
    assert (result["type"], result["amount"], result["unapplied"]) == ("MoneyReceived", 500_000, 0)
    books = account(app)
    assert (books.received_total, books.applied_total, books.returned_total, books.unapplied) == (
        BILL + 500_000, BILL, 500_000, 0)
    refused(app, AlreadyExists, f"reference REF-2\\) was already returned \\(event {result['event_id']}\\)",
            second["event_id"], date(2024, 2, 14))

    # Once the settlement is reversed, the first receipt can be returned too: the bill is open, owed again.
    reverse(app, settled_id, date(2024, 2, 20))
    reverse(app, first["event_id"], date(2024, 2, 20))
    books = account(app)
    assert books.unapplied == 0 and books.applied_total == 0 and books.returned_total == BILL + 500_000
    assert len(books.open_bills) == 1


def test_money_partly_refunded_is_not_returned_and_a_return_does_not_precede_the_receipt(app):
    two_members(app)
    receipt = receive(app, "REF-3", 300_000, date(2024, 2, 14))
    app.execute(RefundMoney.build(npp=NPP, amount=100_000, refunded_on=date(2024, 2, 15), reason="overpaid"))
    refused(app, RuleViolation, "Rp100,000 of receipt REF-3 was refunded", receipt["event_id"], date(2024, 2, 16))
    refused(app, InvalidInput, "cannot precede the receipt it returns \\(2024-02-14\\)", receipt["event_id"],
            date(2024, 2, 13))


# --- a whole payment of `ledger contribution pay` --------------------------------------------------------------------


def test_a_payment_of_many_members_and_months_is_reversed_whole_in_one_command_by_event_or_payment_id(app):
    register(app)
    kpjs, _ = enroll_many(app, 30, wage=3_000_000)
    paid = pay(app, JANUARY, date(2024, 3, 10), months=2)
    assert paid["lines"] == 60 and paid["event_id"].endswith(".1")
    # One line was reversed on its own before: the payment's reversal takes the other 59.
    alone = month(app, kpjs[0])
    assert alone.current is not None and alone.current_id is not None
    single = reverse(app, alone.current_id, date(2024, 3, 11))
    before = notifications(app)

    result = reverse(app, paid["payment_id"], date(2024, 3, 12))  # the payment id stands for its event

    assert result["reverses"] == paid["event_id"] and result["type"] == "ContributionPaymentReceived"
    assert (result["lines_reversed"], result["lines_already_reversed"]) == (59, 1)
    assert result["amount"] == paid["total"] - single["amount"]
    assert notifications(app) == before + 59 + 1  # and the command's record
    assert all(month(app, k, m).current is None for k in kpjs for m in (JANUARY, "2024-02"))
    refused(app, AlreadyExists, f"every line of payment {paid['event_id']} .* was already reversed",
            paid["event_id"], date(2024, 3, 13))
    # The months can be paid again.
    assert pay(app, JANUARY, date(2024, 3, 14), months=2)["lines"] == 60


def test_a_self_paying_members_payment_is_reversed_whole(app):
    enroll(app, kpj(7), npp=None, branch="BEKASI-KOTA", segment="BPU", wage=1_000_000, programs=["JKK", "JKM"],
           effective=date(2024, 1, 1))
    paid = pay(app, JANUARY, date(2024, 1, 10), npp=None, kpj_=kpj(7), months=3)
    result = reverse(app, paid["event_id"], date(2024, 1, 11))
    assert (result["lines_reversed"], result["amount"]) == (3, paid["total"]) and paid["total"] == 3 * 16_800


# --- ids that are not reversed ---------------------------------------------------------------------------------------


def test_ids_that_name_nothing_reversible_are_refused_and_write_nothing(app):
    two_members(app)
    closed = close(app)
    receive(app, "REF-1", BILL, date(2024, 2, 10))
    books = account(app)
    bill_event = books.settlements[only_settlement(app)].bill.event_id
    refused(app, InvalidInput, "not an event id .*, nor the id of a payment", "no-such-payment", date(2024, 3, 1))
    refused(app, NotFound, f"no event {books.id}.99 in the ledger", f"{books.id}.99", date(2024, 3, 1))
    refused(app, NotFound, f"no event {books.id}.0 in the ledger", f"{books.id}.0", date(2024, 3, 1))
    refused(app, RuleViolation, "is a bill, a refund or a reversal; only contributions", bill_event,
            date(2024, 3, 1))
    refused(app, InvalidInput, "is in the future", only_settlement(app), date(TODAY.year + 1, 1, 1))
    reversal = reverse(app, only_settlement(app), date(2024, 3, 1))
    refused(app, RuleViolation, "is a bill, a refund or a reversal", reversal["event_id"], date(2024, 3, 2))
    assert closed["bills"] == 1


# --- replay ----------------------------------------------------------------------------------------------------------


def test_an_account_read_back_from_the_store_is_the_account_that_recorded_the_reversals():
    with tempfile.TemporaryDirectory() as folder:
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": os.path.join(folder, "ledger.db")}
        writer = new_ledger(env)
        two_members(writer)
        close(writer)
        close(writer, "2024-02")
        receive(writer, "REF-1", 1_500_000, date(2024, 2, 10))  # settles January, 546,000 left
        receive(writer, "REF-2", 1_000_000, date(2024, 3, 10))  # settles February from REF-1 and REF-2
        books = account(writer)
        january, february = list(books.settlements)
        assert books.settlements[february].taken == (("REF-1", 546_000, date(2024, 2, 10), "employer"),
                                                     ("REF-2", 408_000, date(2024, 3, 10), "employer"))
        reverse(writer, february, date(2024, 3, 20))
        # The money went back, in the order it was received, as credit from the reversal's date: REF-2's part given
        # back is a lot of its own beside what was left of REF-2 since it arrived.
        assert account(writer).lots == [("REF-1", 546_000, date(2024, 3, 20), "employer"),
                                        ("REF-2", 592_000, date(2024, 3, 10), "employer"),
                                        ("REF-2", 408_000, date(2024, 3, 20), "employer")]
        receipt = account(writer).receipt_ids["REF-2"]
        reverse(writer, receipt, date(2024, 3, 21))
        written = account(writer)

        reader = new_ledger(env)  # a new process: the account is rebuilt from the stored events
        read = account(reader)
        for name in ("lots", "open_bills", "settlements", "receipts", "receipt_ids", "received_total",
                     "applied_total", "refunded_total", "returned_total", "version"):
            assert getattr(read, name) == getattr(written, name), name
        assert read.unapplied == 546_000 and read.applied_total == BILL
        assert [b.bill.month for b in read.open_bills] == ["2024-02"]
        assert read.settlements[january].reversed_by is None
        assert read.event_with_id(int(february.rpartition(".")[2])) == written.settlements[february].settled
        assert event_id(read.id, read.version) == read.receipts[receipt].returned_by


def test_an_employers_event_is_not_reversed_and_says_what_it_is(app):
    registered = register(app)
    refused(app, RuleViolation, "is an employer's registration, risk class change or roster; only contributions",
            registered["event_id"], date(2024, 3, 1))
