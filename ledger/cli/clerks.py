"""The clerks' commands: employers, members, contributions, yields, claims, reversals, and what they read back."""

import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ledger import bulk, identifiers
from ledger.account_statement import account_statement, statement_lines
from ledger.cli.common import (
    DATE_HELP,
    PROGRAMS_HELP,
    AsJson,
    CommandId,
    Kpj,
    Npp,
    checked,
    emit,
    execute,
    one_of,
    parse_date,
    print_error,
    print_json,
    programs_option,
    reporting,
    today,
)
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
from ledger.errors import InvalidInput, LedgerError
from ledger.events import Beneficiary, ClaimKind, EmployerKind, ExitReason, PayerRole
from ledger.formatting import arrears_lines, balance_lines, branch_report_lines, rupiah, timeline_line
from ledger.rules import Program, RiskClass, Segment
from projections.access import Reader

employer_app = typer.Typer(help="Register employers and change their risk class.", no_args_is_help=True)
member_app = typer.Typer(help="Enroll members, change their wage, record their exit.", no_args_is_help=True)
contribution_app = typer.Typer(help="Record contribution payments.", no_args_is_help=True)
yield_app = typer.Typer(help="Credit the yearly JHT development yield.", no_args_is_help=True)
claim_app = typer.Typer(help="Pay benefit claims.", no_args_is_help=True)

report_app = typer.Typer(help="Reports from the projections.", no_args_is_help=True)


# --- employers -----------------------------------------------------------------------------------------------------

