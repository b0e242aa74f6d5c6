"""The command-line interface: `ledger employer register ...`, `ledger submit FILE` and the rest (docs/cli.md).

This is an entry point, so configuration is read here and only here: `main()` builds one `Settings` from the
LEDGER_* environment and hands it to the commands through typer's context; the ledger is opened on first use.

Every command that writes builds one command model (shape errors become `InvalidInput`), runs it through
`Ledger.execute` under the client's `--command-id` (a repeat answers the first result and writes nothing), and prints
a one-line summary, or the result as one JSON object with `--json`. An operating error (`LedgerError`) prints
`error: <message>` on stderr, or `{"error": {...}}` on stdout with `--json`, and exits with the error's exit code.
A traceback means a bug, never bad input.
"""

import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from ledger import audit, bulk, identifiers, relay
from ledger.application import Ledger
from ledger.commands import (
    ChangeRiskClass,
    ChangeWage,
    Command,
    CreditYield,
    EnrollMember,
    EnrollMembers,
    ExitMember,
    PayClaim,
    PayContribution,
    RegisterEmployer,
    Reverse,
    describe_validation_error,
)
from ledger.errors import ConfigurationError, InvalidInput, LedgerError
from ledger.events import Beneficiary, ClaimKind, EmployerKind, ExitReason, PayerRole
from ledger.private_files import restrict_umask
from ledger.rules import Program, RiskClass, Segment
from ledger.settings import Settings
from projections import queries
from projections.store import ViewStore
from projections.views import PROJECTIONS


@dataclass
class Runtime:
    """What every command shares: the settings read once by `main()`, and the ledger opened on first use."""

    settings: Settings
    clock: Callable[[], date] = date.today  # the ledger's clock: dates that default to today

    @cached_property
    def ledger(self) -> Ledger:
        """The write side, for the writing commands and the relay. The NIK's keyed hash it writes into
        MemberEnrolled is published, so it opens only with the fund's own secret key (or the development key in
        development mode): `nik_hmac_key_bytes` raises `ConfigurationError` (exit 2) before anything is written."""
        key = self.settings.nik_hmac_key_bytes()  # first: `eventsourcing_env` creates the store's file
        return Ledger(env=self.settings.eventsourcing_env(), clock=self.clock, nik_key=key)

    @cached_property
    def reader(self) -> Ledger:
        """The event store for the reading commands (`history`, `balance --from-store`): they hash no NIK, so they
        need no key."""
        return Ledger(env=self.settings.eventsourcing_env(), clock=self.clock, nik_key=None)

    @cached_property
    def views(self) -> ViewStore:
        return ViewStore.open(self.settings)


def _one_of(choices: type[Enum]) -> str:
    return "|".join(choice.value for choice in choices)


PROGRAMS_HELP = f"programs, comma-separated: {','.join(p.value for p in Program)}"
DATE_HELP = "YYYY-MM-DD"

AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
CommandId = Annotated[str | None, typer.Option(
    "--command-id", help="Your id for this command: repeating it answers the first result and writes nothing. "
                         "Default: a new random id.")]
Kpj = Annotated[str, typer.Option("--kpj", help="the member's KPJ number, 11 digits")]
Npp = Annotated[str, typer.Option("--npp", help="the employer's NPP number, 8 digits")]

app = typer.Typer(
    help="The contribution ledger of a workers' social-security fund. Configure with LEDGER_* environment "
         "variables, e.g. LEDGER_SQLITE_PATH=books.db or LEDGER_PERSISTENCE=postgres.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
employer_app = typer.Typer(help="Register employers and change their risk class.", no_args_is_help=True)
member_app = typer.Typer(help="Enroll members, change their wage, record their exit.", no_args_is_help=True)
contribution_app = typer.Typer(help="Record contribution payments.", no_args_is_help=True)
yield_app = typer.Typer(help="Credit the yearly JHT development yield.", no_args_is_help=True)
claim_app = typer.Typer(help="Pay benefit claims.", no_args_is_help=True)
app.add_typer(employer_app, name="employer")
app.add_typer(member_app, name="member")
app.add_typer(contribution_app, name="contribution")
app.add_typer(yield_app, name="yield")
app.add_typer(claim_app, name="claim")


# --- printing ------------------------------------------------------------------------------------------------------

def rupiah(amount: int) -> str:
    return f"-Rp{-amount:,}" if amount < 0 else f"Rp{amount:,}"


def _describe_payment(result: dict[str, Any]) -> str:
    totals = ", ".join(f"{program} {rupiah(amount)}" for program, amount in result["program_totals"].items())
    fine = f", fine {rupiah(result['fine'])}" if result["fine"] else ""
    return (f"payment {result['payment_id']} by {result['payer']}: {result['members']:,} member(s), "
            f"{result['lines']:,} line(s), months {', '.join(result['months'])}; {totals}{fine}; "
            f"total {rupiah(result['total'])}")


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
    Reverse.NAME: lambda r: f"reversed {r['type']} {r['reverses']}: {rupiah(r['amount'])} (event {r['event_id']})",
}


def describe(result: dict[str, Any]) -> str:
    text = SUMMARIES[result["command"]](result)
    if result.get("repeated"):
        text += f" -- repeated command id {result['command_id']}: this is the first result; nothing was written"
    return text


def _print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False))


def _print_error(error: LedgerError, as_json: bool, **details: Any) -> None:
    if as_json:
        _print_json({"error": {"type": type(error).__name__, "message": str(error), **details}})
    else:
        print(f"error: {error}", file=sys.stderr)


