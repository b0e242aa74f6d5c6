"""The relay's signed checkpoints against the real broker: one per transaction, in that transaction, with the tree's
frontier in the relay's state; through SIGKILLs at random points, a state from before checkpoints, and a state
someone else wrote.

The events are read back as the auditor, and the checkpoints are checked here with the published formats alone
(ledger.tlog), independently of `ledger audit verify`: each is signed by the log's key, and its root is the RFC 9162
root of the events' values at its size."""

from __future__ import annotations

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
from ledger.commands import EnrollMembers, PayContribution, RegisterEmployer
from ledger.errors import RelayStateInvalid
from ledger.generator import member_rows
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import read_checkpoint_record
from ledger.publishing.relay import RELAY_STATE_KEY, Relay, read_state
from ledger.publishing.topics import Topics
from ledger.tlog import merkle
from ledger.tlog.checkpoint import open_checkpoint
from ledger.tlog.note import Ed25519Verifier
from tests.support.kafka_roles import ADMIN, AUDITOR, RELAY, KafkaRoles
from tests.support.signing import log_signer, log_verifier_key

pytestmark = pytest.mark.integration

CLOCK = lambda: date(2026, 11, 23)  # noqa: E731
WAIT_S_MAX = 120
KILLS = 20


def write_history(app: Ledger, npp: str, members: int, months: list[str]) -> None:
    app.execute(RegisterEmployer.build(npp=npp, name=f"PT {npp}", branch="BEKASI-KOTA", kind="company",
                                       risk_class="low", registered_on=date(2020, 1, 1)))
    app.execute(EnrollMembers.build(npp=npp, effective=date(2024, 1, 1), members=member_rows(1, members)))
    for month in months:
        app.execute(PayContribution.build(npp=npp, month=month, paid_on=date(2024, 6, 10)))


def signed_log(kafka_roles: KafkaRoles, topics: Topics) -> tuple[int, list[tuple[int, int]]]:
    """Check, as the auditor, every checkpoint against the events: returns (events, [(offset, size)]). Fails on a
    checkpoint not signed by the log's key, a root that is not the events' root at its size, sizes that do not
    grow, events not covered by the last checkpoint, or positions that are not 1..N once each."""
    auditor = kafka_roles.connection(AUDITOR)
    by_position: dict[int, bytes] = {}
    for record in kafka_client.read_to_end(auditor, topics.events):
        position = orjson.loads(record.value)["position"]
        assert position not in by_position, f"position {position} twice"
        by_position[position] = record.value
    assert sorted(by_position) == list(range(1, len(by_position) + 1))
    verifier = Ed25519Verifier.of(log_verifier_key())
    tree = merkle.Frontier()
    seen = []
    for record in kafka_client.read_to_end(auditor, topics.checkpoints):
        checkpoint = open_checkpoint(read_checkpoint_record(record.value, record.headers).note, verifier.name,
                                     verifier).checkpoint
        assert checkpoint.size > tree.size, f"checkpoint at offset {record.offset} does not grow the tree"
        tree.extend(merkle.leaf_hash(by_position[p]) for p in range(tree.size + 1, checkpoint.size + 1))
        assert tree.root() == checkpoint.root_hash, f"checkpoint at offset {record.offset}: another root"
        seen.append((record.offset, checkpoint.size))
    assert tree.size == len(by_position), f"events {tree.size + 1}..{len(by_position)} are not signed"
    return len(by_position), seen


@pytest.fixture
def relay_setup(tmp_path: Path, settings, unique, kafka_roles: KafkaRoles):
    prefix = f"test-signed-{unique}"
    app = Ledger(env=settings.model_copy(update={"sqlite_path": tmp_path / "ledger.db"}).eventsourcing_env(),
                 clock=CLOCK, nik_key=settings.nik_hmac_key_bytes())
    topics = kafka_roles.provision(prefix, transactional_id=f"relay-{unique}")
    env = {**os.environ, **kafka_roles.env(RELAY), "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"),
           "LEDGER_KAFKA_TOPIC_PREFIX": prefix, "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}"}
    return app, topics, env, f"relay-{unique}"


def relay(app: Ledger, kafka_roles: KafkaRoles, topics: Topics, transactional_id: str, **options) -> Relay:
    options = {"signer": log_signer(), "batch_max": 200, **options}
    return Relay(app.recorder, kafka_roles.connection(RELAY), topics, transactional_id=transactional_id, **options)


