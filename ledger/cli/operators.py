"""The operators' commands: topics, the relay, the projections, the API server, generated data, the
example consumers and the demo."""

import errno
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger import identifiers
from ledger.cli.common import AsJson, checked, print_json, reporting, topics_for
from ledger.errors import (
    AlreadyExists,
    ConfigurationError,
    InvalidInput,
    InvariantViolation,
    KafkaRefused,
    ProjectionError,
    RebuildStopped,
)
from ledger.private_files import FILE_MODE, make_private_dir
from ledger.publishing import kafka_client, relay
from ledger.publishing.topics import TEAMS_MAX, Principals, init_topics, role_grants
from ledger.tlog.note import (
    SIGNATURE_TYPE_COSIGNATURE_V1,
    SIGNATURE_TYPE_ED25519,
    Ed25519Signer,
    SignerKey,
    key_name_problem,
)
from projections.catalog import PROJECTIONS

KEY_NAME_CHARS_MAX = 200  # a key name is an origin like bpjs.example/ledger: longer is a mistake

kafka_app = typer.Typer(help="Manage the ledger's Kafka topics.", no_args_is_help=True)
projections_app = typer.Typer(help="Operate the read-side projections: run, status, rebuild.", no_args_is_help=True)
keys_app = typer.Typer(help="Make the signing keys of the fund's log and of its witnesses (docs/audit.md).",
                        no_args_is_help=True)
consumers_app = typer.Typer(help="The example downstream consumers, built on the SDK (docs/consumers.md).",
                            no_args_is_help=True)


# A Kafka principal as `kafka-acls` writes it (`User:relay`); a bare name means `User:<name>`.
PRINCIPAL = re.compile(r"(?:User:)?([A-Za-z0-9._@=-]{1,128})")
# A consumer team is its consumer group id: its dead-letter topic `<team>.dead-letters` must be a valid topic name.
TEAM = re.compile(r"[A-Za-z0-9._-]{1,200}")


def _principal(option: str, text: str) -> str:
    match = PRINCIPAL.fullmatch(text.strip())
    if not match:
        raise InvalidInput(f"{option} {text!r}: not a principal; give User:NAME or NAME (letters, digits, . _ @ = -)")
    return f"User:{match.group(1)}"


def _teams(entries: list[str]) -> dict[str, str | None]:
    """`TEAM` or `TEAM=PRINCIPAL` -> {team: principal or None}."""
    if len(entries) > TEAMS_MAX:
        raise InvalidInput(f"--consumer given {len(entries)} times: at most {TEAMS_MAX}")
    teams: dict[str, str | None] = {}
    for entry in entries:
        team, _, principal = entry.partition("=")
        if not TEAM.fullmatch(team):
            raise InvalidInput(f"--consumer {entry!r}: the team is its consumer group id, 1-200 of A-Z a-z 0-9 . _ -")
        if team in teams:
            raise InvalidInput(f"--consumer {team} given twice")
        teams[team] = _principal(f"--consumer {team}=", principal) if principal else None
    return teams


