"""Read-side questions, answered from the live version of each projection at any effective date.

Each answer is read in one snapshot (`ViewStore.reading`), and the live version is looked up inside it, so a rebuild
that switches versions mid-way changes the next answer, never half of one.

As of a date D, a fact counts if its effective date is on or before D: a contribution by its payment date, a claim
by its payment date, a yield by its credit date, a reversal by its reversal date. Members count as active from their
enrollment date until the day before their exit date (`ledger.rules.employed_on`: the exit date is the first day no
longer employed).

BPU activity (the fund's rule: after 3 consecutive unpaid months a BPU membership is inactive; paying reactivates):
BPU contributions are due by the 15th of the contribution month itself, so on D the last month already due, L, is
D's month if D is after the 15th, else the month before. A BPU member is active on D if enrolled (and not exited) and
either enrolled after month L-2, or has a payment made by D (and not reversed by D) for month L-2 or later.

The functions answer anyone who calls them: they are for the auditor's tools, which recompute everything. Readers (the
API, the console, `ledger balance`) ask through `ReadSide`, at the end of this module, which checks the reader's scope,
counts the read towards a per-subject rate limit and records every read of a member's data in the access log.
"""

from __future__ import annotations

import itertools
import math
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol, TypeVar

from ledger import books
from ledger.books import (
    ACCOUNTS,
    CLEARING,
    CONTRIBUTION_SIGNS,
    FINES,
    JHT,
    JKK_FUND,
    JKM_FUND,
    JKP_FROM_JKK,
    JKP_FROM_JKM,
    JP_FUND,
    NO_PROGRAM,
    OWED_BACK,
    Account,
    chart,
)
from ledger.errors import InvalidInput, InvariantViolation, NotFound, NotProjected, RateLimited
from ledger.rules import BPU_DUE_DAY, BPU_UNPAID_MONTHS_INACTIVE, months_late, shift_month
from projections.access import AccessEntry, Reader
from projections.catalog import PROJECTIONS
from projections.general_ledger import LINE_COLUMNS, line_legs
from projections.store import Tx, ViewStore, table_name
from projections.views import FINE_PROGRAM, PROGRAMS, bill_fine

HISTORY_ROWS_MAX = 10_000
T = TypeVar("T")

# Reads one subject (a member service: one subject and member) may make in any minute, through the API and the
# console alike. A person at the console opens a few pages a minute, each one or two reads; sixty is far above that
# pace and far below a script's (the loop that read 346 members' histories in 4.8 s, issue 16). Bulk questions have
# their own tools (`ledger audit as-of`, `ledger audit export`), which read the events, not the API.
READS_PER_MINUTE_MAX = 60
RATE_WINDOW_S = 60.0
# Subjects the rate limiter keeps reads of at once: those idle for a minute are dropped first; if that is not enough
# (an identity provider issuing unheard-of numbers of subjects), new subjects are refused until a minute has passed.
RATE_SUBJECTS_MAX = 100_000


def _live(tx: Tx, name: str) -> int:
    version = ViewStore.live_version(tx, name)
    if version is None:
        raise NotProjected(f"the {name} projection has not been built yet: run `ledger projections run`")
    return version


def bpu_active_threshold(as_of: date) -> str:
    """The earliest contribution month whose payment keeps a BPU member active on `as_of` (see the module doc)."""
    month = f"{as_of.year:04d}-{as_of.month:02d}"
    last_due = month if as_of.day > BPU_DUE_DAY else shift_month(month, -1)
    return shift_month(last_due, -(BPU_UNPAID_MONTHS_INACTIVE - 1))


# Called by the member questions inside their snapshot with the member's branch (None: no such member), before
# anything else is read: the read side's scope check and rate limit (`ReadSide`), which refuse by raising.
Admit = Callable[[str | None], None]


def _admit_nothing(_branch: str | None) -> None:
    return None


def member_balance(store: ViewStore, kpj: str, as_of: date, *, admit: Admit = _admit_nothing) -> dict[str, Any]:
    day = as_of.isoformat()
    with store.reading() as tx:
        version = _live(tx, "balances")
        members, postings = table_name("balances", version, "members"), table_name("balances", version, "postings")
        member = tx.one(f"SELECT branch, segment, npp, enrolled_on, exited_on, exit_reason, wage FROM {members} "
                        f"WHERE kpj = ?", (kpj,))
        admit(member[0] if member else None)
        if member is None:
            raise NotFound(f"unknown member: no KPJ {kpj} in the balances projection")
        shares = ", ".join(f"COALESCE(SUM({p.lower()}_{side}), 0)" for p in PROGRAMS for side in ("employer", "worker"))
        sums = tx.aggregate(f"SELECT {shares}, "
                      f"COALESCE(SUM(jht_yield), 0), COALESCE(SUM(fine), 0), COUNT(*) FROM {postings} "
                      f"WHERE kpj = ? AND on_date <= ?", (kpj, day))
        claims = {program: (int(count), int(amount)) for program, count, amount in tx.all(
            f"SELECT claim_program, SUM(CASE WHEN kind = 'claim' THEN 1 ELSE -1 END), SUM(claim_amount) "
            f"FROM {postings} WHERE kpj = ? AND on_date <= ? AND claim_program IS NOT NULL GROUP BY claim_program",
            (kpj, day))}
    values = [int(v) for v in sums]
    programs = {}
    for i, program in enumerate(PROGRAMS):
        employer, worker = values[2 * i], values[2 * i + 1]
        count, amount = claims.get(program, (0, 0))
        programs[program] = {"employer": employer, "worker": worker, "contributions": employer + worker,
                             "yield": values[8] if program == "JHT" else 0, "claims_count": count, "claims": amount}
    jht = programs["JHT"]
    jht["balance"] = jht["contributions"] + jht["yield"] - jht["claims"]
    branch, segment, npp, enrolled_on, exited_on, reason, _wage = member
    return {"kpj": kpj, "as_of": day, "branch": branch, "segment": segment, "npp": npp, "enrolled_on": enrolled_on,
            "exited_on": exited_on if exited_on and exited_on <= day else None,
            "exit_reason": reason if exited_on and exited_on <= day else None,
            "jht_balance": jht["balance"], "fines_paid_by_employer": values[9], "movements": values[10],
            "programs": programs}


def member_history(store: ViewStore, kpj: str, start: date | None = None, end: date | None = None, *,
                   admit: Admit = _admit_nothing) -> list[dict[str, Any]]:
    """The member's money movements, oldest first, each with the JHT balance after it."""
    with store.reading() as tx:
        version = _live(tx, "balances")
        members, postings = table_name("balances", version, "members"), table_name("balances", version, "postings")
        member = tx.one(f"SELECT branch FROM {members} WHERE kpj = ?", (kpj,))
        admit(member[0] if member else None)
        if member is None:
            raise NotFound(f"unknown member: no KPJ {kpj} in the balances projection")
        rows = tx.all(f"SELECT event_id, on_date, kind, month, jht_employer + jht_worker, "
                      f"{' + '.join(f'{p.lower()}_employer + {p.lower()}_worker' for p in PROGRAMS)}, fine, jht_yield, "
                      f"claim_program, claim_amount FROM {postings} WHERE kpj = ? ORDER BY on_date, position LIMIT ?",
                      (kpj, HISTORY_ROWS_MAX))
    history, balance = [], 0
    for event_id, on, kind, month, jht, total, fine, yielded, program, claim in rows:
        balance += int(jht) + int(yielded) - (int(claim) if program == "JHT" else 0)
        if (start and on < start.isoformat()) or (end and on > end.isoformat()):
            continue
        history.append({"date": on, "kind": kind, "event_id": event_id, "month": month,
                        "contributions": int(total), "jht_contribution": int(jht), "fine": int(fine),
                        "yield": int(yielded), "claim_program": program, "claim": int(claim), "jht_balance": balance})
    return history


