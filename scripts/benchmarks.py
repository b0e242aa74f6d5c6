"""Benchmarks, each measured side by side with its baseline in one run, printed as a ratio.

Run through `scripts/bench` (it sets up the virtualenv and a broker on a free port: the secured one of
`scripts/kafka start`, connected to as its administrator over SASL_SSL, or with `--plain` a plaintext one; every
client of a benchmark, the ledger's and the raw baseline alike, connects the same way):
    scripts/bench kafka                 raw kafka-python produce and consume of 200-byte records (the baseline)
    scripts/bench commands [--scale F]  write-side commands: single commands vs the library's raw single save,
                                        one employer-month of 7,000 members, one branch-month (scaled by F)
    scripts/bench relay [--scale F]     the relay publishing one branch-month, beside the raw producer sending
                                        records of the same size, in the same run
    scripts/bench rebuild [--scale F] [--projection balances|branches] [--workers 1,2]
                                        a synthetic branch-year (262,785 members x 12 months, about 3.4 million
                                        events) rebuilt from Kafka, beside a raw consume of the same topic
    scripts/bench verify [--scale F]    `ledger audit verify` with and without the log's key, with one worker and with
                                        two, over the same synthetic branch-year (contiguous positions, real chains,
                                        a signed checkpoint every RELAY_BATCH_MAX events), beside a raw consume of the
                                        same topic
Results go to stdout as a Markdown table row set, ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path
from typing import Any

from ledger.events import EVENT_TYPES
from ledger.generator import member_rows

# Synthetic members in throwaway stores: a fresh random NIK hash key per run, never the public development key.
BENCH_NIK_KEY = secrets.token_bytes(32)

RECORD_BYTES = 200
# The broker scripts/bench starts is a single node: one copy of each benchmark topic.
BENCH_REPLICATION = 1
KAFKA_RECORDS = 200_000
RUNS = 5
POLL_TIMEOUT_MS = 1_000
POLL_ROUNDS_MAX = 600
SINGLE_COMMANDS = 2_000
ROUNDS = 5  # alternating rounds for side-by-side rates
EMPLOYER_MONTHS = ["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"]  # median of these payments
BIG_EMPLOYER_MEMBERS = 7_000
BRANCH_EMPLOYERS = 4_430
BRANCH_MEMBERS = 262_785
BULK_CHUNK_MAX = 20_000  # enrollments per bulk command when setting up a branch
RAW_KEYS_MAX = 300_000  # distinct keys the raw producer cycles through


def median_rate(samples: list[float]) -> float:
    return statistics.median(samples)


# --- Kafka baseline ------------------------------------------------------------------------------------------------

def kafka_produce_rate(kafka: Any, topic: str) -> float:
    from ledger.publishing import kafka_client

    payload = os.urandom(RECORD_BYTES)
    producer = kafka_client.producer(kafka)
    started = time.perf_counter()
    for i in range(KAFKA_RECORDS):
        producer.send(topic, key=str(i % 1000).encode(), value=payload)
    producer.flush(timeout=120)
    elapsed = time.perf_counter() - started
    producer.close()
    return KAFKA_RECORDS / elapsed


def kafka_consume_rate(kafka: Any, topic: str, expected: int) -> float:
    from ledger.publishing import kafka_client

    consumer = kafka_client.consumer(kafka, group_id=f"bench-{uuid.uuid4().hex[:8]}", topics=[topic])
    count = 0
    started = None
    for _ in range(POLL_ROUNDS_MAX):
        batches = consumer.poll(timeout_ms=POLL_TIMEOUT_MS)
        if batches and started is None:
            started = time.perf_counter()
        count += sum(len(records) for records in batches.values())
        if count >= expected:
            break
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return count / elapsed if elapsed else 0.0


def bench_kafka(kafka: Any) -> dict[str, float]:
    from ledger.publishing import kafka_client

    produced, consumed = [], []
    for run in range(RUNS):
        topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
        kafka_client.ensure_topic(kafka, topic, partitions=12, replication_factor=BENCH_REPLICATION)
        produced.append(kafka_produce_rate(kafka, topic))
        consumed.append(kafka_consume_rate(kafka, topic, KAFKA_RECORDS * 1))
        print(f"  run {run + 1}: produce {produced[-1]:,.0f}/s, consume {consumed[-1]:,.0f}/s", file=sys.stderr)
    return {"produce": median_rate(produced), "consume": median_rate(consumed)}


# --- Write side ----------------------------------------------------------------------------------------------------

def raw_single_saver(env: dict[str, str]):
    """The eventsourcing library's own rate: one new aggregate, one save(), one transaction, no domain logic."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Probe(Aggregate):
        @event("Created")
        def __init__(self, kpj: str, wage: int) -> None:
            self.kpj, self.wage = kpj, wage

    app = Application(env=env)
    return lambda i: app.save(Probe(kpj=f"{i:011d}", wage=5_000_000))