@kafka_app.command("init")
def kafka_init(
    ctx: typer.Context,
    relay_principal: Annotated[str | None, typer.Option("--relay", metavar="PRINCIPAL", show_default=False,
                                                        help="grant this principal the relay's ACLs")] = None,
    projections: Annotated[str | None, typer.Option("--projections", metavar="PRINCIPAL", show_default=False,
                                                    help="grant this principal the projections' ACLs")] = None,
    auditors: Annotated[list[str] | None, typer.Option("--auditor", metavar="PRINCIPAL", show_default=False,
                                                       help="grant an auditor's ACLs (repeatable)")] = None,
    witnesses: Annotated[list[str] | None, typer.Option("--witness", metavar="PRINCIPAL", show_default=False,
                                                        help="grant a witness's ACLs (repeatable)")] = None,
    consumers: Annotated[list[str] | None, typer.Option(
        "--consumer", metavar="TEAM[=PRINCIPAL]", show_default=False,
        help="create a consumer team's dead-letter topic; with =PRINCIPAL, grant it the team's ACLs (repeatable)")
    ] = None,
    api: Annotated[str | None, typer.Option("--api", metavar="PRINCIPAL", show_default=False,
                                            help="grant this principal the HTTP API's ACLs (`ledger serve`)")] = None,
    as_json: AsJson = False,
) -> None:
    """Create the ledger's topics if missing, and grant each named principal its role's ACLs (idempotent).

    Run as the cluster's administrator: nobody else may create topics or grant ACLs. docs/kafka.md lists the ACLs."""
    settings = ctx.obj.settings
    topics = topics_for(settings)
    with reporting(as_json):
        teams = _teams(consumers or [])
        who = Principals(
            relay=_principal("--relay", relay_principal) if relay_principal else None,
            projections=_principal("--projections", projections) if projections else None,
            auditors=tuple(_principal("--auditor", auditor) for auditor in auditors or []),
            witnesses=tuple(_principal("--witness", witness) for witness in witnesses or []),
            teams={team: principal for team, principal in teams.items() if principal},
            api=_principal("--api", api) if api else None)
        factor = settings.replication_factor_checked()
        kafka = settings.kafka()
        created = init_topics(kafka, topics, settings.kafka_partitions, replication_factor=factor, teams=list(teams))
        grants = role_grants(topics, settings.relay_transactional_id, who,
                             access_transactional_id=settings.access_log_transactional_id)
        try:
            kafka_client.create_acls(kafka, grants)
        except kafka_client.RetriableError:
            raise  # the cluster did not answer: exit 15 (ledger.cli.main)
        except kafka_client.KafkaError as error:
            raise ConfigurationError(f"the topics are there, but the cluster refused the ACLs "
                                     f"({type(error).__name__}: {error}); a cluster without an authorizer "
                                     f"(`authorizer.class.name`) cannot hold ACLs") from None
    result = {"events_topic": topics.events, "state_topic": topics.state, "checkpoints_topic": topics.checkpoints,
              "witness_topic": topics.witness, "access_topic": topics.access, "created": created,
              "partitions": settings.kafka_partitions, "replication_factor": factor,
              "dead_letter_topics": [f"{team}.dead-letters" for team in teams],
              "acls": [vars(grant) for grant in grants]}
    if as_json:
        print_json(result)
        return
    print(f"topics {topics.events} ({settings.kafka_partitions} partitions, kept forever), {topics.state}, "
          f"{topics.checkpoints}, {topics.witness}, {topics.access}"
          f"{''.join(', ' + name for name in result['dead_letter_topics'])}, {factor} "
          f"cop{'y' if factor == 1 else 'ies'} each: {'created ' + ', '.join(created) if created else 'already there'}")
    for principal in sorted({grant.principal for grant in grants}):
        print(f"granted {principal}: " + ", ".join(f"{grant.operation} {grant.resource} {grant.name}"
                                                   f"{'*' if grant.pattern == 'PREFIXED' else ''}"
                                                   for grant in grants if grant.principal == principal))