def branch_report(store: ViewStore, branch: str, as_of: date) -> dict[str, Any]:
    """The branch's totals up to `as_of`: the question of the Bekasi Kota press release, answered from the ledger."""
    day = as_of.isoformat()
    threshold = bpu_active_threshold(as_of)
    with store.reading() as tx:
        version = _live(tx, "branches")
        t = {name: table_name("branches", version, name)
             for name in ("flows", "members", "employers", "bpu_months")}
        known = tx.one(f"SELECT (SELECT COUNT(*) FROM {t['employers']} WHERE branch = ?) + "
                       f"(SELECT COUNT(*) FROM {t['members']} WHERE branch = ?)", (branch, branch))
        if not known or not known[0]:
            raise NotFound(f"unknown branch: no employer or member of {branch} in the branches projection")
        # `ledger.rules.employed_on` in SQL (enrolled_on <= D < exit date), the rule the write side bills by.
        active = "m.branch = ? AND m.enrolled_on <= ? AND (m.exited_on IS NULL OR m.exited_on > ?)"
        pu, employers_active = tx.aggregate(f"SELECT COUNT(*), COUNT(DISTINCT m.npp) FROM {t['members']} m "
                                      f"WHERE {active} AND m.segment = 'PU'", (branch, day, day))
        by_kind = dict(tx.all(f"SELECT e.kind, COUNT(*) FROM {t['employers']} e WHERE e.npp IN (SELECT m.npp FROM "
                              f"{t['members']} m WHERE {active} AND m.segment = 'PU') GROUP BY e.kind",
                              (branch, day, day)))
        registered = tx.aggregate(f"SELECT COUNT(*) FROM {t['employers']} WHERE branch = ? AND registered_on <= ?",
                            (branch, day))[0]
        bpu_enrolled, bpu_active = tx.aggregate(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN substr(m.enrolled_on, 1, 7) > ? OR EXISTS (SELECT 1 FROM "
            f"{t['bpu_months']} b WHERE b.kpj = m.kpj AND b.month >= ? AND b.paid_on <= ? AND (b.reversed_on IS NULL "
            f"OR b.reversed_on > ?)) THEN 1 ELSE 0 END), 0) FROM {t['members']} m "
            f"WHERE {active} AND m.segment = 'BPU'",
            (threshold, threshold, day, day, branch, day, day))
        flows = tx.all(f"SELECT month, program, SUM(employer_share), SUM(worker_share), SUM(fines), SUM(claims_count), "
                       f"SUM(claims_amount) FROM {t['flows']} WHERE branch = ? AND on_date <= ? "
                       f"GROUP BY month, program ORDER BY month, program", (branch, day))
        collections = collection_figures(tx, branch, as_of)
    contributions = {p: {"employer": 0, "worker": 0, "total": 0} for p in PROGRAMS}
    claims = {p: {"count": 0, "amount": 0} for p in PROGRAMS}
    months: dict[str, dict[str, Any]] = {}
    fines = 0
    for month, program, *sums in flows:
        employer, worker, fine, count, amount = (int(v) for v in sums)
        if month:  # a contribution month
            row = months.setdefault(month, {"month": month, **dict.fromkeys(PROGRAMS, 0), "fines": 0, "total": 0})
            if program == FINE_PROGRAM:
                row["fines"] += fine
                fines += fine
            else:
                row[program] += employer + worker
                contributions[program]["employer"] += employer
                contributions[program]["worker"] += worker
                contributions[program]["total"] += employer + worker
            row["total"] += employer + worker + fine
        else:
            claims[program]["count"] += count
            claims[program]["amount"] += amount
    return {
        "branch": branch,
        "as_of": day,
        "active_pu_members": int(pu),
        "active_employers": int(employers_active),
        "active_employers_by_kind": {kind: int(by_kind.get(kind, 0)) for kind in ("company", "government")},
        "registered_employers": int(registered),
        "bpu_members_enrolled": int(bpu_enrolled),
        "bpu_members_active": int(bpu_active),
        "contributions": contributions,
        "contributions_total": sum(c["total"] for c in contributions.values()),
        "late_fines": fines,
        "claims": claims,
        "claims_total": {"count": sum(c["count"] for c in claims.values()),
                         "amount": sum(c["amount"] for c in claims.values())},
        "months": list(months.values()),
        "collections": collections,
    }


def jht_balances(store: ViewStore, as_of: date) -> dict[str, int]:
    """Every member's JHT balance on `as_of`, in one query over the live postings (0 for a member without any).

    The same sum as `member_balance`'s, for all members at once: what `ledger audit as-of` compares in bulk."""
    with store.reading() as tx:
        version = _live(tx, "balances")
        members, postings = table_name("balances", version, "members"), table_name("balances", version, "postings")
        rows = tx.all(f"SELECT m.kpj, COALESCE(p.balance, 0) FROM {members} m LEFT JOIN (SELECT kpj, "
                      f"SUM(jht_employer + jht_worker + jht_yield - CASE WHEN claim_program = 'JHT' THEN claim_amount "
                      f"ELSE 0 END) AS balance FROM {postings} WHERE on_date <= ? GROUP BY kpj) p ON p.kpj = m.kpj",
                      (as_of.isoformat(),))
    return {kpj: int(balance) for kpj, balance in rows}


def branch_codes(store: ViewStore) -> list[str]:
    """The branches `branch_report` knows: those with an employer or a member in the branches projection."""
    with store.reading() as tx:
        version = _live(tx, "branches")
        members, employers = (table_name("branches", version, name) for name in ("members", "employers"))
        rows = tx.all(f"SELECT branch FROM {members} UNION SELECT branch FROM {employers} ORDER BY branch")
    return [branch for (branch,) in rows]


ACCOUNT_FIELDS = ("contributions", "fines", "claims_count", "claims_amount")


def account_totals(store: ViewStore, as_of: date) -> dict[str, dict[str, int]]:
    """Every paying account's totals on `as_of` (an employer `npp:NPP`, a member `kpj:KPJ`): contributions and late
    fines booked to it, net of reversals, and its members' claims as count and amount. What `ledger audit as-of`
    compares account by account, so that money booked to the wrong account shows even when branch totals agree."""
    with store.reading() as tx:
        version = _live(tx, "branches")
        table = table_name("branches", version, "account_totals")
        rows = tx.all(f"SELECT account, {', '.join(f'SUM({c})' for c in ACCOUNT_FIELDS)} FROM {table} "
                      f"WHERE on_date <= ? GROUP BY account", (as_of.isoformat(),))
    return {account: dict(zip(ACCOUNT_FIELDS, (int(v) for v in values), strict=True)) for account, *values in rows}


def ledger_balances(store: ViewStore, as_of: date) -> dict[str, dict[str, int]]:
    """Per branch, every account's balance on `as_of` in the live general ledger: its debits minus its credits up to
    and including the date (a credit balance below zero), summed over programs and event types. What `ledger audit
    as-of` compares with its own trial balance, in one query; the accounts without a leg by then are absent."""
    with store.reading() as tx:
        totals = _books(tx)["totals"]  # the live version, refused when not built or outdated, as the books' readers do
        rows = tx.all(f"SELECT branch, account, SUM(debit) - SUM(credit) FROM {totals} WHERE on_date <= ? "
                      f"GROUP BY branch, account", (as_of.isoformat(),))
    balances: dict[str, dict[str, int]] = defaultdict(dict)
    for branch, account, balance in rows:
        balances[branch][account] = int(balance)
    return dict(balances)


# --- collections: arrears and the branch's collection figures (issue 17) ------------------------------------------
#
# As of D: a bill counts from its `counts_from` date, a settlement from its `settled_on` until the `reversed_on` of a
# reversal of it (`ledger reverse`: the bill is then unpaid again), a receipt from its `received_on` (minus what was
# returned as a bank error from its `returned_on`), a refund from its `refunded_on`. A bill is in arrears on D when it
# counts by D, is not settled by D, and its due date is before D; it is then `rules.months_late(due date, D)` months
# overdue (a started month counting as one), and a PU bill has accrued the late fine of that many months: the sum
# over its lines of `rules.late_fine`, rounded per line as the write side rounds it when the bill is settled
# (`views.bill_fine`).

# Aging buckets by months overdue: (label, from, to inclusive; None: no upper end).
AGING_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1), ("2-3", 2, 3), ("4-6", 4, 6), ("7-12", 7, 12), (">12", 13, None))
CREDIT_KEYS_PER_QUERY = 1_000  # payers per query of their credit: far below any engine's parameter limit


def aging_bucket(months_overdue: int) -> str:
    """The aging bucket of a bill `months_overdue` (at least 1) months overdue."""
    for label, low, high in AGING_BUCKETS:
        if months_overdue >= low and (high is None or months_overdue <= high):
            return label
    raise ValueError(f"a bill in arrears is at least 1 month overdue, not {months_overdue}")


def overdue_bill(segment: str, due: date, amounts: list[tuple[int, int]], as_of: date
                 ) -> tuple[int, int] | None:
    """(months overdue, fine accrued) of an unpaid bill on `as_of`, or None when it is not yet overdue; `amounts` are
    its lines' amounts as (amount, lines)."""
    if as_of <= due:
        return None
    months = months_late(due, as_of)
    return months, bill_fine(segment, amounts, months, due)


def _known_branch(tx: Tx, branch: str, collections: int) -> bool:
    version = ViewStore.live_version(tx, "branches")
    if version is not None:
        members, employers = (table_name("branches", version, name) for name in ("members", "employers"))
        if tx.one(f"SELECT 1 FROM {employers} WHERE branch = ? UNION ALL SELECT 1 FROM {members} WHERE branch = ? "
                  f"LIMIT 1", (branch, branch)):
            return True
    bills, receipts = (table_name("collections", collections, name) for name in ("bills", "receipts"))
    return tx.one(f"SELECT 1 FROM {bills} WHERE branch = ? UNION ALL SELECT 1 FROM {receipts} WHERE branch = ? "
                  f"LIMIT 1", (branch, branch)) is not None