def test_a_relay_killed_at_20_random_points_keeps_events_tree_and_checkpoints_consistent(relay_setup, kafka_roles):
    app, topics, env, _ = relay_setup
    write_history(app, "51111111", members=3_000, months=["2024-01", "2024-02", "2024-03", "2024-04", "2024-05"])
    expected = sum(1 for _ in app.stored_contract_notifications())
    auditor = kafka_roles.connection(AUDITOR)
    rng = random.Random(20261201)

    kills = 0
    position = 0
    while kills < KILLS:
        process = subprocess.Popen([sys.executable, "-m", "ledger.cli", "relay", "--batch", "50"], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Wait (bounded) until this run has committed a transaction, then kill it at a random moment after.
        deadline = time.monotonic() + WAIT_S_MAX
        while read_state(auditor, topics).position == position and process.poll() is None:
            assert time.monotonic() < deadline, "the relay published nothing"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.08))
        if process.poll() is not None:
            assert process.returncode == 0, process.stderr.read() if process.stderr else ""
            break  # it finished first: the history was too small for all the kills
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=WAIT_S_MAX)
        kills += 1
        after = read_state(auditor, topics).position
        assert after >= position  # every restart resumed, none went back
        position = after
    assert kills == KILLS, f"the relay finished after {kills} kills: make the history bigger"
    assert position < expected
    subprocess.run([sys.executable, "-m", "ledger.cli", "relay"], env=env, check=True, capture_output=True,
                   timeout=WAIT_S_MAX)

    events, checkpoints = signed_log(kafka_roles, topics)
    assert events == expected
    state = read_state(auditor, topics)
    assert state.tree is not None and (state.position, state.tree.size) == (expected, expected)
    # One checkpoint per committed transaction (those of killed, aborted ones were never seen): batches of 50 until
    # the last, uninterrupted run.
    assert checkpoints[-1][1] == expected and len(checkpoints) >= position // 50


def test_a_state_from_before_checkpoints_gets_its_tree_rebuilt_from_the_store(relay_setup, kafka_roles):
    app, topics, _, transactional_id = relay_setup
    write_history(app, "52222222", members=120, months=["2024-01"])
    # Published by a relay that kept no tree (as before checkpoints): a state of two numbers, no checkpoint.
    publisher = relay(app, kafka_roles, topics, transactional_id, signer=None)
    published = publisher.run()
    publisher.close()
    producer = kafka_client.producer(kafka_roles.connection(ADMIN))
    producer.send(topics.state, key=RELAY_STATE_KEY, value=orjson.dumps(
        {"notification_id": publisher.state.notification_id, "position": published})).get(timeout=30)
    producer.close()
    assert read_state(kafka_roles.connection(AUDITOR), topics).tree is None
    assert list(kafka_client.read_to_end(kafka_roles.connection(AUDITOR), topics.checkpoints)) == []

    app.execute(PayContribution.build(npp="52222222", month="2024-02", paid_on=date(2024, 3, 10)))
    lines: list[str] = []
    publisher = relay(app, kafka_roles, topics, transactional_id, log=lines.append)
    more = publisher.run()
    publisher.close()

    assert more > 0 and any("building the Merkle tree over the" in line for line in lines)
    events, checkpoints = signed_log(kafka_roles, topics)
    assert events == published + more
    # The first checkpoint covers the events published before checkpoints too.
    assert checkpoints[0][1] > published


def test_a_saved_tree_the_relay_did_not_sign_is_refused_and_nothing_is_published(relay_setup, kafka_roles):
    app, topics, _, transactional_id = relay_setup
    write_history(app, "53333333", members=50, months=["2024-01"])
    publisher = relay(app, kafka_roles, topics, transactional_id)
    publisher.run()
    publisher.close()
    state = publisher.state
    assert state.tree is not None
    # Someone with write access to the state topic puts there a frontier of another tree of the same size.
    other = merkle.Frontier()
    other.extend(merkle.leaf_hash(b"forged %d" % i) for i in range(state.tree.size))
    producer = kafka_client.producer(kafka_roles.connection(ADMIN))
    producer.send(topics.state, key=RELAY_STATE_KEY, value=orjson.dumps(
        {"notification_id": state.notification_id, "position": state.position, "tree": other.to_dict()}
    )).get(timeout=30)
    producer.close()
    app.execute(PayContribution.build(npp="53333333", month="2024-02", paid_on=date(2024, 3, 10)))
    ends = kafka_client.end_offsets(kafka_roles.connection(AUDITOR), topics.events)

    with pytest.raises(RelayStateInvalid, match=r"its last signed checkpoint .* with another root"):
        relay(app, kafka_roles, topics, transactional_id).connect()
    assert kafka_client.end_offsets(kafka_roles.connection(AUDITOR), topics.events) == ends


def test_a_tree_that_does_not_fit_its_position_is_refused(relay_setup, kafka_roles):
    app, topics, _, transactional_id = relay_setup
    write_history(app, "54444444", members=10, months=[])
    publisher = relay(app, kafka_roles, topics, transactional_id)
    publisher.run()
    publisher.close()
    state = publisher.state
    producer = kafka_client.producer(kafka_roles.connection(ADMIN))
    producer.send(topics.state, key=RELAY_STATE_KEY, value=orjson.dumps(
        {"notification_id": state.notification_id, "position": state.position, "tree": merkle.Frontier().to_dict()}
    )).get(timeout=30)
    producer.close()
    with pytest.raises(RelayStateInvalid, match=f"holds a tree of 0 events for position {state.position}"):
        relay(app, kafka_roles, topics, transactional_id).connect()

