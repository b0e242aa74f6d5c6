"""No history of contributions, collections and their reversals breaks the books (`projections.general_ledger`).

Hypothesis draws sequences over one employer of two members and a self-paying BPU member, in the first half of 2024:
month closes, money received on random days in random amounts (short of a bill, then the rest: partial and late
payments), refunds, payments without a bill, money held and matched later, wages raised back into billed months
(adjustments), claims, and reversals of settlements, receipts, payments and claims. Refused commands are part of the
game. The published events are then projected in batches of a drawn size, by the JSON path or not, with indexes or
as a rebuild's index-less load (reversals waiting for `complete`); then:
- `GeneralLedger.check` passes (entries balance, the journal balances on every date, clearing empty, nothing
  waiting, receivables, credit, held, billed and owed-back never below zero);
- the trial balance balances at every month-end, and every payment's clearing account is empty there;
- the rows are the same whatever order the aggregates' events interleave in (as workers apply them);
- at every month-end the ties of `ledger books check` hold (`queries.check_books`, all four projections built),
  and the auditor's recount from the events finds the same trial balance (`ledger audit as-of`, at a few dates);
- at every month-end the JHT liability is the members' JHT balances on the write side, and at the end receivables
  are the payers' open bills and the payers' credit their unapplied money.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from ledger.application import Ledger
from ledger.audit.recount import Recount, compare_as_of
from ledger.commands import (
    ChangeWage,
    CloseBills,
    HoldMoney,
    MatchMoney,
    PayClaim,
    PayContribution,
    ReceiveMoney,
    RefundMoney,
    Reverse,
)
from ledger.domain import PayerAccount, payer_account_id
from ledger.errors import LedgerError
from ledger.events import EVENT_TYPES
from ledger.rules import Segment
from projections import queries
from projections.catalog import PROJECTIONS
from projections.store import ViewStore, table_name
from tests.support.scenario import BRANCH, NPP, TODAY, enroll, kpj, new_ledger, register
from tests.support.views import project as project_all
from tests.support.views import published

MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05", "2024-06"]
FIRST_DAY = date(2024, 1, 1)
DAYS = 240  # to the end of August 2024
MONTH_ENDS = [date(2024, m + 1, 1) - timedelta(days=1) for m in range(1, 12)] + [date(2024, 12, 31)]
BPU = kpj(3)
MEMBERS = (kpj(1), kpj(2), BPU)
GL = "general_ledger"
VIEW = PROJECTIONS[GL]
Records = list[tuple[dict[str, Any], bytes]]

offset = st.integers(min_value=-5, max_value=60)  # a reversal's or match's days after what it undoes or matches
day = st.integers(min_value=0, max_value=DAYS).map(lambda n: FIRST_DAY + timedelta(days=n))
payer = st.sampled_from(["npp", "kpj"])
# A PU month's bill is Rp1,192,500 (wages of Rp5,000,000 and Rp7,500,000); amounts near it and its multiples settle
# bills, smaller ones fall short until the rest arrives; any amount may arrive.
amount = st.one_of(st.sampled_from([1_192_500, 1_216_350, 2_400_000, 3_600_000, 36_800]),
                   st.integers(min_value=1, max_value=3_000_000))
# The actions after which the money application rule may run: none is drawn after a settlement reversal.
APPLYING = frozenset({"close", "raise-wage", "receive", "match"})
# Every history starts with January and February billed to both payers.
PROLOGUE = [("close", month, who) for month in MONTHS[:2] for who in ("npp", "kpj")]
actions = st.one_of(
    st.tuples(st.just("close"), st.sampled_from(MONTHS), payer),
    st.tuples(st.just("close"), st.sampled_from(MONTHS), payer),
    st.tuples(st.just("receive"), amount, day, payer),
    st.tuples(st.just("receive"), amount, day, payer),
    st.tuples(st.just("refund"), st.integers(min_value=1, max_value=1_000_000), day, payer),
    st.tuples(st.just("pay"), st.sampled_from(MONTHS), day, payer),
    st.tuples(st.just("hold"), amount, day, st.sampled_from([BRANCH, "DEPOK"])),  # held at another branch too
    st.tuples(st.just("match"), st.integers(min_value=0, max_value=9), offset, payer),
    st.tuples(st.just("raise-wage"), st.sampled_from(MONTHS), st.sampled_from([6_000_000, 9_000_000])),
    st.tuples(st.just("claim"), st.integers(min_value=100_000, max_value=2_000_000), day),
    *[st.tuples(st.just("reverse"), st.just(what), st.integers(min_value=0, max_value=9), offset)
      for what in ("settlement", "receipt", "payment", "claim")],
)


def new_command(action: tuple[Any, ...], step: int, who: dict[str, str | None],
                seen: dict[str, dict[str, date]]) -> Any:
    """The command of an action that makes something new."""
    kind = action[0]
    on = action[2] if len(action) > 2 and isinstance(action[2], date) else TODAY
    if kind == "refund":
        on = no_earlier_than_a_settlement_reversal(on, seen)
    if kind == "close":
        return CloseBills.build(month=action[1], **({"npps": [NPP]} if who["npp"] else {"kpjs": [BPU]}))
    if kind == "receive":
        return ReceiveMoney.build(reference=f"REF-{step}", amount=action[1], received_on=action[2], **who)
    if kind == "refund":
        return RefundMoney.build(amount=action[1], refunded_on=on, reason="overpaid", **who)
    if kind == "pay":
        return PayContribution.build(month=action[1], paid_on=action[2], **who)
    if kind == "hold":
        return HoldMoney.build(reference=f"HELD-{step}", branch=action[3], amount=action[1], received_on=action[2])
    return PayClaim.build(kpj=kpj(1), program="JKK", kind="care", incident_date=action[2],
                          paid_on=action[2] + timedelta(days=3), amount=action[1])


def no_earlier_than_a_settlement_reversal(on: date, seen: dict[str, dict[str, date]]) -> date:
    """The ledger lets money go out of a payer's credit, or be applied to a bill, on a day the money was applied to
    a bill whose settlement was reversed later: money refunded or returned dated before the reversal, or a bill closed
    after it that counts from before it, settled with the money back and dated before it. No day's books can show
    that (the same money applied twice, or applied and gone: the credit below zero); the books' check refuses such a
    history (`test_money_taken_back_while_it_was_applied`, `test_money_back_from_a_reversal_applied_before_it`).
    Until the ledger refuses it, the histories drawn take money back only once a reversal gave it back, and apply no
    money after a settlement is reversed (no `APPLYING` action)."""
    return max(on, *seen["settlement reversed"].values()) if seen["settlement reversed"] else on


def undo_command(action: tuple[Any, ...], who: dict[str, str | None],
                 seen: dict[str, dict[str, date]]) -> tuple[Any, str, date] | None:
    """The command of a match or a reversal of something made before, its target and date; None if nothing is."""
    kind = action[0]
    known = seen["held" if kind == "match" else action[1]]
    if not known:
        return None
    index, days = action[1:3] if kind == "match" else action[2:4]
    target = list(known)[index % len(known)]  # in the order they were made: ids differ from run to run
    on = min(TODAY, known[target] + timedelta(days=days))
    if kind == "match":
        return MatchMoney.build(reference=target, identified_on=on, **who), target, on
    if action[1] == "receipt":
        on = no_earlier_than_a_settlement_reversal(on, seen)
    return Reverse.build(event_id=target, reason="property test", reversed_on=on), target, on


def run(app: Ledger, action: tuple[Any, ...], step: int, seen: dict[str, dict[str, date]]) -> None:
    """One drawn action; `seen` keeps what later actions may undo or match: event or reference -> its date."""
    kind = action[0]
    who = {"npp": NPP, "kpj": None} if action[-1] != "kpj" else {"npp": None, "kpj": BPU}
    if seen["settlement reversed"] and kind in APPLYING:
        return  # see no_earlier_than_a_settlement_reversal
    if kind == "raise-wage":  # back into a month, closed again: an adjustment bill if it was billed
        with contextlib.suppress(LedgerError):
            app.execute(ChangeWage.build(kpj=kpj(1), wage=action[2], effective=date.fromisoformat(f"{action[1]}-01")))
        action = ("close", action[1], "npp")
    undo = undo_command(action, who, seen) if kind in {"match", "reverse"} else None
    if kind in {"match", "reverse"} and undo is None:
        return
    with contextlib.suppress(LedgerError):
        result = app.execute(undo[0] if undo else new_command(action, step, who, seen))
        made = {"hold": ("held", f"HELD-{step}"), "receive": ("receipt", None), "pay": ("payment", None),
                "claim": ("claim", None)}
        if kind in made:
            what, key = made[kind]
            seen[what][key or result["event_id"]] = action[2] + timedelta(days=3 if kind == "claim" else 0)
        elif undo and kind == "reverse" and action[1] == "settlement":
            seen["settlement reversed"][undo[1]] = undo[2]


def settlements(app: Ledger, seen: dict[str, dict[str, date]]) -> None:
    """The settlements made so far, for `reverse settlement` to choose from."""
    for npp, member in ((NPP, None), (None, BPU)):
        account: PayerAccount | None = app.find(payer_account_id(npp, member))
        if account is not None:
            seen["settlement"].update({i: s.settled.settled_on for i, s in account.settlements.items()})


def project(records: list[tuple[dict[str, Any], bytes]], path: Path, batch: int, *, json_path: bool,
            indexes: bool) -> ViewStore:
    """The records applied to the general ledger as the runner applies them, `batch` at a time; a rebuild's load
    (no indexes) then indexes and completes; checked."""
    store = ViewStore("sqlite", sqlite_path=path)
    with store.transaction() as tx:
        VIEW.create(tx, 1, indexes=indexes)
    for start in range(0, len(records), batch):
        part = records[start:start + batch]
        with store.transaction() as tx:
            by_json = [json_path and env["type"] in VIEW.json_types
                       and env["version"] == EVENT_TYPES[env["type"]].VERSION for env, _ in part]
            if any(by_json):
                VIEW.apply_json(tx, 1, [value for (_, value), j in zip(part, by_json, strict=True) if j])
            VIEW.apply(tx, 1, [env for (env, _), j in zip(part, by_json, strict=True) if not j])
    with store.transaction() as tx:
        if not indexes:
            VIEW.create_indexes(tx, 1)
            VIEW.complete(tx, 1)
        VIEW.check(tx, 1)
    return store


def balances(store: ViewStore, as_of: date) -> dict[str, int]:
    with store.reading() as tx:
        return {account: int(balance) for account, balance in tx.all(
            f"SELECT account, SUM(debit) - SUM(credit) FROM {table_name(GL, 1, 'totals')} WHERE on_date <= ? "
            f"GROUP BY account HAVING SUM(debit) != SUM(credit)", (as_of.isoformat(),))}


def interleaved(records: Records, rng: random.Random) -> Records:
    """The records in another order, as workers sharing the partitions may apply them: each aggregate's own events
    in their order (Kafka keeps a partition's), the aggregates interleaved at random."""
    queues: dict[str, list[tuple[dict[str, Any], bytes]]] = {}
    for record in records:
        queues.setdefault(record[0]["aggregate_id"], []).append(record)
    left = [queue[::-1] for queue in queues.values()]
    shuffled: Records = []
    while left:
        queue = rng.choice(left)
        shuffled.append(queue.pop())
        left = [q for q in left if q]
    return shuffled


def dump(store: ViewStore) -> dict[str, list[tuple[Any, ...]]]:
    with store.reading() as tx:
        return {t.name: sorted(tx.all(f"SELECT * FROM {table_name(GL, 1, t.name)}"), key=repr) for t in VIEW.tables}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(actions, min_size=10, max_size=30), st.integers(min_value=1, max_value=12), st.booleans(),
       st.booleans(), st.randoms(use_true_random=False))
