"""`ledger audit as-of`: every member's JHT balance and every branch's and account's figures recomputed from the
envelopes alone, with code of its own (a second implementation, so that a bug or a tampered row in the projections
shows as a difference), and compared with the projections' answers."""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ledger.audit.topic import current_data, read_topic
from ledger.books import (
    ACCOUNTS,
    BANK_BENEFITS,
    BANK_HELD,
    BANK_KPJ,
    BANK_NPP,
    BILLED,
    CLAIMS,
    CLEARING,
    FINES,
    JHT,
    JKK_FUND,
    JKM_FUND,
    JKP_FROM_JKK,
    JKP_FROM_JKM,
    JP_FUND,
    OWED_BACK,
    RECEIVABLE,
    SUSPENSE,
    UNAPPLIED,
    YIELD,
)
from ledger.errors import (
    NotFound,
    TopicUnreadable,
)
from ledger.events import (
    MemberFacts,
    UpcastNeedsMember,
)
from ledger.rules import BPU_DUE_DAY, BPU_UNPAID_MONTHS_INACTIVE, Program, employed_on, late_fine, months_late
from ledger.settings import KafkaConnection
from projections import queries
from projections.store import ViewStore

# --- recomputing from the envelopes: an implementation independent of the projections' -----------------------------

PROGRAMS = tuple(program.value for program in Program)
CONTRIBUTION_SIGNS = {"ContributionPaid": 1, "ContributionAdjusted": 1, "ContributionReversed": -1}
CLAIM_SIGNS = {"ClaimPaid": 1, "ClaimReversed": -1}
NO_SHARE = {"employer": 0, "worker": 0}
EMPLOYER_KINDS = ("company", "government")


def _money() -> dict[str, Any]:
    return {"events": 0,
            "contributions": {p: {"employer": 0, "worker": 0, "total": 0} for p in PROGRAMS},
            "contributions_total": 0, "late_fines": 0,
            "claims": {p: {"count": 0, "amount": 0} for p in PROGRAMS},
            "claims_total": {"count": 0, "amount": 0}}


class Flows:
    """Money in and out per branch (the envelope's `branch`): contributions per program, late fines, claims per program
    as count and amount, and the number of events. A reversal takes back what it reverses, on its own date."""

    def __init__(self) -> None:
        self.branches: dict[str, dict[str, Any]] = {}

    def add(self, env: dict[str, Any], data: dict[str, Any]) -> None:
        totals = self.branches.get(env["branch"])
        if totals is None:
            totals = self.branches[env["branch"]] = _money()
        totals["events"] += 1
        kind = env["type"]
        sign = CONTRIBUTION_SIGNS.get(kind)
        if sign is not None:
            for program, share in data["shares"].items():
                row = totals["contributions"][program]
                row["employer"] += sign * share["employer"]
                row["worker"] += sign * share["worker"]
                row["total"] += sign * (share["employer"] + share["worker"])
                totals["contributions_total"] += sign * (share["employer"] + share["worker"])
            totals["late_fines"] += sign * data["fine"]
            return
        sign = CLAIM_SIGNS.get(kind)
        if sign is not None:
            claims = totals["claims"][data["program"]]
            claims["count"] += sign
            claims["amount"] += sign * data["amount"]
            totals["claims_total"]["count"] += sign
            totals["claims_total"]["amount"] += sign * data["amount"]


PAYER_FIELDS = ("bills", "bills_settled", "bills_open", "billed", "settled", "outstanding", "fines", "received",
                "returned", "applied", "refunded", "unapplied")


