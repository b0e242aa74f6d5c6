"""Benchmarks, each measured side by side with its baseline in one run, printed as a ratio.

Run through `scripts/bench` (it sets up the virtualenv and a broker on a free port: the secured one of
`scripts/kafka start`, connected to as its administrator over SASL_SSL, or with `--plain` a plaintext one; every
client of a benchmark, the ledger's and the raw baseline alike, connects the same way):
    scripts/bench kafka                 raw kafka-python produce and consume of 200-byte records (the baseline)
    scripts/bench commands [--scale F]  write-side commands: single commands vs the library's raw single save,
                                        one employer-month of 7,000 members, one branch-month (scaled by F)
    scripts/bench close [--scale F] [--backend sqlite|postgres]
                                        `ledger billing close` of one branch-month (4,430 employers, 262,785
                                        members, scaled by F) beside the branch paying a month with `contribution pay`
    scripts/bench relay [--scale F]     the relay publishing one branch-month, beside the raw producer sending
                                        records of the same size, in the same run
    scripts/bench rebuild [--scale F] [--projection balances|branches|general_ledger] [--workers 1,2]
                                        a synthetic branch-year (262,785 members x 12 months and each employer's
                                        payment of each month, about 3.5 million events) rebuilt from Kafka, beside
                                        a raw consume of the same topic before and after; for general_ledger, the
                                        branch's trial balance timed on the store built
    scripts/bench verify [--scale F]    `ledger audit verify` with and without the log's key, with one worker and with
                                        two, over the same synthetic branch-year (contiguous positions, real chains,
                                        a signed checkpoint every RELAY_BATCH_MAX events), beside a raw consume of the
                                        same topic
    scripts/bench api [--scale F]       GET /members/{kpj}/balance under load from wrk (64 connections, random KPJs of
                                        a branch-month of 262,785 members, scaled by F): the API with tokens, scope,
                                        rate limit and access log, beside a bare app around the same query function,
                                        in alternating rounds; needs no broker
    scripts/bench import [--backend sqlite|postgres]
                                        `ledger payment import` of a statement of 5,000 credits, run as a command
Results go to stdout as a Markdown table row set, ready for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
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

# The bare app of `api` takes the API's own parameter types: FastAPI resolves a route's annotations in its module.
from projections.api import AsOf, KpjPath

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


IMPORT_CREDITS = 5_000
IMPORT_EMPLOYERS = 200  # each with IMPORT_MEMBERS_EACH members and one bill for March 2024, paid by its code
IMPORT_MEMBERS_EACH = 5
IMPORT_HELD_EVERY = 10  # one credit in ten names no payer: held until matched


def bench_import(env: dict[str, str], cli_env: dict[str, str], workdir: Path) -> dict[str, float]:
    """`ledger payment import` of a CSV of IMPORT_CREDITS credits, run as a command, against a ledger of
    IMPORT_EMPLOYERS employers with a bill each: one credit per employer pays its bill by its payment code (settling
    it: a ContributionPaid per member), most name an NPP (money in credit), one in ten names no payer (held). Then the
    same file again (every line a duplicate), and the command's start-up alone (`ledger payment import --help`)."""
    import subprocess

    from ledger.application import Ledger
    from ledger.commands import CloseBills, EnrollMembers

    app = Ledger(env=env, clock=lambda: date(2026, 11, 23), nik_key=BENCH_NIK_KEY)
    npps = [f"{30000000 + e:08d}" for e in range(IMPORT_EMPLOYERS)]
    for e, npp in enumerate(npps):
        app.execute(employer_command(npp))
        app.execute(EnrollMembers.build(npp=npp, effective=date(2024, 1, 1),
                                        members=member_rows(1 + e * IMPORT_MEMBERS_EACH, IMPORT_MEMBERS_EACH)))
    bills = app.execute(CloseBills.build(month="2024-03", npps=npps))
    assert bills["bills"] == IMPORT_EMPLOYERS
    codes = {}
    for npp in npps:  # the codes, from the accounts (a close's result lists the first few bills only)
        from ledger.domain import payer_account_id

        account = app.find(payer_account_id(npp, None))
        codes[npp] = (min(account.codes), account.open_bills[0].bill.total)
    rows = ["reference,received_on,amount,payment_code,npp,kpj,payer_name,description"]
    for i in range(IMPORT_CREDITS):
        npp = npps[i % IMPORT_EMPLOYERS]
        if i < IMPORT_EMPLOYERS:
            code, total = codes[npp]
            rows.append(f"BENCH-{i:06d},2024-04-10,{total},{code},,,PT Bench {npp},IURAN MARET {code}")
        elif i % IMPORT_HELD_EVERY == 0:
            rows.append(f"BENCH-{i:06d},2024-04-11,{100_000 + i},,,,,TRANSFER TANPA KETERANGAN")
        else:
            rows.append(f"BENCH-{i:06d},2024-04-11,{100_000 + i},,{npp},,,TRANSFER {npp}")
    statement = workdir / "statement.csv"
    statement.write_text("\n".join(rows) + "\n", encoding="utf-8")

    def run(*args: str) -> tuple[float, str]:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=cli_env, capture_output=True,  # noqa: S603
                              text=True, check=True)
        return time.perf_counter() - started, done.stdout

    startup, _ = run("payment", "import", "--help")
    first_s, first = run("payment", "import", str(statement), "--branch", "BEKASI-KOTA", "--json")
    again_s, again = run("payment", "import", str(statement), "--branch", "BEKASI-KOTA", "--json")
    import json

    summary, repeat = json.loads(first)["summary"], json.loads(again)["summary"]
    assert summary["duplicate"] == 0 and repeat["duplicate"] == IMPORT_CREDITS, (summary, repeat)
    return {"startup_s": startup, "import_s": first_s, "again_s": again_s, **{k: float(v) for k, v in
                                                                                summary.items()}}