def test_no_history_breaks_the_books(sequence: list[tuple[Any, ...]], batch: int, json_path: bool,
                                     indexes: bool, rng: random.Random) -> None:
    app = new_ledger()
    register(app)
    enroll(app, kpj(1))
    enroll(app, kpj(2), serial=2, wage=7_500_000)
    enroll(app, BPU, npp=None, branch=BRANCH, segment=Segment.BPU, wage=2_000_000, serial=3)
    seen: dict[str, dict[str, date]] = {"held": {}, "receipt": {}, "payment": {}, "claim": {}, "settlement": {},
                                         "settlement reversed": {}}
    for step, action in enumerate([*PROLOGUE, *sequence]):
        settlements(app, seen)
        run(app, action, step, seen)
    records = published(app)
    kinds = {env["type"] for env, _ in records}
    for kind in ("SettlementReversed", "ContributionReversed", "MoneyIdentified", "ContributionAdjusted",
                 "ReceiptReturned", "BillSettled", "ContributionPaymentReceived", "ClaimReversed"):
        event(f"{kind}: {kind in kinds}")
    note(f"history: {[env['type'] for env, _ in records]}; sequence: {sequence!r}")
    with tempfile.TemporaryDirectory() as folder:
        store = project(records, Path(folder) / "views.db", batch, json_path=json_path, indexes=indexes)
        try:
            for as_of in MONTH_ENDS:
                found = balances(store, as_of)
                assert sum(found.values()) == 0, (as_of, found)
                assert "2190" not in found, (as_of, found)  # every payment's clearing account empty
                jht = sum(app.jht_balance(member, as_of=as_of) for member in MEMBERS)
                assert -found.get("2200", 0) == jht, as_of
            found = balances(store, TODAY)
            accounts = [a for a in (app.find(payer_account_id(NPP, None)), app.find(payer_account_id(None, BPU)))
                        if a is not None]
            assert found.get("1200", 0) == sum(b.bill.total for a in accounts for b in a.open_bills)
            assert -found.get("2100", 0) == sum(a.unapplied for a in accounts)
            # In any order the aggregates interleave, in batches of 5, the ordinary way: the same rows.
            other = project(interleaved(records, rng), Path(folder) / "other.db", 5, json_path=False, indexes=True)
            try:
                assert dump(other) == dump(store)
            finally:
                other.close()
            # The ties (`ledger books check`) with the other three projections, at every month-end.
            every = ViewStore("sqlite", sqlite_path=Path(folder) / "all.db")
            try:
                project_all(every, records)
                for as_of in MONTH_ENDS:
                    result = queries.check_books(every, as_of)
                    assert result["ok"], (as_of, [c for c in result["checks"] if not c["ok"]])
                # And the auditor's recount from the events (`ledger audit as-of`) finds the same trial balance.
                for as_of in (MONTH_ENDS[2], MONTH_ENDS[6], TODAY):
                    counted = Recount(as_of)
                    for env, _ in records:
                        counted.add(env)
                    counted.finish()
                    report = compare_as_of(counted, every, "property")
                    # The books' differences only: a branch that only held money (DEPOK) is a branch to the recount
                    # but not to the branches projection, a difference of theirs outside the books.
                    books = [d for d in report.differences if d.field.startswith("books.")]
                    assert (books, report.books_problems, report.trial_balances > 0) == ([], [], True), as_of
            finally:
                every.close()
        finally:
            store.close()