@contextmanager
def _reporting(as_json: bool) -> Iterator[None]:
    """Turn an operating error into its message and exit code; anything else is a bug and keeps its traceback."""
    try:
        yield
    except LedgerError as error:
        _print_error(error, as_json)
        raise typer.Exit(error.exit_code) from None


def _execute(ctx: typer.Context, command_type: type[Command], command_id: str | None, as_json: bool,
             **fields: Any) -> None:
    """Build one command (options left out take the model's defaults), run it, and print the result."""
    given = {name: value for name, value in {**fields, "command_id": command_id}.items() if value is not None}
    with _reporting(as_json):
        result = ctx.obj.ledger.execute(command_type.build(**given))
    _emit(result, as_json)


def _emit(result: dict[str, Any], as_json: bool, *, line: int | None = None) -> None:
    """One result: a JSON object, or a summary line; `line` is the line of a submitted file it came from."""
    if as_json:
        _print_json(result if line is None else {"line": line, **result})
    else:
        print(describe(result) if line is None else f"line {line}: {describe(result)}")


def _today(ctx: typer.Context) -> date:
    return ctx.obj.clock()


def _checked(validate: Callable[[str], str], value: str) -> str:
    try:
        return validate(value)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def _programs_option(text: str | None) -> list[str] | None:
    """--programs: left out, the default programs; given, at least one. Empty text is a mistake (an unset shell
    variable, say), not a request for the default."""
    if text is None:
        return None
    if not text.strip():
        raise InvalidInput(f"--programs is empty: give at least one of {','.join(p.value for p in Program)}, or "
                           f"leave the option out for the default")
    return bulk.split_programs(text)


def _parse_date(option: str, text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} must be a date YYYY-MM-DD, got {text!r}") from None


# --- employers -----------------------------------------------------------------------------------------------------