class PayerBooks:
    """Collections per payer (`npp:NPP`, or `kpj:KPJ` for a self-paying BPU member), recounted from the envelopes of
    the bills, money and settlements effective on or before the date: what was billed and settled (net of reversed
    settlements), the fines paid with settlements, what is outstanding; the money received, returned as bank errors,
    applied to bills, refunded, and left unapplied. Two identities hold by construction, and `check` says where they
    do not: billed = settled + outstanding; received = returned + applied + refunded + unapplied."""

    def __init__(self) -> None:
        self.payers: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(PAYER_FIELDS, 0))
        self.branch_of: dict[str, str] = {}  # payer -> the branch its collections events name

    def add(self, kind: str, data: dict[str, Any]) -> None:
        if kind not in COLLECTIONS_TYPES:
            return
        key = f"npp:{data['npp']}" if data.get("npp") else f"kpj:{data['kpj']}"
        self.branch_of[key] = data["branch"]
        payer = self.payers[key]
        if kind == "BillClosed":
            payer["billed"] += data["total"]
            payer["bills"] += 1
        elif kind in ("BillSettled", "SettlementReversed"):
            sign = 1 if kind == "BillSettled" else -1
            payer["settled"] += sign * data["amount"]
            payer["fines"] += sign * data["fine"]
            payer["applied"] += sign * data["total"]
            payer["bills_settled"] += sign
        elif kind == "MoneyReceived":
            payer["received"] += data["amount"]
        elif kind == "ReceiptReturned":
            payer["returned"] += data["amount"]
        elif kind == "MoneyRefunded":
            payer["refunded"] += data["amount"]

    def figures(self) -> dict[str, dict[str, int]]:
        """Per payer, every figure, the derived ones computed: outstanding, open bills, unapplied."""
        result = {}
        for key, payer in sorted(self.payers.items()):
            row = dict(payer)
            row["outstanding"] = row["billed"] - row["settled"]
            row["bills_open"] = row["bills"] - row["bills_settled"]
            row["unapplied"] = row["received"] - row["returned"] - row["applied"] - row["refunded"]
            result[key] = row
        return result

    @staticmethod
    def totals(figures: dict[str, dict[str, int]]) -> dict[str, int]:
        return {name: sum(row[name] for row in figures.values()) for name in PAYER_FIELDS}

    def branch_figures(self) -> dict[str, dict[str, int]]:
        """Per branch, the figures `projections.queries.collection_figures` answers (in `ledger report branch`), from
        the payers of the branch: received there is net of money returned."""
        by_branch: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
        for key, row in self.figures().items():
            by_branch[self.branch_of[key]][key] = row
        result = {}
        for branch, payers in by_branch.items():
            t = self.totals(payers)
            result[branch] = {"billed": t["billed"], "settled": t["settled"], "outstanding": t["outstanding"],
                              "fines_applied": t["fines"], "applied": t["applied"],
                              "received": t["received"] - t["returned"], "refunded": t["refunded"],
                              "unapplied": t["unapplied"], "returned": t["returned"]}
        return result

    @staticmethod
    def check(figures: dict[str, dict[str, int]]) -> list[str]:
        """What cannot be: money applied or refunded that was never received (unapplied below zero), a bill settled
        twice (outstanding below zero, open bills below zero)."""
        return [f"payer {key}: {name} is {row[name]:,}, below zero" for key, row in figures.items()
                for name in ("outstanding", "unapplied", "bills_open") if row[name] < 0]


# The branch's collection figures, as `projections.queries.collection_figures` names them.
COLLECTION_FIGURES = ("billed", "settled", "outstanding", "fines_applied", "applied", "received", "refunded",
                      "unapplied", "returned", "held", "held_count", "held_matched_later", "paid_without_bill",
                      "paid_without_bill_count", "paid_without_bill_reversed")
# Arrears aging by months overdue, as `ledger report arrears` labels its buckets: (label, from, to inclusive).
ARREARS_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("1", 1, 1), ("2-3", 2, 3), ("4-6", 4, 6), ("7-12", 7, 12), (">12", 13, None))
ARREARS_FIGURES = ("bills", "amount", "fine", "total")


