"""Collections, worked examples to the rupiah: the monthly close that bills dues, money received and applied oldest
bill first, refunds. Through the write side's application service on the in-memory backend, with a clock each test
moves; what was recorded is read back from the stored events, not from the commands' answers alone.

The scenario: employer 10012345 (risk class low) employs Budi (15000000001) at Rp5,000,000 a month from January 2024.
A month of his costs JHT 5.7% = 285,000, JKK 0.54% = 27,000, JKM 0.3% = 15,000 and JP 3% = 150,000: Rp477,000,
due the 15th of the next month. The late fine is 2% of it, Rp9,540, per month of delay, a started month counting
as one. Sari (15000000002) is a self-paying BPU member declaring Rp1,000,000: JKK 1% = 10,000 + JKM 6,800 =
Rp16,800 a month, due the 15th of the month itself, never fined.
"""

from __future__ import annotations

import contextlib
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import billing
from ledger import events as ev
from ledger.application import Ledger
from ledger.billing import payment_code
from ledger.cli.collections import close_batches
from ledger.commands import MONEY_AMOUNT_MAX, CloseBills, ReceiveMoney, RefundMoney
from ledger.domain import PayerAccount, bill_lines_id, employer_id, payer_account_id
from ledger.errors import CommandIdConflict, InvalidInput, LedgerError, NotFound, RuleViolation
from ledger.rules import OLDEST_BILL_FIRST_WHOLE, Segment, late_fine, months_late
from tests.support.scenario import BRANCH, NPP, POPO_ENV, TEST_NIK_KEY, enroll, events_of, kpj, notifications, pay
from tests.support.scenario import register as register_employer

BUDI, SARI, SITI = kpj(1), kpj(2), kpj(3)
MONTH_DUES = 477_000
FINE_PER_MONTH = 9_540
SARI_DUES = 16_800


class Books:
    """A ledger whose clock the test moves (`books.today = ...`), with the collections commands at hand."""

    def __init__(self, today: date) -> None:
        self.today = today
        self.app = Ledger(env=dict(POPO_ENV), clock=lambda: self.today, nik_key=TEST_NIK_KEY)

    def close(self, month: str, npps: tuple[str, ...] = (NPP,), kpjs: tuple[str, ...] = ()) -> dict[str, Any]:
        return self.app.execute(CloseBills(month=month, npps=list(npps), kpjs=list(kpjs)))

    def receive(self, reference: str, amount: int, received_on: date | None = None, **payer: Any) -> dict[str, Any]:
        return self.app.execute(ReceiveMoney.build(reference=reference, amount=amount,
                                                   received_on=received_on or self.today, **(payer or {"npp": NPP})))

    def refund(self, amount: int, refunded_on: date | None = None, **payer: Any) -> dict[str, Any]:
        return self.app.execute(RefundMoney.build(amount=amount, refunded_on=refunded_on or self.today,
                                                  reason="paid twice by mistake", **(payer or {"npp": NPP})))

    def account(self, npp: str | None = NPP, kpj_: str | None = None) -> PayerAccount:
        account: PayerAccount = self.app.find(payer_account_id(npp, kpj_))
        return account

    def account_events(self, type_name: str, npp: str | None = NPP, kpj_: str | None = None) -> list[Any]:
        return [contract for _version, contract in self.app.stored_contracts(payer_account_id(npp, kpj_))
                if type_name == contract.TYPE]

    def contract_events(self) -> int:
        """How many events the relay would publish: the measure of 'nothing was recorded'."""
        return sum(1 for _ in self.app.stored_contract_notifications())


def budi_employed(today: date) -> Books:
    books = Books(today)
    register_employer(books.app)
    enroll(books.app, BUDI, effective=date(2024, 1, 1), wage=5_000_000)
    return books


def sari_self_paying(books: Books) -> None:
    enroll(books.app, SARI, npp=None, segment=Segment.BPU, branch=BRANCH, wage=1_000_000,
           effective=date(2024, 1, 1), serial=2, name="Sari Dewi")


