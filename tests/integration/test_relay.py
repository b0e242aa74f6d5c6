"""The relay against the real broker: exactly once, in order per aggregate, through crashes and broker outages.

The relay runs as the relay's principal, on topics the administrator made; what it published is read back as the
auditor's."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import orjson
import pytest

from ledger.application import Ledger
from ledger.audit.verify import verify_records, verify_topic
from ledger.commands import EnrollMembers, PayContribution, RegisterEmployer
from ledger.generator import member_rows
from ledger.publishing import kafka_client
from ledger.publishing.relay import Relay, read_state
from ledger.publishing.topics import Topics
from tests.support.kafka_roles import ADMIN, AUDITOR, RELAY, KafkaRoles
from tests.support.signing import log_signer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CLOCK = lambda: date(2026, 11, 23)  # noqa: E731
WAIT_S_MAX = 120


def write_history(app: Ledger, npp: str, members: int, months: list[str], first_kpj: int = 1) -> None:
    app.execute(RegisterEmployer.build(npp=npp, name=f"PT {npp}", branch="BEKASI-KOTA", kind="company",
                                       risk_class="low", registered_on=date(2020, 1, 1)))
    app.execute(EnrollMembers.build(npp=npp, effective=date(2024, 1, 1), members=member_rows(first_kpj, members)))
    for month in months:
        app.execute(PayContribution.build(npp=npp, month=month, paid_on=date(2024, 6, 10)))


def published_count(app: Ledger) -> int:
    """Contract events in the store: every notification but the internal command records."""
    return sum(1 for _ in app.stored_contract_notifications())


@pytest.fixture
def ledger_env(tmp_path, settings, unique, kafka_roles):
    """The ledger, the CLI's environment as each role (`ADMIN`, `RELAY`, `AUDITOR`), and the topics' names."""
    prefix = f"test-{unique}"
    env = {
        **os.environ,
        "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
        "LEDGER_KAFKA_TOPIC_PREFIX": prefix,
        "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}",
    }
    app = Ledger(env=settings.model_copy(update={"sqlite_path": tmp_path / "ledger.db"}).eventsourcing_env(),
                 clock=CLOCK, nik_key=settings.nik_hmac_key_bytes())
    return app, {role: {**env, **kafka_roles.env(role)} for role in (ADMIN, RELAY, AUDITOR)}, Topics.for_prefix(prefix)


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=env, capture_output=True, text=True,
                          timeout=WAIT_S_MAX, check=check)


def kafka_init(kafka_roles: KafkaRoles, envs: dict[str, dict[str, str]]) -> None:
    """`ledger kafka init` as the administrator: the topics, and on a secured broker the relay's and the auditor's
    ACLs (a plain broker has no authorizer to hold them)."""
    grants = ["--relay", kafka_roles.principal(RELAY), "--auditor", kafka_roles.principal(AUDITOR)]
    cli(envs[ADMIN], "kafka", "init", *(grants if kafka_roles.secured else []))


def test_every_event_arrives_once_in_order_with_contiguous_positions(ledger_env, kafka_roles):
    app, envs, topics = ledger_env
    write_history(app, "11111111", members=300, months=["2024-01", "2024-02", "2024-03"])
    expected = published_count(app)

    kafka_init(kafka_roles, envs)
    result = cli(envs[RELAY], "relay", "--json")

    assert json.loads(result.stdout)["published"] == expected
    auditor = kafka_roles.connection(AUDITOR)
    records = list(kafka_client.read_to_end(auditor, topics.events))
    envelopes = [orjson.loads(r.value) for r in records]
    assert len(envelopes) == expected
    assert sorted(e["position"] for e in envelopes) == list(range(1, expected + 1))
    by_aggregate: dict[str, list[int]] = {}
    for record, e in zip(records, envelopes, strict=True):
        by_aggregate.setdefault(e["aggregate_id"], []).append(e["aggregate_version"])
        assert record.key.decode() == e["aggregate_id"]
        assert dict(record.headers) == {"type": e["type"].encode(), "version": str(e["version"]).encode()}
    assert all(versions == list(range(1, len(versions) + 1)) for versions in by_aggregate.values())
    # Personal data stays home: no NIK or name in any published record, only the keyed NIK hash.
    enrolled = [e for e in envelopes if e["type"] == "MemberEnrolled"]
    assert len(enrolled) == 300
    assert all("nik" not in e["data"] and "name" not in e["data"] and len(e["data"]["nik_hmac"]) == 64
               for e in enrolled)
    # A second run finds nothing new to publish.
    assert json.loads(cli(envs[RELAY], "relay", "--json").stdout)["published"] == 0
    assert verify_topic(auditor, topics.events).ok


def test_a_relay_killed_mid_batch_resumes_without_loss_or_duplicates(ledger_env, kafka_roles):
    app, envs, topics = ledger_env
    write_history(app, "22222222", members=4_000, months=["2024-01", "2024-02", "2024-03", "2024-04"])
    expected = published_count(app)
    kafka_init(kafka_roles, envs)
    auditor = kafka_roles.connection(AUDITOR)
    rng = random.Random(20261123)

    positions_after_kills = []
    for _ in range(5):
        relay = subprocess.Popen([sys.executable, "-m", "ledger.cli", "relay", "--batch", "500"], env=envs[RELAY],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 1.6))  # the process needs ~0.7 s to start; then it publishes for seconds
        if relay.poll() is None:
            relay.send_signal(signal.SIGKILL)
            relay.wait(timeout=30)
            positions_after_kills.append(read_state(auditor, topics).position)
        relay.wait(timeout=30)
    cli(envs[RELAY], "relay")

    killed_mid_way = [p for p in positions_after_kills if p < expected]
    assert killed_mid_way, "the relay finished before it could be killed: make the history bigger"
    assert positions_after_kills == sorted(positions_after_kills)  # every restart resumed, none went back
    report = verify_topic(auditor, topics.events)
    assert (report.events, report.ok) == (expected, True), report.as_dict()
    assert read_state(auditor, topics).position == expected


def test_commands_keep_working_while_the_broker_is_down_and_nothing_is_lost(tmp_path, settings, unique):
    port = kafka_client_free_port()
    data = tmp_path / "kafka"
    kafka_env = {**os.environ, "KAFKA_DATA_DIR": str(data)}
    subprocess.run([str(ROOT / "scripts" / "kafka"), "start", str(port)], env=kafka_env, check=True,
                   capture_output=True, timeout=WAIT_S_MAX)
    # This broker's own principals: a secured broker writes their files into its data directory.
    principals = data / "principals"
    roles = KafkaRoles.from_environment(str(principals) if principals.is_dir() else None, f"127.0.0.1:{port}")
    auditor = roles.connection(AUDITOR)
    app = Ledger(env=settings.model_copy(update={"sqlite_path": tmp_path / "ledger.db"}).eventsourcing_env(),
                 clock=CLOCK, nik_key=settings.nik_hmac_key_bytes())
    env = {**os.environ, **roles.env(RELAY), "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
           "LEDGER_KAFKA_TOPIC_PREFIX": f"outage-{unique}", "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}"}
    relay = None
    try:
        topics = roles.provision(f"outage-{unique}", transactional_id=f"relay-{unique}")
        write_history(app, "33333333", members=100, months=["2024-01"])
        relay = subprocess.Popen([sys.executable, "-m", "ledger.cli", "relay", "--follow"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: read_state(auditor, topics).position == published_count(app))

        subprocess.run([str(ROOT / "scripts" / "kafka"), "stop", str(port)], env=kafka_env, check=True,
                       capture_output=True, timeout=WAIT_S_MAX)
        # The write side does not need the broker: these commands succeed while it is down.
        write_history(app, "44444444", members=100, months=["2024-01", "2024-02"], first_kpj=5_000)
        time.sleep(2)
        subprocess.run([str(ROOT / "scripts" / "kafka"), "start", str(port)], env=kafka_env, check=True,
                       capture_output=True, timeout=WAIT_S_MAX)

        expected = published_count(app)
        try:
            wait_until(lambda: read_state(auditor, topics).position == expected)
        except AssertionError as error:
            relay.terminate()
            raise AssertionError(f"the relay did not catch up; its log:\n{relay.communicate(timeout=30)[1][-4000:]}"
                                 ) from error
        report = verify_topic(auditor, topics.events)
        assert (report.events, report.ok) == (expected, True), report.as_dict()
        assert relay.poll() is None, "the relay gave up instead of waiting for the broker"
    finally:
        if relay is not None:
            relay.terminate()
            relay.wait(timeout=30)
        subprocess.run([str(ROOT / "scripts" / "kafka"), "stop", str(port)], env=kafka_env, capture_output=True,
                       check=False, timeout=WAIT_S_MAX)


def test_audit_verify_detects_an_altered_a_dropped_and_a_duplicated_record(ledger_env, kafka_roles, unique):
    app, envs, topics = ledger_env
    write_history(app, "55555555", members=50, months=["2024-01", "2024-02"])
    kafka_roles.provision(topics.prefix, transactional_id=f"relay-{unique}")
    Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
          transactional_id=f"relay-{unique}").run()
    original = list(kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.events))
    assert verify_records(topics.events, original).ok

    paid = next(i for i, r in enumerate(original) if b'"ContributionPaid"' in r.value)
    altered = orjson.loads(original[paid].value)
    altered["data"]["total"] += 1_000  # someone pockets a thousand rupiah
    # A copy with the altered record, written straight to a topic the auditor reads, as the administrator could.
    copy_topic = kafka_roles.provision(f"{topics.prefix}.tampered", partitions=1).events
    producer = kafka_client.producer(kafka_roles.admin)
    for i, record in enumerate(original):
        producer.send(copy_topic, key=record.key, value=orjson.dumps(altered) if i == paid else record.value)
    producer.flush(timeout=30)
    producer.close()

    result = cli(envs[AUDITOR], "audit", "verify", "--topic", copy_topic, "--json", check=False)
    report = json.loads(result.stdout)
    assert result.returncode != 0 and report["ok"] is False and report["chains_intact"] is False
    assert altered["event_id"] in report["first_breach"] and "altered" in report["first_breach"]

    dropped = verify_records("t", [r for i, r in enumerate(original) if i != 10])
    assert not dropped.positions_ok and "missing" in str(dropped.breaches[0])
    duplicated = verify_records("t", [*original[:20], original[5], *original[20:]])
    assert not duplicated.ok and any("duplicated" in b.problem for b in duplicated.breaches)


def kafka_client_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s: float = WAIT_S_MAX, interval_s: float = 0.5) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except (kafka_client.KafkaError, TimeoutError):
            pass
        time.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s}s")


# --- personal data never reaches Kafka (issue 12) ------------------------------------------------------------------

def test_no_name_nik_or_birth_date_reaches_the_topic_or_the_brokers_log_segments(tmp_path, settings, unique,
                                                                                   kafka_roles):
    """Names, NIKs and birth dates stay in the event store. Checked in the records as a consumer reads them (key,
    value, headers) and in the broker's own log segment files, where a consumer that bypasses the API would look."""
    from ledger.commands import CloseBills, EnrollMember, ExitMember, MemberRow, PayClaim, ReceiveMoney, Reverse

    data_dir = os.environ.get("KAFKA_DATA_DIR")
    assert data_dir, "run with scripts/test, which starts the broker and exports KAFKA_DATA_DIR"
    app = Ledger(env=settings.model_copy(update={"sqlite_path": tmp_path / "ledger.db"}).eventsourcing_env(),
                 clock=CLOCK, nik_key=settings.nik_hmac_key_bytes())
    npp = "10077777"
    app.execute(RegisterEmployer.build(npp=npp, name="PT Sumber Rejeki", branch="BEKASI-KOTA", kind="company",
                                       risk_class="low", registered_on=date(2020, 1, 1)))
    people = {  # KPJ -> (NIK, name, birth date)
        "17700000001": ("3275015203880002", "Siti Rahayu Wulandari", date(1988, 3, 12)),
        "17700000002": ("3275011505900001", "Budi Santoso Pratama", date(1990, 5, 15)),
    }
    for kpj, (nik, name, born) in people.items():
        app.execute(EnrollMember.build(npp=npp, effective=date(2024, 1, 1), member=MemberRow(
            kpj=kpj, nik=nik, name=name, birth_date=born, wage=6_000_000)))
    app.execute(EnrollMember.build(branch="BEKASI-KOTA", effective=date(2024, 1, 1), member=MemberRow(
        kpj="17700000003", nik="3275014107950003", name="Dewi Lestari Anggraini", birth_date=date(1995, 7, 1),
        wage=2_000_000, segment="BPU")))
    heir, payer = "Ahmad Hidayat Nugroho", "Rukmini Setyaningsih"
    app.execute(PayContribution.build(npp=npp, month="2024-01", paid_on=date(2024, 2, 10)))
    app.execute(PayContribution.build(kpj="17700000003", month="2024-01", paid_on=date(2024, 1, 10),
                                      payer="institution", payer_name=payer))
    app.execute(ExitMember.build(kpj="17700000001", reason="work-death", exit_date=date(2024, 3, 5)))
    claim = app.execute(PayClaim.build(kpj="17700000001", program="JKK", kind="death", incident_date=date(2024, 3, 5),
                                       paid_on=date(2024, 4, 1), beneficiary="spouse", beneficiary_name=heir))
    app.execute(Reverse.build(event_id=claim["event_id"], reason="paid twice", reversed_on=date(2024, 4, 2)))
    # Collections: the BPU member's February bill, paid by a person whose name is on the bank slip.
    treasurer = "Sri Handayani Kusumawati"
    [bill] = app.execute(CloseBills.build(month="2024-02", kpjs=["17700000003"]))["first_bills"]
    app.execute(ReceiveMoney.build(reference="BRI-240205-77", code=bill["payment_code"], amount=bill["total"],
                                   received_on=date(2024, 2, 5), payer="institution", payer_name=treasurer))
    topics = kafka_roles.provision(f"test-pii-{unique}", transactional_id=f"relay-pii-{unique}")
    relay = Relay(app.recorder, kafka_roles.connection(RELAY), topics, signer=log_signer(),
                  transactional_id=f"relay-pii-{unique}")
    assert relay.run() == published_count(app)
    relay.close()

    secrets = [secret for nik, name, born in [*people.values(), ("3275014107950003", "Dewi Lestari Anggraini",
                                                                 date(1995, 7, 1))]
               for secret in (nik, name, born.isoformat())] + [heir, payer, treasurer]
    stored = b"".join(n.state for n in app.recorder.select_notifications(start=1, limit=1_000))
    assert all(secret.encode() in stored for secret in secrets if not secret[:4].isdigit() or len(secret) == 16), \
        "the event store (the system of record) keeps them"
    records = list(kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.events))
    consumed = b"".join((r.key or b"") + r.value + b"".join(v for _, v in r.headers) for r in records)
    # Every node's log folder (`logs/` of a plain broker, `node-<id>/logs/` of a secured one).
    segments = b"".join(path.read_bytes() for path in Path(data_dir).glob(f"**/logs/{topics.events}-*/*.log"))
    assert b"17700000002" in consumed and b"17700000002" in segments, "the scans read the real bytes"
    for secret in secrets:
        assert secret.encode() not in consumed, secret
        assert secret.encode() not in segments, secret
    relationship = [orjson.loads(r.value)["data"] for r in records if r.headers[0][1] == b"ClaimPaid"]
    assert [(d["beneficiary"], "beneficiary_name" in d) for d in relationship] == [("spouse", False)]
    received = [orjson.loads(r.value)["data"] for r in records if r.headers[0][1] == b"MoneyReceived"]
    assert [(d["payer"], "payer_name" in d) for d in received] == [("institution", False)]