class Collections:
    """What the branch's collection figures need besides the payers' books (`PayerBooks`), and arrears aging, kept
    from the envelopes whatever their dates and counted as of the date at the end (an implementation of its own, not
    the projection's queries): the money held until matched and when it was matched; payments without a bill and
    every contribution line's payment, so that a reversal is told to be of a line paid without a bill (its payment is
    no bill); the bills with their lines' amounts, their settlements and the settlements' reversals.

    Memory: one entry per contribution line (its event id and payment id), per bill and per settlement."""

    def __init__(self) -> None:
        self.held: dict[str, tuple[str, int, str]] = {}  # reference -> branch, amount, received on
        self.matched: dict[str, str] = {}  # reference -> identified on
        self.payments: list[tuple[str, str, int]] = []  # payments without a bill: branch, paid on, total
        self.line_payment: dict[str, str] = {}  # ContributionPaid event id -> its payment id
        self.reversals: list[tuple[str, str, str, int]] = []  # reverses, branch, reversed on, total
        self.bills: dict[str, tuple[str, str, str, str, int]] = {}  # id -> branch, segment, counts from, due, total
        self.bill_lines: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))  # id -> amount -> lines
        self.settlements: dict[str, tuple[str, str]] = {}  # event id -> bill id, settled on
        self.unsettled: dict[str, str] = {}  # the event id of a reversed settlement -> reversed on

    def add(self, env: dict[str, Any], data: dict[str, Any]) -> None:
        kind = env["type"]
        if kind == "ContributionPaid":
            self.line_payment[env["event_id"]] = sys.intern(data["payment_id"])
        elif kind == "ContributionReversed":
            self.reversals.append((data["reverses"], env["branch"], data["reversed_on"], data["total"]))
        elif kind == "ContributionPaymentReceived":
            self.payments.append((data["branch"], data["paid_on"], data["total"]))
        elif kind == "MoneyUnidentified":
            self.held[data["reference"]] = (data["branch"], data["amount"], data["received_on"])
        elif kind == "MoneyIdentified":
            self.matched[data["reference"]] = data["identified_on"]
        else:
            self._add_bill(env, data)

    def _add_bill(self, env: dict[str, Any], data: dict[str, Any]) -> None:
        kind = env["type"]
        if kind == "BillClosed":
            self.bills[data["bill_id"]] = (data["branch"], data["segment"], data["counts_from"], data["due_date"],
                                           data["total"])
        elif kind == "BillLinesAdded":
            for line in data["lines"]:
                self.bill_lines[data["bill_id"]][line["amount"]] += 1
        elif kind == "BillSettled":
            self.settlements[env["event_id"]] = (data["bill_id"], data["settled_on"])
        elif kind == "SettlementReversed":
            self.unsettled[data["reverses"]] = data["reversed_on"]

    def figures(self, day: str) -> dict[str, dict[str, int]]:
        """Per branch: held, held_count, held_matched_later, paid_without_bill(_count, _reversed) on `day`."""
        result: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(
            ("held", "held_count", "held_matched_later", "paid_without_bill", "paid_without_bill_count",
             "paid_without_bill_reversed"), 0))
        for reference, (branch, amount, received_on) in self.held.items():
            if received_on > day:
                continue
            identified_on = self.matched.get(reference)
            row = result[branch]
            if identified_on is None or identified_on > day:
                row["held"] += amount
                row["held_count"] += 1
            if identified_on is not None and identified_on > day:
                row["held_matched_later"] += amount
        for branch, paid_on, total in self.payments:
            if paid_on <= day:
                result[branch]["paid_without_bill"] += total
                result[branch]["paid_without_bill_count"] += 1
        for reverses, branch, reversed_on, total in self.reversals:
            if reversed_on <= day and self.line_payment.get(reverses) not in self.bills:
                result[branch]["paid_without_bill"] -= total
                result[branch]["paid_without_bill_reversed"] += total
        return dict(result)

    def arrears(self, day: str) -> dict[str, dict[str, dict[str, int]]]:
        """Per branch, per aging bucket (and "total"): the bills counting by `day`, due before it and not settled on
        it (a settlement reversed by then does not count), their amounts and the late fine accrued on `day` (PU: per
        line, `rules.late_fine` for the months overdue at the rate in force on the due date; BPU: none)."""
        settled = {bill_id for event_id, (bill_id, settled_on) in self.settlements.items()
                   if settled_on <= day and not (event_id in self.unsettled and self.unsettled[event_id] <= day)}
        as_of = date.fromisoformat(day)
        result: dict[str, dict[str, dict[str, int]]] = {}
        for bill_id, (branch, segment, counts_from, due, total) in self.bills.items():
            if counts_from > day or due >= day or bill_id in settled:
                continue
            due_date = date.fromisoformat(due)
            months = months_late(due_date, as_of)
            fine = 0 if segment != "PU" else sum(lines * late_fine(amount, months, due_date)
                                                 for amount, lines in self.bill_lines[bill_id].items())
            label = next(label for label, low, high in ARREARS_BUCKETS
                         if months >= low and (high is None or months <= high))
            rows = result.setdefault(branch, {name: dict.fromkeys(ARREARS_FIGURES, 0)
                                              for name in (*(b[0] for b in ARREARS_BUCKETS), "total")})
            for name in (label, "total"):
                rows[name]["bills"] += 1
                rows[name]["amount"] += total
                rows[name]["fine"] += fine
                rows[name]["total"] += total + fine
        return result
COLLECTIONS_TYPES = frozenset({"BillClosed", "BillSettled", "SettlementReversed", "MoneyReceived", "ReceiptReturned",
                               "MoneyRefunded"})


# A contribution line's two JKP splits packed into one int for `Books.splits`: JKK's times this, plus JKM's. Each split
# is a part of a share of one member's month, far below it.
SPLIT_BASE = 1 << 32