# --- worked examples -----------------------------------------------------------------------------------------------


def test_a_short_payment_leaves_the_bill_open_and_a_later_one_settles_it_with_its_fine() -> None:
    books = budi_employed(date(2024, 2, 5))
    closed = books.close("2024-01")
    bill = closed["first_bills"][0]
    assert (closed["bills"], closed["members"], closed["total"]) == (1, 1, MONTH_DUES)
    assert (bill["bill_id"], bill["due_date"]) == (f"{NPP}/2024-01/PU/1", "2024-02-15")
    assert bill["payment_code"] == payment_code(NPP, None, "2024-01", Segment.PU, 1) == "11001234524011013"

    books.today = date(2024, 2, 10)
    short = books.receive("BCA-240210-001", 300_000, code=bill["payment_code"])
    assert (short["bills_settled"], short["unapplied"], short["open_bills"]) == (0, 300_000, 1)
    assert events_of(books.app, "ContributionPaid", kpj_=BUDI) == []

    # 20 April: due 15 February, so 3 months late (to 15 Mar, 15 Apr, and 5 days of a third); the fine is
    # 3 x 9,540 = 28,620 and the bill takes 505,620 of the 510,000 received.
    books.today = date(2024, 4, 20)
    rest = books.receive("BCA-240420-007", 210_000)
    assert (rest["bills_settled"], rest["unapplied"], rest["open_bills"]) == (1, 4_380, 0)
    [settled] = books.account_events("BillSettled")
    assert (settled.settled_on, settled.months_late, settled.amount, settled.fine, settled.total) == (
        date(2024, 4, 20), 3, MONTH_DUES, 3 * FINE_PER_MONTH, 505_620)
    assert settled.references == ["BCA-240210-001", "BCA-240420-007"]
    assert settled.rule == OLDEST_BILL_FIRST_WHOLE
    [paid] = events_of(books.app, "ContributionPaid", kpj_=BUDI)
    assert (paid["data"]["month"], paid["data"]["paid_on"], paid["data"]["payment_id"]) == (
        "2024-01", "2024-04-20", f"{NPP}/2024-01/PU/1")
    assert (paid["data"]["months_late"], paid["data"]["fine"], paid["data"]["total"]) == (3, 28_620, 505_620)


def test_an_overpayment_is_carried_to_the_next_bill_and_settles_it_when_it_closes_with_no_fine() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    books.today = date(2024, 2, 10)
    overpaid = books.receive("BCA-240210-001", 1_000_000)
    assert (overpaid["bills_settled"], overpaid["unapplied"]) == (1, 1_000_000 - MONTH_DUES)

    # February closes on 4 March: the bill counts from 1 March, and the credit was there before it: it is settled
    # that day, before its due date, with no fine, whenever the close runs.
    books.today = date(2024, 3, 4)
    closed = books.close("2024-02")
    assert (closed["bills"], closed["settled_from_credit"]) == (1, 1)
    january, february = books.account_events("BillSettled")
    assert (january.settled_on, january.fine) == (date(2024, 2, 10), 0)
    assert (february.month, february.settled_on, february.months_late, february.fine, february.total) == (
        "2024-02", date(2024, 3, 1), 0, 0, MONTH_DUES)
    assert february.references == ["BCA-240210-001"]
    assert books.account().unapplied == 1_000_000 - 2 * MONTH_DUES == 46_000
    paid = {row["data"]["month"]: row["data"]["paid_on"] for row in events_of(books.app, "ContributionPaid",
                                                                              kpj_=BUDI)}
    assert paid == {"2024-01": "2024-02-10", "2024-02": "2024-03-01"}


