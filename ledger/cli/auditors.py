"""The auditors' commands: `ledger audit ...`, which read Kafka, not the ledger's database."""

import json
import signal
import sys
import threading
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger import identifiers
from ledger.audit.access import AccessReport, access_topic
from ledger.audit.export import MANIFEST, export_topic, file_digest, verify_bundle
from ledger.audit.history import Subject, history_topic
from ledger.audit.proofs import PROOF_FILE_BYTES_MAX, check_proof, prove_event, prove_sizes
from ledger.audit.reconcile import Reconciliation, reconcile
from ledger.audit.recount import as_of_topic
from ledger.audit.verify import VERIFY_WORKERS_DEFAULT, VERIFY_WORKERS_MAX, VerifyReport, verify_topic
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
from ledger.formatting import TIMELINE_AMOUNTS, TIMELINE_FACTS, payer_books_lines, rupiah
from ledger.private_files import write_private
from ledger.settings import read_signing_key
from ledger.tlog.checkpoint import CosignatureVerifier, Cosigner
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Verifier
from projections.access_log import SUBJECT_CHARS_MAX

LOG_KEYS_MAX = 20  # a log's keys over time: one per rotation
WITNESS_KEYS_MAX = 100
AS_OF_PAYERS_SHOWN_MAX = 50  # payers `audit as-of` lists on the terminal; --json lists every one

audit_app = typer.Typer(help="Auditor tools that read Kafka, not the ledger's database.", no_args_is_help=True)


LogKeys = Annotated[list[str] | None, typer.Option(
    "--key", metavar="VERIFIER", help="the log's verifier key (name+keyid+base64), from the fund through a channel of "
                                      "your own: checks the signed checkpoints; repeat for the keys before and after "
                                      "a rotation, oldest first")]
WitnessKeys = Annotated[list[str] | None, typer.Option(
    "--witness", metavar="WITNESS_VERIFIER", help="a witness's verifier key (type 0x04); repeat for more")]
WitnessesRequired = Annotated[int, typer.Option(
    "--witnesses-required", metavar="K", help="fail unless K of the given witnesses cosigned")]


def _keys(key: list[str] | None, witness: list[str] | None, required: int
          ) -> tuple[list[Ed25519Verifier] | None, list[CosignatureVerifier]]:
    """The verifier keys the auditor gave, parsed; a bad one is bad input (exit 2). Several log keys are the keys of
    one log over time (a rotation): one name, no key twice."""
    witness = witness or []
    if not key:
        if witness or required:
            raise InvalidInput("--witness and --witnesses-required check the log's checkpoints: give --key too")
        return None, []
    if len(key) > LOG_KEYS_MAX or len(witness) > WITNESS_KEYS_MAX:
        raise InvalidInput(f"at most {LOG_KEYS_MAX} --key and {WITNESS_KEYS_MAX} --witness keys")
    try:
        log = [Ed25519Verifier.of(one) for one in key]
        witnesses = [CosignatureVerifier.of(one) for one in witness]
    except TlogInvalid as error:
        raise InvalidInput(f"not a verifier key: {error}") from None
    if len({one.name for one in log}) > 1:
        raise InvalidInput(f"the --key keys are of different logs ({', '.join(sorted({one.name for one in log}))}): "
                           f"several --key are one log's keys over time, all of one name")
    if len({one.key_id for one in log}) < len(log) or len({(w.name, w.key_id) for w in witnesses}) < len(witnesses):
        raise InvalidInput("a key is given twice")
    if not 0 <= required <= len(witnesses):
        raise InvalidInput(f"--witnesses-required {required}: between 0 and the {len(witnesses)} --witness keys given")
    return log, witnesses


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    topic: Annotated[str | None, typer.Option("--topic", help="Default: the ledger's events topic.")] = None,
    key: LogKeys = None,
    witness: WitnessKeys = None,
    witnesses_required: WitnessesRequired = 0,
    workers: Annotated[int, typer.Option(
        "--workers", metavar="N", help="processes that read the events' partitions side by side (1: this one; "
                                       "topics under 100,000 records are read by one)")] = VERIFY_WORKERS_DEFAULT,
    as_json: AsJson = False,
) -> None:
    """Replay the events topic from the start: positions 1..N, chains intact, or the first breach. With --key, also
    the signed log: every checkpoint's signature and root, and no event after the last checkpoint."""
    settings = ctx.obj.settings
    topics = topics_for(settings)
    with reporting(as_json):
        log, witnesses = _keys(key, witness, witnesses_required)
        if not 1 <= workers <= VERIFY_WORKERS_MAX:
            raise InvalidInput(f"--workers {workers}: between 1 and {VERIFY_WORKERS_MAX}")
        report = verify_topic(settings.kafka(), topic or topics.events, log=log, checkpoints_topic=topics.checkpoints,
                              witnesses=witnesses, witness_topic=topics.witness,
                              witnesses_required=witnesses_required, workers=workers)
    if as_json:
        print_json(report.as_dict())
    else:
        print("\n".join(verify_lines(report)))
    if not report.ok:
        raise typer.Exit(EXIT_BREACH)