class Books:
    """What the trial balance needs besides the recount's other figures (`Recount.trial_balance`), kept from the
    envelopes with code of its own: per branch (the envelope's), the JKP splits of the contribution lines net of
    reversals, the yields credited, and what goes through the clearing account (the payments: bills' settlements and
    payments without a bill, by the payer's channel; their member lines).

    A `ContributionReversed` does not carry its line's JKP splits: every line's are remembered by its event id,
    whatever its date, and a reversal counted by the date takes its line's back at the end (`jkp`), so that the order
    in which the lines and reversals arrive does not matter. Memory: one entry per line whose splits are not both zero
    (the PU lines from Feb 2021): its event id, the same string `Collections` keeps, and the splits packed into one
    int, one object per distinct value (about 48 bytes a line, measured: 142 MB for 3 million lines)."""

    FIGURES = ("lines", "settlements", "paid_npp", "paid_kpj", "yields", "jkp_jkk", "jkp_jkm")

    def __init__(self) -> None:
        self.splits: dict[str, int] = {}  # event id of a line -> jkp_from_jkk * SPLIT_BASE + jkp_from_jkm, not 0
        self._values: dict[int, int] = {}  # one int object per packed value
        self.reversed: list[tuple[str, str]] = []  # reversals counted by the date: branch, the line's event id
        self.branches: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(Books.FIGURES, 0))

    def add(self, env: dict[str, Any], data: dict[str, Any], counted: bool) -> None:
        """An event; `counted`: effective on or before the date."""
        kind = env["type"]
        if kind in ("ContributionPaid", "ContributionAdjusted"):
            jkk, jkm = data.get("jkp_from_jkk", 0), data.get("jkp_from_jkm", 0)
            if jkk or jkm:
                packed = jkk * SPLIT_BASE + jkm
                self.splits[env["event_id"]] = self._values.setdefault(packed, packed)
            if counted:
                row = self.branches[env["branch"]]
                row["lines"] += data["total"]
                row["jkp_jkk"] += jkk
                row["jkp_jkm"] += jkm
        elif not counted:
            return
        elif kind == "ContributionReversed":
            self.reversed.append((env["branch"], data["reverses"]))
        elif kind == "BillSettled":
            self.branches[env["branch"]]["settlements"] += data["total"]
        elif kind == "ContributionPaymentReceived":
            self.branches[env["branch"]]["paid_npp" if data.get("npp") else "paid_kpj"] += data["total"]
        elif kind == "YieldCredited":
            self.branches[env["branch"]]["yields"] += data["amount"]

    def jkp(self) -> dict[str, tuple[int, int]]:
        """Per branch, the JKP splits of the lines counted by the date, net of their reversals."""
        result = {branch: (row["jkp_jkk"], row["jkp_jkm"]) for branch, row in self.branches.items()}
        for branch, line in self.reversed:
            jkk, jkm = divmod(self.splits.get(line, 0), SPLIT_BASE)
            before = result.get(branch, (0, 0))
            result[branch] = (before[0] - jkk, before[1] - jkm)
        return result


def bpu_threshold_month(as_of: date) -> str:
    """The earliest contribution month whose payment keeps a BPU member active on `as_of`.

    BPU contributions are due by the 15th of the month itself, so the last month already due is as_of's month after
    the 15th and the month before otherwise; three unpaid months in a row up to it make a membership inactive.
    """
    number = as_of.year * 12 + as_of.month - 1
    last_due = number if as_of.day > BPU_DUE_DAY else number - 1
    first = last_due - (BPU_UNPAID_MONTHS_INACTIVE - 1)
    return f"{first // 12:04d}-{first % 12 + 1:02d}"