def bench_close(env_for, scale: float) -> dict[str, float]:
    """A month's close of the branch (scaled), as `ledger billing close --month 2024-03 --branch BEKASI-KOTA` runs
    it: the payers listed from the notification log, then one command per batch. Beside it, its baseline in the same
    run on the same ledger: the branch paying February with `contribution pay`, one command per employer (the same
    members priced, the same number of member lines written). Then the close again: every batch a repeat."""
    from ledger.application import Ledger
    from ledger.cli.collections import close_batches
    from ledger.commands import PayContribution

    app = Ledger(env=env_for("close"), clock=lambda: date(2024, 4, 2), nik_key=BENCH_NIK_KEY)
    employers, members = enroll_branch(app, scale)
    results: dict[str, float] = {"branch_employers": employers, "branch_members": members}

    started = time.perf_counter()
    for e in range(employers):
        app.execute(PayContribution.build(npp=f"{30000000 + e:08d}", month="2024-02", paid_on=date(2024, 3, 10)))
    results["pay_s"] = time.perf_counter() - started

    def close() -> tuple[float, float, int, int]:
        started = time.perf_counter()
        [payers] = app.payers("BEKASI-KOTA").values()
        listed = time.perf_counter() - started
        bills = repeated = 0
        for batch in close_batches("2024-03", payers):
            result = app.previous_result(batch) or app.execute(batch)  # as `ledger billing close` runs them
            bills += result["bills"] if not result["repeated"] else 0
            repeated += result["repeated"]
        return time.perf_counter() - started, listed, bills, repeated

    results["close_s"], results["list_s"], results["bills"], _ = close()
    results["again_s"], _, _, results["repeated"] = close()
    return results


def print_close(r: dict[str, float], backend: str) -> None:
    print(f"| {backend}: the branch paying one month with `contribution pay`, one command per employer "
          f"(baseline) | {r['pay_s']:.1f} s |")
    print(f"| {backend}: `ledger billing close` of one month, {r['branch_employers']:,.0f} employers, "
          f"{r['branch_members']:,.0f} members ({r['bills']:,.0f} bills; listing the payers "
          f"{r['list_s']:.1f} s) | {r['close_s']:.1f} s = {r['close_s'] / r['pay_s']:.2f} x baseline |")
    print(f"| {backend}: the same close run again (every batch a repeat, {r['repeated']:,.0f} batches) | "
          f"{r['again_s']:.1f} s |")


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
# The synthetic branch-year's year, and the first month of the small real history its events are cloned from: a year
# with the JKP program (from 2021-02), so each line carries its JKP splits as real lines do.
BRANCH_YEAR = 2022
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
    generate_branch(app, BranchPlan(employers=3, members=60, bpu_members=0, months=2,
                                    first_month=f"{BRANCH_YEAR}-01"))
    templates = {}
    for n in app.recorder.select_notifications(start=1, limit=10_000):
        if n.topic not in INTERNAL_EVENT_TOPICS:
            env = orjson.loads(envelope(n, 1)[1])
            templates.setdefault(env["type"], env)
    return templates