def verify_lines(report: VerifyReport) -> list[str]:
    """`ledger audit verify` as it prints: the topic's checks, the signed log's, then every breach kept."""
    lines = [(f"checked {report.events:,} events in {report.topic}: positions "
              f"{'contiguous' if report.positions_ok else 'NOT contiguous'} from 1 to {report.last_position or 0:,}, "
              f"chains {'intact' if report.chains_ok else 'BROKEN'}")]
    signed = report.signed
    if signed is None:
        lines.append("signed log: NOT checked (give --key VERIFIER, the log's verifier key, to check the checkpoints; "
                     "without it a writer to the topic can forge events that pass)")
    else:
        lines.append(f"signed log: {signed.checkpoints:,} checkpoints on {signed.checkpoints_topic} checked with "
                     f"{signed.log_key}: {'valid' if signed.checkpoints_ok else 'BREACHED'}, signed up to size "
                     f"{signed.signed_size:,}; unsigned tail: {signed.unsigned_tail:,} events")
        if signed.checkpoints_ahead:
            lines.append(f"  {signed.checkpoints_ahead:,} checkpoints cover events published while the topic was "
                         f"read (signatures checked)")
        lines += [f"  witness {one.name}+{one.key_id:08x} cosigned up to size {one.cosigned_size:,}"
                  for one in signed.witnesses]
        if signed.witnesses:
            required = signed.witnesses_required or len(signed.witnesses)
            lines.append(f"  cosigned by {required} of the {len(signed.witnesses)} witnesses up to size "
                         f"{signed.cosigned_size or 0:,}")
    if report.breaches:
        lines.append(f"first breach: {report.breaches[0]} ({len(report.breaches)} found)")
        lines += [f"  breach: {one}" for one in report.breaches[1:]]
    return lines


@audit_app.command("prove")
def audit_prove(
    ctx: typer.Context,
    key: Annotated[list[str], typer.Option("--key", metavar="VERIFIER", help="the log's verifier key: only checkpoints "
                                                                         "it signed are proved against; repeat for "
                                                                         "the keys before and after a rotation")],
    event_id: Annotated[str | None, typer.Argument(metavar="EVENT_ID", help="the event to prove")] = None,
    from_size: Annotated[int | None, typer.Option("--from-size", metavar="N",
                                                  help="a consistency proof: from the checkpoint of size N")] = None,
    to_size: Annotated[int | None, typer.Option("--to-size", metavar="M",
                                                help="... to the checkpoint of size M")] = None,
    witness: Annotated[list[str] | None, typer.Option(
        "--witness", metavar="WITNESS_VERIFIER", help="a witness's verifier key (type 0x04): its cosignatures that "
                                                      "verify go into the proof; repeat for more")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="the file to write (0600); default: stdout")] = None,
    as_json: AsJson = False,
) -> None:
    """Write a receipt for an event (a C2SP tlog-proof bundle: the event, its inclusion proof and the signed
    checkpoint), or a consistency proof between two checkpoints; `ledger audit check-proof` checks either offline.
    Only a checkpoint signed by a --key is used, and only the cosignatures of the --witness keys that verify."""
    settings = ctx.obj.settings
    topics = topics_for(settings)
    with reporting(as_json):
        sizes = (from_size, to_size)
        if (event_id is None) == (sizes == (None, None)) or (None in sizes and sizes != (None, None)):
            raise InvalidInput("audit prove: give an EVENT_ID, or both --from-size N and --to-size M")
        log, witnesses = _keys(key, witness, 0)
        assert log is not None  # --key is required
        if event_id is not None:
            receipt = prove_event(settings.kafka(), topics, event_id, log, witnesses)
            summary = (f"receipt for event {event_id} at position {receipt.summary['position']:,}, proved against the "
                       f"checkpoint of size {receipt.summary['checkpoint_size']:,} signed by "
                       f"{', '.join(receipt.summary['signatures'])}")
        else:
            assert from_size is not None and to_size is not None
            receipt = prove_sizes(settings.kafka(), topics, from_size, to_size, log, witnesses)
            summary = (f"consistency proof from the checkpoint of size {from_size:,} to the checkpoint of size "
                       f"{to_size:,} ({receipt.summary['hashes']} hashes)")
        if out is not None:
            try:
                write_private(out, receipt.data)
            except OSError as error:
                raise InvalidInput(f"cannot write {out}: {error.strerror or error}") from None
    # The proof goes to the file or stdout; what was written is said on stdout, or on stderr if stdout has the proof.
    said = sys.stdout if out is not None else sys.stderr
    if out is None:
        sys.stdout.buffer.write(receipt.data)
        sys.stdout.flush()
    if as_json:
        print(json.dumps({**receipt.summary, "out": str(out) if out is not None else None},
                         ensure_ascii=False), file=said)
    else:
        print(summary + (f": {out}" if out is not None else ""), file=said)


