"""How results read to a person: the lines `ledger` prints and the demo shows.

Below both the command line and the demo, so that neither imports the other."""

from collections.abc import Callable
from typing import Any

from ledger.commands import (
    ChangeRiskClass,
    ChangeWage,
    CreditYield,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    PayClaim,
    PayContribution,
    RegisterEmployer,
    Reverse,
)


def rupiah(amount: int) -> str:
    return f"-Rp{-amount:,}" if amount < 0 else f"Rp{amount:,}"


def _describe_payment(result: dict[str, Any]) -> str:
    totals = ", ".join(f"{program} {rupiah(amount)}" for program, amount in result["program_totals"].items())
    fine = f", fine {rupiah(result['fine'])}" if result["fine"] else ""
    return (f"payment {result['payment_id']} by {result['payer']}: {result['members']:,} member(s), "
            f"{result['lines']:,} line(s), months {', '.join(result['months'])}; {totals}{fine}; "
            f"total {rupiah(result['total'])}" + (f" (event {result['event_id']})" if "event_id" in result else ""))


def _describe_claim(result: dict[str, Any]) -> str:
    statutory = result["statutory_amount"]
    differs = f" (statutory {rupiah(statutory)})" if statutory is not None and statutory != result["amount"] else ""
    return (f"paid {rupiah(result['amount'])}{differs} from {result['program']} ({result['kind']}) to "
            f"{'the member' if result['beneficiary'] == 'self' else 'the ' + result['beneficiary']} for member "
            f"{result['kpj']} (event {result['event_id']})")


def _describe_enrollment(result: dict[str, Any]) -> str:
    who = f"member {result['kpj']}" if "kpj" in result else f"{result['enrolled']:,} members"
    employer = f" with employer {result['npp']}" if result["npp"] else ""
    return f"enrolled {who}{employer} at branch {result['branch']} from {result['effective']}"


def _describe_reversal(result: dict[str, Any]) -> str:
    text = f"reversed {result['type']} {result['reverses']}: {rupiah(result['amount'])} (event {result['event_id']})"
    if "lines_reversed" in result:
        text += f"; {result['lines_reversed']:,} contribution line(s) reversed"
        if result.get("lines_already_reversed"):
            text += f" ({result['lines_already_reversed']:,} were reversed before)"
    if "unapplied" in result:
        text += f"; the payer's unapplied money is now {rupiah(result['unapplied'])}"
    return text


# One line per kind of result, keyed by command name: shared by the single commands and `submit`.
SUMMARIES: dict[str, Callable[[dict[str, Any]], str]] = {
    RegisterEmployer.NAME: lambda r: f"registered employer {r['npp']} (event {r['event_id']})",
    ChangeRiskClass.NAME: lambda r: f"changed the risk class of employer {r['npp']} (event {r['event_id']})",
    EnrollMember.NAME: _describe_enrollment,
    EnrollMembers.NAME: _describe_enrollment,
    ChangeWage.NAME: lambda r: f"wage of member {r['kpj']} is now {rupiah(r['wage'])} (event {r['event_id']})",
    ExitMember.NAME: lambda r: f"member {r['kpj']} exited: {r['reason']} (event {r['event_id']})",
    PayContribution.NAME: _describe_payment,
    CreditYield.NAME: lambda r: (f"credited the {r['year']} yield at {r['rate_percent']}% to {r['members']:,} "
                                 f"member(s): {rupiah(r['total'])}"),
    PayClaim.NAME: _describe_claim,
    Reverse.NAME: _describe_reversal,
}


def describe(result: dict[str, Any]) -> str:
    text = SUMMARIES[result["command"]](result)
    if result.get("repeated"):
        text += f" -- repeated command id {result['command_id']}: this is the first result; nothing was written"
    return text


TIMELINE_FACTS = ("month", "months", "program", "kind", "reason", "risk_class", "year", "rate", "beneficiary",
                  "reverses")