def arrears(store: ViewStore, branch: str, as_of: date) -> dict[str, Any]:
    """Per employer and self-paying BPU member of the branch, the bills unpaid on `as_of` whose due date is past,
    with months overdue and the fine accrued; the branch's totals by aging bucket (see the comment above)."""
    day = as_of.isoformat()
    with store.reading() as tx:
        version = _live(tx, "collections")
        if not _known_branch(tx, branch, version):
            raise NotFound(f"unknown branch: no employer, member or bill of {branch} in the projections")
        bills, amounts = (table_name("collections", version, name) for name in ("bills", "bill_amounts"))
        unpaid = (f"FROM {bills} b WHERE b.branch = ? AND b.counts_from <= ? AND b.due_date < ? AND NOT EXISTS "
                  f"(SELECT 1 {_settled_by(version)} AND s.bill_id = b.bill_id)")
        params = (branch, day, day, day, day)
        rows = tx.all(f"SELECT b.bill_id, b.npp, b.kpj, b.segment, b.month, b.due_date, b.total, b.payment_code "
                      f"{unpaid} ORDER BY b.npp, b.kpj, b.counts_from, b.bill_id", params)
        lines: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for bill_id, amount, count in tx.all(f"SELECT a.bill_id, a.amount, a.lines FROM {amounts} a WHERE a.bill_id IN "
                                             f"(SELECT b.bill_id {unpaid} AND b.segment = 'PU')", params):
            lines[bill_id].append((int(amount), int(count)))
        credit = _credits(tx, version, {(npp, kpj) for _, npp, kpj, *_ in rows}, day)
        held = _held(tx, version, branch, day)
    payers: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    buckets: dict[str, dict[str, Any]] = {label: {"bucket": label, "bills": 0, "amount": 0, "fine": 0, "total": 0}
                                          for label, _, _ in AGING_BUCKETS}
    for bill_id, npp, kpj, segment, month, due, total, code in rows:
        overdue = overdue_bill(segment, date.fromisoformat(due), lines.get(bill_id, []), as_of)
        assert overdue is not None, bill_id  # the query took only bills due before as_of
        months, fine = overdue
        payer = payers.setdefault((npp, kpj), {"payer": "employer" if npp else "member", "npp": npp, "kpj": kpj,
                                               "bills": [], "amount": 0, "fine": 0, "total": 0, "months_overdue": 0,
                                               "credit": credit.get((npp, kpj), 0)})
        bucket = aging_bucket(months)
        payer["bills"].append({"bill_id": bill_id, "month": month, "segment": segment, "payment_code": code,
                               "due_date": due, "months_overdue": months, "bucket": bucket, "amount": int(total),
                               "fine": fine, "total": int(total) + fine})
        for row in (payer, buckets[bucket]):
            row["amount"] += int(total)
            row["fine"] += fine
            row["total"] += int(total) + fine
        payer["months_overdue"] = max(payer["months_overdue"], months)
        buckets[bucket]["bills"] += 1
    listed = sorted(payers.values(), key=lambda p: (-p["months_overdue"], -p["total"], p["npp"] or "", p["kpj"] or ""))
    return {"branch": branch, "as_of": day, "payers": listed, "buckets": list(buckets.values()),
            "totals": {"payers": len(listed), "employers": sum(1 for p in listed if p["npp"]),
                       "members": sum(1 for p in listed if not p["npp"]),
                       "bills": sum(b["bills"] for b in buckets.values()),
                       "amount": sum(p["amount"] for p in listed), "fine": sum(p["fine"] for p in listed),
                       "total": sum(p["total"] for p in listed), "credit": sum(p["credit"] for p in listed),
                       "held": held[0], "held_count": held[1]}}


def _refuse_outdated(tx: Tx, version: int) -> None:
    """A collections version an earlier release built lacks tables these answers read: refused, naming the rebuild."""
    why = PROJECTIONS["collections"].outdated(tx, version)
    if why is not None:
        raise NotProjected(why)


def _held(tx: Tx, version: int, branch: str, day: str) -> tuple[int, int, int]:
    """(amount, count, amount matched after `day`) of the money the bank credited to `branch` by `day` naming no known
    payer and not matched to its payer by `day`."""
    held, matches = (table_name("collections", version, name) for name in ("held", "held_matches"))
    _refuse_outdated(tx, version)
    amount, count, later = tx.aggregate(
        f"SELECT COALESCE(SUM(CASE WHEN m.identified_on IS NULL OR m.identified_on > ? THEN h.amount ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN m.identified_on IS NULL OR m.identified_on > ? THEN 1 ELSE 0 END), 0), "
        f"COALESCE(SUM(CASE WHEN m.identified_on > ? THEN h.amount ELSE 0 END), 0) FROM {held} h "
        f"LEFT JOIN {matches} m ON m.reference = h.reference WHERE h.branch = ? AND h.received_on <= ?",
        (day, day, day, branch, day))
    return int(amount), int(count), int(later)


def _settled_by(version: int) -> str:
    """FROM and WHERE of the settlements that hold on a day (the two `?`: that day): made by then, and not reversed
    by then. A query adds its own conditions with AND."""
    settlements, reversals = (table_name("collections", version, name)
                              for name in ("settlements", "settlement_reversals"))
    return (f"FROM {settlements} s WHERE s.settled_on <= ? AND NOT EXISTS (SELECT 1 FROM {reversals} r "
            f"WHERE r.reverses = s.event_id AND r.reversed_on <= ?)")


