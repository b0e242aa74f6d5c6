"""The signed log against the real broker: what `ledger audit verify --key`, `prove` and `check-proof` catch.

A ledger's history is relayed with the run's log key (tests/support/signing.py) in small transactions, so that the
checkpoints topic holds several checkpoints. The attacker is the smart forger of issue 15: the administrator's
connection (which may write every topic) and no signing key. Every forged record has the next position and a correct
hash chain, so the unkeyed checks pass it: the signed log must not. Tampered copies of the events topic are written
as the administrator could write them; the auditor's tools read as the auditor, and `check-proof` runs with no Kafka
at all (an address where nothing listens).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from ledger.application import Ledger
from ledger.audit.proofs import check_proof
from ledger.audit.verify import verify_topic
from ledger.commands import PayContribution
from ledger.errors import TlogInvalid
from ledger.events import GENESIS_HASH, chain_hash
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import CHECKPOINT_KEY
from ledger.publishing.envelope import record_headers
from ledger.publishing.relay import Relay
from ledger.publishing.topics import Topics
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, CosignatureVerifier, Cosigner, ProofBundle, cosign, sign_checkpoint
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Signer, Ed25519Verifier, SignerKey, parse_note
from tests.integration.test_auditor_programs import DOCS, documented_program
from tests.integration.test_relay import CLOCK, write_history
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import ADMIN, AUDITOR, RELAY, WITNESS, KafkaRoles
from tests.support.signing import log_key, log_signer, log_verifier_key

pytestmark = pytest.mark.integration

BATCH = 25  # events per relay transaction: several checkpoints for a small history


class Signed:
    """A test's ledger, its topics (two partitions for the events) and a CLI that runs each command as its role."""

    def __init__(self, app: Ledger, topics: Topics, kafka_roles: KafkaRoles, cli: Cli, unique: str) -> None:
        self.app, self.topics, self.roles, self.cli, self.unique = app, topics, kafka_roles, cli, unique

    def relay(self) -> None:
        relay = Relay(self.app.recorder, self.roles.connection(RELAY), self.topics, signer=log_signer(),
                      transactional_id=f"relay-{self.unique}", batch_max=BATCH)
        relay.run()
        relay.close()

    def records(self, topic: str | None = None) -> list[Any]:
        return list(kafka_client.read_to_end(self.roles.connection(AUDITOR), topic or self.topics.events))

    def envelopes(self) -> list[dict[str, Any]]:
        return sorted((orjson.loads(r.value) for r in self.records()), key=lambda e: e["position"])

    def send(self, topic: str, records: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]],
             role: str = ADMIN) -> None:
        producer = kafka_client.producer(self.roles.connection(role))
        for key, value, headers in records:
            producer.send(topic, key=key, value=value, headers=headers)
        producer.flush(timeout=30)
        producer.close()

    def checkpoint_sizes(self) -> list[int]:
        return [Checkpoint.parse(parse_note(r.value).text).size for r in self.records(self.topics.checkpoints)]

    def verify(self, topic: str | None = None, **options: Any) -> Any:
        return verify_topic(self.roles.connection(AUDITOR), topic or self.topics.events,
                            log=Ed25519Verifier.of(log_verifier_key()), checkpoints_topic=self.topics.checkpoints,
                            witness_topic=self.topics.witness, **options)


@pytest.fixture
def signed(tmp_path: Path, settings, unique: str, kafka_roles: KafkaRoles) -> Signed:
    prefix = f"test-signed-{unique}"
    app = Ledger(env=settings.model_copy(update={"sqlite_path": tmp_path / "ledger.db"}).eventsourcing_env(),
                 clock=CLOCK, nik_key=settings.nik_hmac_key_bytes())
    write_history(app, "66666666", members=20, months=["2024-01", "2024-02", "2024-03"])
    topics = kafka_roles.provision(prefix, partitions=2, transactional_id=f"relay-{unique}")
    cli = Cli(env={**os.environ, "LEDGER_SQLITE_PATH": str(tmp_path / "ledger.db"), "LEDGER_KAFKA_TOPIC_PREFIX": prefix,
                   "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}"}, folder=tmp_path, kafka=kafka_roles)
    ledger = Signed(app, topics, kafka_roles, cli, unique)
    ledger.relay()
    return ledger