@audit_app.command("check-proof")
def audit_check_proof(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="a receipt or a consistency proof")],
    key: Annotated[list[str], typer.Option("--key", metavar="VERIFIER", help="the log's verifier key; repeat for the "
                                                                         "keys before and after a rotation")],
    witness: WitnessKeys = None,
    witnesses_required: WitnessesRequired = 0,
    as_json: AsJson = False,
) -> None:
    """Check a receipt (`ledger audit prove EVENT_ID`) or a consistency proof offline, with no Kafka and no store:
    the log's signature, the witnesses' cosignatures, the proof. Exits 8 when it fails, and says why."""
    with reporting(as_json):
        log, witnesses = _keys(key, witness, witnesses_required)
        assert log is not None
        data = _read_proof_file(file)
    try:
        result = check_proof(data, log, witnesses, witnesses_required)
    except TlogInvalid as error:
        if as_json:
            print_json({"ok": False, "file": str(file), "problem": str(error)})
        else:
            print(f"INVALID: {file}: {error}")
        raise typer.Exit(EXIT_BREACH) from None
    if as_json:
        print_json({"ok": True, "file": str(file), **result})
    else:
        print("\n".join(proof_lines(result)))


def _read_proof_file(path: Path) -> bytes:
    try:
        with path.open("rb") as file:
            data = file.read(PROOF_FILE_BYTES_MAX + 1)
    except OSError as error:
        raise InvalidInput(f"cannot read {path}: {error.strerror or error}") from None
    if len(data) > PROOF_FILE_BYTES_MAX:
        raise InvalidInput(f"{path} is over {PROOF_FILE_BYTES_MAX:,} bytes: not a receipt or a consistency proof")
    return data


def _when(timestamp: int) -> str:
    """A cosignature's time, readable; tlog-cosignature allows times up to 2^63 - 1, far beyond what datetime holds,
    so one out of its range (which only a witness's own key can sign) is printed as the number it is."""
    try:
        return f"{datetime.fromtimestamp(timestamp, UTC):%Y-%m-%d %H:%M:%S} UTC"
    except (OverflowError, ValueError, OSError):
        return f"POSIX time {timestamp}"


def _cosigned_line(cosigners: list[dict[str, Any]]) -> str:
    if not cosigners:
        return "cosigned by none of the witnesses given"
    return "cosigned by " + ", ".join(f"{one['name']}+{one['key_id']} at {_when(one['timestamp'])}"
                                      for one in cosigners)


def proof_lines(result: dict[str, Any]) -> list[str]:
    """`ledger audit check-proof` as it prints a valid proof: what it proves."""
    if result["kind"] == "consistency":
        return [(f"VALID: the log's tree of size {result['from_size']:,} (root {result['from_root']}) is a prefix "
                 f"of its tree of size {result['to_size']:,} (root {result['to_root']}), signed by "
                 f"{_signers(result['from_signed_by'], result['to_signed_by'])}"),
                f"  older checkpoint {_cosigned_line(result['from_cosigned_by'])}",
                f"  newer checkpoint {_cosigned_line(result['to_cosigned_by'])}"]
    data = result["data"]
    facts = [f"{name} {data[name]}" for name in ("kpj", "npp", "month") if data.get(name)]
    facts += [f"{name} {rupiah(data[name])}" for name in TIMELINE_AMOUNTS if isinstance(data.get(name), int)]
    shares = data.get("shares")
    if isinstance(shares, dict):
        facts += [f"{program} {part} {rupiah(amount)}" for program, parts in shares.items() if isinstance(parts, dict)
                  for part, amount in parts.items() if isinstance(amount, int)]
    return [f"VALID: event {result['event_id']} ({result['type']}) is at position {result['position']:,} of the log",
            f"  effective {result['effective_date']}, branch {result['branch']}, aggregate {result['aggregate_id']}",
            *([f"  {', '.join(facts)}"] if facts else []),
            (f"  in the checkpoint of size {result['checkpoint_size']:,}, root {result['root']}, signed by "
             f"{result['signed_by']}"),
            f"  {_cosigned_line(result['cosigned_by'])}"]