@pytest.mark.parametrize("how", ["refunded", "returned"])
def test_money_taken_back_while_it_was_applied(how: str, tmp_path: Path) -> None:
    """January's bill (Rp1,192,500, counting from 2024-02-01) settled on 2024-02-01 with money received on 2024-01-01;
    the settlement reversed on 2024-02-02; then the money refunded or returned, dated 2024-01-15: on 2024-02-01 the
    same money would be both applied and gone, the payer's credit -Rp1,192,500. The ledger refuses the date (the money
    is the payer's credit again from 2024-02-02), writes nothing, and takes it back dated 2024-02-02; the books hold.
    """
    app = new_ledger()
    register(app)
    enroll(app, kpj(1))
    enroll(app, kpj(2), serial=2, wage=7_500_000)
    app.execute(CloseBills.build(month="2024-01", npps=[NPP]))
    received = app.execute(ReceiveMoney.build(reference="REF-1", npp=NPP, amount=1_192_500,
                                              received_on=date(2024, 1, 1)))
    (settled,) = app.find(payer_account_id(NPP, None)).settlements
    app.execute(Reverse.build(event_id=settled, reason="recalled", reversed_on=date(2024, 2, 2)))

    def take_back(on: date) -> Any:
        return (RefundMoney.build(npp=NPP, amount=1_192_500, refunded_on=on, reason="overpaid") if how == "refunded"
                else Reverse.build(event_id=received["event_id"], reason="bank error", reversed_on=on))

    written = len(published(app))
    with pytest.raises(LedgerError, match=r"credit (again )?only from 2024-02-02"):
        app.execute(take_back(date(2024, 1, 15)))
    assert len(published(app)) == written
    app.execute(take_back(date(2024, 2, 2)))
    project(published(app), tmp_path / "views.db", 100, json_path=False, indexes=True).close()