TIMELINE_AMOUNTS = ("wage", "amount", "fine", "total")


def timeline_line(row: dict[str, Any]) -> str:
    data = row["data"]
    facts = [f"{key} {','.join(data[key]) if isinstance(data[key], list) else data[key]}"
             for key in TIMELINE_FACTS if data.get(key) is not None]
    if "kpjs" in data:
        facts.append(f"members {len(data['kpjs']):,}")
    facts += [f"{key} {rupiah(data[key])}" for key in TIMELINE_AMOUNTS if data.get(key)]
    return f"{row['effective_date']}  {row['type']:<27} {row['event_id']}  {', '.join(facts)}".rstrip()


def balance_lines(result: dict[str, Any]) -> list[str]:
    """A member's balance (and history, if asked) as `ledger balance` prints it."""
    lines = [f"JHT balance of member {result['kpj']} on {result['as_of']}: {rupiah(result['jht_balance'])}",
             f"  {result['segment']} member of branch {result['branch']}, employer {result['npp'] or '-'}, enrolled "
             f"{result['enrolled_on']}" + (f", exited {result['exited_on']} ({result['exit_reason']})"
                                           if result["exited_on"] else ""),
             f"  {'program':<8}{'employer':>16}{'worker':>16}{'yield':>14}{'claims':>18}"]
    for program, row in result["programs"].items():
        lines.append(f"  {program:<8}{rupiah(row['employer']):>16}{rupiah(row['worker']):>16}"
                     f"{rupiah(row['yield']):>14}{rupiah(row['claims']):>18}")
    for row in result.get("history", []):
        amount = row["claim"] if row["claim_program"] else row["contributions"] + row["yield"]
        what = f"{row['kind']} {row['month'] or row['claim_program'] or ''}".strip()
        lines.append(f"  {row['date']}  {what:<28}{rupiah(amount):>16}   JHT {rupiah(row['jht_balance'])}")
    return lines


def branch_report_lines(report: dict[str, Any]) -> list[str]:
    """The branch report as `ledger report branch` prints it."""
    kinds = report["active_employers_by_kind"]
    lines = [f"Branch {report['branch']}, up to {report['as_of']}",
             f"  active PU (wage-earner) members   {report['active_pu_members']:>12,}",
             (f"  active employers                  {report['active_employers']:>12,}  (companies "
              f"{kinds['company']:,}, government bodies {kinds['government']:,}; registered "
              f"{report['registered_employers']:,})"),
             (f"  active BPU (informal) members     {report['bpu_members_active']:>12,}  "
              f"(enrolled {report['bpu_members_enrolled']:,})"),
             f"  {'program':<8}{'contributions':>22}{'claims':>10}{'claims paid':>22}"]
    for program in report["contributions"]:
        claims = report["claims"][program]
        lines.append(f"  {program:<8}{rupiah(report['contributions'][program]['total']):>22}{claims['count']:>10,}"
                     f"{rupiah(claims['amount']):>22}")
    total = report["claims_total"]
    lines.append(f"  {'total':<8}{rupiah(report['contributions_total']):>22}{total['count']:>10,}"
                 f"{rupiah(total['amount']):>22}")
    lines.append(f"  late fines {rupiah(report['late_fines'])}")
    if report["months"]:
        lines.append("  by contribution month: " + ", ".join(f"{m['month']} {rupiah(m['total'])}"
                                                           for m in report["months"]))
    collections = report.get("collections")
    if collections is not None:
        c = collections
        lines.append(f"  collections: billed {rupiah(c['billed'])} = settled {rupiah(c['settled'])} + outstanding "
                     f"{rupiah(c['outstanding'])}")
        lines.append(f"  money: received {rupiah(c['received'])} = applied {rupiah(c['applied'])} (fines "
                     f"{rupiah(c['fines_applied'])}) + unapplied {rupiah(c['unapplied'])} + refunded "
                     f"{rupiah(c['refunded'])} (returned as bank errors {rupiah(c['returned'])})")
        later = f", {rupiah(c['held_matched_later'])} of it matched since" if c["held_matched_later"] else ""
        lines.append(f"  held until matched: {rupiah(c['held'])} in {c['held_count']:,} credit(s){later}")
        lines.append(f"  paid without a bill: {c['paid_without_bill_count']:,} payment(s), "
                     f"{rupiah(c['paid_without_bill'])} net of {rupiah(c['paid_without_bill_reversed'])} reversed")
    return lines