def _credits(tx: Tx, version: int, payers: set[tuple[str | None, str | None]], day: str
             ) -> dict[tuple[str | None, str | None], int]:
    """Per payer, the money received by `day` and neither applied to bills, refunded nor returned by then (a reversed
    settlement gives its money back): a credit a bill is not settled from until it covers the bill whole with its fine
    (`rules.MONEY_APPLICATION`)."""
    if not payers:
        return {}
    t = {name: table_name("collections", version, name)
         for name in ("receipts", "settlements", "refunds", "settlement_reversals", "receipt_returns")}
    npps = sorted({npp for npp, _ in payers if npp is not None})
    kpjs = sorted({kpj for npp, kpj in payers if npp is None and kpj is not None})
    held: dict[tuple[str | None, str | None], int] = defaultdict(int)
    for column, keys in (("npp", npps), ("kpj", kpjs)):
        if not keys:
            continue
        for start in range(0, len(keys), CREDIT_KEYS_PER_QUERY):
            chunk = keys[start:start + CREDIT_KEYS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            for table, amount, on in (("receipts", "amount", "received_on"), ("settlements", "-total", "settled_on"),
                                      ("refunds", "-amount", "refunded_on"),
                                      ("settlement_reversals", "total", "reversed_on"),
                                      ("receipt_returns", "-amount", "returned_on")):
                other = "kpj" if column == "npp" else "npp"
                for key, total in tx.all(f"SELECT {column}, SUM({amount}) FROM {t[table]} WHERE {column} IN ({marks}) "
                                         f"AND {other} IS NULL AND {on} <= ? GROUP BY {column}", (*chunk, day)):
                    held[(key, None) if column == "npp" else (None, key)] += int(total)
    return dict(held)


def collection_figures(tx: Tx, branch: str, as_of: date) -> dict[str, int] | None:
    """The branch's collections on `as_of`, in one snapshot (`tx`), every figure in rupiah but the counts:

    - billed (bills counting by then), settled (the amounts of the bills settled by then), outstanding (the amounts of
      those not settled): billed = settled + outstanding; fines_applied (the fines settled with them);
    - received (net of money returned as bank errors), returned, applied (settled + fines: money taken from payers'
      credit), refunded and unapplied (received - applied - refunded, never below zero per payer: an invariant of the
      projection): received = applied + unapplied + refunded, and the money that came in is received + returned;
    - held, held_count: money the bank credited to the branch's account by then that named no known payer and was
      not matched to its payer by then (`ledger payment unmatched`); held_matched_later: the part of it matched
      after the date, which `received` counts too (a matched receipt is dated the day the money arrived);
    - paid_without_bill_count: payments without a bill (`ledger contribution pay`) made by then;
      paid_without_bill_reversed: their lines reversed by then; paid_without_bill: paid - reversed, the money they
      brought, beside the bills' figures (their contributions are in the branch's contributions, not in billed).

    A settlement reversed by D counts neither as settled nor as applied. The reversed lines of payments without a bill
    are every contribution line reversed by D less the settlements reversed by D (a settled bill's lines are reversed
    with its settlement, on its date, never alone). None while the collections projection has not been built."""
    version = ViewStore.live_version(tx, "collections")
    if version is None:
        return None
    t = {name: table_name("collections", version, name)
         for name in ("bills", "receipts", "refunds", "receipt_returns", "unbilled_payments", "contribution_reversals",
                      "settlement_reversals")}
    day = as_of.isoformat()
    held, held_count, matched_later = _held(tx, version, branch, day)
    billed, outstanding = (int(v) for v in tx.aggregate(
        f"SELECT COALESCE(SUM(b.total), 0), COALESCE(SUM(CASE WHEN EXISTS (SELECT 1 {_settled_by(version)} "
        f"AND s.bill_id = b.bill_id) THEN 0 ELSE b.total END), 0) "
        f"FROM {t['bills']} b WHERE b.branch = ? AND b.counts_from <= ?", (day, day, branch, day)))
    settled, fines = (int(v) for v in tx.aggregate(
        f"SELECT COALESCE(SUM(s.amount), 0), COALESCE(SUM(s.fine), 0) {_settled_by(version)} AND s.branch = ?",
        (day, day, branch)))

    def total(table: str, column: str, on: str) -> int:
        return int(tx.aggregate(f"SELECT COALESCE(SUM({column}), 0) FROM {t[table]} WHERE branch = ? AND {on} <= ?",
                                (branch, day))[0])

    returned = total("receipt_returns", "amount", "returned_on")
    received = total("receipts", "amount", "received_on") - returned
    refunded = total("refunds", "amount", "refunded_on")
    applied = settled + fines
    paid, payments = (int(v) for v in tx.aggregate(
        f"SELECT COALESCE(SUM(total), 0), COUNT(*) FROM {t['unbilled_payments']} WHERE branch = ? AND paid_on <= ?",
        (branch, day)))
    unbilled_reversed = (total("contribution_reversals", "total", "reversed_on")
                         - total("settlement_reversals", "total", "reversed_on"))
    return {"billed": billed, "settled": settled, "outstanding": outstanding, "fines_applied": fines,
            "applied": applied, "received": received, "unapplied": received - applied - refunded,
            "refunded": refunded, "returned": returned, "held": held, "held_count": held_count,
            "held_matched_later": matched_later, "paid_without_bill": paid - unbilled_reversed,
            "paid_without_bill_count": payments, "paid_without_bill_reversed": unbilled_reversed}


# --- the books' ties: the general ledger against the other projections (issue 18, `ledger books check`) -------------
#
# As of D, each tie compares a figure of the general ledger (its `totals`, summed to D) with the same figure from
# another projection, per branch (and program): the JHT liability with the members' JHT balances (`balances`), the
# funds, fines and claims with the branch's flows (`branches`), the receivable and the payers' credit with the
# collection figures (`collections`, through `collection_figures`: the branch report's and the arrears' queries).
# They only mean something when the four projections have read the same events: `ties_refusal` says when not.
# Every check names an event: the one it traced a difference to, or, when it holds, none.

TIED_PROJECTIONS = ("balances", "branches", "collections", "general_ledger")
LINE_SOURCES = tuple(CONTRIBUTION_SIGNS)  # the contribution lines' event types
CLAIM_SOURCES = ("ClaimPaid", "ClaimReversed")
JHT_ACCOUNT, RECEIVABLE_ACCOUNT, UNAPPLIED_ACCOUNT = books.JHT.code, books.RECEIVABLE.code, books.UNAPPLIED.code
SUSPENSE_ACCOUNT, FINES_ACCOUNT = books.SUSPENSE.code, books.FINES.code
# Per program: the accounts its contributions credit, and the account its claims are charged to (`ledger.books`).
CONTRIBUTION_ACCOUNTS = {"JHT": (books.JHT.code,), "JKK": (books.JKK_FUND.code, books.JKP_FROM_JKK.code),
                         "JKM": (books.JKM_FUND.code, books.JKP_FROM_JKM.code), "JP": (books.JP_FUND.code,)}
CLAIM_ACCOUNTS = {"JHT": books.JHT.code, **{program: account.code for program, account in books.CLAIMS.items()}}


def ties_refusal(tx: Tx) -> str | None:
    """Why the ties cannot be checked now, or None: a projection not built, or one that has read fewer events of some
    partition than another (it is behind)."""
    versions = {name: ViewStore.live_version(tx, name) for name in TIED_PROJECTIONS}
    unbuilt = [name for name, version in versions.items() if version is None]
    if unbuilt:
        which = "projection has" if len(unbuilt) == 1 else "projections have"
        return f"the {', '.join(unbuilt)} {which} not been built yet: run `ledger projections run`"
    read = {name: {key: offset for key, (offset, _, _) in ViewStore.offsets(tx, name, version).items()}
            for name, version in versions.items() if version is not None}
    partitions = sorted({key for offsets in read.values() for key in offsets})
    furthest = {key: max(offsets.get(key, 0) for offsets in read.values()) for key in partitions}
    behind = {name: [key for key in partitions if offsets.get(key, 0) < furthest[key]]
              for name, offsets in read.items()}
    behind = {name: keys for name, keys in behind.items() if keys}
    if not behind:
        return None
    named = "; ".join(f"{name} is behind on {', '.join(f'{topic} partition {p}' for topic, p in keys)}"
                      for name, keys in behind.items())
    return (f"the projections have not read the same events ({named}): run `ledger projections run` to bring them "
            f"to the same offsets, then check again")


def _versions(tx: Tx) -> dict[str, int]:
    refusal = ties_refusal(tx)
    if refusal is not None:
        raise NotProjected(refusal)
    return {name: _live(tx, name) for name in TIED_PROJECTIONS}


def _check(name: str, branch: str | None, ledger: int | None, other: int | None, *, against: str | None,
           program: str | None = None, event_id: str | None = None, problem: str | None = None) -> dict[str, Any]:
    ok = problem is None and ledger == other
    return {"check": name, "branch": branch, "program": program, "ok": ok, "ledger": ledger, "against": against,
            "other": other,
            "difference": (ledger - other) if ledger is not None and other is not None else None,
            "event_id": None if ok else event_id, "problem": problem}


def _gl_sum(tx: Tx, totals: str, day: str, accounts: tuple[str, ...], sign: str, sources: tuple[str, ...] = ()
            ) -> dict[str, int]:
    """Per branch, the sum to `day` of `sign` ("credit - debit" or "debit - credit") over `accounts` (and `sources`)."""
    where = f"account IN ({', '.join('?' * len(accounts))})"
    if sources:
        where += f" AND source IN ({', '.join('?' * len(sources))})"
    return {branch: int(v) for branch, v in tx.all(
        f"SELECT branch, SUM({sign}) FROM {totals} WHERE on_date <= ? AND {where} GROUP BY branch",
        (day, *accounts, *sources))}


def _gl_event(tx: Tx, totals: str, branch: str | None, on: str, accounts: tuple[str, ...]) -> str | None:
    """The latest event on `on` (else before it) that posted to `accounts` in `branch` (None: any branch)."""
    where = f"account IN ({', '.join('?' * len(accounts))}) AND on_date <= ?"
    params: tuple[Any, ...] = (*accounts, on)
    if branch is not None:
        where, params = where + " AND branch = ?", (*params, branch)
    row = tx.one(f"SELECT last_event_id FROM {totals} WHERE {where} ORDER BY on_date DESC, last_position DESC "
                 f"LIMIT 1", params)
    return str(row[0]) if row else None


def _first_differing_day(ledger: dict[str, int], other: dict[str, int]) -> str | None:
    """The first day on which two per-day series, summed up to it, differ."""
    a = b = 0
    for day in sorted(set(ledger) | set(other)):
        a, b = a + ledger.get(day, 0), b + other.get(day, 0)
        if a != b:
            return day
    return None


def _jht_member_event(tx: Tx, v: dict[str, int], day: str, branch: str | None) -> tuple[str | None, str | None]:
    """(KPJ, its latest event to `day`) of the first member (by KPJ) of `branch` (None: any) whose JHT in the general
    ledger differs from the balances projection's."""
    lines, legs = (table_name("general_ledger", v["general_ledger"], name) for name in ("lines", "legs"))
    postings, members = (table_name("balances", v["balances"], name) for name in ("postings", "members"))
    scope, params = ("AND branch = ?", (branch,)) if branch is not None else ("", ())
    ledger: dict[str, int] = defaultdict(int)
    for kpj, amount in tx.all(
            f"SELECT kpj, SUM(CASE WHEN type = 'ContributionReversed' THEN -jht ELSE jht END) FROM {lines} "
            f"WHERE on_date <= ? {scope} GROUP BY kpj", (day, *params)):
        ledger[kpj] += int(amount)
    for kpj, amount in tx.all(f"SELECT kpj, SUM(-amount) FROM {legs} WHERE account = ? AND on_date <= ? "
                              f"AND kpj IS NOT NULL {scope} GROUP BY kpj", (JHT_ACCOUNT, day, *params)):
        ledger[kpj] += int(amount)
    member_scope = "AND m.branch = ?" if branch is not None else ""
    balances = {kpj: int(amount) for kpj, amount in tx.all(
        f"SELECT p.kpj, SUM(p.jht_employer + p.jht_worker + p.jht_yield - CASE WHEN p.claim_program = 'JHT' "
        f"THEN p.claim_amount ELSE 0 END) FROM {postings} p JOIN {members} m ON m.kpj = p.kpj "
        f"WHERE p.on_date <= ? {member_scope} GROUP BY p.kpj", (day, *params))}
    differing = sorted(kpj for kpj in set(ledger) | set(balances) if ledger.get(kpj, 0) != balances.get(kpj, 0))
    if not differing:
        return None, None
    kpj = differing[0]
    latest = tx.one(
        f"SELECT event_id FROM (SELECT event_id, position FROM {lines} WHERE kpj = ? AND on_date <= ? "
        f"UNION ALL SELECT event_id, position FROM {legs} WHERE kpj = ? AND on_date <= ? "
        f"UNION ALL SELECT event_id, position FROM {postings} WHERE kpj = ? AND on_date <= ?) e "
        f"ORDER BY position DESC LIMIT 1", (kpj, day, kpj, day, kpj, day))
    return kpj, str(latest[0]) if latest else None


def _jht_ties(tx: Tx, v: dict[str, int], day: str, branches: list[str]) -> list[dict[str, Any]]:
    totals = table_name("general_ledger", v["general_ledger"], "totals")
    postings, members = (table_name("balances", v["balances"], name) for name in ("postings", "members"))
    ledger = _gl_sum(tx, totals, day, (JHT_ACCOUNT,), "credit - debit")
    balances = {branch: int(amount) for branch, amount in tx.all(
        f"SELECT m.branch, SUM(p.jht_employer + p.jht_worker + p.jht_yield - CASE WHEN p.claim_program = 'JHT' "
        f"THEN p.claim_amount ELSE 0 END) FROM {postings} p JOIN {members} m ON m.kpj = p.kpj "
        f"WHERE p.on_date <= ? GROUP BY m.branch", (day,))}
    name = "JHT liability (2200) = members' JHT balances"
    checks = []
    for branch in [None, *branches]:
        a = sum(ledger.values()) if branch is None else ledger.get(branch, 0)
        b = sum(balances.values()) if branch is None else balances.get(branch, 0)
        problem = event = None
        if a != b:
            kpj, event = _jht_member_event(tx, v, day, branch)
            problem = (f"member {kpj} differs first" if kpj else "the members' sums agree, their branches do not")
            event = event or _gl_event(tx, totals, branch, day, (JHT_ACCOUNT,))
        checks.append(_check(name, branch, a, b, against="balances", event_id=event, problem=problem))
    return checks


def _flow_ties(tx: Tx, v: dict[str, int], day: str, branches: list[str]) -> list[dict[str, Any]]:
    """Per branch: contributions per program, fines and claims per program, the general ledger against the flows."""
    totals = table_name("general_ledger", v["general_ledger"], "totals")
    flows = table_name("branches", v["branches"], "flows")

    def ledger_days(branch: str, accounts: tuple[str, ...], sign: str, sources: tuple[str, ...]) -> dict[str, int]:
        return {on: int(x) for on, x in tx.all(
            f"SELECT on_date, SUM({sign}) FROM {totals} WHERE branch = ? AND on_date <= ? AND account IN "
            f"({', '.join('?' * len(accounts))}) AND source IN ({', '.join('?' * len(sources))}) GROUP BY on_date",
            (branch, day, *accounts, *sources))}

    def flow_days(branch: str, column: str, where: str, params: tuple[Any, ...]) -> dict[str, int]:
        return {on: int(x) for on, x in tx.all(
            f"SELECT on_date, SUM({column}) FROM {flows} WHERE branch = ? AND on_date <= ? AND {where} "
            f"GROUP BY on_date", (branch, day, *params))}

    wanted: list[tuple[str, str | None, tuple[str, ...], str, tuple[str, ...], str, str, tuple[Any, ...]]] = []
    for program in PROGRAMS:
        accounts = CONTRIBUTION_ACCOUNTS[program]
        wanted.append((f"contributions {program} ({' + '.join(accounts)}) = branch flows", program, accounts,
                       "credit - debit", LINE_SOURCES, "employer_share + worker_share", "month != '' AND program = ?",
                       (program,)))
    wanted.append((f"late fines ({FINES_ACCOUNT}) = branch flows", None, (FINES_ACCOUNT,), "credit - debit",
                   LINE_SOURCES, "fines", "program = ?", (FINE_PROGRAM,)))
    for program in PROGRAMS:
        account = CLAIM_ACCOUNTS[program]
        wanted.append((f"claims {program} ({account}) = branch flows", program, (account,), "debit - credit",
                       CLAIM_SOURCES, "claims_amount", "month = '' AND program = ?", (program,)))
    checks = []
    for branch in branches:
        for name, of, accounts, sign, sources, column, where, params in wanted:
            ledger, other = ledger_days(branch, accounts, sign, sources), flow_days(branch, column, where, params)
            first = _first_differing_day(ledger, other)
            event = _gl_event(tx, totals, branch, first, accounts) if first else None
            checks.append(_check(name, branch, sum(ledger.values()), sum(other.values()), against="branches",
                                 program=of, event_id=event,
                                 problem=f"first differs on {first}" if first else None))
    return checks


def _collection_ties(tx: Tx, v: dict[str, int], as_of: date, branches: list[str]) -> list[dict[str, Any]]:
    """Per branch: the receivable, the payers' credit and the money held, the general ledger against the collection
    figures (`collection_figures`). A difference is traced by halving the days the account moved on (the figures
    of a day are a query each): to the first day it differs on, and that day's latest event on the account."""
    totals = table_name("general_ledger", v["general_ledger"], "totals")
    day = as_of.isoformat()
    wanted: tuple[tuple[str, str, str, Callable[[dict[str, int]], int]], ...] = (
        ("receivable (1200) = outstanding bills", RECEIVABLE_ACCOUNT, "debit - credit", lambda f: f["outstanding"]),
        ("unapplied receipts (2100) = payers' unapplied credit", UNAPPLIED_ACCOUNT, "credit - debit",
         lambda f: f["unapplied"]),
        ("money held (2150) = held, not matched", SUSPENSE_ACCOUNT, "credit - debit",
         lambda f: f["held"] - f["held_matched_later"]))
    checks = []
    for branch in branches:
        figures = collection_figures(tx, branch, as_of)
        assert figures is not None  # `_versions` found the collections projection built
        for name, account, sign, figure in wanted:
            days = {on: int(x) for on, x in tx.all(
                f"SELECT on_date, SUM({sign}) FROM {totals} WHERE branch = ? AND account = ? AND on_date <= ? "
                f"GROUP BY on_date ORDER BY on_date", (branch, account, day))}
            ledger, other = sum(days.values()), int(figure(figures))
            event = problem = None
            if ledger != other:
                first = _first_differing_day_by_halving(tx, branch, sorted(days), days, figure, day)
                event = _gl_event(tx, totals, branch, first, (account,))
                problem = f"first differs on {first}"
            checks.append(_check(name, branch, ledger, other, against="collections", event_id=event, problem=problem))
    return checks


def _first_differing_day_by_halving(tx: Tx, branch: str, days: list[str], amounts: dict[str, int],
                                    figure: Callable[[dict[str, int]], int], last: str) -> str:
    """The first of `days` (else `last`) on which the account's balance differs from `figure` of the collection
    figures, assuming that once they differ they go on differing (a row changed changes every later day)."""
    running, balance = [], 0
    for on in days:
        balance += amounts[on]
        running.append(balance)

    def differs(i: int) -> bool:
        figures = collection_figures(tx, branch, date.fromisoformat(days[i]))
        return figures is not None and running[i] != figure(figures)

    low, high = 0, len(days)  # the first index that differs is in [low, high]; high: none of `days`
    while low < high:
        middle = (low + high) // 2
        if differs(middle):
            high = middle
        else:
            low = middle + 1
    return days[low] if low < len(days) else last


def _ledger_invariants(tx: Tx, v: dict[str, int], day: str, *, invariants: bool) -> list[dict[str, Any]]:
    totals = table_name("general_ledger", v["general_ledger"], "totals")
    problem = event = None
    try:
        if invariants:
            PROJECTIONS["general_ledger"].check(tx, v["general_ledger"])
    except InvariantViolation as error:
        problem, event = error.problem, error.event_id
    checks = [_check("the general ledger's invariants", None, None, None, against=None, event_id=event,
                     problem=problem)] if invariants else []
    debit, credit = (int(x) for x in tx.aggregate(
        f"SELECT COALESCE(SUM(debit), 0), COALESCE(SUM(credit), 0) FROM {totals} WHERE on_date <= ?", (day,)))
    event = None
    if debit != credit:
        first = tx.one(f"SELECT on_date FROM {totals} WHERE on_date <= ? GROUP BY on_date "
                       f"HAVING SUM(debit) != SUM(credit) ORDER BY on_date LIMIT 1", (day,))
        row = tx.one(f"SELECT last_event_id FROM {totals} WHERE on_date = ? ORDER BY last_position DESC LIMIT 1",
                     (first[0] if first else day,))
        event = str(row[0]) if row else None
    checks.append(_check("the journal balances: debits = credits", None, debit, credit, against="credits",
                         event_id=event))
    return checks


def books_ties(tx: Tx, as_of: date, *, invariants: bool = True) -> dict[str, Any]:
    """Every check of the books as of `as_of`, in `tx` (one snapshot): the general ledger's invariants, the journal
    balanced to the date, and the ties (see the comment above). `NotProjected` if the four projections have not all
    been built, or have not read the same offsets. Each check: check, branch, program, ok, ledger (the general
    ledger's figure; the journal's debits), against (the projection compared with), other (its figure; the journal's
    credits), difference (ledger - other), event_id (of the first event it traced a failure to) and problem.
    Without `invariants`, the general ledger's own invariants are left out (a rebuild of it has just checked them)."""
    v = _versions(tx)
    day = as_of.isoformat()
    gl_totals = table_name("general_ledger", v["general_ledger"], "totals")
    b_members, b_employers = (table_name("branches", v["branches"], name) for name in ("members", "employers"))
    c_bills, c_receipts = (table_name("collections", v["collections"], name) for name in ("bills", "receipts"))
    branches = [branch for (branch,) in tx.all(
        f"SELECT branch FROM {gl_totals} UNION SELECT branch FROM {b_members} UNION SELECT branch FROM {b_employers} "
        f"UNION SELECT branch FROM {c_bills} UNION SELECT branch FROM {c_receipts} ORDER BY branch")]
    checks = _ledger_invariants(tx, v, day, invariants=invariants)
    checks += _jht_ties(tx, v, day, branches)
    checks += _flow_ties(tx, v, day, branches)
    checks += _collection_ties(tx, v, as_of, branches)
    return {"as_of": day, "versions": v, "ok": all(c["ok"] for c in checks), "checks": checks,
            "failed": sum(1 for c in checks if not c["ok"])}


def check_books(store: ViewStore, as_of: date) -> dict[str, Any]:
    """`ledger books check`: `books_ties` in one snapshot of the live versions."""
    with store.reading() as tx:
        return books_ties(tx, as_of)


def rebuild_ties(tx: Tx, name: str) -> str:
    """A rebuild's check of the ties, in the transaction that switches readers to its version of projection `name`
    (after the switch, so that every query reads the new version; before the commit, so that a failure undoes it):
    what to say of them, or `InvariantViolation` naming the first check that fails and its event. They are checked
    as of the later of today and the journal's last day, when the four live versions have read the same offsets;
    else the answer says why not."""
    refusal = ties_refusal(tx)
    if refusal is not None:
        return f"the books' ties were not checked: {refusal.split(': run', 1)[0]}"
    totals = table_name("general_ledger", _live(tx, "general_ledger"), "totals")
    last = tx.aggregate(f"SELECT MAX(on_date) FROM {totals}")[0]
    today = datetime.now(UTC).date()
    as_of = max(today, date.fromisoformat(last)) if last else today
    result = books_ties(tx, as_of, invariants=name != "general_ledger")
    failed = [check for check in result["checks"] if not check["ok"]]
    if failed:
        first = failed[0]
        where = first["branch"] or "all branches"
        differs = (f" by {first['difference']:,} rupiah ({first['against']})" if first["difference"] else "")
        problem = f"; {first['problem']}" if first["problem"] else ""
        raise InvariantViolation("books", f"as of {result['as_of']}, {where}: {first['check']} does not hold"
                                          f"{differs}{problem} ({len(failed)} of {len(result['checks'])} checks fail)",
                                 first["event_id"])
    return f"the books tie as of {result['as_of']} ({len(result['checks'])} checks)"

# --- the books: trial balance, an account's running balance, the journal (issue 18) ---------------------------------
#
# Read from the live `general_ledger` version (projections/general_ledger.py): a trial balance and an account's
# running balance sum `totals` (debits and credits per branch, date, account, program and event type), never the
# journal; the journal reads `lines` (a contribution line's entry, expanded into its legs with `line_legs`) and `legs`
# (every other entry) together, in (on_date, position) order, chunk by chunk within one snapshot. As of D, an entry
# counts when its date is on or before D (a match of held money is dated the day the money arrived).

# Members' reads of a journal recorded at once (`ReadSide.journal`): the access log commits waiting entries together.
ACCESS_RECORDS_AT_ONCE = 64
JOURNAL_CHUNK_ENTRIES = 2_000  # entries (contribution lines), or legs, read per query while the journal streams
CURSOR_POSITION_DIGITS_MAX = 18  # a journal cursor's position: a 64-bit integer's digits, less one
JournalKey = tuple[str, int]  # an entry's place in the journal: (on_date, position)

# The legs a contribution line has on an account, as SQL over a `lines` row: what `line_legs` gives that account.
_LINE_ACCOUNT_SQL = {
    CLEARING.code: "type != 'ContributionReversed' AND total != 0",
    OWED_BACK.code: "type = 'ContributionReversed' AND total != 0",
    JHT.code: "jht != 0", JKK_FUND.code: "jkk != jkp_jkk", JKP_FROM_JKK.code: "jkp_jkk != 0",
    JKM_FUND.code: "jkm != jkp_jkm", JKP_FROM_JKM.code: "jkp_jkm != 0", JP_FUND.code: "jp != 0",
    FINES.code: "fine != 0",
}


def _books(tx: Tx) -> dict[str, str]:
    """The live general-ledger tables, by name; `NotProjected` (exit 9, HTTP 503) when the projection has not been
    built, or was built by an earlier release without a table read here."""
    version = _live(tx, "general_ledger")
    why = PROJECTIONS["general_ledger"].outdated(tx, version)
    if why is not None:
        raise NotProjected(why)
    return {name: table_name("general_ledger", version, name) for name in ("lines", "legs", "totals")}


def _books_branch(tx: Tx, t: dict[str, str], branch: str) -> None:
    """`NotFound` for a branch neither the books nor the branches projection know."""
    if tx.one(f"SELECT 1 FROM {t['totals']} WHERE branch = ? LIMIT 1", (branch,)):
        return
    version = ViewStore.live_version(tx, "branches")
    if version is not None:
        members, employers = (table_name("branches", version, name) for name in ("members", "employers"))
        if tx.one(f"SELECT 1 FROM {employers} WHERE branch = ? UNION ALL SELECT 1 FROM {members} WHERE branch = ? "
                  f"LIMIT 1", (branch, branch)):
            return
    raise NotFound(f"unknown branch: no entry, employer or member of {branch} in the projections")


def normal_balance(account: Account, debit: int, credit: int) -> int:
    """An account's balance on its normal side (`Account.normal_side`): below zero when it falls on the other."""
    return debit - credit if account.normal_side == "debit" else credit - debit


def _account_of(code: str) -> Account:
    return ACCOUNTS.get(code) or Account(code, code, f"account {code} (not in the chart)", "asset", NO_PROGRAM, "")


def trial_balance(store: ViewStore, as_of: date, branch: str | None = None) -> dict[str, Any]:
    """The trial balance on `as_of`, of one branch or of the whole fund: every account open that day
    (`ledger.books.chart`) and any other with a movement, in code order, each with its debits and credits to that
    date and its balance in the debit column (debits exceed credits) or the credit column; each column's total, and
    `balanced` when they are equal (`difference`: debits - credits)."""
    day = as_of.isoformat()
    with store.reading() as tx:
        t = _books(tx)
        if branch is not None:
            _books_branch(tx, t, branch)
        where, params = (("branch = ? AND on_date <= ?", (branch, day)) if branch is not None
                         else ("on_date <= ?", (day,)))
        sums = {code: (int(debit), int(credit)) for code, debit, credit in tx.all(
            f"SELECT account, SUM(debit), SUM(credit) FROM {t['totals']} WHERE {where} GROUP BY account", params)}
    codes = sorted({a.code for a in chart(as_of)} | set(sums))
    accounts: list[dict[str, Any]] = []
    totals = {"debits": 0, "credits": 0, "debit": 0, "credit": 0}
    for code in codes:
        account = _account_of(code)
        debits, credited = sums.get(code, (0, 0))
        balance = debits - credited
        amounts = {"debits": debits, "credits": credited, "debit": max(balance, 0), "credit": max(-balance, 0)}
        accounts.append({"code": code, "name": account.name, "kind": account.kind, **amounts})
        for column in totals:
            totals[column] += amounts[column]
    return {"branch": branch, "as_of": day, "accounts": accounts, "totals": totals,
            "balanced": totals["debit"] == totals["credit"], "difference": totals["debit"] - totals["credit"]}


def account_activity(store: ViewStore, account: Account, start: date, end: date, branch: str | None = None
                     ) -> dict[str, Any]:
    """An account's running balance over `start`..`end` (inclusive), of one branch or of the fund: the opening
    balance (the day before `start`), each day with a movement (its debits, credits and closing balance), the
    period's debits and credits and the closing balance on `end`. Balances are on the account's normal side
    (`normal_balance`). No limit on the period: its rows are the days with a movement, a few hundred a year."""
    if start > end:
        raise InvalidInput(f"from {start} is after to {end}")
    if start == date.min:  # the opening balance is the day before's, and the calendar has none
        raise InvalidInput(f"from {start}: the opening balance is of the day before, and there is none")
    first, last = start.isoformat(), end.isoformat()
    scope, params = ("branch = ? AND ", [branch]) if branch is not None else ("", [])
    with store.reading() as tx:
        t = _books(tx)
        if branch is not None:
            _books_branch(tx, t, branch)
        debit, credit = tx.aggregate(f"SELECT COALESCE(SUM(debit), 0), COALESCE(SUM(credit), 0) FROM {t['totals']} "
                                     f"WHERE {scope}account = ? AND on_date < ?", (*params, account.code, first))
        days = tx.all(f"SELECT on_date, SUM(debit), SUM(credit) FROM {t['totals']} WHERE {scope}account = ? AND "
                      f"on_date >= ? AND on_date <= ? GROUP BY on_date ORDER BY on_date",
                      (*params, account.code, first, last))
    balance = opening = normal_balance(account, int(debit), int(credit))
    rows, debits, credited = [], 0, 0
    for on, day_debit, day_credit in days:
        balance += normal_balance(account, int(day_debit), int(day_credit))
        debits, credited = debits + int(day_debit), credited + int(day_credit)
        rows.append({"date": on, "debit": int(day_debit), "credit": int(day_credit), "balance": balance})
    return {"account": account.code, "name": account.name, "kind": account.kind, "normal_side": account.normal_side,
            "branch": branch, "from": first, "to": last,
            "opening_on": (start - timedelta(days=1)).isoformat(), "opening": opening, "days": rows, "debits": debits,
            "credits": credited, "closing": balance}


def journal_cursor(key: JournalKey) -> str:
    """An entry's place in the journal as text (`--after`, the API's `after`): `DATE.POSITION`."""
    return f"{key[0]}.{key[1]}"


JOURNAL_CURSOR_PATTERN = rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}\.[0-9]{{1,{CURSOR_POSITION_DIGITS_MAX}}}$"