def produce_branch_year(args: tuple) -> int:
    """One producer process's share of a synthetic branch-year: members `first`..`last`, their enrollment and a
    contribution for every month, cloned from real envelopes (so sizes, shapes and headers are the ledger's own).

    With `payments` (`rebuild`): each employer's payment of each month too, a `ContributionPaymentReceived` whose
    payment id its members' lines carry and whose totals are theirs (the general ledger's clearing account for the
    payment is then empty, as its invariants require). Employer e's members are the members m with m % employers == e;
    its payments are sent by the process that sends its first member, member e."""
    import orjson

    from ledger.publishing import kafka_client
    from ledger.publishing.envelope import record_headers

    kafka, topic, templates, first, last, employers, *options = args
    # `verify`: positions 1..N and real chains, as the relay writes them; and partitions of this process's own, so that
    # positions increase within each partition as the relay's do. `rebuild`: the members in all, for the payments.
    contiguous, partitions, members = (*options, 0)[:3] if options else (False, (), 0)
    payments = members > 0
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
    registered, receipt = templates["EmployerRegistered"], templates["ContributionPaymentReceived"]
    line = paid["data"]
    for member in range(first, last):
        employer = member % employers
        npp = f"{30_000_000 + employer:08d}"
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
            paid_on = f"{BRANCH_YEAR}-{month:02d}-10"
            data = {**line, "kpj": kpj, "npp": npp, "month": f"{BRANCH_YEAR}-{month:02d}", "paid_on": paid_on}
            if payments:
                data["payment_id"] = branch_year_payment_id(employer, month)
            env = {**paid, "event_id": f"c{member}-{month}.1", "aggregate_id": f"c{member}-{month}",
                   "effective_date": paid_on, "position": member * 100 + month, "data": data}
            send(env)
            sent += 1
            if payments and member < employers:
                # Employer `member`'s payment for the month: its members' lines, each the template's line.
                count = members // employers + (1 if member < members % employers else 0)
                payment_id = branch_year_payment_id(employer, month)
                env = {**receipt, "event_id": f"p{payment_id}.1", "aggregate_id": f"p{payment_id}",
                       "effective_date": paid_on, "position": member * 100 + month,
                       "data": {**receipt["data"], "payment_id": payment_id, "npp": npp, "paid_on": paid_on,
                                "months": [f"{BRANCH_YEAR}-{month:02d}"], "member_count": count, "line_count": count,
                                "program_totals": {program: count * (share["employer"] + share["worker"])
                                                   for program, share in line["shares"].items()
                                                   if share["employer"] + share["worker"]},
                                "fine": count * line["fine"], "total": count * line["total"]}}
                send(env)
                sent += 1
    producer.flush(timeout=600)
    producer.close()
    return sent


