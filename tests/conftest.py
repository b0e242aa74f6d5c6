"""Fixtures shared by every test layer.

Integration and end-to-end tests run against the real Kafka broker and PostgreSQL that `scripts/test` starts; it
passes their addresses in the `LEDGER_*` environment, read here once through `Settings`. Every test that touches
Kafka gets topic and consumer-group names of its own, so tests never see each other's records.
"""

from __future__ import annotations

import os
import uuid

import pytest

from ledger.settings import KafkaConnection, Settings
from tests.support.kafka_roles import KafkaRoles


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def kafka_roles(settings: Settings) -> KafkaRoles:
    """Every role's connection to the test broker (tests/support/kafka_roles.py)."""
    from ledger.publishing import kafka_client

    roles = KafkaRoles.from_environment(os.environ.get("LEDGER_TEST_KAFKA_PRINCIPALS"),
                                        settings.kafka_bootstrap_servers)
    try:
        kafka_client.wait_until_ready(roles.admin, timeout_s=10)
    except TimeoutError as error:
        pytest.fail(f"no Kafka broker: run the tests with scripts/test, which starts one ({error})")
    return roles


@pytest.fixture(scope="session")
def kafka_admin(kafka_roles: KafkaRoles) -> KafkaConnection:
    """The administrator's connection (a super user): for creating a test's topics, and for tests that play an
    attacker with full rights (records forged, altered or dropped, written straight to a topic)."""
    return kafka_roles.admin


@pytest.fixture
def unique() -> str:
    """A short unique suffix for topic, group and database names."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def postgres_settings(settings: Settings) -> Settings:
    import psycopg

    pg = settings.model_copy(update={"persistence": "postgres"})
    try:
        psycopg.connect(
            host=pg.postgres_host, port=pg.postgres_port, user=pg.postgres_user, dbname=pg.postgres_dbname,
            connect_timeout=5,
        ).close()
    except psycopg.OperationalError as error:
        pytest.fail(f"no PostgreSQL: run the tests with scripts/test, which starts one ({error})")
    return pg