def parse_journal_cursor(text: str) -> JournalKey:
    """A cursor of `journal_cursor` (JOURNAL_CURSOR_PATTERN); ValueError otherwise. Any text of the pattern is a
    place in the journal's order (dates compare as text), whether or not an entry is there."""
    if not re.fullmatch(JOURNAL_CURSOR_PATTERN, text):
        raise ValueError("a cursor DATE.POSITION, as the previous page's `next` gives it")
    day, _, position = text.partition(".")
    return day, int(position)


def journal(store: ViewStore, start: date, end: date, *, account: Account | None = None, branch: str | None = None,
            after: JournalKey | None = None) -> Generator[dict[str, Any]]:
    if start > end:  # refused now, not at the first entry asked for
        raise InvalidInput(f"from {start} is after to {end}")
    return _journal(store, start, end, account, branch, after)


def _journal(store: ViewStore, start: date, end: date, account: Account | None, branch: str | None,
             after: JournalKey | None) -> Generator[dict[str, Any]]:
    """The journal's entries dated `start`..`end` (inclusive), in (on_date, position) order, each with its legs;
    only the entries with a leg on `account`, or of `branch`, when given; only those after `after` (a cursor).

    A generator: it reads JOURNAL_CHUNK_ENTRIES entries at a time in one snapshot, never the whole period, and keeps
    the snapshot (and this thread's view connection) open until it is exhausted or closed. An entry: date, event_id,
    position, type, branch, kpj, npp, reference, and legs (account, account_name, program, debit, credit)."""
    first, last = start.isoformat(), end.isoformat()
    with store.reading() as tx:
        t = _books(tx)
        if branch is not None:
            _books_branch(tx, t, branch)
        line_filter, leg_filter, params = "", "", []
        if branch is not None:
            line_filter += " AND branch = ?"
            leg_filter += " AND branch = ?"
            params.append(branch)
        leg_params = list(params)
        if account is not None:
            line_filter += f" AND ({_LINE_ACCOUNT_SQL.get(account.code, '1 = 0')})"
            # An entry's legs share its date and position: found through the (on_date, position) index.
            leg_filter += (f" AND EXISTS (SELECT 1 FROM {t['legs']} a WHERE a.on_date = {t['legs']}.on_date "
                           f"AND a.position = {t['legs']}.position AND a.account = ?)")
            leg_params += [account.code]
        cursor = max(after, (first, -1)) if after is not None else (first, -1)
        while True:
            bound = _chunk_bound(tx, t, cursor, last, line_filter, params, leg_filter, leg_params)
            if bound is None:
                return
            entries = _chunk(tx, t, cursor, bound, line_filter, params, leg_filter, leg_params)
            yield from entries
            cursor = bound