def interleaved_rates(runners: dict[str, object], count: int) -> dict[str, float]:
    """Rates of several per-item runners, measured in alternating rounds so machine noise hits all alike; medians."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    per_round = count // ROUNDS
    for round_ in range(ROUNDS):
        for name, run in runners.items():
            started = time.perf_counter()
            for i in range(round_ * per_round, (round_ + 1) * per_round):
                run(i)
            samples[name].append(per_round / (time.perf_counter() - started))
    return {name: statistics.median(rates) for name, rates in samples.items()}


def employer_command(npp: str, kind: str = "company"):
    from ledger.commands import RegisterEmployer

    return RegisterEmployer.build(npp=npp, name=f"PT Bench {npp}", branch="BEKASI-KOTA", kind=kind,
                                  risk_class="low", registered_on=date(2020, 1, 1))


def enroll_branch(app, scale: float) -> tuple[int, int]:
    """Register a branch's employers and enroll its members (scaled), one bulk command per employer."""
    from ledger.commands import EnrollMembers

    employers = max(1, round(BRANCH_EMPLOYERS * scale))
    members = max(employers, round(BRANCH_MEMBERS * scale))
    next_kpj = 1
    started = time.perf_counter()
    for e in range(employers):
        size = members // employers + (1 if e < members % employers else 0)
        npp = f"{30000000 + e:08d}"
        app.execute(employer_command(npp))
        app.execute(EnrollMembers.build(npp=npp, effective=date(2024, 1, 1), members=member_rows(next_kpj, size)))
        next_kpj += size
    print(f"  branch set up: {employers:,} employers, {members:,} members in "
          f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
    return employers, members


def pay_branch_month(app, employers: int) -> None:
    from ledger.commands import PayContribution

    for e in range(employers):
        app.execute(PayContribution.build(npp=f"{30000000 + e:08d}", month="2024-03", paid_on=date(2024, 4, 10)))


def bench_commands(env_for, scale: float) -> dict[str, float]:
    from ledger.application import Ledger
    from ledger.commands import ChangeWage, EnrollMember, EnrollMembers, PayContribution

    clock = lambda: date(2026, 11, 23)  # noqa: E731
    results: dict[str, float] = {}

    # 1. Single commands beside the library's raw single save, same backend, same run, alternating rounds.
    app = Ledger(env=env_for("single"), clock=clock, nik_key=BENCH_NIK_KEY)
    app.execute(employer_command("10000001"))
    rows = member_rows(1, SINGLE_COMMANDS)
    rates = interleaved_rates({
        "raw_save": raw_single_saver(env_for("raw")),
        "enroll": lambda i: app.execute(EnrollMember.build(member=rows[i], npp="10000001",
                                                           effective=date(2024, 1, 1))),
        "change_wage": lambda i: app.execute(ChangeWage.build(kpj=rows[i].kpj, wage=rows[i].wage + 1000,
                                                              effective=date(2024, 6, 1))),
    }, SINGLE_COMMANDS)
    results.update(rates)

    # 2. One employer-month: 7,000 members (the city government's contract staff).
    app = Ledger(env=env_for("employer"), clock=clock, nik_key=BENCH_NIK_KEY)
    app.execute(employer_command("20000001", kind="government"))
    app.execute(EnrollMembers.build(npp="20000001", effective=date(2024, 1, 1),
                                    members=member_rows(1, BIG_EMPLOYER_MEMBERS)))
    durations = []
    for month in EMPLOYER_MONTHS:
        started = time.perf_counter()
        app.execute(PayContribution.build(npp="20000001", month=month, paid_on=date(2024, 6, 10)))
        durations.append(time.perf_counter() - started)
    results["employer_month_s"] = statistics.median(durations)

    # 3. One branch-month: 4,430 employers, 262,785 members (scaled), each employer paying once.
    app = Ledger(env=env_for("branch"), clock=clock, nik_key=BENCH_NIK_KEY)
    employers, members = enroll_branch(app, scale)
    started = time.perf_counter()
    pay_branch_month(app, employers)
    results["branch_month_s"] = time.perf_counter() - started
    results["branch_employers"] = employers
    results["branch_members"] = members
    return results


def bench_relay(kafka: Any, workdir: Path, scale: float, compression: str | None) -> dict[str, float]:
    """Relay one branch-month; then send the same number of records of the same size with the raw producer."""
    from ledger.application import Ledger
    from ledger.publishing import kafka_client
    from ledger.publishing.envelope import record_headers
    from ledger.publishing.relay import Relay
    from ledger.publishing.topics import Topics, init_topics
    from ledger.tlog.note import Ed25519Signer, SignerKey

    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(workdir / "relay.db")},
                 clock=lambda: date(2026, 11, 23), nik_key=BENCH_NIK_KEY)
    employers, members = enroll_branch(app, scale)
    topics = Topics.for_prefix(f"bench-{uuid.uuid4().hex[:8]}")
    init_topics(kafka, topics, partitions=12, replication_factor=BENCH_REPLICATION)
    relay = Relay(app.recorder, kafka, topics, transactional_id=f"bench-{uuid.uuid4().hex[:8]}",
                  signer=Ed25519Signer.of(SignerKey.generate("bench.bpjs.example/ledger")),
                  compression_type=compression)
    relay.run()  # the enrollments: history before the month, not timed
    pay_branch_month(app, employers)
    started = time.perf_counter()
    published = relay.run()
    relay_s = time.perf_counter() - started
    relay.close()
    sample = list(kafka_client.read_to_end(kafka, topics.events, partitions=[0], rounds_max=20))[-500:]
    record_bytes = round(statistics.mean(len(r.value) for r in sample))

    raw_topic = f"bench-raw-{uuid.uuid4().hex[:8]}"
    kafka_client.ensure_topic(kafka, raw_topic, partitions=12, replication_factor=BENCH_REPLICATION)
    payload = os.urandom(record_bytes)
    # Same record size means the same key and headers too: the relay's keys are 36-character aggregate ids (and
    # kafka-python hashes every key byte in Python to pick the partition), and its records carry two headers.
    keys = [str(uuid.uuid4()).encode() for _ in range(min(published, RAW_KEYS_MAX))]
    headers = record_headers("ContributionPaid", EVENT_TYPES["ContributionPaid"].VERSION)
    producer = kafka_client.producer(kafka, compression_type=compression)
    started = time.perf_counter()
    for i in range(published):
        producer.send(raw_topic, key=keys[i % len(keys)], value=payload, headers=headers)
    producer.flush(timeout=300)
    raw_s = time.perf_counter() - started
    producer.close()
    return {"events": published, "relay_s": relay_s, "relay_rate": published / relay_s,
            "raw_rate": published / raw_s, "record_bytes": record_bytes, "members": members}