@employer_app.command("register")
def register_employer(
    ctx: typer.Context,
    npp: Npp,
    name: Annotated[str, typer.Option(help="the employer's registered name")],
    branch: Annotated[str, typer.Option(help="branch code, e.g. BEKASI-KOTA")],
    kind: Annotated[str, typer.Option(help=one_of(EmployerKind))],
    risk: Annotated[str, typer.Option(help=f"risk class for JKK: {one_of(RiskClass)}")],
    programs: Annotated[str | None, typer.Option(help=f"{PROGRAMS_HELP}; default all")] = None,
    labour_intensive: Annotated[bool, typer.Option("--labour-intensive", help="a labour-intensive employer")] = False,
    registered_on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Register an employer (a company or a government body) under its NPP."""
    with reporting(as_json):
        chosen = programs_option(programs)
    execute(ctx, RegisterEmployer, command_id, as_json, npp=npp, name=name, branch=branch, kind=kind,
             risk_class=risk, programs=chosen, labour_intensive=labour_intensive,
             registered_on=registered_on or today(ctx))


@employer_app.command("risk")
def change_risk_class(
    ctx: typer.Context,
    npp: Npp,
    risk: Annotated[str, typer.Option(help=one_of(RiskClass))],
    effective: Annotated[str, typer.Option(help=DATE_HELP)],
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Change an employer's risk class (its JKK rate) from a date on."""
    execute(ctx, ChangeRiskClass, command_id, as_json, npp=npp, risk_class=risk, effective=effective)


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
    segment: Annotated[str, typer.Option(help=f"{one_of(Segment)}: wage earner or informal")] = Segment.PU.value,
    npp: Annotated[str | None, typer.Option(help="the employer; required for PU")] = None,
    branch: Annotated[str | None, typer.Option(help="branch code, for a BPU member without an NPP")] = None,
    programs: Annotated[str | None, typer.Option(help=f"{PROGRAMS_HELP}; default by segment")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Enroll one member: a wage earner (PU) with an employer, or an informal worker (BPU)."""
    with reporting(as_json):
        chosen = programs_option(programs)
    member = {"kpj": kpj, "nik": nik, "name": name, "birth_date": birth_date, "segment": segment, "wage": wage,
              "programs": chosen}
    execute(ctx, EnrollMember, command_id, as_json, member=member, npp=npp, branch=branch, effective=effective)


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
    with reporting(as_json):
        members = bulk.read_member_rows(csv_file)
    execute(ctx, EnrollMembers, command_id, as_json, npp=npp, effective=effective, members=members)


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
    execute(ctx, ChangeWage, command_id, as_json, kpj=kpj, wage=wage, effective=effective)


@member_app.command("exit")
def exit_member(
    ctx: typer.Context,
    kpj: Kpj,
    reason: Annotated[str, typer.Option(help=one_of(ExitReason))],
    exit_date: Annotated[str, typer.Option("--date", help=DATE_HELP)],
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Record that a member left: resigned, was dismissed, retired, died, ..."""
    execute(ctx, ExitMember, command_id, as_json, kpj=kpj, reason=reason, exit_date=exit_date)


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
        help=f"who paid, as a role: {one_of(PayerRole)}; default employer (--npp) or member (--kpj)")] = None,
    payer_name: Annotated[str | None, typer.Option(
        help="who paid, as on the bank slip; kept in the ledger, never published")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Record a contribution payment by an employer (--npp) or a BPU member (--kpj)."""
    execute(ctx, PayContribution, command_id, as_json, npp=npp, kpj=kpj, month=month, months=months,
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
    execute(ctx, CreditYield, command_id, as_json, year=year, rate_percent=rate, credited_on=credited_on)


@claim_app.command("pay")
def pay_claim(
    ctx: typer.Context,
    kpj: Kpj,
    program: Annotated[str, typer.Option(help=one_of(Program))],
    incident_date: Annotated[str, typer.Option(help=f"{DATE_HELP}: the exit, death or accident")],
    beneficiary: Annotated[str, typer.Option(
        help=f"who is paid, as the relationship to the member: {one_of(Beneficiary)}")] = "self",
    beneficiary_name: Annotated[str | None, typer.Option(
        help="the person paid when not the member (an heir); kept in the ledger, never published")] = None,
    kind: Annotated[str | None, typer.Option(help=f"{one_of(ClaimKind)}; default the program's usual")] = None,
    amount: Annotated[int | None, typer.Option(help="whole rupiah; default the statutory amount")] = None,
    paid_on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Pay a benefit claim from one program."""
    execute(ctx, PayClaim, command_id, as_json, kpj=kpj, program=program, kind=kind,
             incident_date=incident_date, beneficiary=beneficiary, beneficiary_name=beneficiary_name, amount=amount,
             paid_on=paid_on or today(ctx))


def reverse(
    ctx: typer.Context,
    event_id: Annotated[str, typer.Argument(help="the event to reverse: a contribution, a claim, a whole payment "
                                                 "(or its payment id), a settlement, money received")],
    reason: Annotated[str, typer.Option(help="why; kept in the books")],
    on: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    command_id: CommandId = None,
    as_json: AsJson = False,
) -> None:
    """Reverse a contribution or a claim; every line of a payment; a bill's settlement (the bill open again, its money
    back to the payer's credit, its lines reversed); money received by a bank error. In one transaction. The books are
    never edited: the reversal is new events (docs/cli.md, "Reversals of whole payments")."""
    execute(ctx, Reverse, command_id, as_json, event_id=event_id, reason=reason, reversed_on=on or today(ctx))


def history(
    ctx: typer.Context,
    kpj: Annotated[str | None, typer.Option(help="a member: its events and its contribution months")] = None,
    npp: Annotated[str | None, typer.Option(help="an employer: its own events")] = None,
    as_json: AsJson = False,
) -> None:
    """The recorded events of a member or an employer, oldest first. A member's are their data: read through the read
    side as the local user, like `ledger balance`, and written to the access log first."""
    with reporting(as_json):
        if (kpj is None) == (npp is None):
            raise InvalidInput("history: give exactly one of --kpj (a member) or --npp (an employer)")
        if kpj is not None:
            member = checked(identifiers.validate_kpj, kpj)
            rows = ctx.obj.read_side.member_read(Reader.local(), member, lambda: ctx.obj.reader.history(kpj=member),
                                                 endpoint="ledger history --kpj")
        else:
            assert npp is not None  # exactly one of the two, checked above
            rows = ctx.obj.reader.history(npp=checked(identifiers.validate_npp, npp))
    if as_json:
        print_json(rows)
    else:
        for row in rows:
            print(timeline_line(row))


def statement(
    ctx: typer.Context,
    start: Annotated[str, typer.Option("--from", help=f"{DATE_HELP}: the statement's first day")],
    end: Annotated[str, typer.Option("--to", help=f"{DATE_HELP}: the statement's last day")],
    npp: Annotated[str | None, typer.Option(help="an employer or paying body")] = None,
    kpj: Annotated[str | None, typer.Option(help="a self-paying BPU member")] = None,
    as_json: AsJson = False,
) -> None:
    """A payer's account statement between two dates, from the event store: opening balance, its bills, money
    received, settlements with their late fines, refunds and reversals with the running balance (owed minus credit),
    totals and closing balance. A self-paying member's statement is their data: read as the local user and written to
    the access log first, like `ledger history --kpj`."""
    with reporting(as_json):
        if (kpj is None) == (npp is None):
            raise InvalidInput("statement: give exactly one of --npp (an employer or paying body) or --kpj (a "
                               "self-paying BPU member)")
        first, last = parse_date("--from", start), parse_date("--to", end)
        if kpj is not None:
            member = checked(identifiers.validate_kpj, kpj)
            result = ctx.obj.read_side.member_read(
                Reader.local(), member,
                lambda: account_statement(ctx.obj.reader, npp=None, kpj=member, start=first, end=last),
                endpoint="ledger statement --kpj")
        else:
            assert npp is not None  # exactly one of the two, checked above
            result = account_statement(ctx.obj.reader, npp=checked(identifiers.validate_npp, npp), kpj=None,
                                       start=first, end=last)
    if as_json:
        print_json(result)
    else:
        for line in statement_lines(result):
            print(line)


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
    with reporting(as_json):
        checked(identifiers.validate_kpj, kpj)
        on = parse_date("--as-of", as_of) if as_of is not None else today(ctx)
        reader, read_side = Reader.local(), ctx.obj.read_side
        if from_store:
            balance = read_side.member_read(reader, kpj, lambda: ctx.obj.reader.jht_balance(kpj, on),
                                            endpoint="ledger balance --from-store")
            result: dict[str, Any] = {"kpj": kpj, "as_of": on.isoformat(), "jht_balance": balance,
                                      "source": "event store"}
        else:
            result = read_side.member_balance(reader, kpj, on, endpoint="ledger balance")
            if show_history:
                result["history"] = read_side.member_history(reader, kpj, None, on, endpoint="ledger balance --history")
    if as_json:
        print_json(result)
        return
    if from_store:
        print(f"JHT balance of member {kpj} on {on.isoformat()}: {rupiah(result['jht_balance'])}")
    else:
        print("\n".join(balance_lines(result)))


@report_app.command("branch")
def report_branch(
    ctx: typer.Context,
    branch: Annotated[str, typer.Argument(help="the branch code, e.g. BEKASI-KOTA")],
    as_of: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    as_json: AsJson = False,
) -> None:
    """A branch's members, employers, contributions, fines and claims up to a date (branches projection)."""
    with reporting(as_json):
        on = parse_date("--as-of", as_of) if as_of is not None else today(ctx)
        report = ctx.obj.read_side.branch_report(Reader.local(), branch, on)
    if as_json:
        print_json(report)
        return
    print("\n".join(branch_report_lines(report)))


@report_app.command("arrears")
def report_arrears(
    ctx: typer.Context,
    branch: Annotated[str, typer.Option(help="the branch code, e.g. BEKASI-KOTA")],
    as_of: Annotated[str | None, typer.Option(help=f"{DATE_HELP}; default today")] = None,
    as_json: AsJson = False,
) -> None:
    """Per employer and BPU member of a branch, the bills unpaid after their due date on a date, with months overdue,
    the late fine accrued and aging buckets (collections projection)."""
    with reporting(as_json):
        on = parse_date("--as-of", as_of) if as_of is not None else today(ctx)
        report = ctx.obj.read_side.arrears(Reader.local(), branch, on, endpoint="ledger report arrears")
    if as_json:
        print_json(report)
        return
    print("\n".join(arrears_lines(report)))


# --- batches -------------------------------------------------------------------------------------------------------

def submit(
    ctx: typer.Context,
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="a JSON-lines file of commands")],
    as_json: AsJson = False,
) -> None:
    """Run a JSON-lines file of commands, one per line: {"command": NAME, "id": COMMAND_ID, ...fields}.

    Every line is checked before any runs. Then they run in order; at the first failure the run stops, and the
    lines before it stay written. Each line is idempotent under its id, so running the fixed file again is safe.
    """
    with reporting(as_json):
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
            emit(result, as_json, line=number)
    if as_json:
        print_json({"summary": done})
    else:
        print(f"executed {done['executed']}, repeated {done['repeated']}")


def _stop_submit(error: LedgerError, number: int, done: dict[str, int], as_json: bool) -> NoReturn:
    if as_json:
        print_error(error, as_json, line=number, **done)
    else:
        print(f"error: line {number}: {error}\nstopped at line {number}; the {sum(done.values())} line(s) before "
              f"it stay written ({done['executed']} executed, {done['repeated']} repeated). Fix the line and "
              f"submit the file again: lines already done are answered as repeats, nothing is written twice.",
              file=sys.stderr)
    raise typer.Exit(error.exit_code)


