"""The one place configuration is read.

Every entry point (the CLI, the scripts, the tests' fixtures) builds a `Settings` from the environment and passes
the values it needs down; no other module reads `os.environ`. Variables are prefixed `LEDGER_`, for example
`LEDGER_KAFKA_BOOTSTRAP_SERVERS=broker1:9092,broker2:9092` or `LEDGER_PERSISTENCE=postgres`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.private_files import create_private_database


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="ignore")

    # Kafka: a comma-separated list of host:port, as kafka-python takes it.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = "ledger"
    kafka_partitions: int = Field(default=12, ge=1, le=1000)
    # Producer compression for the relay: none, gzip (built in) - see docs/benchmarks.md for the measurement.
    kafka_compression: Literal["none", "gzip"] = "none"
    relay_transactional_id: str = "ledger-relay"

    # The key of the NIK's HMAC published to Kafka. Set a secret one in production; changing it unlinks history.
    nik_hmac_key: SecretStr = SecretStr("development-only-nik-key")

    # The event store: an embedded SQLite file by default, PostgreSQL for scale.
    persistence: Literal["sqlite", "postgres"] = "sqlite"
    sqlite_path: Path = Path(".run/ledger.db")
    postgres_host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_user: str = "ledger"
    postgres_password: str = ""
    postgres_dbname: str = "ledger"

    # The projections' view database (the read side): SQLite by default, PostgreSQL (the postgres_* above) by choice.
    projection_store: Literal["sqlite", "postgres"] = "sqlite"
    projection_sqlite_path: Path = Path(".run/projections.db")
    # Kafka records applied per view transaction: bigger is faster, smaller loses less work to a crash.
    projection_batch_max: int = Field(default=20_000, ge=1, le=1_000_000)
    # The read-only HTTP API (`ledger serve`).
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)

    @property
    def compression_type(self) -> str | None:
        return None if self.kafka_compression == "none" else self.kafka_compression

    @property
    def bootstrap_servers(self) -> list[str]:
        return [s.strip() for s in self.kafka_bootstrap_servers.split(",") if s.strip()]

    def postgres_conninfo(self) -> str:
        return (f"host={self.postgres_host} port={self.postgres_port} user={self.postgres_user} "
                f"password={self.postgres_password} dbname={self.postgres_dbname}")

    def eventsourcing_env(self) -> dict[str, str]:
        """The environment the eventsourcing library's persistence modules read, derived from these settings."""
        if self.persistence == "sqlite":
            create_private_database(self.sqlite_path)  # 0600, and its -wal and -shm with it (ledger.private_files)
            return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(self.sqlite_path)}
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            # See ledger/persistence.py: the library's pipelined insert hangs on commands over ~10 MB.
            "APPLICATION_RECORDER_TOPIC": "ledger.persistence:LedgerPostgresRecorder",
            "POSTGRES_DBNAME": self.postgres_dbname,
            "POSTGRES_HOST": self.postgres_host,
            "POSTGRES_PORT": str(self.postgres_port),
            "POSTGRES_USER": self.postgres_user,
            "POSTGRES_PASSWORD": self.postgres_password,
        }