@keys_app.command("generate")
def keys_generate(
    name: Annotated[str, typer.Option("--name", show_default=False,
                                      help="the key's name: for the log, its origin, e.g. bpjs.example/ledger")],
    out: Annotated[Path, typer.Option("--out", metavar="FILE", show_default=False,
                                      help="where to write the signing key (a new file, mode 0600)")],
    witness: Annotated[bool, typer.Option("--witness", help="a witness's cosigning key (type 0x04) instead of the "
                                                            "log's signing key (type 0x01)")] = False,
    as_json: AsJson = False,
) -> None:
    """Write a new Ed25519 signing key to FILE and print its verifier key, for auditors and witnesses to hold.

    The signing key is secret: the relay reads the log's from LEDGER_LOG_SIGNING_KEY_FILE; a witness's is given to
    `ledger audit witness --key`. An existing FILE is never overwritten."""
    with reporting(as_json):
        problem = key_name_problem(name)
        if problem is not None:
            raise InvalidInput(f"--name {name!r}: {problem}")
        if len(name) > KEY_NAME_CHARS_MAX:
            raise InvalidInput(f"--name is at most {KEY_NAME_CHARS_MAX} characters")
        key = SignerKey.generate(name, SIGNATURE_TYPE_COSIGNATURE_V1 if witness else SIGNATURE_TYPE_ED25519)
        try:
            make_private_dir(out.parent)
            descriptor = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
        except FileExistsError:
            raise AlreadyExists(f"{out} exists: a signing key is never overwritten (its signatures would no longer "
                                f"verify); choose another --out, or remove the old key deliberately") from None
        except OSError as error:
            raise InvalidInput(f"--out {out}: cannot create it: {error.strerror}") from None
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(key.format() + "\n")
    verifier = key.verifier_key().format()
    if as_json:
        print_json({"verifier_key": verifier, "signing_key_file": str(out), "name": name,
                    "kind": "witness" if witness else "log"})
        return
    print(f"wrote the {'witness' if witness else 'log'} signing key {name} to {out} (mode 0600: keep it secret); "
          f"its verifier key, for auditors{'' if witness else ' and witnesses'}, is on stdout", file=sys.stderr)
    print(verifier)