def test_a_lump_payment_settles_six_bills_oldest_first_each_with_its_own_fine() -> None:
    books = budi_employed(date(2024, 7, 2))
    for month in range(1, 7):
        books.close(f"2024-{month:02d}")
    books.today = date(2024, 7, 10)
    # On 10 July: January (due 15 Feb) is 5 months late, February 4, ... May 1, June (due 15 Jul) on time.
    fines = [5 * FINE_PER_MONTH, 4 * FINE_PER_MONTH, 3 * FINE_PER_MONTH, 2 * FINE_PER_MONTH, FINE_PER_MONTH, 0]
    assert sum(fines) == 143_100
    lump = books.receive("MANDIRI-0710-1", 6 * MONTH_DUES + 143_100)
    assert (lump["amount"], lump["bills_settled"], lump["unapplied"], lump["open_bills"]) == (3_005_100, 6, 0, 0)
    settled = books.account_events("BillSettled")
    assert [s.month for s in settled] == [f"2024-{m:02d}" for m in range(1, 7)]
    assert [s.fine for s in settled] == fines
    assert [s.months_late for s in settled] == [5, 4, 3, 2, 1, 0]
    assert {s.settled_on for s in settled} == {date(2024, 7, 10)}

    # One rupiah less: the oldest five are settled, June stays open, and what is left waits for more money.
    short = budi_employed(date(2024, 7, 2))
    for month in range(1, 7):
        short.close(f"2024-{month:02d}")
    short.today = date(2024, 7, 10)
    result = short.receive("MANDIRI-0710-1", 3_005_099)
    assert (result["bills_settled"], result["open_bills"]) == (5, 1)
    assert result["unapplied"] == 3_005_099 - 5 * MONTH_DUES - 143_100 == 476_999
    assert [b.bill.month for b in short.account().open_bills] == ["2024-06"]


def test_a_self_paying_bpu_member_is_billed_due_the_15th_of_the_month_itself_and_never_fined() -> None:
    books = budi_employed(date(2024, 3, 1))
    sari_self_paying(books)
    closed = books.close("2024-03", npps=(), kpjs=(SARI,))
    [bill] = books.account_events("BillClosed", npp=None, kpj_=SARI)
    assert (bill.counts_from, bill.due_date, bill.total, bill.member_count) == (
        date(2024, 3, 1), date(2024, 3, 15), SARI_DUES, 1)
    assert bill.payment_code == closed["first_bills"][0]["payment_code"]
    assert len(bill.payment_code) == 19 and bill.payment_code.startswith(f"2{SARI}2403")

    books.today = date(2024, 5, 20)  # two months after the due date: a BPU bill carries no fine
    paid = books.receive("BRI-0520-3", SARI_DUES, code=bill.payment_code)
    assert (paid["kpj"], paid["bills_settled"], paid["unapplied"]) == (SARI, 1, 0)
    [settled] = books.account_events("BillSettled", npp=None, kpj_=SARI)
    assert (settled.settled_on, settled.months_late, settled.fine, settled.total) == (
        date(2024, 5, 20), 0, 0, SARI_DUES)
    [line] = events_of(books.app, "ContributionPaid", kpj_=SARI)
    assert (line["data"]["payer"], line["data"]["fine"], line["data"]["total"]) == ("member", 0, SARI_DUES)