def branch_year_payment_id(employer: int, month: int) -> str:
    """A synthetic payment's id: 32 characters, as the ledger's (a command id's hex)."""
    return f"{employer:026d}{month:06d}"


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
        shares = [(settings.kafka(), topic, templates, bounds[i], bounds[i + 1], employers, False, (), members)
                  for i in range(PRODUCER_PROCESSES)]
        events = sum(pool.map(produce_branch_year, shares))
    print(f"  produced {events:,} events in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    # The shared machine's speed moves from minute to minute: the raw consume is measured before the rebuilds and
    # again after them, and the processor time of this process (the consumer's, the one-worker rebuild's) with it,
    # which other processes' load moves much less.
    cpu = time.process_time()
    raw = kafka_consume_rate(settings.kafka(), topic, events)
    raw_cpu = time.process_time() - cpu
    print(f"  raw consume {raw:,.0f}/s ({raw_cpu / events * 1e6:.1f} us of processor time a record)", file=sys.stderr)
    results: dict[str, Any] = {"events": events, "members": members, "raw": raw, "raw_cpu": raw_cpu,
                               "rebuilds": {}, "rebuild_cpu": {}}
    for count in workers:
        views = workdir / f"views-{name}-{count}.db"
        s = settings.model_copy(update={"kafka_topic_prefix": prefix, "projection_sqlite_path": views})
        cpu = time.process_time()
        result = runner.rebuild(s, name, workers=count)
        cpu = time.process_time() - cpu
        assert result.events == events, (result.events, events)
        results["rebuilds"][count] = result.seconds
        if count == 1:  # more workers are processes of their own
            results["rebuild_cpu"][count] = cpu
        print(f"  rebuild {name} with {count} worker(s): {result.seconds:.1f}s = {events / result.seconds:,.0f}/s"
              + (f" ({cpu / events * 1e6:.1f} us of processor time an event)" if count == 1 else ""), file=sys.stderr)
        if name == "general_ledger" and "trial_balance" not in results:  # on the store just built
            results["trial_balance"] = time_trial_balance(s)
    results["raw_after"] = kafka_consume_rate(settings.kafka(), topic, events)
    print(f"  raw consume again {results['raw_after']:,.0f}/s", file=sys.stderr)
    return results


TRIAL_BALANCE_BRANCH = "BEKASI-KOTA"
TRIAL_BALANCE_AS_OF = (date(BRANCH_YEAR, 6, 30), date(BRANCH_YEAR, 12, 31))  # half the year, all of it
TRIAL_BALANCE_RUNS = 5


def time_trial_balance(settings: Any) -> dict[str, Any]:
    """The trial balance of the branch at each date of TRIAL_BALANCE_AS_OF, on the general ledger just built: the
    first answer on a fresh connection, then the median of TRIAL_BALANCE_RUNS more. Through
    `projections.queries.trial_balance` when it exists; else the same sums over the `totals` table in SQL."""
    from projections import queries
    from projections.store import ViewStore, table_name

    query = getattr(queries, "trial_balance", None)

    def answer(store: ViewStore, as_of: date) -> tuple[int, int, int]:
        """(accounts, debits, credits) of the branch's trial balance at `as_of`."""
        if query is not None:
            result = query(store, as_of, TRIAL_BALANCE_BRANCH)
            return len(result["accounts"]), int(result["totals"]["debits"]), int(result["totals"]["credits"])
        with store.reading() as tx:
            totals = table_name("general_ledger", ViewStore.live_version(tx, "general_ledger"), "totals")
            rows = tx.all(f"SELECT account, SUM(debit), SUM(credit) FROM {totals} WHERE branch = ? AND on_date <= ? "
                          f"GROUP BY account ORDER BY account", (TRIAL_BALANCE_BRANCH, as_of.isoformat()))
        return len(rows), sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows)

    store = ViewStore.open(settings)
    found: dict[str, Any] = {"how": "projections.queries.trial_balance" if query else "SQL over `totals`",
                             "dates": {}}
    try:
        for as_of in TRIAL_BALANCE_AS_OF:
            seconds = []
            for _ in range(1 + TRIAL_BALANCE_RUNS):
                started = time.perf_counter()
                accounts, debit, credit = answer(store, as_of)
                seconds.append(time.perf_counter() - started)
            assert debit == credit and accounts, (as_of, accounts, debit, credit)
            found["dates"][as_of] = {"first_s": seconds[0], "median_s": statistics.median(seconds[1:]),
                                     "accounts": accounts, "debits": debit}
            print(f"  trial balance {TRIAL_BALANCE_BRANCH} at {as_of}: {accounts} accounts, first "
                  f"{seconds[0] * 1000:.1f} ms, then {statistics.median(seconds[1:]) * 1000:.1f} ms", file=sys.stderr)
    finally:
        store.close()
    return found


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


# --- Authenticated reads (issue 16) --------------------------------------------------------------------------------

API_AS_OF = date(2024, 6, 30)  # after the branch-month's payment: every balance has one contribution in it
API_BRANCH = "BEKASI-KOTA"  # the branch `enroll_branch` registers its employers in
API_CONNECTIONS = 64  # concurrent clients (wrk's connections), each asking again as soon as it is answered
API_LOAD_THREADS = 2  # wrk's threads: one per core of this machine
API_ROUND_S = 10  # one measured round of one app
API_WARMUP_S = 2  # before each round: threads, connections and caches warmed, not measured
API_ROUNDS = 3  # alternating rounds (real, bare, real, bare, ...): medians
API_RPS_MAX = 6_000  # more than this machine answers; sizes the token pool so the rate limit never refuses a read
API_SERVER_START_S = 60
API_PROJECT_BATCH = 20_000  # events per transaction when projecting the branch
API_WRK_TIMEOUT_S = 5  # wrk's per-request timeout: an answer slower than this counts as an error

# wrk runs this in each of its threads (a Lua state each): the path of a random KPJ of the data set, and for the real
# app a bearer token taken in turn from the pool (thread t uses tokens t, t + T, t + 2T, ...), so every token is used
# about as often; each thread counts the answers by status, and `done` adds them up.
WRK_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
local function lines(path)
  local out = {}
  for line in io.lines(path) do if #line > 0 then table.insert(out, line) end end
  return out
