"""The auditors' commands: `ledger audit ...`, which read Kafka, not the ledger's database."""

import signal
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger import identifiers
from ledger.audit.export import MANIFEST, export_topic, file_digest, verify_bundle
from ledger.audit.history import Subject, history_topic
from ledger.audit.reconcile import Reconciliation, reconcile
from ledger.audit.recount import as_of_topic
from ledger.audit.verify import verify_topic
from ledger.audit.witness import run_witness
from ledger.cli.common import (
    DATE_HELP,
    AsJson,
    checked,
    parse_date,
    print_json,
    reporting,
    topics_for,
)
from ledger.errors import EXIT_BREACH, EXIT_DIFFERENCES, EXIT_UNRECONCILED, InvalidInput, TlogInvalid
from ledger.formatting import TIMELINE_AMOUNTS, TIMELINE_FACTS, rupiah
from ledger.settings import read_signing_key
from ledger.tlog.checkpoint import Cosigner
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Verifier

audit_app = typer.Typer(help="Auditor tools that read Kafka, not the ledger's database.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Option("--topic", help="Default: the ledger's events topic.")] = None,
    as_json: AsJson = False,
) -> None:
    """Replay the events topic from the start: positions 1..N, chains intact, or the first breach."""
    settings = ctx.obj.settings
    with reporting(as_json):
        report = verify_topic(settings.kafka(), topic or topics_for(settings).events)
    if as_json:
        print_json(report.as_dict())
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
    topics = topics_for(settings)
    with reporting(as_json):
        report = reconcile(ctx.obj.ledger.recorder, settings.kafka(), topics)
    if as_json:
        print_json(report.as_dict())
    else:
        print("\n".join(reconcile_lines(report)))
    if not report.ok:
        raise typer.Exit(EXIT_UNRECONCILED)


def reconcile_lines(report: Reconciliation) -> list[str]:
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
    first = parse_date("--from", start) if start is not None else None
    last = parse_date("--to", end) if end is not None else None
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
    topic = topics_for(settings).events
    with reporting(as_json):
        if sum(value is not None for value in (kpj, npp, branch)) != 1:
            raise InvalidInput("audit history: give exactly one of --kpj (a member), --npp (an employer) or "
                               "--branch (a branch code)")
        if kpj is not None:
            checked(identifiers.validate_kpj, kpj)
        elif npp is not None:
            checked(identifiers.validate_npp, npp)
        elif branch is not None:
            checked(identifiers.validate_branch_code, branch)
        first, last = _period(start, end)
        subject = Subject(kpj=kpj, npp=npp, branch=branch)
        events = history_topic(settings.kafka(), topic, subject, first, last)
    if as_json:
        print_json(events)
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
    topic = topics_for(settings).events
    with reporting(as_json):
        on = parse_date("DATE", day)
        report = as_of_topic(settings.kafka(), topic, ctx.obj.views, on)
    if as_json:
        print_json(report.as_dict())
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
        raise typer.Exit(EXIT_DIFFERENCES)


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
    topic = topics_for(settings).events
    with reporting(as_json):
        first, last = _period(start, end)
        assert first is not None and last is not None  # both options are required
        manifest = export_topic(settings.kafka(), topic, first, last, out)
    manifest_sha = file_digest(out / MANIFEST)[1]
    if as_json:
        print_json({"out": str(out), "manifest_sha256": manifest_sha, **manifest})
        return
    positions = manifest["positions"]
    print(f"exported {manifest['events']:,} events of {topic} with an effective date from {first} to {last} "
          f"(positions {positions['first'] or '-'} to {positions['last'] or '-'}) into {out}")
    for entry in manifest["files"]:
        print(f"  {entry['name']:<14}{entry['bytes']:>14,} bytes  sha256 {entry['sha256']}")
    print(f"  {MANIFEST:<14} sha256 {manifest_sha} (keep it apart from the bundle to pin the bundle down)")


@audit_app.command("verify-export")
def audit_verify_export(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="the directory of an export")],
    as_json: AsJson = False,
) -> None:
    """Check an export: every file's size and SHA-256 against the manifest, and its totals against its events."""
    check = verify_bundle(folder)
    if as_json:
        print_json(check.as_dict())
    elif check.ok:
        print(f"export {folder} intact: {check.files} files match the manifest; {check.events:,} events, their hashes, "
              f"chain head and totals agree")
    else:
        print(f"export {folder} BROKEN: {check.problem_file}: {check.problem}")
    if not check.ok:
        raise typer.Exit(EXIT_BREACH)




@audit_app.command("witness")
def audit_witness(
    ctx: typer.Context,
    key: Annotated[Path, typer.Option("--key", metavar="WITNESS_SIGNING_KEY_FILE", show_default=False,
                                      help="the witness's cosigning key file (`ledger keys generate --witness`)")],
    log_key: Annotated[str, typer.Option("--log-key", metavar="LOG_VERIFIER", show_default=False,
                                         help="the log's verifier key (name+keyid+base64), as its operator "
                                              "published it")],
    follow: Annotated[bool, typer.Option("--follow", help="Keep cosigning new checkpoints until SIGTERM/SIGINT.")
                      ] = False,
    as_json: AsJson = False,
) -> None:
    """Cosign every new checkpoint of the log that extends the history this witness cosigned before (docs/audit.md,
    "Witnesses"); refuse any other.

    Exits 8 when the log's key signed a checkpoint inconsistent with one it cosigned (it stops there), or, at the
    end of a run without --follow, when it refused any record (not signed by the log's key, say)."""
    stopping = threading.Event()  # SIGTERM/SIGINT: finish the checkpoint in hand, then report and exit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    settings = ctx.obj.settings
    with reporting(as_json):
        cosigner = Cosigner.of(read_signing_key(key, "--key", SIGNATURE_TYPE_COSIGNATURE_V1))
        try:
            log_verifier = Ed25519Verifier.of(log_key.strip())
        except TlogInvalid as error:
            raise InvalidInput(f"--log-key: not a log's verifier key ({error})") from None
        report = run_witness(settings.kafka(), topics_for(settings), cosigner, log_verifier, follow=follow,
                             stop=stopping.is_set, log=lambda line: print(line, file=sys.stderr))
    if as_json:
        print_json(report.as_dict())
    else:
        last = report.last
        print(f"witness {report.witness} cosigned {report.cosigned:,} checkpoint(s) of {report.log} onto "
              f"{report.witness_topic}; latest cosigned: "
              + (f"size {last.size:,} (offset {last.offset} of {report.checkpoints_topic})" if last else "none"))
        if report.refused_count:
            print(f"refused {report.refused_count:,} record(s) of {report.checkpoints_topic} (said above)")
    if report.breach is not None:
        print(f"BREACH: the log's key signed a checkpoint this witness will not cosign, and the witness stopped: "
              f"{report.breach.reason}", file=sys.stderr)
    if not report.ok:
        raise typer.Exit(EXIT_BREACH)