class Recount:
    """Every member's JHT balance and every branch's figures as of one date, from the envelopes alone.

    Feed it every event of the topic (`add`), in any order across aggregates: facts dated after `as_of` are kept
    only where a later date matters (an exit, a reversal), and money counts on and after its effective date.
    """

    def __init__(self, as_of: date) -> None:
        self.as_of = as_of
        self.day = as_of.isoformat()
        self.events = 0
        self.flows = Flows()
        self.jht: dict[str, int] = defaultdict(int)
        self.members: dict[str, tuple[str, str, str | None, str]] = {}  # kpj -> branch, segment, npp, enrolled on
        self.exits: dict[str, str] = {}  # kpj -> exit date
        self.employers: dict[str, tuple[str, str, str]] = {}  # npp -> branch, kind, registered on
        self.bpu_payments: dict[str, list[tuple[str, str, str]]] = defaultdict(list)  # kpj -> (event, month, paid on)
        self.reversed_on: dict[str, str] = {}  # event id of a contribution -> the date it was reversed
        # Per paying account (`npp:NPP` or `kpj:KPJ`, as `projections.views.payer_account`): contributions and fines
        # booked to it, and claims, as of the date.
        self.accounts: dict[str, dict[str, int]] = defaultdict(
            lambda: {"contributions": 0, "fines": 0, "claims_count": 0, "claims_amount": 0})
        self.payers = PayerBooks()
        self.collections = Collections()
        self.books = Books()
        self.facts = MemberFacts()
        self.waiting: list[dict[str, Any]] = []  # events whose upcast needs a member not seen yet (in partition order)

    def add(self, env: dict[str, Any]) -> None:
        kind = env["type"]
        try:
            data = current_data(env, self.facts)
        except UpcastNeedsMember:
            self.waiting.append(env)
            return
        self.events += 1
        self.facts.see(kind, data)
        self._keep_fact(kind, env, data)
        self.collections.add(env, data)
        self.books.add(env, data, env["effective_date"] <= self.day)
        if env["effective_date"] <= self.day:
            self._count_money(kind, data)
            self.flows.add(env, data)
            self.payers.add(kind, data)

    def _keep_fact(self, kind: str, env: dict[str, Any], data: dict[str, Any]) -> None:
        """Who is enrolled, exited, registered, paid as BPU or reversed: kept whatever its date, since a later date
        matters too (an exit after `as_of` leaves the member active on it)."""
        if kind == "MemberEnrolled":
            self.members[data["kpj"]] = (env["branch"], data["segment"], data["npp"], data["effective"])
        elif kind == "MemberExited":
            self.exits[data["kpj"]] = data["exit_date"]
        elif kind == "EmployerRegistered":
            self.employers[data["npp"]] = (env["branch"], data["kind"], data["registered_on"])
        elif kind == "ContributionPaid" and data["segment"] == "BPU":
            self.bpu_payments[data["kpj"]].append((env["event_id"], data["month"], data["paid_on"]))
        elif kind == "ContributionReversed":
            self.reversed_on[data["reverses"]] = data["reversed_on"]

    def _count_money(self, kind: str, data: dict[str, Any]) -> None:
        """The JHT balances and the paying accounts' totals, for an event effective on or before `as_of`."""
        sign = CONTRIBUTION_SIGNS.get(kind)
        if sign is not None:
            jht = data["shares"].get("JHT", NO_SHARE)
            self.jht[data["kpj"]] += sign * (jht["employer"] + jht["worker"])
            account = self.accounts[f"npp:{data['npp']}" if data.get("npp") else f"kpj:{data['kpj']}"]
            account["contributions"] += sign * sum(s["employer"] + s["worker"] for s in data["shares"].values())
            account["fines"] += sign * data["fine"]
        elif kind == "YieldCredited":
            self.jht[data["kpj"]] += data["amount"]
        elif kind in CLAIM_SIGNS:
            if data["program"] == "JHT":
                self.jht[data["kpj"]] -= CLAIM_SIGNS[kind] * data["amount"]
            account = self.accounts[f"kpj:{data['kpj']}"]
            account["claims_count"] += CLAIM_SIGNS[kind]
            account["claims_amount"] += CLAIM_SIGNS[kind] * data["amount"]

    def finish(self) -> None:
        """Add the events that waited for their member's enrollment; every event of the topic has been added."""
        waiting, self.waiting = self.waiting, []
        for env in waiting:
            self.add(env)
        if self.waiting:
            env = self.waiting[0]
            raise TopicUnreadable(f"event {env['event_id']} (position {env['position']}): a {env['type']} of member "
                                  f"{env['data'].get('kpj')}, who is never enrolled on the topic")

    def member_balances(self) -> dict[str, int]:
        """Every enrolled member's JHT balance on `as_of` (0 for one without movements)."""
        return {kpj: self.jht.get(kpj, 0) for kpj in self.members}

    def trial_balance(self) -> dict[str, dict[str, int]]:
        """Per branch, every account of the chart (`ledger.books.ACCOUNTS`) and its balance on `as_of`, on the side
        it normally falls on (a debit balance for an asset or expense, a credit balance for a liability, fund or
        income; below zero on the other side), from the recount's own figures and what each account means
        (`ledger.books`, the `fed_by` of each account), never from the journal entries the projection makes:

        - banks: per payer channel (an NPP, a self-paying member's KPJ), money received less money returned and
          refunded (`PayerBooks`), plus payments without a bill (`Books`); money held not matched (a match counts
          from the day the money arrived, `Collections`); claims paid, net of reversals, below zero (`Flows`);
        - receivable and billed: the payers' outstanding bills; unapplied: the payers' unapplied money; suspense:
          the money held not matched; clearing: the payments less their member lines (zero once all are in);
          owed back: the reversed lines of payments without a bill (`Collections`);
        - JHT: the members' JHT balances, by the member's branch; the funds: each program's shares net of reversals
          (`Flows`) less the JKP splits (`Books`), and the splits; fines: the late fines net of reversals;
        - yield: the yields credited; claims: each pooled program's claims, net of reversals.

        Payers count at the branch their events name, members at their enrolment's, the rest at the envelope's."""
        result: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(ACCOUNTS, 0))
        for key, row in self.payers.figures().items():
            books = result[self.payers.branch_of[key]]
            bank = BANK_NPP if key.startswith("npp:") else BANK_KPJ
            books[bank.code] += row["received"] - row["returned"] - row["refunded"]
            books[RECEIVABLE.code] += row["outstanding"]
            books[BILLED.code] += row["outstanding"]
            books[UNAPPLIED.code] += row["unapplied"]
        for branch, figures in self.collections.figures(self.day).items():
            books = result[branch]
            books[BANK_HELD.code] += figures["held"] - figures["held_matched_later"]
            books[SUSPENSE.code] += figures["held"] - figures["held_matched_later"]
            books[OWED_BACK.code] += figures["paid_without_bill_reversed"]
        jkp = self.books.jkp()
        for branch, row in self.books.branches.items():
            books = result[branch]
            books[BANK_NPP.code] += row["paid_npp"]
            books[BANK_KPJ.code] += row["paid_kpj"]
            books[CLEARING.code] += row["settlements"] + row["paid_npp"] + row["paid_kpj"] - row["lines"]
            books[YIELD.code] += row["yields"]
        for branch, money in self.flows.branches.items():
            books = result[branch]
            from_jkk, from_jkm = jkp.get(branch, (0, 0))
            shares = money["contributions"]
            books[JKK_FUND.code] += shares["JKK"]["total"] - from_jkk
            books[JKP_FROM_JKK.code] += from_jkk
            books[JKM_FUND.code] += shares["JKM"]["total"] - from_jkm
            books[JKP_FROM_JKM.code] += from_jkm
            books[JP_FUND.code] += shares["JP"]["total"]
            books[FINES.code] += money["late_fines"]
            books[BANK_BENEFITS.code] -= money["claims_total"]["amount"]
            for program, claims in CLAIMS.items():
                books[claims.code] += money["claims"][program]["amount"]
        for kpj, balance in self.member_balances().items():
            result[self.members[kpj][0]][JHT.code] += balance
        return dict(result)

    @staticmethod
    def unbalanced(books: dict[str, dict[str, int]]) -> list[str]:
        """What cannot be in a trial balance (`trial_balance`): the fund's debits, over every branch, not equal to
        its credits."""
        debit_total = credit_total = 0
        for balances in books.values():
            for code, balance in balances.items():
                signed = balance if ACCOUNTS[code].normal_side == "debit" else -balance
                debit_total, credit_total = debit_total + max(signed, 0), credit_total + max(-signed, 0)
        if debit_total == credit_total:
            return []
        why = f"the trial balance recounted from the topic does not balance: debits {debit_total:,}, credits "
        return [why + f"{credit_total:,}"]

    def account_totals(self) -> dict[str, dict[str, int]]:
        """Every paying account's totals on `as_of`, as `projections.queries.account_totals` answers them."""
        return dict(self.accounts)

    def _active(self, kpj: str, enrolled_on: str) -> bool:
        return employed_on(self.day, enrolled_on, self.exits.get(kpj))  # the write side's rule, on ISO strings

    def _bpu_active(self, kpj: str, enrolled_on: str, threshold: str) -> bool:
        if enrolled_on[:7] > threshold:
            return True  # too recently enrolled to have missed three months
        for event_id, month, paid_on in self.bpu_payments.get(kpj, ()):
            reversed_on = self.reversed_on.get(event_id)
            if month >= threshold and paid_on <= self.day and (reversed_on is None or reversed_on > self.day):
                return True
        return False

    def branch_reports(self) -> dict[str, dict[str, Any]]:
        """Per branch, the figures of `projections.queries.branch_report` on `as_of`, in the same shape."""
        threshold = bpu_threshold_month(self.as_of)
        codes = ({branch for branch, *_ in self.members.values()} | {branch for branch, *_ in self.employers.values()}
                 | set(self.flows.branches))
        reports: dict[str, dict[str, Any]] = {code: {"active_pu_members": 0, "active_employers": 0,
                          "active_employers_by_kind": dict.fromkeys(EMPLOYER_KINDS, 0), "registered_employers": 0,
                          "bpu_members_enrolled": 0, "bpu_members_active": 0} for code in codes}
        active_npps: dict[str, set[str]] = defaultdict(set)
        for kpj, (branch, segment, npp, enrolled_on) in self.members.items():
            if not self._active(kpj, enrolled_on):
                continue
            report = reports[branch]
            if segment == "PU":
                report["active_pu_members"] += 1
                if npp is not None:
                    active_npps[branch].add(npp)
            else:
                report["bpu_members_enrolled"] += 1
                report["bpu_members_active"] += self._bpu_active(kpj, enrolled_on, threshold)
        for branch, npps in active_npps.items():
            reports[branch]["active_employers"] = len(npps)
            for npp in npps:
                kind = self.employers[npp][1] if npp in self.employers else None
                if kind in EMPLOYER_KINDS:
                    reports[branch]["active_employers_by_kind"][kind] += 1
        for branch, _, registered_on in self.employers.values():
            reports[branch]["registered_employers"] += registered_on <= self.day
        collections = self.payers.branch_figures()
        more = self.collections.figures(self.day)
        arrears = self.collections.arrears(self.day)
        for code, report in reports.items():
            money = self.flows.branches.get(code) or _money()
            report.update({key: value for key, value in money.items() if key != "events"})
            figures = dict.fromkeys(COLLECTION_FIGURES, 0)
            figures.update(collections.get(code) or {})
            figures.update(more.get(code) or {})
            report["collections"] = figures
            report["arrears"] = arrears.get(code) or {name: dict.fromkeys(ARREARS_FIGURES, 0)
                                                      for name in (*(b[0] for b in ARREARS_BUCKETS), "total")}
        return reports