end
function init(args)
  kpjs = lines(args[1])
  tokens = {}
  if args[2] ~= "" then tokens = lines(args[2]) end
  as_of = args[3]
  thread_count = tonumber(args[4])
  statuses = {}
  sent = 0
  math.randomseed(1000 + id)
end
function request()
  local kpj = kpjs[math.random(#kpjs)]
  local headers = {}
  if #tokens > 0 then
    headers["Authorization"] = "Bearer " .. tokens[(sent * thread_count + id) % #tokens + 1]
  end
  sent = sent + 1
  return wrk.format("GET", "/members/" .. kpj .. "/balance?as_of=" .. as_of, headers)
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do total[status] = (total[status] or 0) + count end
  end
  for status, count in pairs(total) do io.write(string.format("STATUS %d %d\\n", status, count)) end
  local e = summary.errors
  io.write(string.format("SUMMARY %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout, latency:percentile(50), latency:percentile(99)))
end
"""


def project_balances(app, views_path: Path) -> None:
    """The ledger's events, as the relay publishes them, applied to a new version of the balances projection in
    batches, checked, and switched live: what `GET /members/{kpj}/balance` reads."""
    import orjson

    from ledger.publishing.envelope import envelope
    from projections.catalog import PROJECTIONS
    from projections.store import ViewStore

    view = PROJECTIONS["balances"]
    store = ViewStore("sqlite", sqlite_path=views_path)
    started = time.perf_counter()
    with store.transaction() as tx:
        version = ViewStore.new_version(tx, view.name)
        view.create(tx, version, indexes=True)
    batch: list[dict[str, Any]] = []

    def apply() -> None:
        with store.transaction() as tx:
            view.apply(tx, version, batch)
        batch.clear()

    events = 0
    for position, notification in enumerate(app.stored_contract_notifications(), start=1):
        batch.append(orjson.loads(envelope(notification, position)[1]))
        events += 1
        if len(batch) >= API_PROJECT_BATCH:
            apply()
    if batch:
        apply()
    with store.transaction() as tx:
        view.check(tx, version)
        ViewStore.switch(tx, view.name, version)
    store.close()
    print(f"  balances projected: {events:,} events in {time.perf_counter() - started:.1f}s", file=sys.stderr)


def api_settings(workdir: Path) -> Any:
    """The settings of the real app: a token key of the benchmark's own, the access log in the work folder."""
    from ledger.settings import Settings

    return Settings().model_copy(update={
        "api_jwks_file": workdir / "jwks.json", "api_issuer": "https://id.bench.bpjs.example/",
        "api_audience": "ledger-read-api", "access_log_sqlite_path": workdir / "access-log.db",
        "projection_sqlite_path": workdir / "views.db"})


def bare_app(store: Any) -> Any:
    """The baseline: the same query function behind the same route and parameters, without a token, a scope check, a
    rate limit or an access log."""
    from fastapi import FastAPI

    from projections import queries

    app = FastAPI()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/members/{kpj}/balance", response_model=None)
    def member_balance(kpj: KpjPath, as_of: AsOf = None) -> dict[str, Any]:
        return queries.member_balance(store, kpj, as_of or API_AS_OF)

    return app


def serve_api(kind: str, workdir: Path, port: int) -> None:
    """One app in a process of its own, served as `ledger serve` serves the API, until SIGTERM."""
    import signal
    import socket

    from projections.access_log import AccessLog
    from projections.api import create_app, server
    from projections.store import ViewStore

    settings = api_settings(workdir)
    store = ViewStore("sqlite", sqlite_path=settings.projection_sqlite_path)
    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", port))
    # uvicorn finishes the requests in hand on SIGTERM, then raises it again: this ends the process through `finally`.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    if kind == "bare":
        server(bare_app(store)).run(sockets=[listening])
        return
    access_log = AccessLog.open(settings)
    try:
        server(create_app(settings, store, access_log=access_log, clock=lambda: API_AS_OF)).run(sockets=[listening])
    finally:
        access_log.close()


def start_server(kind: str, workdir: Path) -> tuple[Any, str]:
    import multiprocessing
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = multiprocessing.get_context("spawn").Process(target=serve_api, args=(kind, workdir, port),
                                                           name=f"bench-api-{kind}")
    process.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + API_SERVER_START_S
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=2).close()  # noqa: S310 - our own server on loopback
            return process, base
        except OSError:
            if not process.is_alive():
                break
            time.sleep(0.2)
    process.terminate()
    raise SystemExit(f"the {kind} app did not start within {API_SERVER_START_S}s")


def mint_tokens(workdir: Path, count: int, round_: int) -> Path:
    """`count` tokens of different subjects, half auditors and half staff of the branch, in a file, one a line."""
    from datetime import UTC, datetime

    from projections.tokens import claims_for, mint

    settings = api_settings(workdir)
    pem = (workdir / "token.key").read_bytes()
    now = datetime.now(UTC)
    tokens = []
    for i in range(count):
        role = "auditor" if i % 2 else "branch-staff"
        claims = claims_for(subject=f"bench-{round_}-{i}", role=role,
                            branches=(API_BRANCH,) if role == "branch-staff" else ())
        tokens.append(mint(pem, issuer=settings.api_issuer, audience=settings.api_audience, claims=claims,
                           ttl_s=3_600, now=now)[0])
    path = workdir / f"tokens-{round_}.txt"
    path.write_text("\n".join(tokens) + "\n")
    return path


def wrk(base: str, workdir: Path, seconds: int, tokens: Path | None) -> dict[str, Any]:
    """One wrk run against `base`: requests/s, answers by status, errors, latency."""
    import subprocess

    command = ["wrk", "-t", str(API_LOAD_THREADS), "-c", str(API_CONNECTIONS), "-d", f"{seconds}s",
               "--timeout", f"{API_WRK_TIMEOUT_S}s", "-s", str(workdir / "bench.lua"), base, "--",
               str(workdir / "kpjs.txt")]
    command += [str(tokens) if tokens else "", API_AS_OF.isoformat(), str(API_LOAD_THREADS)]
    out = subprocess.run(command, capture_output=True, text=True, check=True,  # noqa: S603 - our own arguments
                         timeout=seconds + 60).stdout
    statuses = {int(code): int(count) for code, count in
                (line.split()[1:] for line in out.splitlines() if line.startswith("STATUS "))}
    summary = next(line.split()[1:] for line in out.splitlines() if line.startswith("SUMMARY "))
    requests, duration_us, *errors, p50_us, p99_us = (int(v) for v in summary)
    connect, read, write, non_2xx, timeout = errors
    return {"rps": requests / (duration_us / 1e6), "requests": requests, "statuses": statuses, "non_2xx": non_2xx,
            "socket_errors": connect + read + write + timeout, "p50_ms": p50_us / 1000, "p99_ms": p99_us / 1000}


def bench_api(workdir: Path, scale: float) -> dict[str, Any]:
    """The branch-month data set projected; the real app and the bare one served side by side, in alternating rounds
    under the same load; each answer checked to be a 200 and each of the real app's reads to be in its access log."""
    import json
    import math
    import urllib.request

    from ledger.application import Ledger
    from projections.access_log import AccessLogStore
    from projections.queries import READS_PER_MINUTE_MAX
    from projections.tokens import generate_keys

    app = Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(workdir / "ledger.db")},
                 clock=lambda: date(2026, 11, 23), nik_key=BENCH_NIK_KEY)
    employers, members = enroll_branch(app, scale)
    pay_branch_month(app, employers)
    project_balances(app, workdir / "views.db")
    del app
    (workdir / "kpjs.txt").write_text("".join(f"{kpj:011d}\n" for kpj in range(1, members + 1)))
    (workdir / "bench.lua").write_text(WRK_SCRIPT)
    pem, jwks = generate_keys()
    (workdir / "token.key").write_bytes(pem)
    (workdir / "jwks.json").write_text(json.dumps(jwks))
    # Each subject may read READS_PER_MINUTE_MAX a minute: a round (and its warm-up) gets subjects of its own, enough
    # for API_RPS_MAX, so every read is within its subject's limit (a 429 fails the benchmark below).
    tokens_per_round = math.ceil(API_RPS_MAX * (API_ROUND_S + API_WARMUP_S) / READS_PER_MINUTE_MAX)

    servers = {kind: start_server(kind, workdir) for kind in ("real", "bare")}
    try:
        sample = f"/members/{1:011d}/balance?as_of={API_AS_OF.isoformat()}"
        answers = {}
        for kind, (_, base) in servers.items():
            request = urllib.request.Request(base + sample)  # noqa: S310 - our own server on loopback
            if kind == "real":
                token = (mint_tokens(workdir, 1, -1)).read_text().strip()
                request.add_header("Authorization", f"Bearer {token}")
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - loopback
                answers[kind] = json.loads(answer.read())
        assert answers["real"] == answers["bare"], "the two apps answer the same question differently"
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, Any]]] = {"real": [], "bare": []}
        warmups: dict[str, list[dict[str, Any]]] = {"real": [], "bare": []}
        for round_ in range(API_ROUNDS):
            for kind, (_, base) in servers.items():
                tokens = mint_tokens(workdir, tokens_per_round, round_) if kind == "real" else None
                warmups[kind].append(wrk(base, workdir, API_WARMUP_S, tokens))
                run = wrk(base, workdir, API_ROUND_S, tokens)
                runs[kind].append(run)
                print(f"  round {round_ + 1} {kind}: {run['rps']:,.0f} requests/s, p50 {run['p50_ms']:.1f} ms, "
                      f"p99 {run['p99_ms']:.1f} ms, statuses {run['statuses']}, wrk's non-2xx {run['non_2xx']}, "
                      f"socket errors {run['socket_errors']}", file=sys.stderr)
        load_after = os.getloadavg()
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.join(30)
    problems = [f"{kind} {what} {i + 1}: answers {run['statuses']}, socket errors {run['socket_errors']}"
                for what, all_runs in (("round", runs), ("warm-up", warmups)) for kind, kind_runs in all_runs.items()
                for i, run in enumerate(kind_runs)
                if set(run["statuses"]) != {200} or run["non_2xx"] or run["socket_errors"]]
    if problems:
        raise SystemExit("not every answer was a 200, so the figures would measure refusals:\n  "
                         + "\n  ".join(problems))
    # Every read the real app answered is in its access log, once: the sample, the warm-ups' and the rounds' (and at
    # most one more per connection and run: a request wrk sent as its time ran out is answered, and logged, uncounted).
    logged = AccessLogStore("sqlite", sqlite_path=workdir / "access-log.db").head()[0]
    real_runs = runs["real"] + warmups["real"]
    answered = 1 + sum(run["statuses"][200] for run in real_runs)
    assert answered <= logged <= answered + API_CONNECTIONS * len(real_runs), (logged, answered)
    return {"members": members, "employers": employers, "runs": runs, "logged": logged,
            "tokens_per_round": tokens_per_round, "load": (load_before, load_after),
            "real": statistics.median(run["rps"] for run in runs["real"]),
            "bare": statistics.median(run["rps"] for run in runs["bare"])}


