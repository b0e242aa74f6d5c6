"""An attacker against the real secured broker (`scripts/kafka start`, which `scripts/test` runs).

Whoever reaches the broker without the right credentials gets nothing, on every listener the node opens (the
controller's too), and each principal can do only what its role's ACLs grant: nobody but the relay writes the
ledger's topics, a consumer team sees only its own group and dead letters, and nobody but the administrator deletes
records or topics. The attacker brings their own client: these tests use kafka-python directly, not the ledger's
`kafka_client`, and a raw TLS socket where a Kafka client would hide what the broker did.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import struct
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (
    AuthorizationError,
    KafkaError,
)

from ledger.publishing import kafka_client
from ledger.publishing.envelope import record_headers
from ledger.settings import KafkaConnection
from tests.support.kafka_roles import ADMIN, API, AUDITOR, PROJECTIONS, RELAY, TEAMS, KafkaRoles

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"  # Debian's, as scripts/kafka uses
CONNECT_TIMEOUT_S = 10
WRONG_PASSWORD = "not-the-password"  # noqa: S105 - the point: a password the broker does not know
REFUSED_WITHIN_MS = 8_000  # a client that is refused gives up within this (its requests time out or fail)
READ_ROLES = (PROJECTIONS, AUDITOR, API, *TEAMS)  # every principal but the relay and the administrator


@pytest.fixture(scope="module")
def secured(kafka_roles: KafkaRoles) -> KafkaRoles:
    assert kafka_roles.secured, "scripts/test runs the suite against the secured broker (LEDGER_TEST_KAFKA_PRINCIPALS)"
    return kafka_roles


def options(kafka: KafkaConnection) -> dict[str, Any]:
    """kafka-python's options for a connection, as any client would set them."""
    return {"bootstrap_servers": list(kafka.bootstrap_servers), "security_protocol": kafka.security_protocol,
            "sasl_mechanism": kafka.sasl_mechanism, "sasl_plain_username": kafka.sasl_username,
            "sasl_plain_password": kafka.sasl_password, "ssl_cafile": kafka.ssl_cafile,
            "ssl_certfile": kafka.ssl_certfile, "ssl_keyfile": kafka.ssl_keyfile,
            "request_timeout_ms": REFUSED_WITHIN_MS}


def listeners(roles: KafkaRoles) -> list[tuple[str, str, str, int]]:
    """(node, listener name, security protocol, port) of every listener of every node (listeners.txt)."""
    assert roles.principals_dir is not None
    found = []
    for line in (roles.principals_dir / "listeners.txt").read_text().splitlines():
        if line.strip():
            node, name, protocol, address = line.split()
            found.append((node, name, protocol, int(address.rsplit(":", 1)[1])))
    assert {name for _, name, _, _ in found} == {"CLIENT", "TLS", "CONTROLLER"}, found
    return found


def foreign_ca_certificate(folder: Path) -> tuple[str, str]:
    """A client certificate with the same name as the administrator's (CN=admin), signed by a CA of the attacker's."""
    def openssl(*args: str) -> None:
        subprocess.run([OPENSSL, *args], check=True, capture_output=True, cwd=folder, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=Attacker CA",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=admin", "-keyout", "admin.key", "-out", "admin.csr")
    openssl("x509", "-req", "-in", "admin.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "2",
            "-out", "admin.crt")
    return str(folder / "admin.crt"), str(folder / "admin.key")


API_VERSIONS_REQUEST = (struct.pack(">hhi", 18, 0, 4242) + struct.pack(">h", 8) + b"attacker")