def forged_next(envelopes: list[dict[str, Any]]) -> tuple[bytes, bytes, list[tuple[str, bytes]], dict[str, Any]]:
    """The smart forger's record: Rp570,000,000 to a member's JHT as a new aggregate's first event, with the next
    position and a correct chain hash (anyone can compute one: it is unkeyed)."""
    env: dict[str, Any] = {
        "event_id": f"{uuid.uuid4()}.1", "type": "ContributionPaid", "version": 1, "aggregate_id": str(uuid.uuid4()),
        "aggregate_version": 1, "position": envelopes[-1]["position"] + 1, "effective_date": "2024-04-10",
        "recorded_at": "2026-11-23T20:01:02+00:00", "branch": "BEKASI-KOTA", "prev_hash": GENESIS_HASH,
        "data": {"kpj": "17000000001", "month": "2024-03", "total": 570_000_000,
                 "shares": {"JHT": {"employer": 370_000_000, "worker": 200_000_000}}}}
    env["hash"] = chain_hash(GENESIS_HASH, aggregate_id=env["aggregate_id"], aggregate_version=1,
                             event_type=env["type"], version=1, effective_date=env["effective_date"],
                             branch=env["branch"], data=env["data"])
    return env["aggregate_id"].encode(), orjson.dumps(env), record_headers("ContributionPaid", 1), env


def test_an_intact_signed_log_verifies_with_the_key_and_says_when_it_was_not_checked(signed: Signed) -> None:
    count = len(signed.envelopes())
    report = signed.cli.json("audit", "verify", "--key", log_verifier_key())
    assert report["ok"] is True and report["signed_log_checked"] is True
    log = report["signed_log"]
    assert log["signed_size"] == count and log["unsigned_tail"] == 0 and log["checkpoints_ok"] is True
    assert log["checkpoints"] == len(signed.checkpoint_sizes()) > 2
    plain = signed.cli("audit", "verify").stdout
    assert "signed log: NOT checked" in plain
    assert signed.cli.json("audit", "verify")["signed_log_checked"] is False


def test_a_forged_record_at_the_next_position_is_an_unsigned_tail_then_a_breach(signed: Signed) -> None:
    key, value, headers, forged = forged_next(signed.envelopes())
    signed.send(signed.topics.events, [(key, value, headers)])

    # The attack: without the key, the topic's own checks pass it.
    assert signed.cli.json("audit", "verify")["ok"] is True
    report = signed.cli.json("audit", "verify", "--key", log_verifier_key(), expect=8)
    assert report["signed_log"]["unsigned_tail"] == 1
    assert forged["event_id"] in report["first_breach"] and "unsigned tail" in report["first_breach"]
    text = signed.cli("audit", "verify", "--key", log_verifier_key(), expect=8).stdout
    assert f"event {forged['event_id']}" in text and "unsigned tail: 1 events" in text

    # The relay goes on: its next events take the forged position too, and its checkpoint covers it.
    signed.app.execute(PayContribution.build(npp="66666666", month="2024-04", paid_on=CLOCK()))
    signed.relay()
    after = signed.verify()
    assert not after.ok
    problems = [str(one) for one in after.breaches]
    assert any(f"position {forged['position']} duplicated" in one for one in problems), problems
    assert any(signed.topics.checkpoints in one and "does not match the events" in one for one in problems), problems


def _copy(signed: Signed, name: str, values: list[bytes]) -> str:
    """A copy of the events topic holding these values in this order (one partition), as the administrator writes."""
    topic = signed.roles.provision(f"{signed.topics.prefix}.{name}", partitions=1).events
    signed.send(topic, [(None, value, []) for value in values])
    return topic


