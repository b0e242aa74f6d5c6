"""The pieces under every later test are real: an Apache Kafka broker and a PostgreSQL server. Kafka is used here
as its administrator, the one principal that may create topics and use any."""

from __future__ import annotations

import psycopg
import pytest

from ledger.publishing import kafka_client

pytestmark = pytest.mark.integration

RECORD_COUNT = 200
POLL_TIMEOUT_MS = 1_000
POLL_ROUNDS_MAX = 30
REPLICATION_FACTOR = 1  # the test broker is a single one


def consume_all(kafka: kafka_client.KafkaConnection, topic: str, group: str, expected: int) -> list:
    consumer = kafka_client.consumer(kafka, group_id=group, topics=[topic])
    records = []
    try:
        for _ in range(POLL_ROUNDS_MAX):
            for batch in consumer.poll(timeout_ms=POLL_TIMEOUT_MS).values():
                records.extend(batch)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    return records


def test_a_record_round_trips_through_the_real_broker(kafka_admin, unique):
    topic = f"test-roundtrip-{unique}"
    kafka_client.ensure_topic(kafka_admin, topic, partitions=3, replication_factor=REPLICATION_FACTOR)
    sent = [(f"member-{i % 7}".encode(), f"payload {i}".encode()) for i in range(RECORD_COUNT)]

    producer = kafka_client.producer(kafka_admin)  # acks=all, idempotent
    assert producer.config["acks"] == -1 and producer.config["enable_idempotence"] is True
    for key, value in sent:
        producer.send(topic, key=key, value=value)
    producer.flush(timeout=30)
    producer.close()

    received = consume_all(kafka_admin, topic, group=f"test-group-{unique}", expected=RECORD_COUNT)

    assert sorted((r.key, r.value) for r in received) == sorted(sent)
    # Records with one key share one partition and keep the order they were sent in.
    for key in {k for k, _ in sent}:
        assert [r.value for r in received if r.key == key] == [v for k, v in sent if k == key]
        assert len({r.partition for r in received if r.key == key}) == 1


def test_a_topic_is_created_with_explicit_partitions_and_infinite_retention(kafka_admin, unique):
    topic = f"test-topic-{unique}"

    created = kafka_client.ensure_topic(kafka_admin, topic, partitions=6, config=kafka_client.RETENTION_FOREVER,
                                        replication_factor=REPLICATION_FACTOR)
    created_again = kafka_client.ensure_topic(kafka_admin, topic, partitions=6, config=kafka_client.RETENTION_FOREVER,
                                              replication_factor=REPLICATION_FACTOR)

    assert (created, created_again) == (True, False)
    assert kafka_client.topic_partitions(kafka_admin, topic) == [0, 1, 2, 3, 4, 5]
    assert kafka_client.describe_topic_config(kafka_admin, topic)["retention.ms"] == "-1"


def test_postgresql_answers(postgres_settings):
    s = postgres_settings
    with psycopg.connect(host=s.postgres_host, port=s.postgres_port, user=s.postgres_user,
                         dbname=s.postgres_dbname) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        assert conn.execute("SELECT 6 * 7").fetchone()[0] == 42
    assert int(version.split(".")[0]) >= 13