def _signers(older: str, newer: str) -> str:
    return f"both {older}" if older == newer else f"{older} and {newer} (a key rotation between them)"


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
    """Recompute every JHT balance, paying account's totals, branch total and every branch's trial balance from the
    events topic alone; list where the projections (the general ledger's accounts among them) differ.

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
              f"JHT balances, {report.accounts:,} paying accounts' totals and {report.branches:,} branches' totals, "
              f"and {report.trial_balances:,} branches' trial balances with the projections: "
              f"{report.differences_found:,} difference(s)")
        for name, applied in report.projection_events.items():
            if applied != report.events:
                print(f"note: the {name} projection has applied {applied or 0:,} of the topic's {report.events:,} "
                      f"events; run `ledger projections run` first, or expect differences")
        for difference in report.differences:
            print(f"  {difference}")
        if report.differences_found > len(report.differences):
            print(f"  ... and {report.differences_found - len(report.differences):,} more")
        for problem in report.books_problems:
            print(f"  {problem}")
        for line in payer_books_lines(report.as_dict()["collections"], AS_OF_PAYERS_SHOWN_MAX):
            print(line)
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


@audit_app.command("access")
def audit_access(
    ctx: typer.Context,
    kpj: Annotated[str | None, typer.Option(help="a member: who read its data")] = None,
    subject: Annotated[str | None, typer.Option(help="a reader (a token's subject): whose data it read")] = None,
    start: Annotated[str | None, typer.Option("--from", help=f"{DATE_HELP}: first day of the reads (UTC)")] = None,
    end: Annotated[str | None, typer.Option("--to", help=f"{DATE_HELP}: last day of the reads (UTC)")] = None,
    as_json: AsJson = False,
) -> None:
    """Who read a member's data (--kpj), or whose data a reader read (--subject), from the access log's topic, after
    checking its chain from seq 1 (docs/audit.md, "The access log").

    Exits 8 when the chain is broken (a gap, a changed or forged entry), naming the offset and seq."""
    settings = ctx.obj.settings
    topic = topics_for(settings).access
    with reporting(as_json):
        if (kpj is None) == (subject is None):
            raise InvalidInput("audit access: give exactly one of --kpj (a member) or --subject (a reader)")
        if kpj is not None:
            checked(identifiers.validate_kpj, kpj)
        elif subject is not None and not 1 <= len(subject) <= SUBJECT_CHARS_MAX:
            raise InvalidInput(f"--subject is 1 to {SUBJECT_CHARS_MAX} characters, not {len(subject):,}")
        first, last = _period(start, end)
        report = access_topic(settings.kafka(), topic, kpj=kpj, subject=subject, start=first, end=last)
    if as_json:
        print_json(report.as_dict())
    else:
        print("\n".join(access_lines(report)))
    if not report.ok:
        raise typer.Exit(EXIT_BREACH)


ACCESS_COLUMNS = (("when (UTC)", "at"), ("subject", "subject"), ("role", "role"), ("member (KPJ)", "kpj"),
                  ("endpoint", "endpoint"), ("purpose", "purpose"))


def access_lines(report: AccessReport) -> list[str]:
    """`ledger audit access` as it prints: the chain's verdict, then the reads as a table, then every breach kept."""
    chain = ("no read recorded yet" if report.ok and report.records == 0 else
             f"chain intact from seq 1 to {report.last_seq:,}" if report.ok else
             f"chain BROKEN: {report.breaches_found:,} breach(es), the first at {report.breaches[0]}")
    who = f"member {report.kpj}" if report.kpj is not None else f"subject {report.subject}"
    period = (f" from {report.start or 'the start'} to {report.end or 'the end'}"
              if report.start or report.end else "")
    lines = [f"access log {report.topic}: {report.records:,} records checked, {chain}",
             f"{report.reads_found:,} read(s) of {who}{period}" if report.kpj is not None else
             f"{report.reads_found:,} read(s) by {who}{period}"]
    rows = [[read["at"][:10] + " " + read["at"][11:19], read["subject"], read["role"], read["kpj"], read["endpoint"],
             read["purpose"] or "-"] + ([] if read["verified"] else ["UNVERIFIED: after a breach"])
            for read in report.reads]
    if rows:
        widths = [max(len(title), *(len(row[i]) for row in rows)) for i, (title, _) in enumerate(ACCESS_COLUMNS)]
        lines.append("  ".join(title.ljust(width) for (title, _), width in zip(ACCESS_COLUMNS, widths, strict=True))
                     .rstrip())
        lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, [*widths, 0], strict=False)).rstrip()
                  for row in rows]
    if report.reads_found > len(report.reads):
        lines.append(f"... and {report.reads_found - len(report.reads):,} more (--from/--to narrow the period)")
    lines += [f"  breach: {one}" for one in report.breaches[1:]]
    if report.breaches_found > len(report.breaches):
        lines.append(f"  ... and {report.breaches_found - len(report.breaches):,} more breaches")
    return lines