def answers_api_versions(port: int, context: ssl.SSLContext | None) -> bool:
    """Whether the listener answers an ApiVersions request (the first thing any Kafka client sends) over this TLS
    context (None: plaintext). A listener that refuses closes the connection or fails the handshake."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=CONNECT_TIMEOUT_S) as raw:
            conn: socket.socket = context.wrap_socket(raw, server_hostname="127.0.0.1") if context else raw
            conn.sendall(struct.pack(">i", len(API_VERSIONS_REQUEST)) + API_VERSIONS_REQUEST)
            answer = b""
            while len(answer) < 8:
                chunk = conn.recv(8 - len(answer))
                if not chunk:
                    return False
                answer += chunk
            return struct.unpack(">i", answer[4:8])[0] == 4242  # our correlation id: a Kafka answer
    except (OSError, ssl.SSLError):
        return False


def tls_context(ca: str, certificate: tuple[str, str] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca)
    if certificate:
        context.load_cert_chain(*certificate)
    return context


def test_only_certificates_of_the_funds_ca_open_the_tls_and_controller_listeners(secured, tmp_path) -> None:
    folder = secured.principals_dir
    assert folder is not None
    ca = str(folder / "ca.pem")
    ours = (str(folder / "admin.crt"), str(folder / "admin.key"))
    theirs = foreign_ca_certificate(tmp_path)
    checked = 0
    for node, name, protocol, port in listeners(secured):
        assert protocol != "PLAINTEXT", f"node {node} opens a plaintext listener {name}"
        assert not answers_api_versions(port, None), f"node {node} {name} answers in plaintext"
        if name in ("TLS", "CONTROLLER"):
            assert answers_api_versions(port, tls_context(ca, ours)), f"{name}: the control, a valid certificate"
            assert not answers_api_versions(port, tls_context(ca, None)), f"node {node} {name}: no certificate"
            assert not answers_api_versions(port, tls_context(ca, theirs)), f"node {node} {name}: a foreign CA"
            checked += 1
    assert checked >= 2


def refused(kafka: KafkaConnection) -> Exception:
    """The error a client connecting so gets for a metadata request (fails the test if it gets an answer)."""
    try:
        # Bounded: a refused client otherwise retries its bootstrap for 30 s (kafka-python's default) before it fails.
        probe = KafkaConsumer(**options(kafka), bootstrap_timeout_ms=REFUSED_WITHIN_MS)
    except (KafkaError, OSError) as error:
        return error
    try:
        topics = probe.topics()
    except (KafkaError, OSError) as error:
        return error
    finally:
        probe.close()
    raise AssertionError(f"{kafka!r} was answered: {len(topics)} topics")


def test_no_credentials_a_wrong_password_or_a_foreign_certificate_get_no_answer(secured, tmp_path) -> None:
    relay = secured.connection(RELAY)
    assert relay.security_protocol == "SASL_SSL"
    # kafka-python logs SaslAuthenticationFailedError and gives up bootstrapping: no metadata, no topic.
    assert isinstance(refused(replace(relay, sasl_password=WRONG_PASSWORD)), KafkaError)
    refused(replace(relay, security_protocol="SSL", sasl_mechanism=None, sasl_username=None, sasl_password=None))
    refused(replace(relay, security_protocol="PLAINTEXT", sasl_mechanism=None, sasl_username=None,
                    sasl_password=None, ssl_cafile=None))
    # Over the mutual-TLS listener: the administrator's own certificate is answered (the control), one with the same
    # name from another CA is not, and neither is no certificate at all.
    tls = secured.connection_tls(ADMIN)
    assert kafka_client.broker_count(tls) >= 1
    certificate, key = foreign_ca_certificate(tmp_path)
    refused(replace(tls, ssl_certfile=certificate, ssl_keyfile=key))
    refused(replace(tls, ssl_certfile=None, ssl_keyfile=None))


@pytest.fixture
def ledger_topics(secured: KafkaRoles) -> tuple[Any, dict[str, str]]:
    """A test's own ledger topics, with every role's ACLs, and two teams' groups and dead letters."""
    prefix = f"attack-{uuid.uuid4().hex[:10]}"
    teams = {TEAMS[0]: f"team-a-{uuid.uuid4().hex[:8]}", TEAMS[1]: f"team-b-{uuid.uuid4().hex[:8]}"}
    topics = secured.provision(prefix, partitions=2, teams=[teams[TEAMS[0]]], team_principal=TEAMS[0])
    secured.provision(prefix, partitions=2, teams=[teams[TEAMS[1]]], team_principal=TEAMS[1])
    return topics, teams


