"""The main job that `scripts/demo` runs: a scaled Bekasi Kota branch, written, sent through Kafka, projected, reported.

1. It writes into a fresh SQLite event store, through the ledger's commands:
   - a generated branch history, seeded (`ledger.generator`), with collections (`ledger generate --collections`):
     employers, members, BPU members, exits and claims, and nine months closed into bills and paid with money as it
     arrives: most employers on time, a few late (fined), a few short for some months then caught up, one twice by
     mistake (refunded), the city government's regional budget a half-year at a time in one transfer;
   - the press release's own events: the city government enrolls its 7,000 contract staff (TKK) in one command and
     pays a quarter from the regional budget; a company worker dies in a work accident and the JKK benefit goes to
     her husband.
2. The relay publishes every event to a topic of its own, exactly once, in Kafka transactions, each with the log's
   signed checkpoint of the Merkle tree over the events; an audit board's witness cosigns the checkpoints.
3. The auditor's check replays that topic from Kafka alone: positions 1..N, every hash chain intact, every checkpoint
   signed by the log's key with the events' root, no unsigned tail, and cosigned by the witness.
4. The projections consume the topic (exactly once, offsets stored with the views) and check their invariants; then
   the branch report as of 30 September 2017, the branch's arrears at that date (`ledger report arrears`) and one
   member's balance history are printed from them.
5. The auditor recounts every balance and branch figure from the topic alone and compares them with the projections.
6. A receipt for the shown member's first contribution is proved from the topic, checked offline with the log's and
   the witness's verifier keys, and checked again with one byte changed, which fails.
7. Who may read what: the HTTP API (`ledger serve`) runs on a free port with development tokens (`ledger api token
   issue`): no token is answered 401, the branch's staff read the member's balance, another branch's staff get 403
   for every KPJ of a range, and every read of a member is in the access log, which is published to Kafka and listed
   from there as `ledger audit access --kpj` lists it.
"""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, date, datetime
from http import HTTPStatus
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
                       months=9, seed=2017, collections=True, budget_members=200)
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
    from projections.catalog import PROJECTIONS
    from projections.store import ViewStore

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
          f"and {plan.bpu_members} BPU members (and {plan.budget_members} paid for by the regional budget), "
          f"{plan.months} months from {plan.first_month} closed into bills and paid with money (seed {plan.seed})")
    started = time.perf_counter()
    counts = generate_branch(app, plan)
    print(f"   {counts['commands']:,} commands in {time.perf_counter() - started:.1f}s: {counts['bills']:,} bills, "
          f"{counts['receipts']:,} transfers received, {counts['refunds']:,} refund(s), {counts['exits']:,} exits, "
          f"{counts['claims']:,} claims")
    money_ok = print_money(counts)
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
              f"invariants hold, readers switched to version {rebuilt.version}; {rebuilt.ties}")
    views = ViewStore.open(settings)
    print()
    for line in branch_report_lines(queries.branch_report(views, plan.branch, REPORT_DATE)):
        print(line)
    print_arrears(views, plan.branch)
    books_ok = print_books(views, plan.branch)
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
    api_ok = print_access(settings, views, db.parent, run_id, balance["jht_balance"])
    ok = (report.ok and report.events == expected == published and store_balance == balance["jht_balance"]
          and cross.ok and receipt_ok and api_ok and money_ok and books_ok)
    return 0 if ok and all(count == expected for count in applied.values()) else 1


def print_money(counts: dict[str, int]) -> bool:
    """The generated branch's money at the end of its history, from the payers' accounts in the event store. True
    when it adds up: received = applied + refunded + unapplied, and billed = settled + outstanding."""
    settled = counts["applied"] - counts["fines"]
    print(f"   the branch's money at the end: billed {rupiah(counts['billed'])} in {counts['bills']:,} bills; received "
          f"{rupiah(counts['received'])} in {counts['receipts']:,} transfers; applied {rupiah(counts['applied'])} "
          f"to {counts['bills_settled']:,} bills (fines {rupiah(counts['fines'])}); refunded "
          f"{rupiah(counts['refunded'])}; unapplied (credit) {rupiah(counts['unapplied'])}; outstanding "
          f"{rupiah(counts['outstanding'])} in {counts['open_bills']:,} open bills")
    adds_up = counts["received"] == counts["applied"] + counts["refunded"] + counts["unapplied"]
    bills_add_up = counts["billed"] == settled + counts["outstanding"]
    print(f"   received = applied + refunded + unapplied: {'yes' if adds_up else 'NO'}; "
          f"billed = settled + outstanding: {'yes' if bills_add_up else 'NO'}")
    return adds_up and bills_add_up