def _after(cursor: JournalKey, upto: JournalKey) -> tuple[str, list[Any]]:
    """SQL and parameters for cursor < (on_date, position) <= upto (the on_date range first, for the index)."""
    return ("on_date >= ? AND on_date <= ? AND (on_date > ? OR position > ?) AND (on_date < ? OR position <= ?)",
            [cursor[0], upto[0], cursor[0], cursor[1], upto[0], upto[1]])


def _chunk_bound(tx: Tx, t: dict[str, str], cursor: JournalKey, last: str, line_filter: str, params: list[Any],
                 leg_filter: str, leg_params: list[Any]) -> JournalKey | None:
    """The key up to which the next chunk reads: the JOURNAL_CHUNK_ENTRIES-th line's or leg's after `cursor`, the
    nearer; the last key of the period when fewer are left; None when nothing is."""
    end = (last, 2 ** 62)
    where, where_params = _after(cursor, end)
    bounds = []
    for table, extra, extra_params in (("lines", line_filter, params), ("legs", leg_filter, leg_params)):
        rows = tx.all(f"SELECT on_date, position FROM {t[table]} WHERE {where}{extra} ORDER BY on_date, position "
                      f"LIMIT 1 OFFSET ?", (*where_params, *extra_params, JOURNAL_CHUNK_ENTRIES - 1))
        if rows:
            bounds.append((str(rows[0][0]), int(rows[0][1])))
    if bounds:
        return min(bounds)
    for table, extra, extra_params in (("lines", line_filter, params), ("legs", leg_filter, leg_params)):
        row = tx.one(f"SELECT on_date, position FROM {t[table]} WHERE {where}{extra} ORDER BY on_date DESC, "
                     f"position DESC LIMIT 1", (*where_params, *extra_params))
        if row:
            bounds.append((str(row[0]), int(row[1])))
    return max(bounds) if bounds else None