def test_a_regional_budget_paying_for_bpu_members_gets_a_bpu_bill_of_its_own_and_pays_half_a_year_at_once() -> None:
    """A regional government (NPP 10000003) pays the cheapest BPU package, Rp16,800, for two vulnerable workers: a BPU
    bill, due the 15th of the month itself and counting from its first day, so the current month is billed too. A
    transfer on 10 June settles January to June with no fines."""
    books = Books(date(2024, 6, 10))
    register_employer(books.app, "10000003", kind="government", name="Pemerintah Kota Bekasi")
    for n in (7, 8):
        enroll(books.app, kpj(n), npp="10000003", segment=Segment.BPU, wage=1_000_000, effective=date(2024, 1, 1),
               serial=n, name=f"Pekerja {n}")
    for month in range(1, 7):
        closed = books.close(f"2024-{month:02d}", npps=("10000003",))
        assert (closed["bills"], closed["total"]) == (1, 2 * SARI_DUES)
    june = books.account_events("BillClosed", npp="10000003")[-1]
    assert (june.segment, june.counts_from, june.due_date) == (Segment.BPU, date(2024, 6, 1), date(2024, 6, 15))
    assert june.payment_code == "1" + "10000003" + "2406" + "2" + "01" + "4"  # employer, NPP, month, BPU, bill 1
    paid = books.receive("APBD-0610", 12 * SARI_DUES, npp="10000003", payer="institution")
    assert (paid["bills_settled"], paid["unapplied"]) == (6, 0)
    assert {s.fine for s in books.account_events("BillSettled", npp="10000003")} == {0}
    assert {row["data"]["payer"] for row in events_of(books.app, "ContributionPaid", kpj_=kpj(7))} == {"institution"}


# --- repeats and refusals: each writes nothing ---------------------------------------------------------------------


def test_the_same_bank_reference_twice_is_a_repeat_and_with_other_content_is_refused() -> None:
    books = budi_employed(date(2024, 2, 10))
    books.close("2024-01")
    first = books.receive("BCA-240210-001", MONTH_DUES)
    written = notifications(books.app)

    again = books.receive("BCA-240210-001", MONTH_DUES)
    assert again["repeated"] is True
    assert {k: v for k, v in again.items() if k != "repeated"} == {k: v for k, v in first.items() if k != "repeated"}
    for other in ({"amount": MONTH_DUES + 1}, {"received_on": date(2024, 2, 9)}):
        fields = {"amount": MONTH_DUES, "received_on": date(2024, 2, 10), **other}
        with pytest.raises(CommandIdConflict, match="bank reference BCA-240210-001 was already recorded"):
            books.receive("BCA-240210-001", fields["amount"], fields["received_on"])
    assert notifications(books.app) == written
    assert books.account().received_total == MONTH_DUES


def test_a_refund_larger_than_the_credit_is_refused_and_one_within_it_is_recorded() -> None:
    books = budi_employed(date(2024, 2, 10))
    with pytest.raises(RuleViolation, match=f"larger than employer {NPP}'s credit of Rp0"):
        books.refund(1)
    books.close("2024-01")
    books.receive("BCA-240210-001", 500_000)  # 23,000 more than the bill
    written = notifications(books.app)
    with pytest.raises(RuleViolation, match=r"a refund of Rp23,001 is larger than .* credit of Rp23,000"):
        books.refund(23_001)
    assert notifications(books.app) == written

    refunded = books.refund(23_000)
    assert refunded["unapplied"] == 0
    [event] = books.account_events("MoneyRefunded")
    assert (event.amount, event.refunded_on, event.reason) == (23_000, date(2024, 2, 10), "paid twice by mistake")
    account = books.account()
    assert (account.received_total, account.applied_total, account.refunded_total, account.unapplied) == (
        500_000, MONTH_DUES, 23_000, 0)


def test_a_refund_dated_before_the_money_it_pays_back_arrived_is_refused() -> None:
    books = budi_employed(date(2024, 3, 10))
    books.receive("BCA-240310-001", 100_000)  # no bill yet: all of it is credit
    written = notifications(books.app)
    with pytest.raises(RuleViolation, match=r"a refund dated 2024-03-09 would pay back money .* from 2024-03-10"):
        books.refund(100_000, date(2024, 3, 9))
    assert notifications(books.app) == written
    assert books.refund(100_000, date(2024, 3, 10))["unapplied"] == 0