ARREARS_MEMBERS_SHOWN = 5  # BPU members listed in the demo's arrears report; every employer in arrears is listed


def print_arrears(views: Any, branch: str) -> None:
    """The branch's arrears at the report date (`ledger report arrears --branch --as-of`): every employer in arrears,
    the first few BPU members, the aging buckets and the branch's totals."""
    from ledger.formatting import arrears_lines as lines
    from projections.queries import arrears

    command = f"ledger report arrears --branch {branch} --as-of {REPORT_DATE}"
    print()
    report = arrears(views, branch, REPORT_DATE)
    payers = report.get("payers") or []
    employers = [payer for payer in payers if payer.get("npp")]
    members = [payer for payer in payers if not payer.get("npp")]
    for line in lines({**report, "payers": employers + members[:ARREARS_MEMBERS_SHOWN]}):
        print(line)
    if len(members) > ARREARS_MEMBERS_SHOWN:
        print(f"  (and {len(members) - ARREARS_MEMBERS_SHOWN:,} more BPU members in arrears, counted in the totals "
              f"above: `{command}` lists every one)")


def print_books(views: Any, branch: str) -> bool:
    """The branch's trial balance at the report date (`ledger books trial-balance`), then the check that the books
    balance and tie to the members' balances, the branch report and the collections (`ledger books check`). True
    when both hold."""
    from ledger.formatting import check_lines, trial_balance_lines
    from projections.queries import check_books, trial_balance

    print()
    balance = trial_balance(views, REPORT_DATE, branch)
    for line in trial_balance_lines(balance):
        print(line)
    print()
    print(f"ledger books check --as-of {REPORT_DATE}: the general ledger's invariants, and its ties to the members' "
          f"JHT balances, the branch totals and the collections")
    result = check_books(views, REPORT_DATE)
    lines = check_lines(result)
    failed = [line for line in lines[:-1] if not line.startswith("ok")]
    for line in failed:
        print(f"  {line}")
    print(f"  {len(lines) - 1 - len(failed):,} checks ok; {lines[-1]}")
    return bool(balance["balanced"]) and bool(result["ok"])


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



# Step 7: the consecutive KPJs another branch's staff try, each answered 403 (the issue's outsider loop, shortened).
PROBED_KPJS = 20
API_START_WAIT_S = 30.0  # how long the demo waits for its API server to start listening
API_ANSWER_WAIT_S = 30.0  # one request's bound
DEMO_ISSUER, DEMO_AUDIENCE = "https://id.demo.bpjs.example", "ledger-api"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str, token: str | None = None, purpose: str | None = None) -> tuple[int, Any]:
    """GET `url` with a bearer token and purpose: the status and the JSON answer."""
    request = urllib.request.Request(url)  # noqa: S310 - always http://127.0.0.1, built by this module
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if purpose:
        request.add_header("X-Purpose", purpose)
    try:
        with urllib.request.urlopen(request, timeout=API_ANSWER_WAIT_S) as answer:  # noqa: S310 - see above
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as refused:
        return refused.code, orjson.loads(refused.read() or b"null")