def _chunk(tx: Tx, t: dict[str, str], cursor: JournalKey, bound: JournalKey, line_filter: str, params: list[Any],
           leg_filter: str, leg_params: list[Any]) -> list[dict[str, Any]]:
    where, where_params = _after(cursor, bound)
    entries: dict[str, dict[str, Any]] = {}
    for event_id, position, on, branch, kpj, npp, ref, kind, *amounts in tx.all(
            f"SELECT event_id, position, on_date, branch, kpj, npp, ref, type, {', '.join(LINE_COLUMNS)} "
            f"FROM {t['lines']} WHERE {where}{line_filter}", (*where_params, *params)):
        legs = line_legs(kind, dict(zip(LINE_COLUMNS, (int(a) for a in amounts), strict=True)))
        entries[event_id] = _entry(on, event_id, position, kind, branch, kpj, npp, ref, legs)
    for event_id, position, on, kind, branch, account, program, kpj, npp, ref, amount in tx.all(
            f"SELECT event_id, position, on_date, type, branch, account, program, kpj, npp, ref, amount "
            f"FROM {t['legs']} WHERE {where}{leg_filter} ORDER BY on_date, position, account, program",
            (*where_params, *leg_params)):
        entry = entries.setdefault(event_id, _entry(on, event_id, position, kind, branch, kpj, npp, ref, []))
        entry["legs"].append(_leg(account, program, int(amount)))
    return sorted(entries.values(), key=lambda e: (e["date"], e["position"]))


def _entry(on: str, event_id: str, position: int, kind: str, branch: str, kpj: str | None, npp: str | None,
           ref: str | None, legs: list[tuple[str, str, int]] | list[dict[str, Any]]) -> dict[str, Any]:
    return {"date": on, "event_id": event_id, "position": int(position), "type": kind, "branch": branch, "kpj": kpj,
            "npp": npp, "reference": ref,
            "legs": [_leg(*leg) if isinstance(leg, tuple) else leg for leg in legs]}


def _leg(account: str, program: str, amount: int) -> dict[str, Any]:
    return {"account": account, "account_name": _account_of(account).name, "program": program,
            "debit": max(amount, 0), "credit": max(-amount, 0)}


# --- the scoped read side --------------------------------------------------------------------------------------------

class AccessLogWriter(Protocol):
    """Where the read side records every read of a member's data (projections/access_log.py): `record` returns only
    once the entry is durably kept, and raises `AccessLogUnavailable` otherwise."""

    def record(self, entry: AccessEntry) -> None: ...