# The branch figures compared, as paths into `branch_report`'s answer.
BRANCH_FIELDS = (
    "active_pu_members", "active_employers", "active_employers_by_kind.company",
    "active_employers_by_kind.government", "registered_employers", "bpu_members_enrolled", "bpu_members_active",
    *(f"contributions.{p}.{side}" for p in PROGRAMS for side in ("employer", "worker", "total")),
    "contributions_total", "late_fines",
    *(f"claims.{p}.{what}" for p in PROGRAMS for what in ("count", "amount")),
    "claims_total.count", "claims_total.amount",
)


COLLECTION_PATHS = tuple(f"collections.{name}" for name in COLLECTION_FIGURES)
ARREARS_PATHS = tuple(f"arrears.{bucket}.{name}" for bucket in (*(b[0] for b in ARREARS_BUCKETS), "total")
                      for name in ARREARS_FIGURES)


def arrears_figures(answer: dict[str, Any]) -> dict[str, dict[str, int]]:
    """`ledger report arrears`'s answer (`projections.queries.arrears`) in the recount's shape: per bucket and in
    total, bills, amount, fine and total."""
    rows = {bucket["bucket"]: {name: bucket[name] for name in ARREARS_FIGURES} for bucket in answer["buckets"]}
    rows["total"] = {name: answer["totals"][name] for name in ARREARS_FIGURES}
    return rows