def forged_contribution() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The issue's forged record: Rp570,000,000 to one member's JHT, as an envelope with a position and a hash."""
    env = {"event_id": f"{uuid.uuid4()}.1", "type": "ContributionPaid", "version": 1, "aggregate_id": str(uuid.uuid4()),
           "aggregate_version": 1, "position": 1, "effective_date": "2024-04-10",
           "recorded_at": "2026-11-23T20:01:02+00:00", "branch": "BEKASI-KOTA", "prev_hash": "0" * 64,
           "hash": "f" * 64, "data": {"kpj": "17000000001", "month": "2024-03", "total": 570_000_000,
                                      "shares": {"JHT": {"employer": 370_000_000, "worker": 200_000_000}}}}
    return env["aggregate_id"].encode(), orjson.dumps(env), record_headers("ContributionPaid", 1)


def ends(kafka: KafkaConnection, topic: str) -> dict[int, int]:
    return kafka_client.end_offsets(kafka, topic)


@pytest.mark.parametrize("role", list(READ_ROLES))
def test_no_principal_but_the_relay_writes_the_events_or_the_relay_state(secured, ledger_topics, role) -> None:
    topics, _ = ledger_topics
    admin = secured.admin
    before = {topic: ends(admin, topic) for topic in (topics.events, topics.state)}
    key, value, headers = forged_contribution()
    for topic in (topics.events, topics.state):
        producer = KafkaProducer(**options(secured.connection(role)), acks="all", max_block_ms=REFUSED_WITHIN_MS)
        try:
            # Refused before any record: the broker will not even give it a producer id (or, past that, the topic).
            with pytest.raises(KafkaError, match="AuthorizationFailed"):
                producer.send(topic, key=key, value=value, headers=headers).get(timeout=CONNECT_TIMEOUT_S)
        finally:
            producer.close(timeout=CONNECT_TIMEOUT_S)
    assert {topic: ends(admin, topic) for topic in before} == before, "nothing was written"


def test_the_relays_own_principal_does_write_the_events(secured, ledger_topics) -> None:
    """The control of the test above: the same record, sent as the relay, is accepted (so the refusals above are the
    ACLs at work, not a broken client)."""
    topics, _ = ledger_topics
    key, value, headers = forged_contribution()
    producer = KafkaProducer(**options(secured.connection(RELAY)), acks="all", max_block_ms=REFUSED_WITHIN_MS)
    try:
        producer.send(topics.events, key=key, value=value, headers=headers).get(timeout=CONNECT_TIMEOUT_S)
    finally:
        producer.close(timeout=CONNECT_TIMEOUT_S)
    assert sum(ends(secured.admin, topics.events).values()) == 1


def test_a_consumer_team_reads_neither_another_teams_group_offsets_nor_its_dead_letters(secured, ledger_topics
                                                                                        ) -> None:
    topics, teams = ledger_topics
    team_a, team_b = teams[TEAMS[0]], teams[TEAMS[1]]
    # Team A commits an offset in its own group, and a dead letter to its own topic: its rights work.
    own = KafkaConsumer(**options(secured.connection(TEAMS[0])), group_id=team_a, enable_auto_commit=False)
    try:
        own.assign([TopicPartition(topics.events, 0)])
        own.seek(TopicPartition(topics.events, 0), 0)
        own.commit({TopicPartition(topics.events, 0): kafka_client.OffsetAndMetadata(0, "", -1)})
    finally:
        own.close()
    # Team B, with its own valid principal, asks for team A's group offsets and reads team A's dead letters.
    b = secured.connection(TEAMS[1])
    nosy = KafkaConsumer(**options(b), group_id=team_a, enable_auto_commit=False)
    try:
        with pytest.raises(AuthorizationError):
            nosy.committed(TopicPartition(topics.events, 0), timeout_ms=REFUSED_WITHIN_MS)
    finally:
        nosy.close()
    reader = KafkaConsumer(**options(b), group_id=None, enable_auto_commit=False)
    try:
        dead_letters = TopicPartition(f"{team_a}.dead-letters", 0)
        with pytest.raises(AuthorizationError):
            reader.beginning_offsets([dead_letters])  # any read of the topic needs at least DESCRIBE on it
    finally:
        reader.close()
    assert team_b != team_a


@pytest.mark.parametrize("role", [RELAY, *READ_ROLES])
def test_nobody_but_the_administrator_deletes_records_or_topics_or_creates_topics(secured, ledger_topics, role
                                                                                 ) -> None:
    topics, _ = ledger_topics
    admin = KafkaAdminClient(**options(secured.connection(role)))
    try:
        with pytest.raises(AuthorizationError):
            admin.delete_records({TopicPartition(topics.events, 0): 0})
        with pytest.raises(AuthorizationError):
            admin.delete_topics([topics.events])
        with pytest.raises(AuthorizationError):
            admin.create_topics([NewTopic(f"{topics.prefix}.mine", 1, 1)])
        # Nor grant itself what it lacks.
        granted = admin.create_acls([kafka_client.Grant(f"User:{role}", "ALL", "TOPIC", "*").acl()])
        assert granted["failed"] and not granted["succeeded"], granted
    finally:
        admin.close()
    assert kafka_client.topic_partitions(secured.admin, topics.events) == [0, 1]
    assert sum(ends(secured.admin, topics.events).values()) == 0