def test_money_back_from_a_reversal_applied_before_it(tmp_path: Path) -> None:
    """January and February (Rp1,192,500 each) settled on 2024-02-01 and 2024-03-01 from Rp2,400,000 received on
    2024-01-01; February's settlement reversed on 2024-04-22; then a wage raised back into January bills Rp95,400 more
    (an adjustment bill counting from 2024-02-01), settled from the credit and dated 2024-02-01. But from 2024-03-01
    to 2024-04-21 only Rp15,000 of the money was free: on 2024-03-01 the payer's credit would be -Rp80,400 if the
    settlement were dated 2024-02-01. The money a reversal gives back is the payer's credit from the reversal's date,
    so the settlement is dated 2024-04-22, and the books hold."""
    app = new_ledger()
    register(app)
    enroll(app, kpj(1))
    enroll(app, kpj(2), serial=2, wage=7_500_000)
    for month in ("2024-01", "2024-02"):
        app.execute(CloseBills.build(month=month, npps=[NPP]))
    app.execute(ReceiveMoney.build(reference="REF-1", npp=NPP, amount=2_400_000, received_on=date(2024, 1, 1)))
    account = app.find(payer_account_id(NPP, None))
    (february,) = [i for i, s in account.settlements.items() if s.settled.month == "2024-02"]
    app.execute(Reverse.build(event_id=february, reason="recalled", reversed_on=date(2024, 4, 22)))
    app.execute(ChangeWage.build(kpj=kpj(1), wage=6_000_000, effective=date(2024, 1, 1)))
    closed = app.execute(CloseBills.build(month="2024-01", npps=[NPP]))
    assert closed["settled_from_credit"] == 1
    adjustment = [s.settled for s in app.find(payer_account_id(NPP, None)).settlements.values()
                  if s.settled.month == "2024-01" and s.settled.amount == 95_400]
    assert [(s.settled_on, s.references) for s in adjustment] == [(date(2024, 4, 22), ["REF-1"])]
    project(published(app), tmp_path / "views.db", 100, json_path=False, indexes=True).close()