def arrears_lines(report: dict[str, Any]) -> list[str]:
    """The arrears report as `ledger report arrears` prints it: one line per payer, one per bill below it, then the
    aging buckets and the branch's totals."""
    head = f"  {'payer / bill':<34}{'overdue':>10}{'amount':>18}{'fine':>14}{'total':>18}"
    lines = [f"Arrears of branch {report['branch']} on {report['as_of']}: bills unpaid after their due date", head]
    for payer in report["payers"]:
        who = f"employer {payer['npp']}" if payer["npp"] else f"member {payer['kpj']}"
        credit = f"  credit {rupiah(payer['credit'])}" if payer["credit"] else ""
        lines.append(f"  {who:<34}{_months(payer['months_overdue']):>10}{rupiah(payer['amount']):>18}"
                     f"{rupiah(payer['fine']):>14}{rupiah(payer['total']):>18}{credit}")
        for bill in payer["bills"]:
            label = f"{bill['month']} {bill['segment']} due {bill['due_date']}"
            lines.append(f"    {label:<32}{_months(bill['months_overdue']):>10}{rupiah(bill['amount']):>18}"
                         f"{rupiah(bill['fine']):>14}{rupiah(bill['total']):>18}  code {bill['payment_code']}")
    totals = report["totals"]
    if not report["payers"]:
        lines.append("  no bill is overdue")
    lines.append("  by months overdue:")
    for bucket in report["buckets"]:
        label = f"{bucket['bucket']} month{'' if bucket['bucket'] == '1' else 's'}: {bucket['bills']:,} bill(s)"
        lines.append(f"    {label:<32}{'':>10}{rupiah(bucket['amount']):>18}{rupiah(bucket['fine']):>14}"
                     f"{rupiah(bucket['total']):>18}")
    label = (f"total: {totals['payers']:,} payer(s) ({totals['employers']:,} employer(s), {totals['members']:,} "
             f"member(s)), {totals['bills']:,} bill(s)")
    lines.append(f"  {label}")
    lines.append(f"  {'':<34}{'':>10}{rupiah(totals['amount']):>18}{rupiah(totals['fine']):>14}"
                 f"{rupiah(totals['total']):>18}")
    if totals["held_count"]:
        lines.append(f"  held until matched at the branch: {rupiah(totals['held'])} in {totals['held_count']:,} "
                     f"credit(s), naming no known payer (ledger payment unmatched)")
    return lines


def _months(months: int) -> str:
    return f"{months} mo"


PAYER_COLUMNS = ("bills_open", "billed", "settled", "fines", "outstanding", "received", "returned", "refunded",
                 "unapplied")