@kafka_app.command("acls")
def kafka_acls(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Print every ACL the cluster holds: who may do what, on which topic, group or transactional id."""
    with reporting(as_json):
        kafka = ctx.obj.settings.kafka()
        try:
            grants = kafka_client.describe_acls(kafka)
        except kafka_client.AuthorizationError as error:
            raise KafkaRefused(f"the cluster at {kafka.servers} refused to list its ACLs to {kafka.principal} "
                               f"({type(error).__name__}); only the administrator may (docs/kafka.md)") from None
        except kafka_client.RetriableError:
            raise  # the cluster did not answer: exit 15 (ledger.cli.main)
        except kafka_client.KafkaError as error:
            raise ConfigurationError(f"the cluster at {kafka.servers} did not list its ACLs to {kafka.principal} "
                                     f"({type(error).__name__}: {error}); a cluster without an authorizer "
                                     f"(`authorizer.class.name`) holds no ACLs") from None
    if as_json:
        print_json([vars(grant) for grant in grants])
        return
    if not grants:
        print("no ACLs")
    for grant in grants:
        print(f"{grant.principal:<28} {grant.operation:<16} {grant.resource:<17} {grant.name}"
              f"{'*  (every name starting so)' if grant.pattern == 'PREFIXED' else ''}")


def run_relay(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", help="Keep tailing the store after catching up.")] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, max=relay.RELAY_BATCH_LIMIT,
                                       help="Events per Kafka transaction.")] = relay.RELAY_BATCH_MAX,
    as_json: AsJson = False,
) -> None:
    """Publish the event store's new events to Kafka, exactly once; catch up and exit, or --follow.

    Exits 12 when its saved state is beyond the store's last notification, or unreadable: nothing is published."""
    stopping = threading.Event()  # SIGTERM/SIGINT: commit or abort the transaction in hand, then report and exit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    settings = ctx.obj.settings
    with reporting(as_json):
        # The relay publishes the NIK hashes the store holds: like the write side it runs only with the fund's key
        # set (or in development mode), so a deployment that forgot the key publishes nothing.
        store = ctx.obj.ledger.recorder
    topics = topics_for(settings)
    with reporting(as_json):
        kafka = settings.kafka()
        # It signs a checkpoint in every transaction with the log's key: none, none published (development only).
        key = settings.log_signing_key()
    # The relay creates no topic, as it may not (docs/kafka.md): `Relay.connect` names `ledger kafka init` instead.
    publisher = relay.Relay(store, kafka, topics, signer=Ed25519Signer.of(key) if key else None,
                            transactional_id=settings.relay_transactional_id,
                            compression_type=settings.compression_type, batch_max=batch,
                            log=lambda line: print(line, file=sys.stderr))
    try:
        with reporting(as_json):
            published = publisher.run(follow=follow, stop=stopping.is_set)
    finally:
        publisher.close()
    result = {"published": published, "position": publisher.state.position,
              "notification_id": publisher.state.notification_id, "topic": topics.events}
    if as_json:
        print_json(result)
    else:
        print(f"published {published:,} events to {topics.events}; last position {publisher.state.position:,}")


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
    with reporting(as_json):
        chosen = _projection_names(names)
        applied = runner.run(ctx.obj.settings, chosen, follow=follow, stop=stopping.is_set,
                             log=lambda line: print(line, file=sys.stderr))
    if as_json:
        print_json({"applied": applied})
    else:
        print("; ".join(f"{name}: applied {count:,} events" for name, count in applied.items()))


@projections_app.command("status")
def projections_status(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Per projection: live version, events applied, offsets behind the topic's end per partition, last update."""
    from projections import runner

    with reporting(as_json):
        rows = runner.status(ctx.obj.settings)
    if as_json:
        print_json(rows)
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

    with reporting(as_json):
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
            except InvariantViolation as error:
                raise RebuildStopped(f"rebuild of {name} stopped: {error.problem}, traced to event "
                                     f"{error.event_id}; the live version is unchanged") from None
            except ProjectionError as error:
                raise RebuildStopped(f"rebuild of {name} stopped: {error}; the live version is unchanged") from None
    summary = {"name": result.name, "version": result.version, "replaced": result.replaced, "events": result.events,
               "seconds": round(result.seconds, 3), "events_per_second": round(result.events / result.seconds),
               "ties": result.ties}
    if as_json:
        print_json(summary)
    else:
        print(f"{name}: version {result.version} built from offset 0 ({result.events:,} events in "
              f"{result.seconds:.1f}s, {summary['events_per_second']:,} events/s), invariants hold; readers switched "
              f"from version {result.replaced or '-'}, which was dropped")
        print(result.ties)


def _projection_names(names: list[str] | None) -> list[str]:
    unknown = [name for name in names or [] if name not in PROJECTIONS]
    if unknown:
        raise InvalidInput(f"unknown projection {', '.join(unknown)}: choose from {', '.join(PROJECTIONS)}")
    return list(names or PROJECTIONS)


class _ServerStopped(Exception):
    """SIGTERM or SIGINT: uvicorn finished the requests in hand and raised the signal again (see `serve`)."""


def _stop_server(_signum: int, _frame: object) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)  # once: a second signal must not interrupt the publisher's stop
    raise _ServerStopped


def _listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound here rather than by uvicorn, so that an address in use or not this machine's is
    a clear error naming the settings (exit 2), not uvicorn's log line and exit 3 (which is NotFound here)."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: restart at once after a stop
    try:
        listening.bind((host, port))
    except OSError as error:
        listening.close()
        advice = {errno.EADDRINUSE: "stop what listens there, or choose another LEDGER_API_PORT",
                  errno.EADDRNOTAVAIL: "LEDGER_API_HOST must be an address of this machine (127.0.0.1 by default)",
                  errno.EACCES: "ports below 1024 need privileges: choose another LEDGER_API_PORT"}
        raise ConfigurationError(f"ledger serve cannot listen on {host}:{port} (LEDGER_API_HOST, LEDGER_API_PORT): "
                                 f"{error.strerror or error}; "
                                 f"{advice.get(error.errno or 0, 'check LEDGER_API_HOST and LEDGER_API_PORT')}"
                                 ) from None
    return listening


def serve(ctx: typer.Context) -> None:
    """The read-only HTTP API (OpenAPI at /docs and /openapi.json) on LEDGER_API_HOST:LEDGER_API_PORT; in the
    background, it publishes the access log to Kafka (docs/audit.md, "The access log").

    Every endpoint but /health needs a bearer token verified against LEDGER_API_JWKS_FILE or LEDGER_API_JWKS_URL,
    naming LEDGER_API_ISSUER and LEDGER_API_AUDIENCE: without them it does not start (exit 2). Ctrl-C or SIGTERM
    stops it: it finishes the requests in hand, stops publishing, and exits 0."""
    from projections.access_log import AccessLogPublisher
    from projections.api import create_app, server

    settings = ctx.obj.settings
    with reporting(False):
        settings.api_token_verification()  # first: no server, and nothing opened, without the token settings
        app = create_app(settings, ctx.obj.views, access_log=ctx.obj.access_log)
        listening = _listening_socket(settings.api_host, settings.api_port)
        publisher = AccessLogPublisher.open(settings, log=lambda line: print(line, file=sys.stderr))
    host = f"[{settings.api_host}]" if ":" in settings.api_host else settings.api_host
    print(f"ledger serve: the read API on http://{host}:{settings.api_port}/ (OpenAPI at /docs, the console at "
          "/console/); Ctrl-C or SIGTERM stops it", file=sys.stderr, flush=True)
    # uvicorn takes SIGTERM and SIGINT while it serves, finishes the requests in hand, then raises the signal again
    # with the handlers it found: these, which end the command as the other long-running ones end (exit 0), once the
    # publisher has stopped.
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stop_server)
        publisher.start()
        server(app).run(sockets=[listening])
    except _ServerStopped:
        pass
    finally:
        publisher.stop()


