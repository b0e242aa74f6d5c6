"""Witnesses against the real broker: each runs as the witness's principal, reads the checkpoints the relay signed
(never the events) and cosigns, on the witness topic, each one that extends the history it cosigned before.

The relay runs in process with the run's log key (`log_signer()`); forgeries are written to the checkpoints topic by
the administrator, the one principal besides the relay that can."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from ledger.application import Ledger
from ledger.audit.witness import OFFSET_HEADER, WitnessReport, run_witness
from ledger.commands import EnrollMembers, PayContribution, RegisterEmployer
from ledger.errors import EXIT_BREACH
from ledger.generator import member_rows
from ledger.publishing import kafka_client
from ledger.publishing.checkpoints import FROM_HEADER, PROOF_HEADER, read_checkpoint_record
from ledger.publishing.relay import Relay
from ledger.publishing.topics import Topics
from ledger.tlog import merkle
from ledger.tlog.checkpoint import Checkpoint, Cosigner, open_checkpoint, sign_checkpoint
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, Ed25519Signer, SignerKey, b64encode
from tests.support.kafka_roles import ADMIN, AUDITOR, RELAY, WITNESS, KafkaRoles
from tests.support.signing import log_key, log_signer, log_verifier_key

pytestmark = pytest.mark.integration

CLOCK = lambda: date(2026, 11, 23)  # noqa: E731
WAIT_S_MAX = 120
BATCH = 40  # events per relay transaction: a checkpoint each, so a small history has many


class Log:
    """A ledger, its topics, and its relay (as the relay's principal, signing with the run's log key)."""

    def __init__(self, tmp_path: Path, settings, kafka_roles: KafkaRoles, unique: str) -> None:
        self.roles, self.prefix = kafka_roles, f"test-witness-{unique}"
        self.app = Ledger(env=settings.model_copy(update={"sqlite_path": tmp_path / "ledger.db"}).eventsourcing_env(),
                          clock=CLOCK, nik_key=settings.nik_hmac_key_bytes())
        self.topics: Topics = kafka_roles.provision(self.prefix, partitions=2)
        self.employers = 0

    def write(self, members: int) -> None:
        self.employers += 1
        npp = f"{self.employers:08d}"
        self.app.execute(RegisterEmployer.build(npp=npp, name=f"PT {npp}", branch="BEKASI-KOTA", kind="company",
                                                risk_class="low", registered_on=date(2020, 1, 1)))
        self.app.execute(EnrollMembers.build(npp=npp, effective=date(2024, 1, 1),
                                             members=member_rows(self.employers * 1_000, members)))
        self.app.execute(PayContribution.build(npp=npp, month="2024-01", paid_on=date(2024, 6, 10)))

    def relay(self) -> int:
        publisher = Relay(self.app.recorder, self.roles.connection(RELAY), self.topics, signer=log_signer(),
                          transactional_id=f"relay-{self.prefix}", batch_max=BATCH)
        try:
            return publisher.run()
        finally:
            publisher.close()

    def checkpoints(self) -> list:
        return list(kafka_client.read_to_end(self.roles.connection(AUDITOR), self.topics.checkpoints))

    def witnessed(self) -> list:
        return list(kafka_client.read_to_end(self.roles.connection(AUDITOR), self.topics.witness))

    def witness(self, cosigner: Cosigner) -> WitnessReport:
        return run_witness(self.roles.connection(WITNESS), self.topics, cosigner, log_signer().verifier())

    def forge(self, value: bytes, headers: list[tuple[str, bytes]]) -> int:
        """As the administrator, append a record to the checkpoints topic; its offset."""
        producer = kafka_client.producer(self.roles.connection(ADMIN))
        try:
            sent = producer.send(self.topics.checkpoints, key=b"checkpoint", value=value, headers=headers)
            return sent.get(timeout=WAIT_S_MAX).offset
        finally:
            producer.close(timeout=WAIT_S_MAX)


@pytest.fixture
def log(tmp_path, settings, kafka_roles, unique) -> Log:
    return Log(tmp_path, settings, kafka_roles, unique)


def new_witness(name: str = "audit-board.example") -> Cosigner:
    return Cosigner.of(SignerKey.generate(name, SIGNATURE_TYPE_COSIGNATURE_V1))


def cosigned_offsets(log: Log, cosigner: Cosigner) -> list[int]:
    """The checkpoints-topic offsets whose checkpoint `cosigner` cosigned on the witness topic, each checked: the
    log's signature and the witness's cosignature verify, and the checkpoint is the one at that offset."""
    at = {record.offset: record.value for record in log.checkpoints()}
    found = []
    for record in log.witnessed():
        if record.key != cosigner.name.encode():
            continue
        offset = int(dict(record.headers)[OFFSET_HEADER])
        opened = open_checkpoint(record.value, log_key().name, log_signer().verifier(), [cosigner.verifier()], 1)
        assert opened.checkpoint == open_checkpoint(at[offset], log_key().name, log_signer().verifier()).checkpoint
        found.append(offset)
    return found


def test_a_witness_cosigns_every_checkpoint_once_and_then_only_the_new_ones(log):
    log.write(members=150)
    assert log.relay() > 3 * BATCH
    offsets = [record.offset for record in log.checkpoints()]
    assert len(offsets) > 3
    board = new_witness()

    first = log.witness(board)
    assert (first.cosigned, first.ok, first.breach) == (len(offsets), True, None)
    assert cosigned_offsets(log, board) == offsets
    sizes = [Checkpoint.parse(open_checkpoint(record.value, log_key().name, log_signer().verifier()).note.text).size
             for record in log.checkpoints()]
    assert first.last is not None and (first.last.size, first.last.offset) == (sizes[-1], offsets[-1])

    again = log.witness(board)  # its state is read back from the witness topic
    assert (again.cosigned, again.ok, again.last) == (0, True, first.last)
    assert cosigned_offsets(log, board) == offsets

    log.write(members=100)
    log.relay()
    now = [record.offset for record in log.checkpoints()]
    assert len(now) > len(offsets)
    later = log.witness(board)
    assert later.cosigned == len(now) - len(offsets) and later.ok
    assert cosigned_offsets(log, board) == now


def test_two_witnesses_with_their_own_keys_both_cosign_every_checkpoint(log):
    log.write(members=80)
    log.relay()
    offsets = [record.offset for record in log.checkpoints()]
    board, regulator = new_witness("audit-board.example"), new_witness("regulator.example")
    assert log.witness(board).cosigned == len(offsets)
    assert log.witness(regulator).cosigned == len(offsets)
    assert cosigned_offsets(log, board) == offsets == cosigned_offsets(log, regulator)
    assert log.witness(board).cosigned == log.witness(regulator).cosigned == 0


def test_a_checkpoint_signed_by_another_key_is_refused_and_the_witness_goes_on(log):
    log.write(members=60)
    log.relay()
    board = new_witness()
    assert log.witness(board).cosigned > 0
    last = log.checkpoints()[-1]
    record = read_checkpoint_record(last.value, last.headers)
    size = open_checkpoint(record.note, log_key().name, log_signer().verifier()).checkpoint.size
    # A forger with write access and a key of the log's name: a larger tree, signed, with a proof header of its own.
    forger = Ed25519Signer.of(SignerKey.generate(log_key().name))
    forged = log.forge(sign_checkpoint(Checkpoint(log_key().name, size + 5, merkle.leaf_hash(b"forged")), forger),
                       [(FROM_HEADER, str(size).encode()), (PROOF_HEADER, b64encode(bytes(32)).encode())])

    report = log.witness(board)
    assert (report.cosigned, report.refused_count, report.breach, report.ok) == (0, 1, None, False)
    assert report.refused[0].offset == forged and "not signed by the log's key" in report.refused[0].reason
    assert forged not in cosigned_offsets(log, board)

    # The relay's next checkpoints still extend what the witness cosigned: it cosigns them.
    log.write(members=60)
    log.relay()
    after = [r.offset for r in log.checkpoints() if r.offset > forged]
    report = log.witness(board)
    assert report.cosigned == len(after) > 0 and report.breach is None
    assert cosigned_offsets(log, board)[-len(after):] == after


@pytest.mark.parametrize("proof", ["forged", "none"])
def test_a_checkpoint_the_logs_key_signed_for_another_history_stops_the_witness_with_exit_8(log, kafka_roles,
                                                                                           tmp_path, proof):
    log.write(members=60)
    log.relay()
    board = new_witness()
    key_file = tmp_path / "witness.key"
    key_file.write_text(SignerKey.generate("regulator.example", SIGNATURE_TYPE_COSIGNATURE_V1).format() + "\n")
    key_file.chmod(0o600)
    env = {**os.environ, **kafka_roles.env(WITNESS), "LEDGER_KAFKA_TOPIC_PREFIX": log.prefix}
    command = [sys.executable, "-m", "ledger.cli", "audit", "witness", "--key", str(key_file),
               "--log-key", log_verifier_key()]
    first = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=WAIT_S_MAX)
    assert first.returncode == 0, first.stderr
    assert log.witness(board).ok

    last = log.checkpoints()[-1]
    size = open_checkpoint(read_checkpoint_record(last.value, last.headers).note, log_key().name,
                           log_signer().verifier()).checkpoint.size
    # The log's own key signs a larger tree that does not extend the one cosigned: another history.
    other = [merkle.leaf_hash(f"another history {i}".encode()) for i in range(size + 5)]
    note = sign_checkpoint(Checkpoint(log_key().name, size + 5, merkle.root_hash(other)), log_signer())
    forged_proof = merkle.consistency_proof(other, size, size + 5)
    headers = [(FROM_HEADER, str(size).encode()),
               (PROOF_HEADER, "\n".join(b64encode(one) for one in forged_proof).encode())] if proof == "forged" else []
    offset = log.forge(note, headers)

    report = log.witness(board)
    assert report.breach is not None and report.breach.offset == offset and report.cosigned == 0
    assert f"the one it cosigned at size {size:,}" in report.breach.reason
    breach = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=WAIT_S_MAX)
    assert breach.returncode == EXIT_BREACH, breach.stderr
    assert "BREACH" in breach.stderr and f"checkpoints offset {offset}" in breach.stderr
    assert offset not in cosigned_offsets(log, board)
    assert all(int(dict(r.headers)[OFFSET_HEADER]) != offset for r in log.witnessed())

    # Stopped for good: every run stops there again until an operator has looked (the relay, for its part, refuses to
    # extend a tree that is not its last signed checkpoint's).
    assert log.witness(board).breach == report.breach


def test_the_witness_principal_reads_no_events_and_writes_no_checkpoints(log, kafka_roles):
    if not kafka_roles.secured:
        pytest.skip("a plain broker has no ACLs")
    witness = kafka_roles.connection(WITNESS)
    with pytest.raises(kafka_client.AuthorizationError):
        list(kafka_client.read_partition(witness, log.topics.events, 0, 0))
    producer = kafka_client.producer(witness)
    try:
        with pytest.raises(kafka_client.KafkaError, match="AuthorizationFailed"):
            producer.send(log.topics.checkpoints, key=b"checkpoint", value=b"x").get(timeout=WAIT_S_MAX)
    finally:
        producer.close(timeout=WAIT_S_MAX)
    assert sum(kafka_client.end_offsets(kafka_roles.admin, log.topics.checkpoints).values()) == 0
