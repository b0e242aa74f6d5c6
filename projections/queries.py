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
"""

from __future__ import annotations

from datetime import date
from typing import Any

from ledger.errors import NotFound, NotProjected
from ledger.rules import BPU_DUE_DAY, BPU_UNPAID_MONTHS_INACTIVE, shift_month
from projections.store import Tx, ViewStore, table_name
from projections.views import FINE_PROGRAM, PROGRAMS

HISTORY_ROWS_MAX = 10_000


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


def member_balance(store: ViewStore, kpj: str, as_of: date) -> dict[str, Any]:
    day = as_of.isoformat()
    with store.reading() as tx:
        version = _live(tx, "balances")
        members, postings = table_name("balances", version, "members"), table_name("balances", version, "postings")
        member = tx.one(f"SELECT branch, segment, npp, enrolled_on, exited_on, exit_reason, wage FROM {members} "
                        f"WHERE kpj = ?", (kpj,))
        if member is None:
            raise NotFound(f"unknown member: no KPJ {kpj} in the balances projection")
        shares = ", ".join(f"COALESCE(SUM({p.lower()}_{side}), 0)" for p in PROGRAMS for side in ("employer", "worker"))
        sums = tx.one(f"SELECT {shares}, "
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
    branch, segment, npp, enrolled_on, exited_on, reason, wage = member
    return {"kpj": kpj, "as_of": day, "branch": branch, "segment": segment, "npp": npp, "enrolled_on": enrolled_on,
            "exited_on": exited_on if exited_on and exited_on <= day else None,
            "exit_reason": reason if exited_on and exited_on <= day else None,
            "jht_balance": jht["balance"], "fines_paid_by_employer": values[9], "movements": values[10],
            "programs": programs}


def member_history(store: ViewStore, kpj: str, start: date | None = None, end: date | None = None) -> list[dict]:
    """The member's money movements, oldest first, each with the JHT balance after it."""
    with store.reading() as tx:
        version = _live(tx, "balances")
        members, postings = table_name("balances", version, "members"), table_name("balances", version, "postings")
        if tx.one(f"SELECT 1 FROM {members} WHERE kpj = ?", (kpj,)) is None:
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
        pu, employers_active = tx.one(f"SELECT COUNT(*), COUNT(DISTINCT m.npp) FROM {t['members']} m "
                                      f"WHERE {active} AND m.segment = 'PU'", (branch, day, day))
        by_kind = dict(tx.all(f"SELECT e.kind, COUNT(*) FROM {t['employers']} e WHERE e.npp IN (SELECT m.npp FROM "
                              f"{t['members']} m WHERE {active} AND m.segment = 'PU') GROUP BY e.kind",
                              (branch, day, day)))
        registered = tx.one(f"SELECT COUNT(*) FROM {t['employers']} WHERE branch = ? AND registered_on <= ?",
                            (branch, day))[0]
        bpu_enrolled, bpu_active = tx.one(
            f"SELECT COUNT(*), COALESCE(SUM(CASE WHEN substr(m.enrolled_on, 1, 7) > ? OR EXISTS (SELECT 1 FROM "
            f"{t['bpu_months']} b WHERE b.kpj = m.kpj AND b.month >= ? AND b.paid_on <= ? AND (b.reversed_on IS NULL "
            f"OR b.reversed_on > ?)) THEN 1 ELSE 0 END), 0) FROM {t['members']} m WHERE {active} AND m.segment = 'BPU'",
            (threshold, threshold, day, day, branch, day, day))
        flows = tx.all(f"SELECT month, program, SUM(employer_share), SUM(worker_share), SUM(fines), SUM(claims_count), "
                       f"SUM(claims_amount) FROM {t['flows']} WHERE branch = ? AND on_date <= ? GROUP BY month, program "
                       f"ORDER BY month, program", (branch, day))
    contributions = {p: {"employer": 0, "worker": 0, "total": 0} for p in PROGRAMS}
    claims = {p: {"count": 0, "amount": 0} for p in PROGRAMS}
    months: dict[str, dict[str, Any]] = {}
    fines = 0
    for month, program, employer, worker, fine, count, amount in flows:
        employer, worker, fine, count, amount = (int(v) for v in (employer, worker, fine, count, amount))
        if month:  # a contribution month
            row = months.setdefault(month, {"month": month, **{p: 0 for p in PROGRAMS}, "fines": 0, "total": 0})
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
    return {account: dict(zip(ACCOUNT_FIELDS, (int(v) for v in values))) for account, *values in rows}