def print_rebuild(args: Any, settings: Any, workdir: Path) -> None:
    counts = [int(c) for c in args.workers.split(",")]
    r = bench_rebuild(settings, workdir, args.scale, args.projection, counts)
    print(f"| raw kafka-python consume of the same topic, same run, before and after the rebuilds | "
          f"{r['raw']:,.0f} and {r['raw_after']:,.0f} records/s; {r['raw_cpu'] / r['events'] * 1e6:.1f} us of "
          f"processor time a record |")
    one = r["rebuilds"].get(1)
    for count, seconds in r["rebuilds"].items():
        rate = r["events"] / seconds
        speedup = f", {one / seconds:.2f} x one worker" if one and count > 1 else ""
        cpu = r["rebuild_cpu"].get(count)
        processor = f"; {cpu / r['events'] * 1e6:.1f} us of processor time an event" if cpu else ""
        print(f"| rebuild `{args.projection}`, {count} worker(s), {r['events']:,.0f} events ({r['members']:,.0f} "
              f"members x {BRANCH_YEAR_MONTHS} months) | {seconds:.1f} s = {rate:,.0f} events/s = "
              f"**{rate / r['raw']:.2f} x raw consume before**, {rate / r['raw_after']:.2f} x after"
              f"{speedup}{processor} |")
    for as_of, t in r.get("trial_balance", {}).get("dates", {}).items():
        print(f"| trial balance of {TRIAL_BALANCE_BRANCH} at {as_of} on the store built with 1 worker "
              f"({r['trial_balance']['how']}; {t['accounts']} accounts, {t['debits']:,} rupiah each side) | first "
              f"answer {t['first_s'] * 1000:.1f} ms, then {t['median_s'] * 1000:.1f} ms (median of "
              f"{TRIAL_BALANCE_RUNS}) |")
    print(f"| load average after (1, 5, 15 min; the machine has {os.cpu_count()} cores) | "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} |")