def _rehashed(env: dict[str, Any]) -> dict[str, Any]:
    env["hash"] = chain_hash(env["prev_hash"], aggregate_id=env["aggregate_id"],
                             aggregate_version=env["aggregate_version"], event_type=env["type"],
                             version=env["version"], effective_date=env["effective_date"], branch=env["branch"],
                             data=env["data"])
    return env


def _tampered(envelopes: list[dict[str, Any]], tamper: str) -> list[dict[str, Any]]:
    """The history changed as a smart forger would: the chains recomputed and the positions renumbered, so that the
    unkeyed checks pass, except for a duplicate, which nothing can disguise."""
    last_of = {e["aggregate_id"]: i for i, e in enumerate(envelopes)}
    index = next(i for i in sorted(last_of.values()) if "total" in envelopes[i]["data"] and i > BATCH)
    changed = [dict(e, data=dict(e["data"])) for e in envelopes]
    if tamper == "changed":
        changed[index]["data"]["total"] += 1_000
        _rehashed(changed[index])
    elif tamper == "dropped":
        del changed[index]
        for position, env in enumerate(changed, start=1):
            env["position"] = position
    elif tamper == "duplicated":
        changed.insert(index, changed[index])
    else:
        # Two neighbours of different aggregates swap places: the chains hash no position, so they still hold.
        i = next(i for i in range(BATCH, len(changed) - 1)
                 if changed[i]["aggregate_id"] != changed[i + 1]["aggregate_id"])
        changed[i], changed[i + 1] = changed[i + 1], changed[i]
        changed[i]["position"], changed[i + 1]["position"] = i + 1, i + 2
    return changed


@pytest.mark.parametrize("tamper", ["changed", "dropped", "duplicated", "reordered"])
def test_a_changed_dropped_duplicated_or_reordered_event_breaks_a_checkpoint(signed: Signed, tamper: str) -> None:
    envelopes = signed.envelopes()
    values = [r.value for r in sorted(signed.records(), key=lambda r: orjson.loads(r.value)["position"])]
    assert signed.verify(_copy(signed, "intact", values)).ok
    topic = _copy(signed, tamper, [orjson.dumps(e) for e in _tampered(envelopes, tamper)])
    unkeyed = verify_topic(signed.roles.connection(AUDITOR), topic)
    assert unkeyed.ok is (tamper != "duplicated"), [str(one) for one in unkeyed.breaches]
    report = signed.verify(topic)
    assert not report.ok
    problems = [str(one) for one in report.breaches]
    assert any(signed.topics.checkpoints in one and "does not match the events" in one for one in problems), problems


def test_a_checkpoint_by_another_key_or_replayed_is_a_breach(signed: Signed) -> None:
    envelopes = signed.envelopes()
    key, value, headers, _ = forged_next(envelopes)
    signed.send(signed.topics.events, [(key, value, headers)])
    # The forger signs a checkpoint of the forged tree with a key of its own, under the log's name.
    leaves = sorted(signed.records(), key=lambda r: orjson.loads(r.value)["position"])
    root = merkle.root_hash(merkle.leaf_hash(r.value) for r in leaves)
    forger = Ed25519Signer.of(SignerKey.generate(log_key().name))
    note = sign_checkpoint(Checkpoint(log_key().name, len(leaves), root), forger)
    old = signed.records(signed.topics.checkpoints)[0]
    signed.send(signed.topics.checkpoints, [(CHECKPOINT_KEY, note, []), (old.key, old.value, list(old.headers))])
    report = signed.cli.json("audit", "verify", "--key", log_verifier_key(), expect=8)
    assert report["signed_log"]["checkpoints_ok"] is False
    breaches = report["breach_list"]
    ends = kafka_client.end_offsets(signed.roles.connection(AUDITOR), signed.topics.checkpoints)[0]
    assert any(f"{signed.topics.checkpoints} partition 0, offset" in one and "not a checkpoint signed by the log's "
               "key" in one for one in breaches), breaches
    assert any("replayed or old" in one and f"offset {ends - 1}" in one for one in breaches), breaches
    assert any("unsigned tail" in one for one in breaches), breaches