def generate(
    ctx: typer.Context,
    branch: Annotated[str, typer.Option(help="branch code")] = "BEKASI-KOTA",
    employers: Annotated[int, typer.Option(min=1, help="employers (the first is the city government)")] = 40,
    members: Annotated[int, typer.Option(min=1, help="PU members enrolled at the start")] = 3_000,
    bpu: Annotated[int, typer.Option(min=0, help="BPU (informal) members")] = 150,
    first_month: Annotated[str, typer.Option("--from", help="first contribution month, YYYY-MM")] = "2017-01",
    months: Annotated[int, typer.Option(min=1, max=120, help="months of history")] = 9,
    seed: Annotated[int, typer.Option(help="the same seed writes the same history")] = 2017,
    collections: Annotated[bool, typer.Option("--collections", help="bill each month at its close and record the "
                                                                    "money as it arrives, instead of paying")] = False,
    budget: Annotated[int, typer.Option(min=0, help="with --collections: BPU members whose contributions the city's "
                                                    "regional budget pays")] = 0,
    as_json: AsJson = False,
) -> None:
    """Write a seeded, reproducible branch history through the ledger's commands (scripts/generate)."""
    from ledger.generator import BranchPlan, generate_branch

    with reporting(as_json):
        checked(identifiers.validate_branch_code, branch)
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", first_month):
            raise InvalidInput(f"--from must be a month YYYY-MM, got {first_month!r}")
        try:
            plan = BranchPlan(branch=branch, employers=employers, members=members, bpu_members=bpu,
                              first_month=first_month, months=months, seed=seed, collections=collections,
                              budget_members=budget)
        except ValueError as error:
            raise InvalidInput(str(error)) from None
        counts = generate_branch(ctx.obj.ledger, plan,
                                 progress=(lambda _: None) if as_json else lambda line: print(f"  {line}"))
    if as_json:
        print_json(counts)
    else:
        print(f"generated {branch}: "
              + ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in counts.items()))


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
    with reporting(as_json):
        subscriber = build(settings.kafka(), topics_for(settings).events, target, group_id=group,
                           start=_start(start), log=lambda line: print(line, file=sys.stderr))
        stats = subscriber.run(idle_timeout_s=idle_exit)
    result = {"consumer": what, "group": subscriber.group_id, "handled": stats.handled,
              "duplicates": stats.duplicates, "passed_over": stats.passed_over, "retries": stats.retries,
              "dead_lettered": stats.dead_lettered, "dead_letter_topic": subscriber.dead_letter_topic}
    if as_json:
        print_json(result)
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


def run_demo(ctx: typer.Context) -> None:
    """The main job of scripts/demo: a Bekasi Kota scenario, written, relayed to Kafka and verified."""
    from ledger.demo import run_demo as demo

    with reporting(False):
        code = demo(ctx.obj.settings)
    raise typer.Exit(code)