def print_import(backend: str, settings: Any, workdir: Path) -> None:
    if backend == "sqlite":
        chosen = settings.model_copy(update={"persistence": "sqlite", "sqlite_path": workdir / "import.db"})
        cli_env = {**os.environ, "LEDGER_PERSISTENCE": "sqlite", "LEDGER_SQLITE_PATH": str(workdir / "import.db")}
    else:
        chosen = settings.model_copy(update={"persistence": "postgres"})
        cli_env = {**os.environ, "LEDGER_PERSISTENCE": "postgres"}
    cli_env["LEDGER_NIK_HMAC_KEY"] = BENCH_NIK_KEY.hex()
    r = bench_import(chosen.eventsourcing_env(), cli_env, workdir)
    print(f"| {backend}: `ledger payment import` of {IMPORT_CREDITS:,} credits ({r['matched']:,.0f} matched, "
          f"{IMPORT_EMPLOYERS} of them settling a bill of {IMPORT_MEMBERS_EACH} members; {r['held']:,.0f} held), "
          f"the whole command | {r['import_s']:.1f} s = {IMPORT_CREDITS / r['import_s']:,.0f} credits/s |")
    print(f"| {backend}: the same file again (every line a duplicate) | {r['again_s']:.1f} s |")
    print(f"| {backend}: the command's start-up alone (`ledger payment import --help`) | "
          f"{r['startup_s']:.1f} s |")
    print(f"| load average after (1, 5, 15 min; the machine has {os.cpu_count()} cores) | "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} |")


