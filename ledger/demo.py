"""The main job that `scripts/demo` runs: a scaled Bekasi Kota branch, written, sent through Kafka, projected, reported.

1. It writes into a fresh SQLite event store, through the ledger's commands:
   - a generated branch history, seeded (`ledger.generator`): employers, members, nine months of contributions, BPU
     members, exits and claims;
   - the press release's own events: the city government enrolls its 7,000 contract staff (TKK) in one command and
     pays a quarter from the regional budget; a company worker dies in a work accident and the JKK benefit goes to
     her husband.
2. The relay publishes every event to a topic of its own, exactly once, in Kafka transactions, each with the log's
   signed checkpoint of the Merkle tree over the events; an audit board's witness cosigns the checkpoints.
3. The auditor's check replays that topic from Kafka alone: positions 1..N, every hash chain intact, every checkpoint
   signed by the log's key with the events' root, no unsigned tail, and cosigned by the witness.
4. The projections consume the topic (exactly once, offsets stored with the views) and check their invariants; then
   the branch report as of 30 September 2017 and one member's balance history are printed from them.
5. The auditor recounts every balance and branch figure from the topic alone and compares them with the projections.
6. A receipt for the shown member's first contribution is proved from the topic, checked offline with the log's and
   the witness's verifier keys, and checked again with one byte changed, which fails.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from ledger.application import Ledger
from ledger.audit.proofs import check_proof, prove_event
from ledger.audit.recount import as_of_topic
from ledger.audit.verify import verify_topic
from ledger.audit.witness import run_witness
from ledger.commands import (
    EnrollMember,
    EnrollMembers,
    ExitMember,
    MemberRow,
    PayClaim,
    PayContribution,
    RegisterEmployer,
)
from ledger.errors import TlogInvalid
from ledger.formatting import balance_lines, branch_report_lines, describe, rupiah
from ledger.generator import BranchPlan, generate_branch, member_rows
from ledger.private_files import write_private
from ledger.publishing import kafka_client, relay
from ledger.publishing.topics import Topics, init_topics
from ledger.settings import Settings
from ledger.tlog.checkpoint import CosignatureVerifier, Cosigner
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Signer, Ed25519Verifier, SignerKey

TKK_STAFF = 7_000
DEMO_PLAN = BranchPlan(branch="BEKASI-KOTA", employers=40, members=3_000, bpu_members=150, first_month="2017-01",
                       months=9, seed=2017)
REPORT_DATE = date(2017, 9, 30)
SHOWN_MEMBER = "17100000001"  # the generated branch's first member
CITY_NPP, COMPANY_NPP = "10000017", "10004430"


def write_scenario(app: Ledger) -> list[str]:
    lines = []

    def run(command: Any) -> dict[str, Any]:
        result = app.execute(command)
        lines.append(f"  {describe(result)}")
        return result

    run(RegisterEmployer.build(npp=CITY_NPP, name="Pemerintah Kota Bekasi", branch="BEKASI-KOTA", kind="government",
                               risk_class="very-low", registered_on=date(2017, 9, 1)))
    run(RegisterEmployer.build(npp=COMPANY_NPP, name="PT Bekasi Baja", branch="BEKASI-KOTA", kind="company",
                               risk_class="high", registered_on=date(2016, 1, 4)))
    run(EnrollMembers.build(npp=CITY_NPP, effective=date(2017, 10, 1), members=member_rows(
        90_000_000_001, TKK_STAFF, name="Tenaga Kerja Kontrak", first_birth_year=1985, wage_base=4_500_000,
        wage_step=100_000, wage_steps=5)))
    worker = MemberRow(kpj="17000000001", nik="3275015203880002", name="Siti Rahayu", birth_date=date(1988, 3, 12),
                       wage=6_000_000)
    run(EnrollMember.build(member=worker, npp=COMPANY_NPP, effective=date(2016, 2, 1)))
    run(PayContribution.build(npp=COMPANY_NPP, month="2017-07", months=1, paid_on=date(2017, 8, 10)))
    run(PayContribution.build(npp=CITY_NPP, month="2017-10", months=3, paid_on=date(2017, 10, 12),
                              payer="institution", payer_name="APBD Kota Bekasi"))
    run(ExitMember.build(kpj=worker.kpj, reason="work-death", exit_date=date(2017, 8, 21)))
    run(PayClaim.build(kpj=worker.kpj, program="JKK", kind="death", incident_date=date(2017, 8, 21),
                       paid_on=date(2017, 9, 20), beneficiary="spouse", beneficiary_name="Ahmad Rahayu"))
    return lines


def run_demo(settings: Settings) -> int:
    from projections import queries, runner
    from projections.store import ViewStore
    from projections.views import PROJECTIONS

    nik_key = settings.nik_hmac_key_bytes()  # first: an unsafe key is refused before anything is touched
    db = Path(settings.sqlite_path)
    views_db = Path(settings.projection_sqlite_path)
    for path in (db, views_db):
        for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            leftover.unlink(missing_ok=True)
    app = Ledger(env=settings.model_copy(update={"persistence": "sqlite"}).eventsourcing_env(),
                 nik_key=nik_key)

    plan = DEMO_PLAN
    print(f"1. Writing a generated {plan.branch} history into {db}: {plan.employers} employers, {plan.members:,} PU "
          f"and {plan.bpu_members} BPU members, {plan.months} months from {plan.first_month} (seed {plan.seed})")
    started = time.perf_counter()
    counts = generate_branch(app, plan)
    print(f"   {counts['commands']:,} commands in {time.perf_counter() - started:.1f}s: {counts['payments']:,} "
          f"payments, {counts['exits']:,} exits, {counts['claims']:,} claims")
    print("   and the press release's own events:")
    for line in write_scenario(app):
        print(line)

    # Each demo run starts a new store, so it gets topics (and a relay identity) of its own.
    run_id = uuid.uuid4().hex[:8]
    settings = settings.model_copy(update={"kafka_topic_prefix": f"{settings.kafka_topic_prefix}.demo-{run_id}",
                                           "projection_store": "sqlite"})
    topics = Topics.for_prefix(settings.kafka_topic_prefix)
    kafka = settings.kafka()
    expected = sum(1 for _ in app.stored_contract_notifications())
    print(f"2. Relaying {expected:,} events to {topics.events} at {kafka.servers} (exactly once, in Kafka "
          f"transactions)")
    # The demo plays every role: it creates its topics as the administrator would (`ledger kafka init`).
    init_topics(kafka, topics, settings.kafka_partitions, replication_factor=settings.replication_factor_checked())
    # The log's signing key: the operator's (LEDGER_LOG_SIGNING_KEY_FILE) if set, else one made for this run, as an
    # operator makes one with `ledger keys generate`; its verifier key is what auditors are given.
    log_key = (settings.log_signing_key_file and settings.log_signing_key()) or SignerKey.generate(
        f"demo-{run_id}.bpjs.example/ledger")
    publisher = relay.Relay(app.recorder, kafka, topics, signer=Ed25519Signer.of(log_key),
                            transactional_id=f"demo-relay-{run_id}")
    started = time.perf_counter()
    published = publisher.run()
    publisher.close()
    print(f"   published {published:,} events in {time.perf_counter() - started:.1f}s; "
          f"last position {publisher.state.position:,}")

    # An audit board's witness cosigns the log's checkpoints (ledger audit witness), with a key of its own.
    log_verifier = Ed25519Verifier.of(log_key.verifier_key())
    witness_key = SignerKey.generate(f"demo-{run_id}.witness.example/audit-board", SIGNATURE_TYPE_COSIGNATURE_V1)
    witnessed = run_witness(kafka, topics, Cosigner.of(witness_key), log_verifier)
    print(f"   the log signed a checkpoint with every transaction; its verifier key, for auditors: "
          f"{log_key.verifier_key().format()}")
    print(f"   the audit board's witness cosigned {witnessed.cosigned:,} checkpoint(s), each shown to extend the last")

    print("3. Auditing the topic from Kafka alone (ledger audit verify --key LOG_KEY --witness BOARD_KEY "
          "--witnesses-required 1)")
    board = CosignatureVerifier.of(witness_key.verifier_key())
    report = verify_topic(kafka, topics.events, log=log_verifier, checkpoints_topic=topics.checkpoints,
                          witness_topic=topics.witness, witnesses=[board], witnesses_required=1)
    signed = report.signed
    assert signed is not None
    print(f"   checked {report.events:,} events: positions {'contiguous' if report.positions_ok else 'NOT contiguous'}"
          f" 1..{report.last_position or 0:,}, hash chains {'intact' if report.chains_ok else 'BROKEN'}; "
          f"{signed.checkpoints:,} checkpoints signed by the log's key, their roots the events' tree's: "
          f"{'yes' if signed.checkpoints_ok else 'NO'}; signed up to position {signed.signed_size:,}, unsigned tail "
          f"{signed.unsigned_tail:,}; cosigned by the witness up to {signed.cosigned_size or 0:,}")
    records = [orjson.loads(r.value) for r in kafka_client.read_to_end(kafka, topics.events)]
    kinds = Counter(env["type"] for env in records)
    print("   by type: " + ", ".join(f"{kind} {count:,}" for kind, count in sorted(kinds.items())))

    print(f"4. Projecting the topic into {views_db} (ledger projections run), then checking the invariants "
          f"(ledger projections rebuild)")
    started = time.perf_counter()
    applied = runner.run(settings, list(PROJECTIONS), follow=False)
    print(f"   applied {', '.join(f'{name} {count:,}' for name, count in applied.items())} events in "
          f"{time.perf_counter() - started:.1f}s")
    for name in PROJECTIONS:
        rebuilt = runner.rebuild(settings, name, workers=2)
        print(f"   rebuilt {name} from offset 0 with 2 workers in {rebuilt.seconds:.1f}s: {rebuilt.events:,} events, "
              f"invariants hold, readers switched to version {rebuilt.version}")
    views = ViewStore.open(settings)
    print()
    for line in branch_report_lines(queries.branch_report(views, plan.branch, REPORT_DATE)):
        print(line)
    print()
    balance = queries.member_balance(views, SHOWN_MEMBER, REPORT_DATE)
    balance["history"] = queries.member_history(views, SHOWN_MEMBER, end=REPORT_DATE)
    for line in balance_lines(balance):
        print(line)
    store_balance = app.jht_balance(SHOWN_MEMBER, REPORT_DATE)
    print(f"   (the event store's own computation: {store_balance:,}; "
          f"{'equal' if store_balance == balance['jht_balance'] else 'DIFFERENT'})")
    print()
    print(f"5. The auditor's cross-check (ledger audit as-of {REPORT_DATE}): every balance and branch figure "
          f"recounted from Kafka alone, compared with the projections")
    cross = as_of_topic(kafka, topics.events, views, REPORT_DATE)
    print(f"   {cross.events:,} events recounted: {cross.members:,} members, {cross.accounts:,} paying accounts and "
          f"{cross.branches:,} branch(es) compared, {cross.differences_found:,} difference(s)")
    receipt_ok = print_receipt(kafka, topics, records, db.parent / "receipt.tlog-proof", log_verifier, board)
    ok = (report.ok and report.events == expected == published and store_balance == balance["jht_balance"]
          and cross.ok and receipt_ok)
    return 0 if ok and all(count == expected for count in applied.values()) else 1


def print_receipt(kafka: Any, topics: Topics, records: list[dict[str, Any]], path: Path,
                  log_verifier: Ed25519Verifier, board: CosignatureVerifier) -> bool:
    """Step 6: a receipt for the shown member's first contribution, checked offline, then with one byte changed."""
    paid = next(env for env in sorted(records, key=lambda env: env["position"])
                if env["type"] == "ContributionPaid" and env["data"].get("kpj") == SHOWN_MEMBER)
    print()
    print(f"6. A receipt for member {SHOWN_MEMBER}'s contribution for {paid['data']['month']} "
          f"(ledger audit prove {paid['event_id']} --key LOG_KEY --witness BOARD_KEY --out {path})")
    receipt = prove_event(kafka, topics, paid["event_id"], [log_verifier], [board])
    write_private(path, receipt.data)
    result = check_proof(receipt.data, log_verifier, [board], 1)
    print(f"   checked offline (ledger audit check-proof {path.name} --key LOG_KEY --witness BOARD_KEY "
          f"--witnesses-required 1): VALID: event {result['event_id']} ({result['type']}, "
          f"{rupiah(result['data']['total'])}) is at position {result['position']:,} of the log, in its checkpoint "
          f"of size {result['checkpoint_size']:,}, signed by {result['signed_by']}, cosigned by "
          f"{', '.join(one['name'] for one in result['cosigned_by'])}")
    tampered = bytearray(receipt.data)
    tampered[len(tampered) // 3] ^= 0x01  # one bit of one byte, in the event or its proof
    try:
        check_proof(bytes(tampered), log_verifier, [board], 1)
    except TlogInvalid as error:
        print(f"   the same receipt with one byte changed: INVALID: {error}")
        return True
    print("   the same receipt with one byte changed: VALID (this is a defect)")
    return False