def _field(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


# --- as-of: the topic's figures against the projections' answers ---------------------------------------------------

DIFFERENCES_KEPT_MAX = 10_000  # listed; every difference is counted
MEMBER_SPOT_CHECKS = 100  # members also asked one by one (`member_balance`), to check the bulk query against the API


@dataclass
class Difference:
    subject: str  # "member 17100000001" or "branch BEKASI-KOTA"
    field: str
    topic: Any  # None: the topic does not know the member or branch
    projection: Any  # None: the projection does not know it

    def __str__(self) -> str:
        def shown(value: Any) -> str:
            return "absent" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
        return f"{self.subject}: {self.field}: topic {shown(self.topic)}, projection {shown(self.projection)}"

    def as_dict(self) -> dict[str, Any]:
        return {"subject": self.subject, "field": self.field, "topic": self.topic, "projection": self.projection}


@dataclass
class AsOfReport:
    as_of: str
    topic: str
    events: int = 0
    members: int = 0
    branches: int = 0
    accounts: int = 0
    differences_found: int = 0
    differences: list[Difference] = field(default_factory=list)
    projection_events: dict[str, int | None] = field(default_factory=dict)
    # Collections per payer, recounted from the topic (`PayerBooks`), their totals, and what cannot be in them.
    payers: dict[str, dict[str, int]] = field(default_factory=dict)
    payer_totals: dict[str, int] = field(default_factory=dict)
    payer_problems: list[str] = field(default_factory=list)
    # The trial balance recounted from the topic (`Recount.trial_balance`): per branch, the accounts not at zero; the
    # number of branches compared with the general ledger's; and what cannot be in it (`Recount.unbalanced`).
    books: dict[str, dict[str, int]] = field(default_factory=dict)
    trial_balances: int = 0
    books_problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.differences_found == 0 and not self.payer_problems and not self.books_problems

    def add(self, difference: Difference) -> None:
        self.differences_found += 1
        if len(self.differences) < DIFFERENCES_KEPT_MAX:
            self.differences.append(difference)

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "topic": self.topic, "events": self.events, "members": self.members,
                "branches": self.branches, "accounts": self.accounts, "projection_events": self.projection_events,
                "ok": self.ok, "differences_found": self.differences_found,
                "differences": [difference.as_dict() for difference in self.differences],
                "collections": {"payers": self.payers, "totals": self.payer_totals, "problems": self.payer_problems},
                "books": {"branches": self.books, "trial_balances": self.trial_balances,
                          "problems": self.books_problems}}


def compare_as_of(recount: Recount, store: ViewStore, topic: str) -> AsOfReport:
    """Compare the recount with the projections' answers in `store`.

    Raises `ledger.errors.NotProjected` when a projection has not been built (the collections' figures are compared
    only when that one is).
    """
    report = AsOfReport(as_of=recount.day, topic=topic, events=recount.events)
    report.payers = recount.payers.figures()
    report.payer_totals = PayerBooks.totals(report.payers)
    report.payer_problems = PayerBooks.check(report.payers)
    _compare_members(recount, store, report)
    _compare_accounts(recount, store, report)
    _compare_branches(recount, store, report)
    _compare_books(recount, store, report)
    with store.reading() as tx:
        for name in ("balances", "branches", "collections", "general_ledger"):
            version = ViewStore.live_version(tx, name)
            if version is None and name == "collections":
                continue  # not built: its figures are not compared (above)
            offsets = ViewStore.offsets(tx, name, version) if version is not None else {}
            report.projection_events[name] = sum(events for (where, _), (_, events, _) in offsets.items()
                                                 if where == topic) if version is not None else None
    return report