def test_a_receipt_verifies_offline_and_any_changed_byte_fails_it(signed: Signed, tmp_path: Path) -> None:
    envelopes = signed.envelopes()
    paid = next(e for e in envelopes if e["type"] == "ContributionPaid" and e["position"] > BATCH)
    receipt = tmp_path / "receipt.tlog-proof"
    said = signed.cli("audit", "prove", paid["event_id"], "--key", log_verifier_key(), "--out", str(receipt)).stdout
    assert f"receipt for event {paid['event_id']} at position {paid['position']}" in said
    assert receipt.stat().st_mode & 0o777 == 0o600
    bundle = ProofBundle.parse(receipt.read_bytes())
    assert bundle.index == paid["position"] - 1 and orjson.loads(bundle.extra or b"") == paid
    # Offline: check-proof runs with Kafka at an address where nothing listens (tests/support/cli_runner.py).
    checked = signed.cli.json("audit", "check-proof", str(receipt), "--key", log_verifier_key())
    assert checked["ok"] is True and checked["event_id"] == paid["event_id"]
    assert checked["checkpoint_size"] == len(envelopes) and checked["data"]["total"] == paid["data"]["total"]
    text = signed.cli("audit", "check-proof", str(receipt), "--key", log_verifier_key()).stdout
    assert text.startswith(f"VALID: event {paid['event_id']} (ContributionPaid)") and "total Rp" in text

    data = receipt.read_bytes()
    log = Ed25519Verifier.of(log_verifier_key())
    for position in range(len(data)):
        changed = data[:position] + bytes([data[position] ^ 0x01]) + data[position + 1:]
        with pytest.raises(TlogInvalid):
            check_proof(changed, log)
    for position in range(0, len(data), max(1, len(data) // 6)):
        tampered = tmp_path / f"tampered-{position}"
        tampered.write_bytes(data[:position] + bytes([data[position] ^ 0x20]) + data[position + 1:])
        assert "INVALID" in signed.cli("audit", "check-proof", str(tampered), "--key", log_verifier_key(),
                                       expect=8).stdout
    # Another key, a bundle without its entry, no file, a file too large.
    other = SignerKey.generate(log_key().name).verifier_key().format()
    assert "INVALID" in signed.cli("audit", "check-proof", str(receipt), "--key", other, expect=8).stdout
    bare = tmp_path / "bare"
    bare.write_bytes(ProofBundle(bundle.index, bundle.proof, bundle.checkpoint).format())
    assert "no entry" in signed.cli("audit", "check-proof", str(bare), "--key", log_verifier_key(), expect=8).stdout
    signed.cli("audit", "check-proof", str(tmp_path / "none"), "--key", log_verifier_key(), expect=2)
    big = tmp_path / "big"
    big.write_bytes(data + b"\n" * (4 * 1_048_576))
    signed.cli("audit", "check-proof", str(big), "--key", log_verifier_key(), expect=2)
    # To stdout, the summary on stderr; an unknown event: exit 3, named.
    to_stdout = signed.cli("audit", "prove", paid["event_id"], "--key", log_verifier_key())
    assert to_stdout.stdout.encode() == data and "receipt for event" in to_stdout.stderr
    unknown = f"{uuid.uuid4()}.1"
    assert unknown in signed.cli("audit", "prove", unknown, "--key", log_verifier_key(), expect=3).stderr


def test_a_consistency_proof_between_two_checkpoints_verifies_and_fails_when_tampered(signed: Signed,
                                                                                      tmp_path: Path) -> None:
    sizes = signed.checkpoint_sizes()
    first, count = sizes[0], sizes[-1]
    proof = tmp_path / "proof"
    signed.cli("audit", "prove", "--from-size", str(first), "--to-size", str(count), "--key", log_verifier_key(),
               "--out", str(proof))
    checked = signed.cli.json("audit", "check-proof", str(proof), "--key", log_verifier_key())
    assert (checked["kind"], checked["from_size"], checked["to_size"]) == ("consistency", first, count)
    assert "VALID: the log's tree of size" in signed.cli("audit", "check-proof", str(proof), "--key",
                                                         log_verifier_key()).stdout
    data = proof.read_bytes()
    log = Ed25519Verifier.of(log_verifier_key())
    for position in range(0, len(data), 3):
        with pytest.raises(TlogInvalid):
            check_proof(data[:position] + bytes([data[position] ^ 0x04]) + data[position + 1:], log)
    tampered = tmp_path / "tampered"
    tampered.write_bytes(data[:-5] + bytes([data[-5] ^ 0x01]) + data[-4:])
    signed.cli("audit", "check-proof", str(tampered), "--key", log_verifier_key(), expect=8)
    refused = signed.cli("audit", "prove", "--from-size", str(first + 1), "--to-size", str(count), "--key",
                         log_verifier_key(), expect=2).stderr
    assert f"the nearest: {first}, {sizes[1]}" in refused


def test_witnesses_cosign_up_to_a_size_and_a_receipt_carries_their_cosignatures(signed: Signed,
                                                                                tmp_path: Path) -> None:
    witness_key = SignerKey.generate("witness.example/audit-board", SIGNATURE_TYPE_COSIGNATURE_V1)
    witness = witness_key.verifier_key().format()
    last = signed.records(signed.topics.checkpoints)[-1]
    cosigned = cosign(last.value, Cosigner.of(witness_key), 1_796_000_000)
    signed.send(signed.topics.witness, [(witness_key.name.encode(), cosigned,
                                         [("checkpoint-offset", str(last.offset).encode())])], role=WITNESS)
    count = len(signed.envelopes())
    options = ("--key", log_verifier_key(), "--witness", witness, "--witnesses-required", "1")
    report = signed.cli.json("audit", "verify", *options)
    assert report["ok"] is True and report["signed_log"]["cosigned_size"] == count

    paid = next(e for e in signed.envelopes() if e["type"] == "ContributionPaid")
    receipt = tmp_path / "receipt"
    signed.cli("audit", "prove", paid["event_id"], "--key", log_verifier_key(), "--witness", witness, "--out",
               str(receipt))
    checked = signed.cli.json("audit", "check-proof", str(receipt), *options)
    assert [one["name"] for one in checked["cosigned_by"]] == [witness_key.name]
    # Without --witness, prove merges no cosignature: the receipt carries the log's signature alone.
    signed.cli("audit", "prove", paid["event_id"], "--key", log_verifier_key(), "--out", str(receipt))
    bare = signed.cli.json("audit", "check-proof", str(receipt), "--key", log_verifier_key(), "--witness", witness)
    assert bare["cosigned_by"] == [] and len(parse_note(ProofBundle.parse(receipt.read_bytes()).checkpoint)
                                              .signatures) == 1

    signed.app.execute(PayContribution.build(npp="66666666", month="2024-04", paid_on=CLOCK()))
    signed.relay()
    beyond = signed.cli.json("audit", "verify", *options, expect=8)
    assert f"positions {count + 1}.." in beyond["first_breach"] and f"up to size {count}" in beyond["first_breach"]
    assert signed.cli.json("audit", "verify", "--key", log_verifier_key(), "--witness", witness)["ok"] is True


def documented_commands(document: str, heading: str | None, until: str = "\n## ") -> list[list[str]]:
    """The `ledger audit ...` lines of the ```sh blocks of docs/DOCUMENT (under `heading` only, if given, up to
    `until`), as argument lists, their $VARIABLES expanded from the environment and their comments dropped, as a shell
    would."""
    text = (DOCS / document).read_text(encoding="utf-8")
    if heading is not None:
        text = text.split(heading, 1)[1].split(until, 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", text, re.DOTALL)
    stripped = [line.strip() for block in blocks for line in block.splitlines()]  # blocks in a list are indented
    lines = [line for line in stripped if line.startswith("ledger audit ")]
    return [shlex.split(os.path.expandvars(line), comments=True)[1:] for line in lines]


def test_the_documented_commands_and_receipt_checker_work_as_written(signed: Signed, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    witnesses = [SignerKey.generate(f"witness.example/{name}", SIGNATURE_TYPE_COSIGNATURE_V1)
                 for name in ("audit-board", "regulator")]
    last = signed.records(signed.topics.checkpoints)[-1]
    signed.send(signed.topics.witness, [(one.name.encode(), cosign(last.value, Cosigner.of(one), 1_796_000_000),
                                         [("checkpoint-offset", str(last.offset).encode())]) for one in witnesses],
                role=WITNESS)
    sizes = signed.checkpoint_sizes()
    paid = next(e for e in signed.envelopes() if e["type"] == "ContributionPaid")
    for name, value in {"LOG_KEY": log_verifier_key(), "BOARD_KEY": witnesses[0].verifier_key().format(),
                        "REGULATOR_KEY": witnesses[1].verifier_key().format(), "EVENT_ID": paid["event_id"],
                        "OLD_SIZE": str(sizes[0]), "NEW_SIZE": str(sizes[-1])}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)  # the documented files are written where the commands run
    # docs/cli.md's first: its receipt carries one witness's cosignature, and the checker below takes audit.md's,
    # which carries both witnesses'.
    commands = [args for args in documented_commands("cli.md", None)
                if args[1] in ("prove", "check-proof") or (args[1] == "verify" and "--key" in args)]
    commands += documented_commands("audit.md", "## The signed log: verify, prove, check", until="\n### ")
    assert {args[1] for args in commands} == {"verify", "prove", "check-proof"} and len(commands) >= 10
    for args in commands:
        signed.cli(*args)
    assert (tmp_path / "receipt.tlog-proof").exists() and (tmp_path / "old-new.consistency").exists()

    # The documented receipt checker, with the specs alone, on the receipt the documented command wrote.
    checker = documented_program("audit.md", "check_proof.py", tmp_path)
    done = subprocess.run([sys.executable, str(checker), "receipt.tlog-proof", log_key().name, log_verifier_key(),
                           witnesses[0].verifier_key().format(), witnesses[1].verifier_key().format()],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith(f"ok: entry {paid['position'] - 1} is in"), done


# --- A rotation of the log's key (docs/audit.md, "Keys") -----------------------------------------------------------

def test_a_history_across_a_key_rotation_verifies_with_both_keys_only(signed: Signed, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    before = len(signed.envelopes())
    old_receipt = tmp_path / "old.tlog-proof"
    first_event = signed.envelopes()[0]["event_id"]
    signed.cli("audit", "prove", first_event, "--key", log_verifier_key(), "--out", str(old_receipt))

    new_key = SignerKey.generate(log_key().name)  # the same log (name), another key (key id)
    new_verifier = new_key.verifier_key().format()
    signed.app.execute(PayContribution.build(npp="66666666", month="2024-04", paid_on=date(2024, 5, 10)))
    said: list[str] = []
    relay = Relay(signed.app.recorder, signed.roles.connection(RELAY), signed.topics,
                  signer=Ed25519Signer.of(new_key), transactional_id=f"relay-{signed.unique}", batch_max=BATCH,
                  log=said.append)
    assert relay.run() > 0
    relay.close()
    assert any("holds no checkpoint signed by" in line for line in said)  # said once, on starting with the new key

    both = signed.cli.json("audit", "verify", "--key", log_verifier_key(), "--key", new_verifier)
    assert both["ok"] is True and both["signed_log"]["signed_size"] == len(signed.envelopes()) > before
    for alone in (log_verifier_key(), new_verifier):
        report = signed.cli.json("audit", "verify", "--key", alone, expect=8)
        assert report["ok"] is False and "not a checkpoint signed by the log's key" in report["first_breach"]

    # A receipt made before the rotation is checked with the key that signed it (alone, or among both).
    for keys in (["--key", log_verifier_key()], ["--key", new_verifier, "--key", log_verifier_key()]):
        assert signed.cli("audit", "check-proof", str(old_receipt), *keys).stdout.startswith("VALID: ")
    assert "INVALID: " in signed.cli("audit", "check-proof", str(old_receipt), "--key", new_verifier, expect=8).stdout

    # A consistency proof across the rotation names both keys.
    sizes = signed.checkpoint_sizes()
    proof = tmp_path / "across.consistency"
    signed.cli("audit", "prove", "--from-size", str(sizes[0]), "--to-size", str(sizes[-1]), "--key", log_verifier_key(),
               "--key", new_verifier, "--out", str(proof))
    checked = signed.cli("audit", "check-proof", str(proof), "--key", log_verifier_key(), "--key", new_verifier)
    assert "(a key rotation between them)" in checked.stdout

    # The commands docs/audit.md gives for a rotation work as written.
    (tmp_path / "old-new.consistency").write_bytes(proof.read_bytes())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLD_LOG_KEY", log_verifier_key())
    monkeypatch.setenv("LOG_KEY", new_verifier)
    documented = documented_commands("audit.md", "### Keys: making, keeping, rotating")
    assert [args[:2] for args in documented] == [["audit", "verify"], ["audit", "check-proof"]]
    for args in documented:
        signed.cli(*args)


def test_keys_of_two_logs_or_a_key_twice_are_refused(signed: Signed) -> None:
    other_log = SignerKey.generate("another.example/log").verifier_key().format()
    refused = signed.cli("audit", "verify", "--key", log_verifier_key(), "--key", other_log, expect=2)
    assert "are of different logs" in refused.stderr
    twice = signed.cli("audit", "verify", "--key", log_verifier_key(), "--key", log_verifier_key(), expect=2)
    assert "a key is given twice" in twice.stderr


def test_topics_rebuilt_from_an_older_prefix_are_caught_by_the_witnesses_cosignatures(signed: Signed) -> None:
    """Someone who can recreate the topics presents the history as it was at an earlier checkpoint: every checkpoint
    of that prefix verifies with the log's key. A witness's cosignature of the larger tree proves the truncation."""
    witness_key = SignerKey.generate("witness.example/audit-board", SIGNATURE_TYPE_COSIGNATURE_V1)
    checkpoints = signed.records(signed.topics.checkpoints)
    last = checkpoints[-1]
    signed.send(signed.topics.witness, [(witness_key.name.encode(), cosign(last.value, Cosigner.of(witness_key),
                                                                           1_796_000_000),
                                         [("checkpoint-offset", str(last.offset).encode())])], role=WITNESS)
    kept = Checkpoint.parse(parse_note(checkpoints[1].value).text).size  # the prefix: up to the second checkpoint
    values = [r.value for r in sorted(signed.records(), key=lambda r: orjson.loads(r.value)["position"])][:kept]
    events = _copy(signed, "prefix", values)
    older = signed.roles.provision(f"{signed.topics.prefix}.prefix-checkpoints", partitions=1).events
    signed.send(older, [(CHECKPOINT_KEY, one.value, list(one.headers or [])) for one in checkpoints[:2]])
    log = Ed25519Verifier.of(log_verifier_key())
    auditor = signed.roles.connection(AUDITOR)

    alone = verify_topic(auditor, events, log=log, checkpoints_topic=older)
    assert alone.ok, [str(one) for one in alone.breaches]  # the prefix alone verifies: the log's key signed it
    report = verify_topic(auditor, events, log=log, checkpoints_topic=older, witness_topic=signed.topics.witness,
                          witnesses=[CosignatureVerifier.of(witness_key.verifier_key().format())])
    assert not report.ok
    assert any(f"witnesses cosigned the log's tree of size {len(signed.envelopes())}, but the topic ends at position "
               f"{kept}" in str(one) for one in report.breaches), [str(one) for one in report.breaches]