def print_access(settings: Settings, views: Any, folder: Path, run_id: str, jht_balance: int) -> bool:
    """Step 7 (see the module's docstring). True when every answer was the one the roles call for, and the access
    log, read back from Kafka with its chain checked, lists exactly the reads of the shown member made here."""
    import uvicorn

    from ledger.audit.access import access_topic
    from projections import tokens
    from projections.access_log import AccessLog, AccessLogPublisher
    from projections.api import create_app

    # The identity provider's part, played by `ledger api keys generate`: a signing key, and the JWKS the API trusts.
    pem, jwks = tokens.generate_keys()
    jwks_file = folder / "api-jwks.json"
    access_db = folder / "access-log.db"
    for leftover in (access_db, access_db.with_name(access_db.name + "-wal"),
                     access_db.with_name(access_db.name + "-shm"), jwks_file):
        leftover.unlink(missing_ok=True)
    write_private(jwks_file, orjson.dumps(jwks))
    settings = settings.model_copy(update={
        "api_jwks_file": jwks_file, "api_jwks_url": None, "api_issuer": DEMO_ISSUER, "api_audience": DEMO_AUDIENCE,
        "access_log_sqlite_path": access_db, "access_log_transactional_id": f"demo-access-{run_id}"})

    def token(subject: str, role: str, branches: tuple[str, ...] = ()) -> str:
        claims = tokens.claims_for(subject=subject, role=role, branches=branches)
        minted, _expires = tokens.mint(pem, issuer=DEMO_ISSUER, audience=DEMO_AUDIENCE, claims=claims, ttl_s=900,
                                       now=datetime.now(UTC))
        return minted

    print()
    print("7. Who may read what: the HTTP API (ledger serve) with tokens from the fund's identity provider "
          "(here: ledger api token issue)")
    access_log = AccessLog.open(settings)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, views, access_log=access_log,
                                                      clock=lambda: REPORT_DATE),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + API_START_WAIT_S
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    try:
        if not server.started:
            print("   the API did not start (this is a defect)")
            return False
        url = f"{base}/members/{SHOWN_MEMBER}/balance?as_of={REPORT_DATE}"
        anonymous, _ = _get(url)
        print(f"   GET /members/{SHOWN_MEMBER}/balance without a token: {anonymous}")
        staff = token("siti.clerk@bekasi-kota", "branch-staff", (DEMO_PLAN.branch,))
        status, answer = _get(url, staff, purpose="member asked at the counter")
        shown = rupiah(answer["jht_balance"]) if status == HTTPStatus.OK else answer
        print(f"   the same with a {DEMO_PLAN.branch} staff token: {status}, JHT balance {shown}")
        other = token("budi.clerk@bandung", "branch-staff", ("BANDUNG",))
        first = int(SHOWN_MEMBER)
        probed = [_get(f"{base}/members/{first + i:011d}/balance", other)[0] for i in range(PROBED_KPJS)]
        print(f"   a BANDUNG staff token over {PROBED_KPJS} consecutive KPJs from {SHOWN_MEMBER}: "
              + ", ".join(f"{count} x {code}" for code, count in sorted(Counter(probed).items())))
        auditor = token("auditor@bpk.example", "auditor")
        history_status, history = _get(f"{base}/members/{SHOWN_MEMBER}/history?to={REPORT_DATE}", auditor,
                                       purpose="annual audit 2017")
        print(f"   an auditor's token reads the member's history: {history_status}, "
              f"{len(history) if history_status == HTTPStatus.OK else 0} movements")
    finally:
        server.should_exit = True
        thread.join(API_START_WAIT_S)
        access_log.close()

    # The access log, published to Kafka as `ledger serve` does in the background, then read back as an auditor.
    topics = Topics.for_prefix(settings.kafka_topic_prefix)
    publisher = AccessLogPublisher.open(settings)
    try:
        published = publisher.run()
    finally:
        publisher.close()
    found = access_topic(settings.kafka(), topics.access, kpj=SHOWN_MEMBER)
    print(f"   the access log: {published} entries published to {topics.access}; chain "
          f"{'intact' if found.ok else 'BROKEN'}; the reads of member {SHOWN_MEMBER} "
          f"(ledger audit access --kpj {SHOWN_MEMBER}):")
    for read in found.reads:
        print(f"     {read['at']}  {read['subject']} ({read['role']})  {read['endpoint']}  "
              f"purpose: {read['purpose'] or '-'}")
    print("   the same, as pages with charts for a browser: `ledger serve`, then /console/ (docs/console.md)")
    return (anonymous == HTTPStatus.UNAUTHORIZED and status == HTTPStatus.OK and answer["jht_balance"] == jht_balance
            and set(probed) == {HTTPStatus.FORBIDDEN} and history_status == HTTPStatus.OK and found.ok
            and [read["subject"] for read in found.reads] == ["siti.clerk@bekasi-kota", "auditor@bpk.example"])