def _compare_members(recount: Recount, store: ViewStore, report: AsOfReport) -> None:
    topic_balances = recount.member_balances()
    projected = queries.jht_balances(store, recount.as_of)
    kpjs = sorted(topic_balances.keys() | projected.keys())
    report.members = len(kpjs)
    for kpj in kpjs:
        if topic_balances.get(kpj) != projected.get(kpj):
            report.add(Difference(f"member {kpj}", "jht_balance", topic_balances.get(kpj), projected.get(kpj)))
    # The bulk query is this tool's own; a spread of members is also asked the way `ledger balance` asks.
    known = sorted(topic_balances)
    for kpj in known[::max(1, len(known) // MEMBER_SPOT_CHECKS)][:MEMBER_SPOT_CHECKS]:
        try:
            answer = queries.member_balance(store, kpj, recount.as_of)["jht_balance"]
        except NotFound:
            answer = None
        if answer != topic_balances[kpj] and projected.get(kpj) == topic_balances[kpj]:
            report.add(Difference(f"member {kpj}", "jht_balance (member_balance)", topic_balances[kpj], answer))


def _compare_accounts(recount: Recount, store: ViewStore, report: AsOfReport) -> None:
    topic_accounts, projected_accounts = recount.account_totals(), queries.account_totals(store, recount.as_of)
    for account in sorted(topic_accounts.keys() | projected_accounts.keys()):
        ours, theirs = topic_accounts.get(account), projected_accounts.get(account)
        if ours is None or theirs is None:
            # An account known on one side only: every figure the other side lacks is a difference, unless all zero.
            known = ours or theirs or {}
            if any(known.values()):
                for name in queries.ACCOUNT_FIELDS:
                    report.add(Difference(f"account {account}", name, ours and ours[name], theirs and theirs[name]))
            continue
        for name in queries.ACCOUNT_FIELDS:
            if ours[name] != theirs[name]:
                report.add(Difference(f"account {account}", name, ours[name], theirs[name]))
    report.accounts = len(topic_accounts.keys() | projected_accounts.keys())


def _compare_branches(recount: Recount, store: ViewStore, report: AsOfReport) -> None:
    topic_reports = recount.branch_reports()
    codes = sorted(topic_reports.keys() | set(queries.branch_codes(store)))
    report.branches = len(codes)
    for code in codes:
        try:
            answer = queries.branch_report(store, code, recount.as_of)
        except NotFound:
            answer = None
        ours = topic_reports.get(code)
        if ours is None or answer is None:
            report.add(Difference(f"branch {code}", "branch", "known" if ours else None, "known" if answer else None))
            continue
        # The collection figures and arrears aging when the collections projection is built (`None` in the answer
        # otherwise).
        paths = BRANCH_FIELDS
        if answer.get("collections") is not None:
            paths += COLLECTION_PATHS + ARREARS_PATHS
            answer = {**answer, "arrears": arrears_figures(queries.arrears(store, code, recount.as_of))}
        for path in paths:
            if _field(ours, path) != _field(answer, path):
                report.add(Difference(f"branch {code}", path, _field(ours, path), _field(answer, path)))


def ledger_field(code: str) -> str:
    """How a difference names a general-ledger account: `books.2200 (jht)`."""
    known = ACCOUNTS.get(code)
    return f"books.{code} ({known.slug})" if known else f"books.{code}"


def _compare_books(recount: Recount, store: ViewStore, report: AsOfReport) -> None:
    """The recounted trial balance against the live general ledger's, per branch and account, both on the account's
    normal side (`Recount.trial_balance`); an account without a leg is at zero."""
    ours = recount.trial_balance()
    report.books = {branch: {code: balance for code, balance in sorted(balances.items()) if balance}
                    for branch, balances in sorted(ours.items())}
    report.books_problems = Recount.unbalanced(ours)
    theirs: dict[str, dict[str, int]] = {}
    for branch, balances in queries.ledger_balances(store, recount.as_of).items():
        theirs[branch] = {code: balance if code not in ACCOUNTS or ACCOUNTS[code].normal_side == "debit"
                          else -balance for code, balance in balances.items()}
    branches = sorted(ours.keys() | theirs.keys())
    report.trial_balances = len(branches)
    for branch in branches:
        mine, projected = ours.get(branch, {}), theirs.get(branch, {})
        for code in sorted(mine.keys() | projected.keys()):
            if mine.get(code, 0) != projected.get(code, 0):
                report.add(Difference(f"branch {branch}", ledger_field(code), mine.get(code, 0),
                                      projected.get(code, 0)))


def as_of_topic(kafka: KafkaConnection, topic: str, store: ViewStore, as_of: date) -> AsOfReport:
    recount = Recount(as_of)
    for _, env in read_topic(kafka, topic):
        recount.add(env)
    recount.finish()
    return compare_as_of(recount, store, topic)