# --- Projections -----------------------------------------------------------------------------------------------------

BRANCH_YEAR_MONTHS = 12
VERIFY_PARTITIONS = 12  # as `rebuild`'s topic; each producer process writes its own share of them
PRODUCER_PROCESSES = 4


def template_envelopes(workdir: Path) -> dict[str, dict]:
    """One real envelope of each type, from a small history written by the ledger and shaped by the relay."""
    import orjson

    from ledger.application import Ledger
    from ledger.domain import INTERNAL_EVENT_TOPICS
    from ledger.generator import BranchPlan, generate_branch
    from ledger.publishing.envelope import envelope

    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(workdir / "templates.db")},
                 clock=lambda: date(2026, 11, 23), nik_key=BENCH_NIK_KEY)
    generate_branch(app, BranchPlan(employers=3, members=60, bpu_members=0, months=2))
    templates = {}
    for n in app.recorder.select_notifications(start=1, limit=10_000):
        if n.topic not in INTERNAL_EVENT_TOPICS:
            env = orjson.loads(envelope(n, 1)[1])
            templates.setdefault(env["type"], env)
    return templates


def produce_branch_year(args: tuple) -> int:
    """One producer process's share of a synthetic branch-year: members `first`..`last`, their enrollment and a
    contribution for every month, cloned from real envelopes (so sizes, shapes and headers are the ledger's own)."""
    import orjson

    from ledger.publishing import kafka_client
    from ledger.publishing.envelope import record_headers

    kafka, topic, templates, first, last, employers, *options = args
    # `verify`: positions 1..N and real chains, as the relay writes them; and partitions of this process's own, so that
    # positions increase within each partition as the relay's do.
    contiguous, partitions = (options[0], options[1]) if options else (False, ())
    producer = kafka_client.producer(kafka, linger_ms=20, batch_size=512 * 1024)
    headers = {t: record_headers(t, env["version"]) for t, env in templates.items()}  # as the relay sends them
    # Member m's events follow everyone before it: 13 each (an enrollment, 12 months) and the employers registered.
    position = first * (BRANCH_YEAR_MONTHS + 1) + min(first, employers)

    def send(env: dict) -> None:
        nonlocal position
        if contiguous:
            from ledger.events import GENESIS_HASH, chain_hash

            position += 1
            env = {**env, "position": position, "aggregate_version": 1, "prev_hash": GENESIS_HASH}
            env["hash"] = chain_hash(GENESIS_HASH, aggregate_id=env["aggregate_id"], aggregate_version=1,
                                     event_type=env["type"], version=env["version"],
                                     effective_date=env["effective_date"], branch=env["branch"], data=env["data"])
        partition = partitions[position % len(partitions)] if contiguous else None
        producer.send(topic, key=env["aggregate_id"].encode(), value=orjson.dumps(env), headers=headers[env["type"]],
                      partition=partition)

    sent = 0
    enrolled, paid = templates["MemberEnrolled"], templates["ContributionPaid"]
    registered = templates["EmployerRegistered"]
    for member in range(first, last):
        npp = f"{30_000_000 + member % employers:08d}"
        kpj = f"{18_000_000_000 + member:011d}"
        if member < employers:
            env = {**registered, "event_id": f"e{member}.1", "aggregate_id": f"e{member}",
                   "data": {**registered["data"], "npp": npp}}
            send(env)
            sent += 1
        env = {**enrolled, "event_id": f"m{member}.1", "aggregate_id": f"m{member}", "position": member,
               "data": {**enrolled["data"], "kpj": kpj, "npp": npp}}
        send(env)
        sent += 1
        for month in range(1, BRANCH_YEAR_MONTHS + 1):
            paid_on = f"2017-{month:02d}-10"
            env = {**paid, "event_id": f"c{member}-{month}.1", "aggregate_id": f"c{member}-{month}",
                   "effective_date": paid_on, "position": member * 100 + month,
                   "data": {**paid["data"], "kpj": kpj, "npp": npp, "month": f"2017-{month:02d}", "paid_on": paid_on}}
            send(env)
            sent += 1
    producer.flush(timeout=600)
    producer.close()
    return sent


