"""The fund's books in double entry: the chart of accounts, as dated data beside the rules, and the journal entry each
published event makes (`entry_legs`). The general-ledger projection (`projections.general_ledger`) keeps them; the
auditor's recount (`ledger.audit.recount`) computes a trial balance another way and compares (docs/books.md).

Every entry balances: its debits equal its credits, in whole rupiah. A leg is (account code, program, amount), the
amount positive for a debit and negative for a credit; the projection tags every leg with the event's branch and,
where there is one, its member (KPJ) and employer or paying body (NPP).

Why the accounts are these:
- A bill is a receivable the day it counts from, against "contributions billed, not yet paid" (a deferred account):
  a member's JHT balance and the branch's program totals grow when a contribution is paid, never when it is billed,
  so a bill cannot credit the funds.
- Money received is the payer's credit (unapplied receipts) until the money application rule settles a bill with it.
- A payment (a bill's settlement, or a payment without a bill) goes through a clearing account that its member lines
  empty: the payment is one event, its lines are others (other aggregates), and the clearing account nets to zero
  per payment once all its lines are in. Each line credits the JHT balance of its member, the pooled funds (the JKP
  share recomposed out of JKK and JKM to the JKP fund) and the late-fine income.
- A reversed line gives its money back to the payer's side: to the payer's credit when its bill's settlement is
  reversed (the `SettlementReversed` moves it there), owed back otherwise (a payment without a bill reversed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from ledger.rules import LEDGER_EPOCH, Period, Table, in_force

NO_PROGRAM = "-"  # the program of a leg that belongs to no program: money of a payment or bill as a whole, fines

# Account types, and the side their balance normally falls on.
NORMAL_SIDE = {"asset": "debit", "expense": "debit", "liability": "credit", "fund": "credit", "income": "credit"}


@dataclass(frozen=True)
class Account:
    code: str
    slug: str  # accepted wherever a code is: `ledger books journal --account jht`
    name: str
    kind: str  # a key of NORMAL_SIDE
    program: str  # the program its legs carry, or NO_PROGRAM
    fed_by: str  # what posts to it: the rule or event, for the documentation and `ledger books chart`

    @property
    def normal_side(self) -> str:
        return NORMAL_SIDE[self.kind]


BANK_NPP = Account("1110", "bank-npp", "Bank: money from employers and paying bodies", "asset", NO_PROGRAM,
                   "money received from a payer by NPP (MoneyReceived, ContributionPaymentReceived); refunds and "
                   "money returned to such a payer")
BANK_KPJ = Account("1120", "bank-kpj", "Bank: money from self-paying members", "asset", NO_PROGRAM,
                   "money received from a BPU member paying for themself, by KPJ; refunds and returns to them")
BANK_HELD = Account("1130", "bank-unidentified", "Bank: credits not yet identified", "asset", NO_PROGRAM,
                    "a bank credit naming no known payer (MoneyUnidentified), until matched (MoneyIdentified)")
BANK_BENEFITS = Account("1190", "bank-benefits", "Bank: benefits paid out", "asset", NO_PROGRAM,
                        "claims paid (ClaimPaid) and reversed (ClaimReversed); funded by the treasury, outside "
                        "these books, so its balance is below zero")
RECEIVABLE = Account("1200", "receivable", "Contributions receivable: bills outstanding", "asset", NO_PROGRAM,
                     "a bill from the day it counts from (BillClosed), until settled (BillSettled); again when a "
                     "settlement is reversed (SettlementReversed)")
UNAPPLIED = Account("2100", "unapplied", "Unapplied receipts: payers' credit", "liability", NO_PROGRAM,
                    "money received (MoneyReceived), less money applied to bills (BillSettled), refunded "
                    "(MoneyRefunded) and returned (ReceiptReturned); a reversed settlement's money back")
SUSPENSE = Account("2150", "suspense", "Money held until matched", "liability", NO_PROGRAM,
                   "a bank credit naming no known payer (MoneyUnidentified), until matched (MoneyIdentified)")
CLEARING = Account("2190", "clearing", "Payments awaiting their member lines", "liability", NO_PROGRAM,
                   "a payment (BillSettled, ContributionPaymentReceived) credits it; its member lines "
                   "(ContributionPaid, ContributionAdjusted) debit it: zero for every payment once its lines are in")
JHT = Account("2200", "jht", "JHT: members' balances", "liability", "JHT",
              "the JHT shares of contributions (ContributionPaid, ContributionAdjusted, less ContributionReversed), "
              "yield credited (YieldCredited), less JHT claims (ClaimPaid, less ClaimReversed)")
BILLED = Account("2300", "billed", "Contributions billed, not yet paid", "liability", NO_PROGRAM,
                 "the other side of the receivable: a bill (BillClosed) until settled (BillSettled)")
OWED_BACK = Account("2400", "owed-back", "Reversed contributions owed back to payers", "liability", NO_PROGRAM,
                    "a reversed contribution line (ContributionReversed); moved to the payer's credit when it was "
                    "a bill's (SettlementReversed); what stays is owed for payments without a bill")
JKK_FUND = Account("3100", "jkk-fund", "JKK fund", "fund", "JKK",
                   "the JKK shares of contributions, less the JKP share recomposed out of them")
JKM_FUND = Account("3200", "jkm-fund", "JKM fund", "fund", "JKM",
                   "the JKM shares of contributions, less the JKP share recomposed out of them (Feb 2021 - Jan 2025)")
JP_FUND = Account("3300", "jp-fund", "JP fund", "fund", "JP", "the JP shares of contributions (not the JP deferred "
                  "by the 2020 relief, which is not paid)")
JKP_FROM_JKK = Account("3410", "jkp-from-jkk", "JKP fund: share recomposed from JKK", "fund", "JKK",
                       "the part of each JKK share the rules credit to JKP (rules.JKP_FROM_JKK_RATE), from Feb 2021")
JKP_FROM_JKM = Account("3420", "jkp-from-jkm", "JKP fund: share recomposed from JKM", "fund", "JKM",
                       "the part of each JKM share the rules credit to JKP (rules.JKP_FROM_JKM_RATE), Feb 2021 - "
                       "Jan 2025")
FINES = Account("4100", "fines", "Late fines", "income", NO_PROGRAM,
                "the late fine of each contribution line (ContributionPaid, ContributionAdjusted, less reversed)")
YIELD = Account("5100", "yield", "JHT yield credited", "expense", "JHT",
                "the yearly JHT development credited to members (YieldCredited)")
CLAIMS = {program: Account(code, f"claims-{program.lower()}", f"Claims paid: {program}", "expense", program,
                           f"{program} claims paid (ClaimPaid), less reversed (ClaimReversed)")
          for program, code in (("JKK", "5200"), ("JKM", "5300"), ("JP", "5400"))}

# The chart as dated data: the accounts open on a date (a `rules.Table`, looked up with `chart`). The JKP fund's
# accounts open with the JKP recomposition (domain.md, Feb 2021). An account stays in the chart once opened: late
# payments of earlier months still post to it.
JKP_START = date(2021, 2, 1)
_BEFORE_JKP = (BANK_NPP, BANK_KPJ, BANK_HELD, BANK_BENEFITS, RECEIVABLE, UNAPPLIED, SUSPENSE, CLEARING, JHT, BILLED,
               OWED_BACK, JKK_FUND, JKM_FUND, JP_FUND, FINES, YIELD, *CLAIMS.values())
CHART: Table[tuple[Account, ...]] = Table("chart of accounts", (
    Period(LEDGER_EPOCH, JKP_START, _BEFORE_JKP),
    Period(JKP_START, None, tuple(sorted((*_BEFORE_JKP, JKP_FROM_JKK, JKP_FROM_JKM), key=lambda a: a.code))),
))
ACCOUNTS: dict[str, Account] = {a.code: a for period in CHART.periods for a in period.value}
BY_SLUG: dict[str, Account] = {a.slug: a for a in ACCOUNTS.values()}


def chart(on: date) -> tuple[Account, ...]:
    """The accounts open on `on` (before the ledger's first day: the first chart)."""
    return in_force(CHART, max(on, LEDGER_EPOCH))


def account(text: str) -> Account:
    """An account by its code or its slug; ValueError naming the choices otherwise."""
    found = ACCOUNTS.get(text.strip()) or BY_SLUG.get(text.strip().lower())
    if found is None:
        raise ValueError(f"unknown account {text!r}: give a code or a name of `ledger books chart` "
                         f"({', '.join(sorted(ACCOUNTS))})")
    return found


Leg = tuple[str, str, int]  # (account code, program, amount: + debit, - credit)

# The contribution events, and their sign: a payment and an adjustment credit the funds, a reversal debits them.
CONTRIBUTION_SIGNS = {"ContributionPaid": 1, "ContributionAdjusted": 1, "ContributionReversed": -1}


def share(data: dict[str, Any], program: str) -> int:
    s = data["shares"].get(program)
    return s["employer"] + s["worker"] if s else 0


def contribution_legs(data: dict[str, Any], sign: int, jkp_from_jkk: int, jkp_from_jkm: int) -> list[Leg]:
    """A contribution line's entry: the payment's clearing account (a reversal: owed back) against the member's JHT,
    the funds and the fine. The JKP splits are parts of the JKK and JKM shares; a reversal's are its payment's
    (`ContributionReversed` does not carry them: the projection looks them up)."""
    jkk, jkm = share(data, "JKK"), share(data, "JKM")
    funded = [(JHT.code, "JHT", share(data, "JHT")), (JKK_FUND.code, "JKK", jkk - jkp_from_jkk),
               (JKP_FROM_JKK.code, "JKK", jkp_from_jkk), (JKM_FUND.code, "JKM", jkm - jkp_from_jkm),
               (JKP_FROM_JKM.code, "JKM", jkp_from_jkm), (JP_FUND.code, "JP", share(data, "JP")),
               (FINES.code, NO_PROGRAM, data["fine"])]
    payer = CLEARING.code if sign > 0 else OWED_BACK.code
    legs: list[Leg] = [(payer, NO_PROGRAM, sign * data["total"])]
    legs += [(code, program, -sign * amount) for code, program, amount in funded if amount]
    return legs


def payer_bank(data: dict[str, Any]) -> str:
    """The bank account of a payer's money: by NPP (an employer or paying body) or by KPJ (a self-paying member)."""
    return BANK_NPP.code if data.get("npp") else BANK_KPJ.code


def _pair(debit: str, credit: str, amount: int) -> list[Leg]:
    return [(debit, NO_PROGRAM, amount), (credit, NO_PROGRAM, -amount)]


def _claim(data: dict[str, Any], sign: int) -> list[Leg]:
    # A JHT claim pays a member's own balance out; the pooled programs' claims are the funds' expenses.
    program = data["program"]
    charged = JHT.code if program == "JHT" else CLAIMS[program].code
    return [(charged, program, sign * data["amount"]), (BANK_BENEFITS.code, program, -sign * data["amount"])]


def _settled(data: dict[str, Any]) -> list[Leg]:
    return [(UNAPPLIED.code, NO_PROGRAM, data["total"]), (BILLED.code, NO_PROGRAM, data["amount"]),
            (RECEIVABLE.code, NO_PROGRAM, -data["amount"]), (CLEARING.code, NO_PROGRAM, -data["total"])]


def _settlement_reversed(data: dict[str, Any]) -> list[Leg]:
    # The bill is open again; the money its lines' reversals owe back goes to the payer's credit.
    return [(RECEIVABLE.code, NO_PROGRAM, data["amount"]), (OWED_BACK.code, NO_PROGRAM, data["total"]),
            (BILLED.code, NO_PROGRAM, -data["amount"]), (UNAPPLIED.code, NO_PROGRAM, -data["total"])]


# Event type -> its entry's legs, for every type but the contribution lines (`contribution_legs`). A type not here
# and not a contribution line makes no entry (enrollments, wage changes, exits, employers, a bill's member lines:
# the receivable is the bill's total, in `BillClosed`).
LEGS: dict[str, Callable[[dict[str, Any]], list[Leg]]] = {
    "BillClosed": lambda d: _pair(RECEIVABLE.code, BILLED.code, d["total"]),
    "BillSettled": _settled,
    "SettlementReversed": _settlement_reversed,
    "MoneyReceived": lambda d: _pair(payer_bank(d), UNAPPLIED.code, d["amount"]),
    "MoneyRefunded": lambda d: _pair(UNAPPLIED.code, payer_bank(d), d["amount"]),
    "ReceiptReturned": lambda d: _pair(UNAPPLIED.code, payer_bank(d), d["amount"]),
    "MoneyUnidentified": lambda d: _pair(BANK_HELD.code, SUSPENSE.code, d["amount"]),
    # Booked on the day the money arrived (the projection dates it so): its `MoneyReceived` is dated that day too,
    # so on no date is the same money both held and the payer's, nor in two bank accounts.
    "MoneyIdentified": lambda d: _pair(SUSPENSE.code, BANK_HELD.code, d["amount"]),
    "ContributionPaymentReceived": lambda d: _pair(payer_bank(d), CLEARING.code, d["total"]),
    "YieldCredited": lambda d: [(YIELD.code, "JHT", d["amount"]), (JHT.code, "JHT", -d["amount"])],
    "ClaimPaid": lambda d: _claim(d, 1),
    "ClaimReversed": lambda d: _claim(d, -1),
}

POSTING_TYPES = frozenset(LEGS) | frozenset(CONTRIBUTION_SIGNS)


def entry_reference(event_type: str, data: dict[str, Any]) -> str | None:
    """What an entry's clearing or receivable legs belong to: the payment or bill, or the bank reference."""
    if event_type in {"ContributionPaid", "ContributionAdjusted", "ContributionPaymentReceived"}:
        return str(data["payment_id"])
    if event_type in {"BillClosed", "BillSettled", "SettlementReversed"}:
        return str(data["bill_id"])
    if event_type == "ContributionReversed":
        return str(data["reverses"])
    return data.get("reference") or data.get("refund_id") or data.get("claim_id")