@pytest.mark.parametrize("amount", [0, -1, -MONTH_DUES, MONEY_AMOUNT_MAX + 1, True, "477000", 477_000.0])
def test_amounts_of_zero_below_or_above_the_limit_are_refused(amount: Any) -> None:
    with pytest.raises(InvalidInput, match="receive-money: amount"):
        ReceiveMoney.build(reference="BCA-1", npp=NPP, amount=amount, received_on=date(2024, 2, 10))
    with pytest.raises(InvalidInput, match="refund-money: amount"):
        RefundMoney.build(npp=NPP, amount=amount, refunded_on=date(2024, 2, 10), reason="overpaid")
    assert ReceiveMoney.build(reference="BCA-1", npp=NPP, amount=MONEY_AMOUNT_MAX,
                              received_on=date(2024, 2, 10)).amount == MONEY_AMOUNT_MAX


@pytest.mark.parametrize(("payer", "role"), [({"npp": NPP}, "member"), ({"code": "11001234524011013"}, "member"),
                                             ({"kpj": SARI}, "employer")])
def test_a_payer_role_that_cannot_pay_the_account_is_refused(payer: dict[str, str], role: str) -> None:
    with pytest.raises(InvalidInput, match=r"receive-money: input: payer: money for an? (employer|member)'s account"):
        ReceiveMoney.build(reference="BCA-1", amount=MONTH_DUES, received_on=date(2024, 2, 10), payer=role, **payer)
    assert ReceiveMoney.build(reference="BCA-1", amount=MONTH_DUES, received_on=date(2024, 2, 10),
                              payer="institution", **payer).payer is ev.PayerRole.INSTITUTION


def test_a_close_naming_a_payer_twice_is_refused() -> None:
    with pytest.raises(InvalidInput, match=f"close-bills: input: npps: {NPP} is listed more than once"):
        CloseBills.build(month="2024-01", npps=[NPP, OTHER_NPP, NPP])
    with pytest.raises(InvalidInput, match=f"close-bills: input: kpjs: {SARI} is listed more than once"):
        CloseBills.build(month="2024-01", kpjs=[SARI, SARI])


def test_a_receipt_dated_in_the_future_is_refused() -> None:
    books = budi_employed(date(2024, 2, 10))
    books.close("2024-01")
    written = notifications(books.app)
    with pytest.raises(InvalidInput, match="receipt date 2024-02-11 is in the future"):
        books.receive("BCA-240211-001", MONTH_DUES, books.today + timedelta(days=1))
    assert notifications(books.app) == written


def test_an_unknown_payment_code_or_a_wrong_check_digit_is_refused() -> None:
    books = budi_employed(date(2024, 2, 10))
    books.close("2024-01")
    written = notifications(books.app)
    not_billed = payment_code(NPP, None, "2024-05", Segment.PU, 1)  # a valid code: May is not closed
    with pytest.raises(NotFound, match=f"unknown payment code {not_billed}"):
        books.receive("BCA-1", MONTH_DUES, code=not_billed)
    with pytest.raises(NotFound, match="no employer with NPP 10099999"):
        books.receive("BCA-2", MONTH_DUES, code=payment_code("10099999", None, "2024-01", Segment.PU, 1))
    assert notifications(books.app) == written

    billed = payment_code(NPP, None, "2024-01", Segment.PU, 1)
    typo = billed[:-1] + str((int(billed[-1]) + 1) % 10)
    with pytest.raises(InvalidInput, match="the check digit does not match"):
        books.receive("BCA-3", MONTH_DUES, code=typo)


def test_closing_a_month_twice_records_nothing_new() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    published = books.contract_events()
    again = books.close("2024-01")
    assert (again["bills"], again["members"], again["total"]) == (0, 0, 0)
    assert books.contract_events() == published
    assert len(books.account_events("BillClosed")) == 1