def bench_rebuild(settings, workdir: Path, scale: float, name: str, workers: list[int]) -> dict:
    """A synthetic branch-year on a topic of its own; raw consume of it, then rebuilds, in the same run."""
    import multiprocessing

    from ledger.publishing import kafka_client
    from projections import runner

    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    topic = f"{prefix}.events"
    kafka_client.ensure_topic(settings.kafka(), topic, partitions=12, replication_factor=BENCH_REPLICATION)
    members = round(BRANCH_MEMBERS * scale)
    employers = max(1, round(BRANCH_EMPLOYERS * scale))
    templates = template_envelopes(workdir)
    bounds = [members * i // PRODUCER_PROCESSES for i in range(PRODUCER_PROCESSES + 1)]
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(PRODUCER_PROCESSES) as pool:
        events = sum(pool.map(produce_branch_year, [(settings.kafka(), topic, templates, bounds[i],
                                                     bounds[i + 1], employers) for i in range(PRODUCER_PROCESSES)]))
    print(f"  produced {events:,} events in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    raw = kafka_consume_rate(settings.kafka(), topic, events)
    print(f"  raw consume {raw:,.0f}/s", file=sys.stderr)
    results = {"events": events, "members": members, "raw": raw, "rebuilds": {}}
    for count in workers:
        views = workdir / f"views-{name}-{count}.db"
        s = settings.model_copy(update={"kafka_topic_prefix": prefix, "projection_sqlite_path": views})
        result = runner.rebuild(s, name, workers=count)
        assert result.events == events, (result.events, events)
        results["rebuilds"][count] = result.seconds
        print(f"  rebuild {name} with {count} worker(s): {result.seconds:.1f}s = {events / result.seconds:,.0f}/s",
              file=sys.stderr)
    return results


def sign_topic(kafka: Any, topic: str, checkpoints: str) -> str:
    """Checkpoints of the events on `topic`, one every RELAY_BATCH_MAX positions and one at the end, signed by a
    throwaway key of the benchmark's own, written to `checkpoints` as the relay writes them. Returns the key's
    verifier key text."""
    import orjson

    from ledger.publishing import kafka_client
    from ledger.publishing.checkpoints import checkpoint_record
    from ledger.publishing.relay import RELAY_BATCH_MAX
    from ledger.tlog import merkle
    from ledger.tlog.note import Ed25519Signer, SignerKey

    leaves: dict[int, bytes] = {}
    for record in kafka_client.read_to_end(kafka, topic):
        leaves[orjson.loads(record.value)["position"]] = merkle.leaf_hash(record.value)
    key = SignerKey.generate("bench.example/ledger")
    signer = Ed25519Signer.of(key)
    producer = kafka_client.producer(kafka)
    before, tree, batch = merkle.Frontier(), merkle.Frontier(), []
    for position in range(1, len(leaves) + 1):
        tree.append(leaves[position])
        batch.append(leaves[position])
        if position % RELAY_BATCH_MAX == 0 or position == len(leaves):
            proof = merkle.consistency_proof_extending(before, batch) if before.size else []
            record_key, value, headers = checkpoint_record(signer, before, tree, proof)
            producer.send(checkpoints, key=record_key, value=value, headers=headers)
            before, batch = tree.copy(), []
    producer.flush(timeout=600)
    producer.close()
    return key.verifier_key().format()


def bench_verify(settings, workdir: Path, scale: float) -> dict:
    """A signed synthetic branch-year; raw consume of it, then `verify` without and with the key, in the same run."""
    import multiprocessing

    from ledger.audit.verify import verify_topic
    from ledger.publishing import kafka_client
    from ledger.tlog.note import Ed25519Verifier

    kafka = settings.kafka()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    topic, checkpoints = f"{prefix}.events", f"{prefix}.checkpoints"
    kafka_client.ensure_topic(kafka, topic, partitions=VERIFY_PARTITIONS, replication_factor=BENCH_REPLICATION)
    kafka_client.ensure_topic(kafka, checkpoints, partitions=1, replication_factor=BENCH_REPLICATION)
    members = round(BRANCH_MEMBERS * scale)
    employers = max(1, round(BRANCH_EMPLOYERS * scale))
    templates = template_envelopes(workdir)
    bounds = [members * i // PRODUCER_PROCESSES for i in range(PRODUCER_PROCESSES + 1)]
    with multiprocessing.get_context("spawn").Pool(PRODUCER_PROCESSES) as pool:
        share = VERIFY_PARTITIONS // PRODUCER_PROCESSES
        events = sum(pool.map(produce_branch_year, [(kafka, topic, templates, bounds[i], bounds[i + 1], employers,
                                                     True, tuple(range(i * share, (i + 1) * share)))
                                                    for i in range(PRODUCER_PROCESSES)]))
    log_key = Ed25519Verifier.of(sign_topic(kafka, topic, checkpoints))
    print(f"  produced and signed {events:,} events", file=sys.stderr)
    raw = kafka_consume_rate(kafka, topic, events)
    print(f"  raw consume {raw:,.0f}/s", file=sys.stderr)
    runs = {}
    for keyed, workers in ((False, 1), (True, 1), (False, 2), (True, 2)):
        started = time.perf_counter()
        report = verify_topic(kafka, topic, log=log_key if keyed else None, checkpoints_topic=checkpoints,
                              workers=workers)
        seconds = runs[keyed, workers] = time.perf_counter() - started
        print(f"  verify{' --key' if keyed else ''} --workers {workers}: {events / seconds:,.0f}/s", file=sys.stderr)
        assert report.ok and report.events == events, report.breaches[:3]
        assert not keyed or (report.signed is not None and report.signed.signed_size == events), report.signed
    return {"events": events, "members": members, "raw": raw, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=["kafka", "commands", "relay", "rebuild", "verify"])
    parser.add_argument("--projection", choices=["balances", "branches"], default="branches")
    parser.add_argument("--workers", default="1,2", help="rebuild: comma-separated worker counts to run")
    parser.add_argument("--compression", choices=["none", "gzip"], default="none")
    parser.add_argument("--scale", type=float, default=1.0, help="branch size factor for `commands` (1.0 = full)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    args = parser.parse_args()

    from ledger.settings import Settings

    settings = Settings()
    if args.which == "kafka":
        rates = bench_kafka(settings.kafka())
        print(f"| raw kafka-python produce, {RECORD_BYTES}-byte records, acks=all, idempotent | "
              f"{rates['produce']:,.0f} records/s (median of {RUNS}) |")
        print(f"| raw kafka-python consume, {RECORD_BYTES}-byte records, read_committed | "
              f"{rates['consume']:,.0f} records/s (median of {RUNS}) |")
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    if args.which == "rebuild":
        counts = [int(c) for c in args.workers.split(",")]
        r = bench_rebuild(settings, workdir, args.scale, args.projection, counts)
        print(f"| raw kafka-python consume of the same topic, same run | {r['raw']:,.0f} records/s |")
        one = r["rebuilds"].get(1)
        for count, seconds in r["rebuilds"].items():
            rate = r["events"] / seconds
            speedup = f", {one / seconds:.2f} x one worker" if one and count > 1 else ""
            print(f"| rebuild `{args.projection}`, {count} worker(s), {r['events']:,.0f} events ({r['members']:,.0f} "
                  f"members x {BRANCH_YEAR_MONTHS} months) | {seconds:.1f} s = {rate:,.0f} events/s = "
                  f"{rate / r['raw']:.2f} x raw consume{speedup} |")
        return 0
    if args.which == "verify":
        r = bench_verify(settings, workdir, args.scale)
        print(f"| raw kafka-python consume of the same topic, same run | {r['raw']:,.0f} records/s |")
        for (keyed, workers), seconds in r["runs"].items():
            rate = r["events"] / seconds
            print(f"| `ledger audit verify{' --key' if keyed else ''} --workers {workers}`, {r['events']:,.0f} events "
                  f"({r['members']:,.0f} members x {BRANCH_YEAR_MONTHS} months) | {seconds:.1f} s = {rate:,.0f} "
                  f"events/s = {rate / r['raw']:.2f} x raw consume |")
        return 0
    if args.which == "relay":
        compression = None if args.compression == "none" else args.compression
        r = bench_relay(settings.kafka(), workdir, args.scale, compression)
        print(f"| relay, one branch-month of {r['members']:,.0f} members ({r['events']:,.0f} events, "
              f"~{r['record_bytes']:,.0f} bytes each, compression {args.compression}) | {r['relay_s']:.1f} s = "
              f"{r['relay_rate']:,.0f} events/s |")
        print(f"| raw kafka-python producer, same count and size, same run | {r['raw_rate']:,.0f} records/s; "
              f"relay = {r['relay_rate'] / r['raw_rate']:.2f} x raw |")
        return 0

    def env_for(name: str) -> dict[str, str]:
        if args.backend == "sqlite":
            return settings.model_copy(update={"persistence": "sqlite",
                                               "sqlite_path": workdir / f"{name}.db"}).eventsourcing_env()
        env = settings.model_copy(update={"persistence": "postgres"}).eventsourcing_env()
        return {**env, "POSTGRES_SCHEMA": f"bench_{name}_{uuid.uuid4().hex[:6]}"}

    r = bench_commands(env_for, args.scale)
    backend = args.backend
    print(f"| {backend}: library raw single save (baseline, median of {ROUNDS} rounds) "
          f"| {r['raw_save']:,.0f} saves/s |")
    print(f"| {backend}: single `enroll-member` commands | {r['enroll']:,.0f} commands/s = "
          f"{r['enroll'] / r['raw_save']:.2f} x raw |")
    print(f"| {backend}: single `change-wage` commands | {r['change_wage']:,.0f} commands/s = "
          f"{r['change_wage'] / r['raw_save']:.2f} x raw |")
    print(f"| {backend}: one employer-month, {BIG_EMPLOYER_MEMBERS:,} members (median of {len(EMPLOYER_MONTHS)}) | "
          f"{r['employer_month_s']:.2f} s |")
    print(f"| {backend}: one branch-month, {r['branch_employers']:,.0f} employers, {r['branch_members']:,.0f} "
          f"members | {r['branch_month_s']:.1f} s ({r['branch_members'] / r['branch_month_s']:,.0f} members/s) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