def payer_books_lines(collections: dict[str, Any], shown_max: int) -> list[str]:
    """The collections part of `ledger audit as-of`: the totals, then one line per payer (at most `shown_max`)."""
    totals, payers = collections["totals"], collections["payers"]
    if not payers:
        return ["collections recounted from the topic: no bills and no money"]
    summary = (f"collections recounted from the topic: {len(payers):,} payer(s), {totals['bills']:,} bill(s) "
               f"({totals['bills_open']:,} open); billed {rupiah(totals['billed'])}, settled "
               f"{rupiah(totals['settled'])} with fines {rupiah(totals['fines'])}, outstanding "
               f"{rupiah(totals['outstanding'])}; received {rupiah(totals['received'])}, returned "
               f"{rupiah(totals['returned'])}, applied {rupiah(totals['applied'])}, refunded "
               f"{rupiah(totals['refunded'])}, unapplied {rupiah(totals['unapplied'])}")
    header = f"  {'payer':<16}{'open':>5}" + "".join(f"{name:>15}" for name in PAYER_COLUMNS[1:])
    lines = [summary, header]
    for key, row in list(payers.items())[:shown_max]:
        lines.append(f"  {key:<16}{row['bills_open']:>5,}" + "".join(f"{rupiah(row[name]):>15}"
                                                                   for name in PAYER_COLUMNS[1:]))
    if len(payers) > shown_max:
        lines.append(f"  ... and {len(payers) - shown_max:,} more payer(s) (--json lists them all)")
    lines.extend(f"  problem: {problem}" for problem in collections["problems"])
    return lines


# --- the books (`ledger books`, and the demo) ---------------------------------------------------------------------

NAME_WIDTH = 46  # the account names of the tables (the chart's longest is 44 characters)
AMOUNT_WIDTH = 20  # a rupiah column: up to hundreds of trillions with separators


def amount_cell(amount: int) -> str:
    return rupiah(amount) if amount else ""


def whose_books(branch: str | None) -> str:
    return f"branch {branch}" if branch else "the fund"


def trial_balance_lines(report: dict[str, Any]) -> list[str]:
    """The trial balance as `ledger books trial-balance` prints it: one line per account with its balance in the
    debit or the credit column, the columns' totals, and whether they balance."""
    lines = [f"Trial balance of {whose_books(report['branch'])} on {report['as_of']}",
             f"  {'code':<6}{'account':<{NAME_WIDTH}}{'debit':>{AMOUNT_WIDTH}}{'credit':>{AMOUNT_WIDTH}}"]
    lines += [f"  {row['code']:<6}{row['name']:<{NAME_WIDTH}}{amount_cell(row['debit']):>{AMOUNT_WIDTH}}"
              f"{amount_cell(row['credit']):>{AMOUNT_WIDTH}}" for row in report["accounts"]]
    totals = report["totals"]
    lines.append(f"  {'total':<{6 + NAME_WIDTH}}{rupiah(totals['debit']):>{AMOUNT_WIDTH}}"
                 f"{rupiah(totals['credit']):>{AMOUNT_WIDTH}}")
    difference = report["difference"]
    if report["balanced"]:
        lines.append(f"  balanced: debits equal credits, {rupiah(totals['debit'])}")
    else:
        side = "debits exceed credits" if difference > 0 else "credits exceed debits"
        lines.append(f"  NOT balanced: {side} by {rupiah(abs(difference))}")
    return lines


def check_lines(result: dict[str, Any]) -> list[str]:
    """One line per check ("ok", or what differs, by how much, and the event), then the verdict."""
    lines = []
    for check in result["checks"]:
        where = check["branch"] or "all branches"
        if check["ledger"] is None:  # the invariants: no figure to compare
            figures = ""
        elif check["ok"]:
            figures = f": {rupiah(check['ledger'])}"
        else:
            figures = (f": ledger {rupiah(check['ledger'])}, {check['against']} {rupiah(check['other'])}, differs by "
                       f"{rupiah(check['difference'])}")
        if check["ok"]:
            lines.append(f"ok    {where}: {check['check']}{figures}")
        else:
            problem = f"; {check['problem']}" if check["problem"] else ""
            lines.append(f"FAIL  {where}: {check['check']}{figures}{problem} (event {check['event_id'] or 'unknown'})")
    total = len(result["checks"])
    if result["ok"]:
        lines.append(f"the books balance and tie as of {result['as_of']}: all {total} checks hold")
    else:
        lines.append(f"the books do not tie as of {result['as_of']}: {result['failed']} of {total} checks fail")
    return lines
