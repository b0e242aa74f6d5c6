"""Attacks on the signed log (issue 15) against the real broker, by an insider without the log's key (the Kafka
administrator, a stolen relay or witness credential) and by a careless reader. Each test fails if the attack gets a
forged, changed or hidden event or checkpoint past the tool under test, or if the tool crashes. The attacks that
succeed today are marked `xfail(strict=True)` with the defect in their reason: they turn into failures the day the
defect is fixed, to be unmarked then.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import orjson
import pytest

from ledger.audit import verify as verify_module
from ledger.audit.verify import verify_topic
from ledger.audit.witness import OFFSET_HEADER, run_witness
from ledger.commands import PayContribution
from ledger.errors import RelayStateInvalid
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import CHECKPOINT_KEY
from ledger.publishing.relay import RELAY_STATE_KEY, Relay
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, CosignatureVerifier, Cosigner, cosign
from ledger.tlog.note import (
    SIGNATURE_TYPE_COSIGNATURE_V1,
    Ed25519Verifier,
    Signature,
    SignerKey,
    format_note,
    parse_note,
)
from tests.integration import test_signed_log
from tests.integration.test_relay import CLOCK
from tests.integration.test_signed_log import Signed, _copy, forged_next
from tests.support.kafka_roles import ADMIN, AUDITOR, RELAY, WITNESS
from tests.support.signing import log_signer, log_verifier_key

pytestmark = pytest.mark.integration

signed = test_signed_log.signed  # the fixture: a ledger relayed with the run's log key, in small transactions


def _ordered_values(signed: Signed) -> list[bytes]:
    return [r.value for r in sorted(signed.records(), key=lambda r: orjson.loads(r.value)["position"])]


def _ledger(signed: Signed, *args: str, timeout_s: float = 180) -> subprocess.CompletedProcess[str]:
    """`ledger ARGS` as its role, whatever its exit (the caller judges it)."""
    return subprocess.run([sys.executable, "-m", "ledger.cli", *args], env=signed.cli.env_for(args, None),
                          capture_output=True, text=True, timeout=timeout_s, check=False)


def _last_state(signed: Signed) -> dict[str, Any]:
    states = [r for r in signed.records(signed.topics.state) if r.key == RELAY_STATE_KEY]
    state: dict[str, Any] = orjson.loads(states[-1].value)
    return state


def _relay_once(signed: Signed) -> RelayStateInvalid | None:
    """One relay run; the refusal it raised, if any."""
    relay = Relay(signed.app.recorder, signed.roles.connection(RELAY), signed.topics, signer=log_signer(),
                  transactional_id=f"relay-{signed.unique}", batch_max=25)
    try:
        relay.run()
    except RelayStateInvalid as refused:
        return refused
    finally:
        relay.close()
    return None


def _pay(signed: Signed, month: str) -> None:
    signed.app.execute(PayContribution.build(npp="66666666", month=month, paid_on=CLOCK()))


# --- The relay's saved state (relay.py: _parse_state, _check_tree_against_last_checkpoint) -------------------------

def test_a_forged_state_whose_tree_includes_a_forged_event_is_refused_by_the_relay(signed: Signed) -> None:
    """The forger (write access to the events and relay-state topics, no key) appends its event at the next
    position, then writes a relay state whose frontier covers it. If the relay extends that frontier, its next
    genuine checkpoint signs the forged event, and `verify --key` passes it."""
    key, value, headers, forged = forged_next(signed.envelopes())
    signed.send(signed.topics.events, [(key, value, headers)])
    frontier = merkle.Frontier()
    for one in [*_ordered_values(signed)]:
        frontier.append(merkle.leaf_hash(one))
    state = _last_state(signed)
    assert frontier.size == state["position"] + 1 == forged["position"]
    forged_state = {"notification_id": state["notification_id"], "position": frontier.size, "tree": frontier.to_dict()}
    signed.send(signed.topics.state, [(RELAY_STATE_KEY, orjson.dumps(forged_state), [])])

    _pay(signed, "2024-04")
    refused = _relay_once(signed)
    if refused is not None:
        return  # the relay saw the state was not its own: the attack is caught
    report = signed.verify()
    assert not report.ok, f"the forged event {forged['event_id']} is now signed by the log and verify passes it"


def test_a_junk_last_checkpoint_does_not_switch_off_the_relays_check_of_its_saved_tree(signed: Signed) -> None:
    """The forger writes a state of the right size whose frontier is another tree (one leaf changed), and one junk
    record to the checkpoints topic so that the last record is not a signed checkpoint. The relay must not sign a
    tree that contradicts its own earlier checkpoints (witnesses would then see the log's key sign two histories)."""
    values = _ordered_values(signed)
    frontier = merkle.Frontier()
    for i, one in enumerate(values):
        frontier.append(merkle.leaf_hash(one + (b" " if i == 3 else b"")))
    state = _last_state(signed)
    assert frontier.size == state["position"]
    signed.send(signed.topics.state, [(RELAY_STATE_KEY, orjson.dumps(
        {"notification_id": state["notification_id"], "position": frontier.size, "tree": frontier.to_dict()}), [])])
    signed.send(signed.topics.checkpoints, [(CHECKPOINT_KEY, b"not a checkpoint\n", [])])

    _pay(signed, "2024-04")
    refused = _relay_once(signed)
    if refused is not None:
        return
    problems = [str(one) for one in signed.verify().breaches]
    assert not any("does not match the events" in one for one in problems), (
        "the relay signed, with the log's real key, a tree that is not the events'", problems)


# --- verify: the "checkpoints ahead" escape (verify.py: _check_roots, _count_cosignatures, `unchanged`) --------------

def _abort_a_transaction_on(signed: Signed, topic: str) -> None:
    """A write nobody will ever read: it moves the end offsets and leaves no record (read_committed)."""
    producer = kafka_client.producer(signed.roles.connection(ADMIN), transactional_id=f"attacker-{signed.unique}")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, key=b"x", value=b"x")
    producer.flush(timeout=30)
    kafka_client.abort_transaction(producer)
    producer.close()