BENCHMARKS = ("kafka", "commands", "close", "relay", "rebuild", "verify", "api", "import")  # scripts/bench lists each


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=BENCHMARKS)
    parser.add_argument("--projection", choices=["balances", "branches", "general_ledger"], default="branches")
    parser.add_argument("--workers", default="1,2", help="rebuild: comma-separated worker counts to run")
    parser.add_argument("--compression", choices=["none", "gzip"], default="none")
    parser.add_argument("--scale", type=float, default=1.0, help="branch size factor for `commands` (1.0 = full)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    return parser


def main() -> int:
    args = argument_parser().parse_args()

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
        print_rebuild(args, settings, workdir)
        return 0
    if args.which == "api":
        try:
            r = bench_api(workdir, args.scale)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)  # the branch's ledger and views: about a gigabyte at scale 1
        p50 = {kind: statistics.median(run["p50_ms"] for run in r["runs"][kind]) for kind in ("real", "bare")}
        before, after = r["load"]
        print(f"| bare app: the same query, no token, scope, rate limit or access log ({r['members']:,.0f} members, "
              f"{API_CONNECTIONS} connections, median of {API_ROUNDS} x {API_ROUND_S} s) | {r['bare']:,.0f} "
              f"requests/s, p50 {p50['bare']:.1f} ms |")
        print(f"| real app: bearer tokens ({r['tokens_per_round']:,} subjects a round), scope, rate limit, access log "
              f"| {r['real']:,.0f} requests/s, p50 {p50['real']:.1f} ms = **{r['real'] / r['bare']:.2f} x bare** |")
        answered = sum(run["requests"] for kind in r["runs"] for run in r["runs"][kind])
        print(f"| answers in the measured rounds, all 200 (wrk's non-2xx count 0, no socket errors); access log "
              f"entries written by the real app | {answered:,}; {r['logged']:,} |")
        print(f"| load average before / after (1, 5, 15 min) | {' '.join(f'{v:.2f}' for v in before)} / "
              f"{' '.join(f'{v:.2f}' for v in after)} |")
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

    if args.which == "import":
        print_import(args.backend, settings, workdir)
        return 0

    def env_for(name: str) -> dict[str, str]:
        if args.backend == "sqlite":
            return settings.model_copy(update={"persistence": "sqlite",
                                               "sqlite_path": workdir / f"{name}.db"}).eventsourcing_env()
        import psycopg

        pg = settings.model_copy(update={"persistence": "postgres"})
        schema = f"bench_{name}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(pg.postgres_conninfo(), autocommit=True) as connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')  # the library does not create it
        return {**pg.eventsourcing_env(), "POSTGRES_SCHEMA": schema}

    bench, report = {"close": (bench_close, print_close), "commands": (bench_commands, print_commands)}[args.which]
    report(bench(env_for, args.scale), args.backend)
    return 0


def print_commands(r: dict[str, float], backend: str) -> None:
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


if __name__ == "__main__":
    sys.exit(main())
