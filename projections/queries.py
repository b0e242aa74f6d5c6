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

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Protocol, TypeVar

from ledger.errors import NotFound, NotProjected, RateLimited
from ledger.rules import BPU_DUE_DAY, BPU_UNPAID_MONTHS_INACTIVE, months_late, shift_month
from projections.access import AccessEntry, Reader
from projections.catalog import PROJECTIONS
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
        version = _live(tx, "general_ledger")
        totals = table_name("general_ledger", version, "totals")
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