@employer_app.command("register")
def register_employer(
    ctx: typer.Context,
    npp: Npp,
    name: Annotated[str, typer.Option(help="the employer's registered name")],
    branch: Annotated[str, typer.Option(help="branch code, e.g. BEKASI-KOTA")],
    kind: Annotated[str, typer.Option(help=_one_of(EmployerKind))],
    risk: Annotated[str, typer.Option(help=f"risk class for JKK: {_one_of(RiskClass)}")],
    programs: Annotated[str | None, typer.Option(help=f"{PROGRAMS_HELP}; default all")] = None,
    labour_intensive: Annotated[bool, typer.Option("--labour-intensive", help="a labour-intensive employer")] = False,
    registered_on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Register an employer (a company or a government body) under its NPP."""
    with _reporting(as_json):
        chosen = _programs_option(programs)
    _execute(ctx, RegisterEmployer, command_id, as_json, npp=npp, name=name, branch=branch, kind=kind,
             risk_class=risk, programs=chosen, labour_intensive=labour_intensive,
             registered_on=registered_on or _today(ctx))


@employer_app.command("risk")
def change_risk_class(
    ctx: typer.Context,
    npp: Npp,
    risk: Annotated[str, typer.Option(help=_one_of(RiskClass))],
    effective: Annotated[str, typer.Option(help=DATE_HELP)],
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Change an employer's risk class (its JKK rate) from a date on."""
    _execute(ctx, ChangeRiskClass, command_id, as_json, npp=npp, risk_class=risk, effective=effective)


# --- members -------------------------------------------------------------------------------------------------------

@member_app.command("enroll")
def enroll_member(
    ctx: typer.Context,
    kpj: Kpj,
    nik: Annotated[str, typer.Option(help="national ID number, 16 digits")],
    name: Annotated[str, typer.Option(help="the member's name")],
    birth_date: Annotated[str, typer.Option(help=f"{DATE_HELP}; must agree with the NIK")],
    wage: Annotated[int, typer.Option(help="PU: monthly wage; BPU: declared income; whole rupiah")],
    effective: Annotated[str, typer.Option(help=DATE_HELP)],
    segment: Annotated[str, typer.Option(help=f"{_one_of(Segment)}: wage earner or informal")] = Segment.PU.value,
    npp: Annotated[str | None, typer.Option(help="the employer; required for PU")] = None,
    branch: Annotated[str | None, typer.Option(help="branch code, for a BPU member without an NPP")] = None,
    programs: Annotated[str | None, typer.Option(help=f"{PROGRAMS_HELP}; default by segment")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Enroll one member: a wage earner (PU) with an employer, or an informal worker (BPU)."""
    with _reporting(as_json):
        chosen = _programs_option(programs)
    member = {"kpj": kpj, "nik": nik, "name": name, "birth_date": birth_date, "segment": segment, "wage": wage,
              "programs": chosen}
    _execute(ctx, EnrollMember, command_id, as_json, member=member, npp=npp, branch=branch, effective=effective)


@member_app.command("enroll-bulk", help=f"Enroll every member of a CSV file with one employer, all or nothing. "
                                        f"{bulk.CSV_HELP}")
def enroll_members(
    ctx: typer.Context,
    npp: Npp,
    csv_file: Annotated[Path, typer.Option("--csv", exists=True, dir_okay=False, help="the CSV file")],
    effective: Annotated[str, typer.Option(help=DATE_HELP)],
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    with _reporting(as_json):
        members = bulk.read_member_rows(csv_file)
    _execute(ctx, EnrollMembers, command_id, as_json, npp=npp, effective=effective, members=members)


@member_app.command("wage")
def change_wage(
    ctx: typer.Context,
    kpj: Kpj,
    wage: Annotated[int, typer.Option(help="the new monthly wage, whole rupiah")],
    effective: Annotated[str, typer.Option(help=DATE_HELP)],
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Change a member's wage (or a BPU member's declared income) from a date on."""
    _execute(ctx, ChangeWage, command_id, as_json, kpj=kpj, wage=wage, effective=effective)


@member_app.command("exit")
def exit_member(
    ctx: typer.Context,
    kpj: Kpj,
    reason: Annotated[str, typer.Option(help=_one_of(ExitReason))],
    exit_date: Annotated[str, typer.Option("--date", help=DATE_HELP)],
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Record that a member left: resigned, was dismissed, retired, died, ..."""
    _execute(ctx, ExitMember, command_id, as_json, kpj=kpj, reason=reason, exit_date=exit_date)


# --- money in and out ----------------------------------------------------------------------------------------------

@contribution_app.command("pay")
def pay_contribution(
    ctx: typer.Context,
    month: Annotated[str, typer.Option(help="the first contribution month, YYYY-MM")],
    paid_on: Annotated[str, typer.Option(help=DATE_HELP)],
    npp: Annotated[str | None, typer.Option(help="an employer paying for its roster")] = None,
    kpj: Annotated[str | None, typer.Option(help="a BPU member paying for themself")] = None,
    months: Annotated[int, typer.Option(help="how many months from --month")] = 1,
    payer: Annotated[str | None, typer.Option(
        help=f"who paid, as a role: {_one_of(PayerRole)}; default employer (--npp) or member (--kpj)")] = None,
    payer_name: Annotated[str | None, typer.Option(
        help="who paid, as on the bank slip; kept in the ledger, never published")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Record a contribution payment by an employer (--npp) or a BPU member (--kpj)."""
    _execute(ctx, PayContribution, command_id, as_json, npp=npp, kpj=kpj, month=month, months=months,
             paid_on=paid_on, payer=payer, payer_name=payer_name)


@yield_app.command("credit")
def credit_yield(
    ctx: typer.Context,
    year: Annotated[int, typer.Option(help="the year the yield is for, YYYY")],
    rate: Annotated[str, typer.Option(help="the announced rate in percent, e.g. 5.63")],
    credited_on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default 31 December of the year")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Credit a year's JHT development yield to every JHT member."""
    # The rate goes to the model as text, which parses it into an exact Decimal: never a float near money.
    _execute(ctx, CreditYield, command_id, as_json, year=year, rate_percent=rate, credited_on=credited_on)


@claim_app.command("pay")
def pay_claim(
    ctx: typer.Context,
    kpj: Kpj,
    program: Annotated[str, typer.Option(help=_one_of(Program))],
    incident_date: Annotated[str, typer.Option(help=f"{DATE_HELP}: the exit, death or accident")],
    beneficiary: Annotated[str, typer.Option(
        help=f"who is paid, as the relationship to the member: {_one_of(Beneficiary)}")] = "self",
    beneficiary_name: Annotated[str | None, typer.Option(
        help="the person paid when not the member (an heir); kept in the ledger, never published")] = None,
    kind: Annotated[str | None, typer.Option(help=f"{_one_of(ClaimKind)}; default the program's usual")] = None,
    amount: Annotated[int | None, typer.Option(help="whole rupiah; default the statutory amount")] = None,
    paid_on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Pay a benefit claim from one program."""
    _execute(ctx, PayClaim, command_id, as_json, kpj=kpj, program=program, kind=kind,
             incident_date=incident_date, beneficiary=beneficiary, beneficiary_name=beneficiary_name, amount=amount,
             paid_on=paid_on or _today(ctx))


@app.command("reverse")
def reverse(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="the event to reverse: a contribution or a claim")],
    reason: Annotated[str, typer.Option(help="why; kept in the books")],
    on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Reverse a contribution or a claim. The books are never edited: the reversal is a new event."""
    _execute(ctx, Reverse, command_id, as_json, event_id=event_id, reason=reason, reversed_on=on or _today(ctx))


# --- reading -------------------------------------------------------------------------------------------------------

TIMELINE_FACTS = ("month", "months", "program", "kind", "reason", "risk_class", "year", "rate", "beneficiary",
                  "reverses")
TIMELINE_AMOUNTS = ("wage", "amount", "fine", "total")


def _timeline_line(row: dict[str, Any]) -> str:
    data = row["data"]
    facts = [f"{key} {','.join(data[key]) if isinstance(data[key], list) else data[key]}"
             for key in TIMELINE_FACTS if data.get(key) is not None]
    if "kpjs" in data:
        facts.append(f"members {len(data['kpjs']):,}")
    facts += [f"{key} {rupiah(data[key])}" for key in TIMELINE_AMOUNTS if data.get(key)]
    return f"{row['effective_date']}  {row['type']:<27} {row['event_id']}  {', '.join(facts)}".rstrip()


@app.command("history")
def history(
    ctx: typer.Context,
    kpj: Annotated[str | None, typer.Option(help="a member: its events and its contribution months")] = None,
    npp: Annotated[str | None, typer.Option(help="an employer: its own events")] = None,
    as_json: AsJson = False,
) -> None:
    """The recorded events of a member or an employer, oldest first."""
    with _reporting(as_json):
        if (kpj is None) == (npp is None):
            raise InvalidInput("history: give exactly one of --kpj (a member) or --npp (an employer)")
        if kpj is not None:
            _checked(identifiers.validate_kpj, kpj)
        else:
            _checked(identifiers.validate_npp, npp)
        rows = ctx.obj.reader.history(kpj=kpj, npp=npp)
    if as_json:
        _print_json(rows)
    else:
        for row in rows:
            print(_timeline_line(row))


@app.command("balance")
def balance(
    ctx: typer.Context,
    kpj: Annotated[str, typer.Argument(help="the member's KPJ number")],
    as_of: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    show_history: Annotated[bool, typer.Option("--history", help="Also list every money movement with the JHT "
                                                                  "balance after it.")] = False,
    from_store: Annotated[bool, typer.Option("--from-store", help="Compute the JHT balance from the event store "
                                                                  "instead of the balances projection.")] = False,
    as_json: AsJson = False,
) -> None:
    """A member's balance per program from the balances projection (JHT: contributions + yield - claims)."""
    with _reporting(as_json):
        _checked(identifiers.validate_kpj, kpj)
        on = _parse_date("--as-of", as_of) if as_of is not None else date.today()
        if from_store:
            result: dict[str, Any] = {"kpj": kpj, "as_of": on.isoformat(),
                                      "jht_balance": ctx.obj.reader.jht_balance(kpj, on), "source": "event store"}
        else:
            result = queries.member_balance(ctx.obj.views, kpj, on)
            if show_history:
                result["history"] = queries.member_history(ctx.obj.views, kpj, end=on)
    if as_json:
        _print_json(result)
        return
    if from_store:
        print(f"JHT balance of member {kpj} on {on.isoformat()}: {rupiah(result['jht_balance'])}")
    else:
        print("\n".join(balance_lines(result)))


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


report_app = typer.Typer(help="Reports from the projections.", no_args_is_help=True)
app.add_typer(report_app, name="report")


@report_app.command("branch")
def report_branch(
    ctx: typer.Context,
    branch: Annotated[str, typer.Argument(help="the branch code, e.g. BEKASI-KOTA")],
    as_of: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    as_json: AsJson = False,
) -> None:
    """A branch's members, employers, contributions, fines and claims up to a date (branches projection)."""
    with _reporting(as_json):
        on = _parse_date("--as-of", as_of) if as_of is not None else date.today()
        report = queries.branch_report(ctx.obj.views, branch, on)
    if as_json:
        _print_json(report)
        return
    print("\n".join(branch_report_lines(report)))


def branch_report_lines(report: dict[str, Any]) -> list[str]:
    """The branch report as `ledger report branch` prints it."""
    kinds = report["active_employers_by_kind"]
    lines = [f"Branch {report['branch']}, up to {report['as_of']}",
             f"  active PU (wage-earner) members   {report['active_pu_members']:>12,}",
             f"  active employers                  {report['active_employers']:>12,}  (companies "
             f"{kinds['company']:,}, government bodies {kinds['government']:,}; registered "
             f"{report['registered_employers']:,})",
             f"  active BPU (informal) members     {report['bpu_members_active']:>12,}  "
             f"(enrolled {report['bpu_members_enrolled']:,})",
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
    return lines


# --- batches -------------------------------------------------------------------------------------------------------

@app.command("submit")
def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a JSON-lines file of commands")],
    as_json: AsJson = False,
) -> None:
    """Run a JSON-lines file of commands, one per line: {"command": NAME, "id": COMMAND_ID, ...fields}.

    Every line is checked before any runs. Then they run in order; at the first failure the run stops, and the
    lines before it stay written. Each line is idempotent under its id, so running the fixed file again is safe.
    """
    with _reporting(as_json):
        ledger = ctx.obj.ledger  # refused here, before any line, if the NIK hash key is unsafe
        # 1. Check every line; nothing runs if one is bad. The file is read again in step 2 rather than held in
        #    memory: it may be up to a million lines.
        for _ in bulk.read_commands(file):
            pass
        # 2. Run the lines in order (a line changed since step 1 is checked again as it is read).
        done = {"executed": 0, "repeated": 0}
        for number, command in bulk.read_commands(file):
            try:
                result = ledger.execute(command)
            except LedgerError as error:
                _stop_submit(error, number, done, as_json)
            done["repeated" if result["repeated"] else "executed"] += 1
            _emit(result, as_json, line=number)
    if as_json:
        _print_json({"summary": done})
    else:
        print(f"executed {done['executed']}, repeated {done['repeated']}")


def _stop_submit(error: LedgerError, number: int, done: dict[str, int], as_json: bool) -> NoReturn:
    if as_json:
        _print_error(error, as_json, line=number, **done)
    else:
        print(f"error: line {number}: {error}\nstopped at line {number}; the {sum(done.values())} line(s) before "
              f"it stay written ({done['executed']} executed, {done['repeated']} repeated). Fix the line and "
              f"submit the file again: lines already done are answered as repeats, nothing is written twice.",
              file=sys.stderr)
    raise typer.Exit(error.exit_code)


# --- Kafka: topics, the relay, the auditor's check -------------------------------------------------------------------

kafka_app = typer.Typer(help="Manage the ledger's Kafka topics.", no_args_is_help=True)
audit_app = typer.Typer(help="Auditor tools that read Kafka, not the ledger's database.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(audit_app, name="audit")


def _topics(settings: Settings) -> relay.Topics:
    return relay.Topics.for_prefix(settings.kafka_topic_prefix)


@kafka_app.command("init")
def kafka_init(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Create the events and relay-state topics if missing (idempotent)."""
    settings = ctx.obj.settings
    topics = _topics(settings)
    created = relay.init_topics(settings.bootstrap_servers, topics, settings.kafka_partitions)
    result = {"events_topic": topics.events, "state_topic": topics.state, "created": created,
              "partitions": settings.kafka_partitions}
    if as_json:
        _print_json(result)
    else:
        print(f"topics {topics.events} ({settings.kafka_partitions} partitions, kept forever) and {topics.state}: "
              f"{'created ' + ', '.join(created) if created else 'already there'}")


@app.command("relay")
def run_relay(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", help="Keep tailing the store after catching up.")] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, max=100_000,
                                       help="Events per Kafka transaction.")] = relay.RELAY_BATCH_MAX,
    as_json: AsJson = False,
) -> None:
    """Publish the event store's new events to Kafka, exactly once; catch up and exit, or --follow.

    Exits 12 when its saved state is beyond the store's last notification, or unreadable: nothing is published."""
    stopping = threading.Event()  # SIGTERM/SIGINT: commit or abort the transaction in hand, then report and exit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    settings = ctx.obj.settings
    with _reporting(as_json):
        # The relay publishes the NIK hashes the store holds: like the write side it runs only with the fund's key
        # set (or in development mode), so a deployment that forgot the key publishes nothing.
        store = ctx.obj.ledger.recorder
    topics = _topics(settings)
    relay.init_topics(settings.bootstrap_servers, topics, settings.kafka_partitions)
    publisher = relay.Relay(store, settings.bootstrap_servers, topics,
                            transactional_id=settings.relay_transactional_id,
                            compression_type=settings.compression_type, batch_max=batch,
                            log=lambda line: print(line, file=sys.stderr))
    try:
        with _reporting(as_json):
            published = publisher.run(follow=follow, stop=stopping.is_set)
    finally:
        publisher.close()
    result = {"published": published, "position": publisher.state.position,
              "notification_id": publisher.state.notification_id, "topic": topics.events}
    if as_json:
        _print_json(result)
    else:
        print(f"published {published:,} events to {topics.events}; last position {publisher.state.position:,}")


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Option("--topic", help="Default: the ledger's events topic.")] = None,
    as_json: AsJson = False,
) -> None:
    """Replay the events topic from the start: positions 1..N, chains intact, or the first breach."""
    settings = ctx.obj.settings
    report = audit.verify_topic(settings.bootstrap_servers, topic or _topics(settings).events)
    if as_json:
        _print_json(report.as_dict())
    else:
        print(f"checked {report.events:,} events in {report.topic}: positions "
              f"{'contiguous' if report.positions_ok else 'NOT contiguous'} from 1 to {report.last_position or 0:,}, "
              f"chains {'intact' if report.chains_ok else 'BROKEN'}")
        if report.breaches:
            print(f"first breach: {report.breaches[0]} ({len(report.breaches)} found)")
    if not report.ok:
        raise typer.Exit(8)


@audit_app.command("reconcile")
def audit_reconcile(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Compare the event store's head, the relay's saved state and the events topic's last position and hash; name
    every mismatch. Exits 13 when they do not all agree."""
    settings = ctx.obj.settings
    topics = _topics(settings)
    with _reporting(as_json):
        report = audit.reconcile(ctx.obj.ledger.recorder, settings.bootstrap_servers, topics)
    if as_json:
        _print_json(report.as_dict())
    else:
        print("\n".join(reconcile_lines(report)))
    if not report.ok:
        raise typer.Exit(audit.EXIT_UNRECONCILED)


def reconcile_lines(report: audit.Reconciliation) -> list[str]:
    """`ledger audit reconcile` as it prints: the three sides, then the verdict and every mismatch by name."""
    store, state, end, at = report.store, report.relay_state, report.topic, report.store_at_topic_position
    lines = [f"event store: last notification {store['last_notification_id']}, {store['events']:,} events to publish",
             f"relay state on {report.state_topic}: " + (
                 f"notification {state['notification_id']}, position {state['position']:,}" if state else "unreadable"),
             f"topic {report.events_topic}: " + (
                 f"last position {end.position:,} (partition {end.partition}, offset {end.offset}), event "
                 f"{end.event_id}, hash {end.hash}" if end.position else "no event")]
    if at is not None:
        lines.append(f"the store's event at position {end.position:,}: {at['event_id']}, hash {at['hash']} "
                     f"(notification {at['notification_id']})")
    if report.ok:
        lines.append(f"agree: the topic holds the store's {store['events']:,} events, and the relay's state names the "
                     f"last one")
        return lines
    lines.append(f"{len(report.mismatches)} mismatch(es):")
    lines += [f"  {mismatch}" for mismatch in report.mismatches]
    proven = report.state_from_topic
    if proven is not None and any("relay_state" in mismatch.name for mismatch in report.mismatches):
        lines.append(f"the state the topic and the store prove: notification {proven['notification_id']}, position "
                     f"{proven['position']:,} (docs/kafka.md, 'When the relay refuses its state')")
    return lines


def _period(start: str | None, end: str | None) -> tuple[date | None, date | None]:
    first = _parse_date("--from", start) if start is not None else None
    last = _parse_date("--to", end) if end is not None else None
    if first is not None and last is not None and first > last:
        raise InvalidInput(f"--from {first.isoformat()} is after --to {last.isoformat()}")
    return first, last


def _audit_line(env: dict[str, Any]) -> str:
    """One event of `ledger audit history`: like `ledger history`'s lines, with its position and whom it is about."""
    data = env["data"]
    facts = [f"{key} {data[key]}" for key in ("kpj", "npp") if data.get(key)]
    facts += [f"{key} {','.join(data[key]) if isinstance(data[key], list) else data[key]}"
              for key in TIMELINE_FACTS if data.get(key) is not None]
    if "kpjs" in data:
        facts.append(f"members {len(data['kpjs']):,}")
    facts += [f"{key} {rupiah(data[key])}" for key in TIMELINE_AMOUNTS if isinstance(data.get(key), int) and data[key]]
    return (f"{env['effective_date']}  #{env['position']:<8} {env['type']:<27} {env['event_id']}  "
            f"{', '.join(facts)}").rstrip()


PeriodStart = Annotated[str | None, typer.Option("--from", help=f"{DATE_HELP}: first effective date")]
PeriodEnd = Annotated[str | None, typer.Option("--to", help=f"{DATE_HELP}: last effective date")]


@audit_app.command("history")
def audit_history(
    ctx: typer.Context,
    kpj: Annotated[str | None, typer.Option(help="a member: its events and its employer's roster changes")] = None,
    npp: Annotated[str | None, typer.Option(help="an employer: every event naming its NPP")] = None,
    branch: Annotated[str | None, typer.Option(help="a branch code: every event of the branch")] = None,
    start: PeriodStart = None,
    end: PeriodEnd = None,
    as_json: AsJson = False,
) -> None:
    """Replay the events topic: a member's, an employer's or a branch's events by effective date, then position."""
    settings = ctx.obj.settings
    topic = _topics(settings).events
    with _reporting(as_json):
        if sum(value is not None for value in (kpj, npp, branch)) != 1:
            raise InvalidInput("audit history: give exactly one of --kpj (a member), --npp (an employer) or "
                               "--branch (a branch code)")
        if kpj is not None:
            _checked(identifiers.validate_kpj, kpj)
        elif npp is not None:
            _checked(identifiers.validate_npp, npp)
        else:
            _checked(identifiers.validate_branch_code, branch)
        first, last = _period(start, end)
        subject = audit.Subject(kpj=kpj, npp=npp, branch=branch)
        events = audit.history_topic(settings.bootstrap_servers, topic, subject, first, last)
    if as_json:
        _print_json(events)
        return
    period = f" from {first or 'the start'} to {last or 'the end'}" if first or last else ""
    print(f"{len(events):,} events of {subject} in {topic}{period}")
    for env in events:
        print(_audit_line(env))


@audit_app.command("as-of")
def audit_as_of(
    ctx: typer.Context,
    day: Annotated[str, typer.Argument(metavar="DATE", help=DATE_HELP)],
    as_json: AsJson = False,
) -> None:
    """Recompute every JHT balance, paying account's totals and branch total from the events topic alone; list where
    the projections differ.

    Exits 11 when they differ, 9 when the projections have not been built."""
    settings = ctx.obj.settings
    topic = _topics(settings).events
    with _reporting(as_json):
        on = _parse_date("DATE", day)
        report = audit.as_of_topic(settings.bootstrap_servers, topic, ctx.obj.views, on)
    if as_json:
        _print_json(report.as_dict())
    else:
        print(f"as of {report.as_of}, from {report.events:,} events of {topic}: compared {report.members:,} members' "
              f"JHT balances, {report.accounts:,} paying accounts' totals and {report.branches:,} branches' totals "
              f"with the projections: {report.differences_found:,} difference(s)")
        for name, applied in report.projection_events.items():
            if applied != report.events:
                print(f"note: the {name} projection has applied {applied or 0:,} of the topic's {report.events:,} "
                      f"events; run `ledger projections run` first, or expect differences")
        for difference in report.differences:
            print(f"  {difference}")
        if report.differences_found > len(report.differences):
            print(f"  ... and {report.differences_found - len(report.differences):,} more")
    if not report.ok:
        raise typer.Exit(audit.EXIT_DIFFERENCES)


@audit_app.command("export")
def audit_export(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help=f"{DATE_HELP}: first effective date")],
    end: Annotated[str, typer.Option("--to", help=f"{DATE_HELP}: last effective date")],
    out: Annotated[Path, typer.Option("--out", help="a new or empty directory for the bundle")],
    as_json: AsJson = False,
) -> None:
    """Write a period's events (JSON lines and CSV), the totals per branch recomputed from them, and a manifest of
    SHA-256 hashes that `ledger audit verify-export` checks."""
    settings = ctx.obj.settings
    topic = _topics(settings).events
    with _reporting(as_json):
        first, last = _period(start, end)
        assert first is not None and last is not None  # both options are required
        manifest = audit.export_topic(settings.bootstrap_servers, topic, first, last, out)
    manifest_sha = audit.file_digest(out / audit.MANIFEST)[1]
    if as_json:
        _print_json({"out": str(out), "manifest_sha256": manifest_sha, **manifest})
        return
    positions = manifest["positions"]
    print(f"exported {manifest['events']:,} events of {topic} with an effective date from {first} to {last} "
          f"(positions {positions['first'] or '-'} to {positions['last'] or '-'}) into {out}")
    for entry in manifest["files"]:
        print(f"  {entry['name']:<14}{entry['bytes']:>14,} bytes  sha256 {entry['sha256']}")
    print(f"  {audit.MANIFEST:<14} sha256 {manifest_sha} (keep it apart from the bundle to pin the bundle down)")


@audit_app.command("verify-export")
def audit_verify_export(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="the directory of an export")],
    as_json: AsJson = False,
) -> None:
    """Check an export: every file's size and SHA-256 against the manifest, and its totals against its events."""
    check = audit.verify_bundle(folder)
    if as_json:
        _print_json(check.as_dict())
    elif check.ok:
        print(f"export {folder} intact: {check.files} files match the manifest; {check.events:,} events, their hashes, "
              f"chain head and totals agree")
    else:
        print(f"export {folder} BROKEN: {check.problem_file}: {check.problem}")
    if not check.ok:
        raise typer.Exit(audit.EXIT_BREACH)


projections_app = typer.Typer(help="Operate the read-side projections: run, status, rebuild.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")
ProjectionNames = Annotated[list[str] | None, typer.Argument(help=f"projections: {', '.join(PROJECTIONS)} "
                                                                   f"(default: all)", show_default=False)]


@projections_app.command("run")
def projections_run(
    ctx: typer.Context,
    names: ProjectionNames = None,
    follow: Annotated[bool, typer.Option("--follow", help="Keep consuming after catching up.")] = False,
    as_json: AsJson = False,
) -> None:
    """Bring the live projections up to the end of the events topic (exactly once); or --follow it."""
    from projections import runner

    stopping = threading.Event()  # SIGTERM/SIGINT: finish the batch in hand (its offsets commit with it), then exit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    with _reporting(as_json):
        chosen = _projection_names(names)
        applied = runner.run(ctx.obj.settings, chosen, follow=follow, stop=stopping.is_set,
                             log=lambda line: print(line, file=sys.stderr))
    if as_json:
        _print_json({"applied": applied})
    else:
        print("; ".join(f"{name}: applied {count:,} events" for name, count in applied.items()))


@projections_app.command("status")
def projections_status(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Per projection: live version, events applied, offsets behind the topic's end per partition, last update."""
    from projections import runner

    rows = runner.status(ctx.obj.settings)
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        print(f"{row['name']}: version {row['live_version'] or '-'}, {row['events']:,} events applied, lag "
              f"{row['lag']:,}, last update {row['last_update'] or 'never'}")
        print("  " + "  ".join(f"p{p['partition']}:{p['offset']}/{p['end']}" for p in row["partitions"]))


@projections_app.command("rebuild")
def projections_rebuild(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(PROJECTIONS)}")],
    workers: Annotated[int, typer.Option("--workers", min=1, max=32, help="processes sharing the partitions")] = 1,
    as_json: AsJson = False,
) -> None:
    """Rebuild from offset 0 beside the live version; switch readers when caught up; drop the old version."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from projections import runner

    with _reporting(as_json):
        _projection_names([name])
        # The bar goes to stderr, so stdout holds only the result; and only to a terminal: in a pipe or a log file
        # the summary line says it all. Its texts are fields set by `progress`, never formats of `task.total`, which
        # is None until the runner has taken the end offsets.
        console = Console(stderr=True)
        columns = (TextColumn(f"rebuild {name}"), BarColumn(), TextColumn("{task.fields[offsets]}"),
                   TextColumn("{task.fields[rate]} events/s"), TextColumn("ETA"), TimeRemainingColumn())
        with Progress(*columns, console=console, disable=as_json or not console.is_terminal) as bar:
            task = bar.add_task("rebuild", total=None, offsets="-", rate="-")
            started = time.perf_counter()

            def progress(done: int, total: int) -> None:
                elapsed = max(time.perf_counter() - started, 1e-6)
                bar.update(task, completed=done, total=max(total, 1), offsets=f"{done:,}/{total:,}",
                           rate=f"{done / elapsed:,.0f}")

            try:
                result = runner.rebuild(ctx.obj.settings, name, workers=workers, progress=progress)
            except runner.InvariantViolation as error:
                raise RebuildStopped(f"rebuild of {name} stopped: {error.problem}, traced to event "
                                     f"{error.event_id}; the live version is unchanged") from None
            except runner.ProjectionError as error:
                raise RebuildStopped(f"rebuild of {name} stopped: {error}; the live version is unchanged") from None
    summary = {"name": result.name, "version": result.version, "replaced": result.replaced, "events": result.events,
               "seconds": round(result.seconds, 3), "events_per_second": round(result.events / result.seconds)}
    if as_json:
        _print_json(summary)
    else:
        print(f"{name}: version {result.version} built from offset 0 ({result.events:,} events in "
              f"{result.seconds:.1f}s, {summary['events_per_second']:,} events/s), invariants hold; readers switched "
              f"from version {result.replaced or '-'}, which was dropped")


class RebuildStopped(LedgerError):
    exit_code = 10


def _projection_names(names: list[str] | None) -> list[str]:
    unknown = [name for name in names or [] if name not in PROJECTIONS]
    if unknown:
        raise InvalidInput(f"unknown projection {', '.join(unknown)}: choose from {', '.join(PROJECTIONS)}")
    return list(names or PROJECTIONS)


@app.command("serve")
def serve(ctx: typer.Context) -> None:
    """The read-only HTTP API (OpenAPI at /docs and /openapi.json) on LEDGER_API_HOST:LEDGER_API_PORT."""
    import uvicorn

    from projections.api import create_app

    settings = ctx.obj.settings
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_level="warning")


@app.command("generate")
def generate(
    ctx: typer.Context,
    branch: Annotated[str, typer.Option(help="branch code")] = "BEKASI-KOTA",
    employers: Annotated[int, typer.Option(min=1, help="employers (the first is the city government)")] = 40,
    members: Annotated[int, typer.Option(min=1, help="PU members enrolled at the start")] = 3_000,
    bpu: Annotated[int, typer.Option(min=0, help="BPU (informal) members")] = 150,
    first_month: Annotated[str, typer.Option("--from", help="first contribution month, YYYY-MM")] = "2017-01",
    months: Annotated[int, typer.Option(min=1, max=120, help="months of history")] = 9,
    seed: Annotated[int, typer.Option(help="the same seed writes the same history")] = 2017,
    as_json: AsJson = False,
) -> None:
    """Write a seeded, reproducible branch history through the ledger's commands (scripts/generate)."""
    from ledger.generator import BranchPlan, generate_branch

    with _reporting(as_json):
        _checked(identifiers.validate_branch_code, branch)
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", first_month):
            raise InvalidInput(f"--from must be a month YYYY-MM, got {first_month!r}")
        try:
            plan = BranchPlan(branch=branch, employers=employers, members=members, bpu_members=bpu,
                              first_month=first_month, months=months, seed=seed)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        counts = generate_branch(ctx.obj.ledger, plan,
                                 progress=(lambda _: None) if as_json else lambda line: print(f"  {line}"))
    if as_json:
        _print_json(counts)
    else:
        print(f"generated {branch}: " + ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in counts.items()))


consumers_app = typer.Typer(help="The example downstream consumers, built on the SDK (docs/consumers.md).",
                            no_args_is_help=True)
app.add_typer(consumers_app, name="consumers")
StartOption = Annotated[str, typer.Option("--start", help="committed | beginning | end | an ISO date-time (publish "
                                                          "time); applies when this process first gets a partition")]
IdleExit = Annotated[float | None, typer.Option("--idle-exit", min=0.1, max=86_400,
                                                help="stop once caught up: no record for this many seconds, and the "
                                                     "group has consumed every partition to its end (default: run "
                                                     "until SIGTERM/SIGINT)")]


def _start(text: str) -> str | datetime:
    if text in ("committed", "beginning", "end"):
        return text
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"--start must be committed, beginning, end or an ISO date-time, got {text!r}") from None


def _run_consumer(ctx: typer.Context, build: Callable[..., Any], target: Path, group: str, start: str,
                  idle_exit: float | None, as_json: bool, what: str) -> None:
    """Build an example consumer on the ledger's events topic, run it, and print what it did."""
    settings = ctx.obj.settings
    with _reporting(as_json):
        subscriber = build(settings.bootstrap_servers, _topics(settings).events, target, group_id=group,
                           start=_start(start), log=lambda line: print(line, file=sys.stderr))
    stats = subscriber.run(idle_timeout_s=idle_exit)
    result = {"consumer": what, "group": subscriber.group_id, "handled": stats.handled,
              "duplicates": stats.duplicates, "passed_over": stats.passed_over, "retries": stats.retries,
              "dead_lettered": stats.dead_lettered, "dead_letter_topic": subscriber.dead_letter_topic}
    if as_json:
        _print_json(result)
    else:
        print(f"{what}: handled {stats.handled:,}, skipped as already processed {stats.duplicates:,}, "
              f"dead-lettered {stats.dead_lettered:,} (to {subscriber.dead_letter_topic})")


@consumers_app.command("notifier")
def consumers_notifier(
    ctx: typer.Context,
    db: Annotated[Path, typer.Option("--db", help="SQLite file holding the outbox and the processed event ids")],
    group: Annotated[str, typer.Option("--group", help="consumer group id")] = "claims-notifier",
    start: StartOption = "committed",
    idle_exit: IdleExit = None,
    as_json: AsJson = False,
) -> None:
    """Write one notification per paid claim to the outbox table `notifications`, exactly once."""
    from consumers.notifier import notifier

    _run_consumer(ctx, notifier, db, group, start, idle_exit, as_json, "notifier")


@consumers_app.command("warehouse")
def consumers_warehouse(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="folder of month=YYYY-MM/events-p<partition>.csv files")],
    group: Annotated[str, typer.Option("--group", help="consumer group id")] = "warehouse-exporter",
    start: StartOption = "committed",
    idle_exit: IdleExit = None,
    as_json: AsJson = False,
) -> None:
    """Append every event to CSV files partitioned by month, each event exactly once across restarts."""
    from consumers.warehouse import exporter

    _run_consumer(ctx, exporter, out, group, start, idle_exit, as_json, "warehouse")


@app.command("demo")
def run_demo(ctx: typer.Context) -> None:
    """The main job of scripts/demo: a Bekasi Kota scenario, written, relayed to Kafka and verified."""
    from ledger.demo import run_demo as demo

    with _reporting(False):
        code = demo(ctx.obj.settings)
    raise typer.Exit(code)


def main() -> None:
    # Everything this process creates is private to its user: files 0600, directories 0700 (ledger.private_files).
    restrict_umask()
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"error: {describe_validation_error('configuration (LEDGER_* environment)', error)}",
              file=sys.stderr)
        raise SystemExit(InvalidInput.exit_code) from None
    except ConfigurationError as error:
        print(f"error: configuration (LEDGER_* environment): {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None
    app(prog_name="ledger", obj=Runtime(settings))


if __name__ == "__main__":
    main()