def test_a_back_dated_enrollment_into_a_closed_month_makes_an_adjustment_bill_on_the_next_close() -> None:
    books = budi_employed(date(2024, 2, 5))
    books.close("2024-01")
    books.today = date(2024, 2, 20)
    enroll(books.app, SITI, effective=date(2024, 1, 10), wage=5_000_000, serial=3, name="Siti Aminah")
    adjusted = books.close("2024-01")
    assert (adjusted["bills"], adjusted["members"], adjusted["total"]) == (1, 1, MONTH_DUES)
    regular, adjustment = books.account_events("BillClosed")
    assert (regular.kind, regular.member_count) == (ev.BillKind.REGULAR, 1)
    assert (adjustment.bill_id, adjustment.kind, adjustment.member_count) == (
        f"{NPP}/2024-01/PU/2", ev.BillKind.ADJUSTMENT, 1)
    assert adjustment.payment_code == payment_code(NPP, None, "2024-01", Segment.PU, 2)
    assert (adjustment.counts_from, adjustment.due_date, adjustment.closed_on) == (
        date(2024, 2, 1), date(2024, 2, 15), date(2024, 2, 20))
    account = books.account()
    assert [b.bill.bill_id for b in account.open_bills] == [f"{NPP}/2024-01/PU/1", f"{NPP}/2024-01/PU/2"]
    assert [b.event_id for b in account.open_bills] == [f"{account.id}.1", f"{account.id}.2"]  # the BillClosed events


def test_contribution_pay_of_a_month_with_an_open_bill_is_refused() -> None:
    books = budi_employed(date(2024, 2, 10))
    books.close("2024-01")
    written = notifications(books.app)
    with pytest.raises(RuleViolation, match=r"2024-01 is billed .* ledger payment receive --code 11001234524011013"):
        pay(books.app, "2024-01", date(2024, 2, 10))
    assert notifications(books.app) == written