def test_a_truncation_is_not_hidden_by_an_aborted_write_during_verify(signed: Signed,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The topics rebuilt from an older prefix (test_signed_log's truncation test), and the attacker writing aborted
    transactions to the events topic while the auditor reads (here: once, right after the events are read)."""
    witness_key = SignerKey.generate("witness.example/audit-board", SIGNATURE_TYPE_COSIGNATURE_V1)
    checkpoints = signed.records(signed.topics.checkpoints)
    # The witness cosigned every checkpoint, as a running witness does.
    signed.send(signed.topics.witness, [(witness_key.name.encode(), cosign(one.value, Cosigner.of(witness_key),
                                                                           1_796_000_000),
                                         [(OFFSET_HEADER, str(one.offset).encode())]) for one in checkpoints],
                role=WITNESS)
    kept = Checkpoint.parse(parse_note(checkpoints[1].value).text).size
    events = _copy(signed, "prefix", _ordered_values(signed)[:kept])
    older = signed.roles.provision(f"{signed.topics.prefix}.prefix-checkpoints", partitions=1).events
    signed.send(older, [(CHECKPOINT_KEY, one.value, list(one.headers or [])) for one in checkpoints])  # all of them

    real = verify_module.verify_records

    def read_then_write(*args: Any, **kwargs: Any) -> Any:
        report = real(*args, **kwargs)
        _abort_a_transaction_on(signed, events)
        return report

    monkeypatch.setattr(verify_module, "verify_records", read_then_write)
    report = verify_topic(signed.roles.connection(AUDITOR), events, log=Ed25519Verifier.of(log_verifier_key()),
                          checkpoints_topic=older, witness_topic=signed.topics.witness,
                          witnesses=[CosignatureVerifier.of(witness_key.verifier_key().format())],
                          witnesses_required=1)
    assert not report.ok, ("the events after position "
                           f"{kept} are gone, yet verify passes: {report.signed.as_dict() if report.signed else None}")


# --- The witness's state on the witness topic (witness.py: held_from_topic, checkpoint-offset) ----------------------

def test_a_copied_witness_record_with_another_offset_does_not_make_the_witness_skip_or_cry_breach(
        signed: Signed) -> None:
    witness_key = SignerKey.generate("witness.example/audit-board", SIGNATURE_TYPE_COSIGNATURE_V1)
    cosigner = Cosigner.of(witness_key)
    log = Ed25519Verifier.of(log_verifier_key())
    connection = signed.roles.connection(WITNESS)
    first = run_witness(connection, signed.topics, cosigner, log)
    assert first.ok and first.breach is None
    before = len(signed.records(signed.topics.checkpoints))
    for month in ("2024-04", "2024-05"):  # two more relay transactions: two more checkpoints
        _pay(signed, month)
        assert _relay_once(signed) is None
    checkpoints = signed.records(signed.topics.checkpoints)
    new_first = checkpoints[-2]
    own = [r for r in signed.records(signed.topics.witness) if r.key == witness_key.name.encode()][-1]
    # Another witness (or anyone who may write the topic) copies the record, its header moved to a later offset.
    signed.send(signed.topics.witness, [(own.key, own.value, [(OFFSET_HEADER, str(new_first.offset).encode())])],
                role=WITNESS)
    second = run_witness(connection, signed.topics, cosigner, log)
    assert second.breach is None, f"a false breach of the log: {second.breach}"
    assert second.cosigned == len(checkpoints) - before, second.as_dict()


# --- prove: which checkpoint a receipt carries (proofs.py: _notes, _merged, prove_event) ----------------------------

def test_a_junk_cosignature_on_the_witness_topic_does_not_spoil_the_receipts(signed: Signed, tmp_path: Any) -> None:
    witness_key = SignerKey.generate("witness.example/audit-board", SIGNATURE_TYPE_COSIGNATURE_V1)
    checkpoints = signed.records(signed.topics.checkpoints)
    genuine = checkpoints[-2]  # the witness cosigned up to here
    signed.send(signed.topics.witness, [(witness_key.name.encode(), cosign(genuine.value, Cosigner.of(witness_key),
                                                                           1_796_000_000),
                                         [(OFFSET_HEADER, str(genuine.offset).encode())])], role=WITNESS)
    # Another witness's principal writes the latest checkpoint "cosigned" by the audit board: a made-up signature
    # under the board's name and key id.
    note = parse_note(checkpoints[-1].value)
    junk = format_note(note.text, [*note.signatures, Signature(witness_key.name, witness_key.key_id, bytes(72))])
    signed.send(signed.topics.witness, [(witness_key.name.encode(), junk,
                                         [(OFFSET_HEADER, str(checkpoints[-1].offset).encode())])], role=WITNESS)
    witness = witness_key.verifier_key().format()
    covered = Checkpoint.parse(parse_note(genuine.value).text).size
    paid = next(e for e in signed.envelopes() if e["type"] == "ContributionPaid" and e["position"] <= covered)
    receipt = tmp_path / "receipt"
    signed.cli("audit", "prove", paid["event_id"], "--key", log_verifier_key(), "--witness", witness, "--out",
               str(receipt))
    checked = _ledger(signed, "audit", "check-proof", str(receipt), "--key", log_verifier_key(), "--witness", witness,
                      "--witnesses-required", "1")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_forged_checkpoint_of_a_forged_tail_does_not_spoil_the_receipts(signed: Signed, tmp_path: Any) -> None:
    from ledger.tlog.checkpoint import sign_checkpoint
    from ledger.tlog.note import Ed25519Signer
    from tests.support.signing import log_key

    key, value, headers, _ = forged_next(signed.envelopes())
    signed.send(signed.topics.events, [(key, value, headers)])
    values = _ordered_values(signed)
    root = merkle.root_hash(merkle.leaf_hash(one) for one in values)
    forger = Ed25519Signer.of(SignerKey.generate(log_key().name))
    signed.send(signed.topics.checkpoints, [(CHECKPOINT_KEY, sign_checkpoint(Checkpoint(log_key().name, len(values),
                                                                                        root), forger), [])])
    paid = next(e for e in signed.envelopes() if e["type"] == "ContributionPaid")
    receipt = tmp_path / "receipt"
    signed.cli("audit", "prove", paid["event_id"], "--key", log_verifier_key(), "--out", str(receipt))
    checked = _ledger(signed, "audit", "check-proof", str(receipt), "--key", log_verifier_key())
    assert checked.returncode == 0, checked.stdout + checked.stderr


# --- Odd records that must be breaches, not crashes nor passes -------------------------------------------------------

def test_odd_records_on_the_events_and_checkpoints_topics_are_breaches(signed: Signed) -> None:
    """A tombstone, a non-JSON value, a boolean, negative and duplicate position on the events topic; a tombstone, a
    valid checkpoint re-sent with an extra signature line, one with only a consistency header, and a checkpoint with
    trailing bytes on the checkpoints topic: verify --key names each, exits 8, and does not crash."""
    envelopes = signed.envelopes()
    dup = dict(envelopes[5])
    signed.send(signed.topics.events, [(b"a", None, []), (b"a", b"not json", []),  # type: ignore[list-item]
                                       (b"a", orjson.dumps(dict(envelopes[0], position=True)), []),
                                       (b"a", orjson.dumps(dict(envelopes[0], position=-1)), []),
                                       (b"b", orjson.dumps(dup), [])])
    last = signed.records(signed.topics.checkpoints)[-1]
    signed.send(signed.topics.checkpoints, [
        (CHECKPOINT_KEY, None, []),  # type: ignore[list-item]
        (CHECKPOINT_KEY, last.value + "\u2014 someone.example/other AAAAAAAA\n".encode(), list(last.headers)),
        (CHECKPOINT_KEY, last.value, [("consistency-from", b"3")]),
        (CHECKPOINT_KEY, last.value + b"\n", [])])
    done = _ledger(signed, "audit", "verify", "--key", log_verifier_key(), "--json")
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 8, done.stdout + done.stderr
    report = orjson.loads(done.stdout)
    assert report["signed_log"]["checkpoints_ok"] is False
    breaches = report["breach_list"]
    assert sum(signed.topics.checkpoints in one for one in breaches) >= 4, breaches
    # prove refuses a topic with a non-envelope record clearly (exit, no traceback)
    proved = _ledger(signed, "audit", "prove", envelopes[0]["event_id"], "--key", log_verifier_key())
    assert "Traceback" not in proved.stderr and proved.returncode != 0, proved.stderr


def test_verify_while_the_relay_publishes_reports_no_false_breach(signed: Signed,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Events and their checkpoints published while verify reads (here: right after the events are read) are counted
    as checkpoints ahead, not as a breach."""
    _pay(signed, "2024-04")
    real = verify_module.verify_records

    def read_then_publish(*args: Any, **kwargs: Any) -> Any:
        report = real(*args, **kwargs)
        assert _relay_once(signed) is None
        return report

    monkeypatch.setattr(verify_module, "verify_records", read_then_publish)
    report = signed.verify()
    assert report.ok, [str(one) for one in report.breaches]
    assert report.signed is not None and report.signed.checkpoints_ahead == 1


# --- A rotation after a leak (docs/audit.md, "Keys": rotate) ---------------------------------------------------------

def test_after_a_rotation_the_old_key_signs_nothing_more(signed: Signed) -> None:
    from ledger.tlog.checkpoint import sign_checkpoint
    from ledger.tlog.note import Ed25519Signer
    from tests.support.signing import log_key

    new_key = SignerKey.generate(log_key().name)
    _pay(signed, "2024-04")
    relay = Relay(signed.app.recorder, signed.roles.connection(RELAY), signed.topics, signer=Ed25519Signer.of(new_key),
                  transactional_id=f"relay-{signed.unique}", batch_max=25)
    relay.run()
    relay.close()
    # The thief of the old key: an event at the next position and a checkpoint over it, signed with the old key.
    key, value, headers, _ = forged_next(signed.envelopes())
    signed.send(signed.topics.events, [(key, value, headers)])
    values = _ordered_values(signed)
    root = merkle.root_hash(merkle.leaf_hash(one) for one in values)
    signed.send(signed.topics.checkpoints, [(CHECKPOINT_KEY, sign_checkpoint(Checkpoint(log_key().name, len(values),
                                                                                        root), log_signer()), [])])
    report = signed.cli.json("audit", "verify", "--key", log_verifier_key(), "--key",
                             new_key.verifier_key().format(), expect=8)
    assert report["ok"] is False