class RateLimiter:
    """At most `reads_max` reads per key in any `window_s` seconds (a sliding window of the reads' times), in this
    process. Thread-safe: the API answers requests in a pool of threads."""

    def __init__(self, reads_max: int = READS_PER_MINUTE_MAX, window_s: float = RATE_WINDOW_S, *,
                 keys_max: int = RATE_SUBJECTS_MAX, clock: Callable[[], float] = time.monotonic) -> None:
        assert reads_max >= 1 and window_s > 0 and keys_max >= 1
        self.reads_max, self.window_s, self.keys_max, self.clock = reads_max, window_s, keys_max, clock
        self._reads: dict[tuple[str, ...], deque[float]] = {}
        self._lock = threading.Lock()

    def admit(self, key: tuple[str, ...]) -> None:
        """Count a read for `key`, or raise `RateLimited` (counting nothing) with the seconds until one is allowed."""
        with self._lock:
            now = self.clock()
            reads = self._reads.get(key)
            if reads is None:
                if len(self._reads) >= self.keys_max:
                    self._forget_idle(now)
                if len(self._reads) >= self.keys_max:
                    raise RateLimited("the read side is busy with too many readers: try again in a minute",
                                      retry_after_s=int(self.window_s))
                reads = self._reads[key] = deque(maxlen=self.reads_max)
            while reads and reads[0] <= now - self.window_s:
                reads.popleft()
            if len(reads) >= self.reads_max:
                wait_s = max(1, math.ceil(reads[0] + self.window_s - now))  # when the oldest read leaves the window
                raise RateLimited(f"more than {self.reads_max} reads in {self.window_s:.0f} seconds: try again in "
                                  f"{wait_s} s", retry_after_s=wait_s)
            reads.append(now)

    def _forget_idle(self, now: float) -> None:
        idle = [key for key, reads in self._reads.items() if not reads or reads[-1] <= now - self.window_s]
        for key in idle:
            del self._reads[key]


def utc_now() -> datetime:
    return datetime.now(UTC)


class ReadSide:
    """The questions readers may ask, each for a `Reader` and within its scope: every endpoint, console page and
    reading command asks through here, and nothing else checks scope.

    Each question, in order:
    1. checks the reader's scope (`Reader.check_member` / `check_branch`): `Forbidden` for a member or branch outside
       it, whether or not it exists, so a refusal never tells whether a KPJ exists elsewhere; an auditor (who may read
       every member) is told `NotFound` for an unknown one;
    2. counts the read towards the reader's rate limit (`RateLimited` beyond `READS_PER_MINUTE_MAX` a minute);
    3. computes the answer, in one snapshot of the live projection (steps 1 and 2 run inside it for members, once the
       member's branch is read);
    4. for a member's data, records the read in the access log, and fails (`AccessLogUnavailable`) if it cannot:
       nobody reads a member's data unrecorded;
    5. returns the answer.
    """

    def __init__(self, store: ViewStore, access_log: AccessLogWriter, *, limiter: RateLimiter | None = None,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.store, self.access_log, self.now = store, access_log, now
        self.limiter = limiter or RateLimiter()

    def _admit_member(self, reader: Reader, kpj: str) -> Admit:
        def admit(branch: str | None) -> None:
            reader.check_member(kpj, branch)
            self.limiter.admit(reader.rate_key)
        return admit

    def _record(self, reader: Reader, kpj: str, endpoint: str) -> None:
        self.access_log.record(AccessEntry(at=self.now(), subject=reader.subject, role=reader.role, kpj=kpj,
                                           endpoint=endpoint, purpose=reader.purpose))

    def member_balance(self, reader: Reader, kpj: str, as_of: date, *, endpoint: str) -> dict[str, Any]:
        answer = member_balance(self.store, kpj, as_of, admit=self._admit_member(reader, kpj))
        self._record(reader, kpj, endpoint)
        return answer

    def member_history(self, reader: Reader, kpj: str, start: date | None, end: date | None, *,
                       endpoint: str) -> list[dict[str, Any]]:
        answer = member_history(self.store, kpj, start, end, admit=self._admit_member(reader, kpj))
        self._record(reader, kpj, endpoint)
        return answer

    def member_read(self, reader: Reader, kpj: str, read: Callable[[], T], *, endpoint: str) -> T:
        """A read of a member's data from elsewhere than the projections (`ledger balance --from-store` reads the
        event store): the same steps, the member's branch unknown here, so only a reader who may read every member
        (or a member service, its own) is let through."""
        self._admit_member(reader, kpj)(None)
        answer = read()
        self._record(reader, kpj, endpoint)
        return answer

    def branch_report(self, reader: Reader, branch: str, as_of: date) -> dict[str, Any]:
        """A branch's totals: no member's data, so no access-log entry."""
        reader.check_branch(branch)
        self.limiter.admit(reader.rate_key)
        return branch_report(self.store, branch, as_of)

    def arrears(self, reader: Reader, branch: str, as_of: date, *, endpoint: str) -> dict[str, Any]:
        """A branch's arrears: the scope check and rate limit of a branch's totals. A self-paying BPU member's row
        is that member's data (what they owe, by KPJ), so each member listed is recorded in the access log before
        the answer is given, as a read of their balance is; an employer's row is not a member's data."""
        reader.check_branch(branch)
        self.limiter.admit(reader.rate_key)
        answer = arrears(self.store, branch, as_of)
        for payer in answer["payers"]:
            if payer["kpj"] is not None:
                self._record(reader, payer["kpj"], endpoint)
        return answer

    def trial_balance(self, reader: Reader, as_of: date, branch: str | None = None) -> dict[str, Any]:
        """A branch's trial balance (the scope of its totals), or the fund's (a reader who may read every branch):
        no member's data, so no access-log entry."""
        if branch is None:
            reader.check_all_branches()
        else:
            reader.check_branch(branch)
        self.limiter.admit(reader.rate_key)
        return trial_balance(self.store, as_of, branch)

    def account_activity(self, reader: Reader, account: Account, start: date, end: date,
                         branch: str | None = None) -> dict[str, Any]:
        """An account's running balance in a branch, or in the fund: the scope of `trial_balance`."""
        if branch is None:
            reader.check_all_branches()
        else:
            reader.check_branch(branch)
        self.limiter.admit(reader.rate_key)
        return account_activity(self.store, account, start, end, branch)

    def journal(self, reader: Reader, start: date, end: date, *, endpoint: str, account: Account | None = None,
                branch: str | None = None, after: JournalKey | None = None) -> Generator[dict[str, Any]]:
        """The journal of a branch, or of the fund (the scope of `trial_balance`), streamed. An entry naming a member
        (a contribution line, a self-paying member's money) is that member's data: each member is recorded in the
        access log once, before the first entry naming them is given. Scope and rate limit are checked here, before
        the first entry is asked for."""
        if branch is None:
            reader.check_all_branches()
        else:
            reader.check_branch(branch)
        self.limiter.admit(reader.rate_key)
        return self._journal(reader, journal(self.store, start, end, account=account, branch=branch, after=after),
                             endpoint)

    def journal_page(self, reader: Reader, start: date, end: date, limit: int, *, endpoint: str,
                     account: Account | None = None, branch: str | None = None, after: JournalKey | None = None
                     ) -> tuple[list[dict[str, Any]], bool]:
        """A page of `journal`: its first `limit` entries after `after`, and whether more follow. The members the
        page's entries name are recorded before it is returned (not those of the entry read to know that more
        follow, which is not given)."""
        if branch is None:
            reader.check_all_branches()
        else:
            reader.check_branch(branch)
        self.limiter.admit(reader.rate_key)
        entries = journal(self.store, start, end, account=account, branch=branch, after=after)
        try:
            page = list(itertools.islice(entries, limit + 1))
        finally:
            entries.close()
        given = page[:limit]
        self._record_all(reader, sorted({entry["kpj"] for entry in given if entry["kpj"] is not None}), endpoint)
        return given, len(page) > limit

    def _journal(self, reader: Reader, entries: Iterator[dict[str, Any]], endpoint: str
                 ) -> Generator[dict[str, Any]]:
        """The entries, JOURNAL_CHUNK_ENTRIES at a time: the chunk's members not recorded yet are recorded (together,
        so that the access log commits them in a few transactions, not one each), then the chunk is given."""
        recorded: set[str] = set()
        while chunk := list(itertools.islice(entries, JOURNAL_CHUNK_ENTRIES)):
            new = sorted({entry["kpj"] for entry in chunk if entry["kpj"] is not None} - recorded)
            self._record_all(reader, new, endpoint)
            recorded.update(new)
            yield from chunk

    def _record_all(self, reader: Reader, kpjs: list[str], endpoint: str) -> None:
        """Record a read of each member, returning once every entry is committed (the first error is raised). The
        first alone, then the others at once (ACCESS_RECORDS_AT_ONCE): each `record` waits for its commit, and the
        log commits what waits together."""
        if not kpjs:
            return
        self._record(reader, kpjs[0], endpoint)  # opens the log, once, before the others wait on it
        if len(kpjs) == 1:
            return
        with ThreadPoolExecutor(max_workers=min(ACCESS_RECORDS_AT_ONCE, len(kpjs) - 1)) as pool:
            for done in [pool.submit(self._record, reader, kpj, endpoint) for kpj in kpjs[1:]]:
                done.result()