def test_a_receipt_on_an_account_just_written_is_decided_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The account saved by one command is cached as saved: the next command on it does not find a stale copy, fail
    its save and run again."""
    attempts: list[bool] = []

    def counted(context: Any, command: ReceiveMoney, careful: bool) -> Any:
        attempts.append(careful)
        return billing.receive_money(context, command, careful)

    monkeypatch.setitem(billing.BILLING_HANDLERS, ReceiveMoney, counted)
    books = budi_employed(date(2024, 2, 10))
    books.close("2024-01")
    for number in range(3):
        books.receive(f"BCA-240210-{number}", 100_000)
    assert attempts == [False, False, False]
    assert (books.account().unapplied, books.account().received_total) == (300_000, 300_000)


def test_the_close_lists_a_branchs_payers_and_names_its_batches_so_that_a_rerun_is_a_repeat() -> None:
    books = budi_employed(date(2024, 2, 5))
    sari_self_paying(books)
    enroll(books.app, kpj(6), npp=None, segment=Segment.BPU, branch="BOGOR", wage=1_000_000, serial=6, name="Rina")
    [bekasi] = books.app.payers(BRANCH).values()
    assert (bekasi.npps, bekasi.kpjs) == ([NPP], [SARI])  # Budi is billed to his employer
    assert sorted(books.app.payers()) == ["BEKASI-KOTA", "BOGOR"]
    first = [batch.command_id for batch in close_batches("2024-01", bekasi)]
    assert [batch.command_id for batch in close_batches("2024-01", bekasi)] == first
    assert first[0].startswith("close:2024-01:BEKASI-KOTA:employers-1:")
    assert first[1].startswith("close:2024-01:BEKASI-KOTA:members-1:")
    for batch in close_batches("2024-01", bekasi):
        books.app.execute(batch)
    assert all(books.app.execute(batch)["repeated"] for batch in close_batches("2024-01", bekasi))
    assert all(books.app.previous_result(batch)["repeated"] for batch in close_batches("2024-01", bekasi))

    enroll(books.app, SITI, effective=date(2024, 1, 10), serial=3, name="Siti Aminah")  # back-dated, with NPP
    [after] = books.app.payers(BRANCH).values()
    employers, members = (batch.command_id for batch in close_batches("2024-01", after))
    assert [books.app.previous_result(batch) is None for batch in close_batches("2024-01", after)] == [True, False]
    assert employers != first[0]  # a new command: it bills Siti's January
    assert members == first[1]  # a repeat: no self-paying member was enrolled


# --- a property: no sequence of closes, receipts and refunds breaks the payers' books -------------------------------

OTHER_NPP = "10000002"
PROPERTY_START = date(2024, 4, 1)
PROPERTY_END = date(2025, 3, 31)
PROPERTY_STEPS_MAX = 25
RECEIPT_BACKDATE_DAYS_MAX = 60  # a receipt recorded some days after the money arrived
ADVANCE_DAYS_MAX = 45


def payers_world() -> tuple[Books, dict[str, dict[str, str | None]]]:
    """Two employers (Budi's, and one of two members) and Sari, self-paying."""
    books = budi_employed(PROPERTY_START)
    register_employer(books.app, OTHER_NPP, name="CV Sumber Rejeki")
    enroll(books.app, kpj(4), npp=OTHER_NPP, effective=date(2024, 1, 1), wage=4_200_000, serial=4, name="Agus")
    enroll(books.app, kpj(5), npp=OTHER_NPP, effective=date(2024, 3, 15), wage=6_100_000, serial=5, name="Dewi")
    sari_self_paying(books)
    return books, {"A": {"npp": NPP, "kpj": None}, "B": {"npp": OTHER_NPP, "kpj": None},
                   "S": {"npp": None, "kpj": SARI}}


def month_keys(first: date, last: date) -> list[str]:
    keys, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return keys


def run_step(books: Books, payers: dict[str, dict[str, str | None]], data: Any, references: list[str]) -> None:
    kind = data.draw(st.sampled_from(["advance", "advance", "close", "close", "receive", "receive", "receive",
                                      "refund", "enroll", "pay"]), label="step")
    if kind == "advance":
        books.today = min(PROPERTY_END, books.today + timedelta(days=data.draw(st.integers(1, ADVANCE_DAYS_MAX))))
        return
    if kind == "enroll":  # someone found later, dated back (perhaps into a closed month: an adjustment bill)
        number = 10 + len(books.app.find(employer_id(OTHER_NPP)).roster)
        effective = books.today - timedelta(days=data.draw(st.integers(0, 120), label="enrolled days ago"))
        with contextlib.suppress(LedgerError):
            enroll(books.app, kpj(number), npp=OTHER_NPP, effective=max(date(2024, 1, 1), effective),
                   wage=data.draw(st.sampled_from([3_600_000, 5_000_000, 9_000_000]), label="wage"),
                   serial=number, name=f"Pekerja {number}")
        return
    if kind == "pay":  # a month paid without a bill (`contribution pay`): refused if it is billed and open
        months = month_keys(date(2024, 1, 1), books.today)
        with contextlib.suppress(LedgerError):
            pay(books.app, data.draw(st.sampled_from(months), label="paid month"), books.today)
        return
    payer = payers[data.draw(st.sampled_from(sorted(payers)), label="payer")]
    with contextlib.suppress(LedgerError):  # refused commands are part of the game
        if kind == "close":
            # Mostly a recent month, for every payer, as the monthly close runs; sometimes one payer, any month.
            months = month_keys(date(2024, 1, 1), books.today)
            month = data.draw(st.sampled_from(months[-3:] if data.draw(st.booleans()) else months), label="month")
            if data.draw(st.booleans(), label="every payer"):
                books.close(month, npps=(NPP, OTHER_NPP), kpjs=(SARI,))
            else:
                books.close(month, npps=(payer["npp"],) if payer["npp"] else (), kpjs=(SARI,) if payer["kpj"] else ())
        elif kind == "receive":
            if references and data.draw(st.integers(0, 9)) == 0:
                reference = data.draw(st.sampled_from(references), label="reused reference")
            else:
                reference = f"REF-{len(references) + 1}"
                references.append(reference)
            amount = data.draw(st.one_of(st.sampled_from([MONTH_DUES, SARI_DUES, MONTH_DUES + FINE_PER_MONTH]),
                                         st.integers(1, 3_000_000)), label="amount")
            back = data.draw(st.integers(0, RECEIPT_BACKDATE_DAYS_MAX), label="days ago")
            books.receive(reference, amount, max(date(2024, 1, 1), books.today - timedelta(days=back)),
                          **{k: v for k, v in payer.items() if v})
        else:
            amount = data.draw(st.integers(1, 600_000), label="refund")
            back = data.draw(st.integers(0, RECEIPT_BACKDATE_DAYS_MAX), label="refund days ago")
            books.refund(amount, books.today - timedelta(days=back), **{k: v for k, v in payer.items() if v})


def check_payer_books(books: Books, npp: str | None, kpj_: str | None) -> None:
    account: PayerAccount | None = books.app.find(payer_account_id(npp, kpj_))
    if account is None:
        return
    events = [contract for _version, contract in books.app.stored_contracts(account.id)]
    bills = {e.bill_id: e for e in events if isinstance(e, ev.BillClosed)}
    receipts = [e for e in events if isinstance(e, ev.MoneyReceived)]
    settlements = [e for e in events if isinstance(e, ev.BillSettled)]
    refunds = [e for e in events if isinstance(e, ev.MoneyRefunded)]
    received = sum(r.amount for r in receipts)
    applied = sum(s.total for s in settlements)
    refunded = sum(r.amount for r in refunds)
    # Money: received = applied + unapplied + refunded, and never more applied or refunded than received.
    assert account.unapplied == sum(lot[1] for lot in account.lots) >= 0
    assert received == applied + account.unapplied + refunded
    assert (account.received_total, account.applied_total, account.refunded_total) == (received, applied, refunded)
    # Dues: billed = settled amounts + the open bills' totals, each bill settled at most once.
    settled_ids = [s.bill_id for s in settlements]
    assert len(settled_ids) == len(set(settled_ids)) and set(settled_ids) <= set(bills)
    open_ids = [b.bill.bill_id for b in account.open_bills]
    assert set(open_ids) == set(bills) - set(settled_ids)
    assert sum(b.total for b in bills.values()) == sum(s.amount for s in settlements) + sum(
        bills[i].total for i in open_ids)
    for settlement in settlements:
        bill = bills[settlement.bill_id]
        assert settlement.amount == bill.total
        assert settlement.settled_on >= bill.counts_from
        assert settlement.fine == (0 if bill.segment is Segment.BPU else sum(
            late_fine(line.amount, settlement.months_late, bill.due_date)
            for line in books.app.find(bill_lines_id(bill.bill_id)).lines))
    # At every date, what was applied or refunded by then was received by then.
    days = sorted({r.received_on for r in receipts} | {s.settled_on for s in settlements}
                  | {r.refunded_on for r in refunds})
    for day in days:
        spent = sum(s.total for s in settlements if s.settled_on <= day) + sum(
            r.amount for r in refunds if r.refunded_on <= day)
        assert spent <= sum(r.amount for r in receipts if r.received_on <= day), day
    # The rule leaves no bill open that the money held would settle.
    if account.open_bills:
        oldest = account.open_bills[0].bill
        fine_today = 0 if oldest.segment is Segment.BPU else sum(
            late_fine(line.amount, months_late(oldest.due_date, books.today), oldest.due_date)
            for line in books.app.find(bill_lines_id(oldest.bill_id)).lines)
        assert account.unapplied < oldest.total + fine_today


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_no_sequence_of_closes_receipts_and_refunds_breaks_the_payers_books(data: Any) -> None:
    books, payers = payers_world()
    references: list[str] = []
    for _ in range(data.draw(st.integers(5, PROPERTY_STEPS_MAX), label="steps")):
        run_step(books, payers, data, references)
    for payer in payers.values():
        check_payer_books(books, payer["npp"], payer["kpj"])
