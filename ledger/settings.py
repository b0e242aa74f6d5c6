"""The one place configuration is read.

Every entry point (the CLI, the scripts, the tests' fixtures) builds a `Settings` from the environment and passes
the values it needs down; no other module reads `os.environ`. Variables are prefixed `LEDGER_`, for example
`LEDGER_KAFKA_BOOTSTRAP_SERVERS=broker1:9092,broker2:9092` or `LEDGER_PERSISTENCE=postgres`.

Unknown settings are errors: a `LEDGER_*` variable that is neither a setting below nor one of the scripts' own
(`SCRIPT_VARIABLES`) stops every entry point with a `ConfigurationError` naming it, because a misspelt or unsupported
setting silently ignored leaves the ledger running with a default its operator thought was changed.

Safety checks that a developer's machine may relax are relaxed only by one explicit setting, `LEDGER_DEVELOPMENT_MODE`
(never in production), and each relaxation prints a warning on stderr when it is used (`warn_development_mode`).
Today it relaxes one check: without `LEDGER_NIK_HMAC_KEY`, the NIK hashes the write side publishes are made with the
public development key (`nik_hmac_key_bytes`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.errors import ConfigurationError

ENV_PREFIX = "LEDGER_"

# `LEDGER_*` variables that are not settings of the ledger but are read by the scripts (scripts/lib.sh: the
# virtualenv, the runtime state and the download cache; scripts/test: "the broker and database are up, never skip").
# The one exception to "an unknown LEDGER_* variable is an error".
SCRIPT_VARIABLES = frozenset({"LEDGER_VENV", "LEDGER_RUN_DIR", "LEDGER_CACHE_DIR", "LEDGER_TEST_SERVICES"})

# The shortest NIK hash key accepted, in bytes (of its UTF-8 text). The key is the only secret protecting a published
# NIK: a NIK is a district, a birth date and a 4-digit serial, so for one branch and a known birth year about 90
# million candidates remain, which anyone holding the key tries in minutes on one machine. HMAC-SHA256 takes its
# strength from a key at least as long as its 32-byte output (RFC 2104, section 3: shorter keys are "strongly
# discouraged"), so 32 bytes is the floor; `secrets.token_hex(32)` gives 64 characters of 256 random bits.
NIK_HMAC_KEY_BYTES_MIN = 32

# The key used in development mode when LEDGER_NIK_HMAC_KEY is unset. It is public (it is in this file), so hashes
# made with it protect nothing: outside development mode it is refused, even when set explicitly.
DEVELOPMENT_NIK_HMAC_KEY = b"development-only-nik-key"

_warned: set[str] = set()  # development-mode relaxations already announced by this process


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """The `LEDGER_*` names of `environ` that are neither a setting nor a script's variable (case-insensitive, as
    the settings themselves are read)."""
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | SCRIPT_VARIABLES
    return sorted(name for name in environ if name.upper().startswith(ENV_PREFIX) and name.upper() not in known)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    def __init__(self, **values: Any) -> None:
        # pydantic-settings reads only the variables it has fields for: the others are checked here, once, when
        # the settings are read (a `model_copy` reads nothing and checks nothing).
        unknown = unknown_variables(os.environ)
        if unknown:
            raise ConfigurationError(
                f"unknown setting(s) {', '.join(unknown)}: not a LEDGER_* variable the ledger reads (see the "
                f"settings table in README.md); unset or correct {'it' if len(unknown) == 1 else 'them'}")
        super().__init__(**values)

    # Kafka: a comma-separated list of host:port, as kafka-python takes it.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    kafka_topic_prefix: str = "ledger"
    kafka_partitions: int = Field(default=12, ge=1, le=1000)
    # Producer compression for the relay: none, gzip (built in) - see docs/benchmarks.md for the measurement.
    kafka_compression: Literal["none", "gzip"] = "none"
    relay_transactional_id: str = "ledger-relay"

    # The key of the NIK's HMAC published to Kafka: a random secret of at least NIK_HMAC_KEY_BYTES_MIN bytes, set
    # once per fund (changing it unlinks history). No default: the write side refuses to run without one, see
    # `nik_hmac_key_bytes`.
    nik_hmac_key: SecretStr | None = None
    # Development mode: relaxes the safety checks listed in this module's docstring, each with a warning on stderr.
    # For a developer's machine and synthetic data only; never in production.
    development_mode: bool = False

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

    def nik_hmac_key_bytes(self) -> bytes:
        """The key of the NIK hashes the write side publishes, checked: raises `ConfigurationError` when it is not
        set, empty, shorter than NIK_HMAC_KEY_BYTES_MIN or the public development key, unless development mode
        allows the development key. Called by what computes or publishes NIK hashes (the CLI's writing commands,
        `ledger relay`, the demo); reading needs no key. Messages never contain the key."""
        fix = (f"set LEDGER_NIK_HMAC_KEY to a random secret of at least {NIK_HMAC_KEY_BYTES_MIN} bytes, e.g. the "
               f"output of: python3 -c 'import secrets; print(secrets.token_hex(32))' " +
               ("(or unset it: LEDGER_DEVELOPMENT_MODE=true uses the development key)" if self.development_mode else
                "(on a development machine with synthetic data only: LEDGER_DEVELOPMENT_MODE=true instead)"))
        if self.nik_hmac_key is None:
            if not self.development_mode:
                raise ConfigurationError(f"LEDGER_NIK_HMAC_KEY is not set, and published NIK hashes need a secret "
                                         f"key: {fix}")
            self.warn_development_mode("NIK hashes are made with the public development key and are not protected")
            return DEVELOPMENT_NIK_HMAC_KEY
        key = self.nik_hmac_key.get_secret_value().encode()
        if key == DEVELOPMENT_NIK_HMAC_KEY:
            if not self.development_mode:
                raise ConfigurationError(f"LEDGER_NIK_HMAC_KEY is the development key, which is public: NIK hashes "
                                         f"made with it can be reversed; {fix}")
            self.warn_development_mode("NIK hashes are made with the public development key and are not protected")
            return key
        if not key:
            raise ConfigurationError(f"LEDGER_NIK_HMAC_KEY is empty: {fix}")
        if len(key) < NIK_HMAC_KEY_BYTES_MIN:
            raise ConfigurationError(f"LEDGER_NIK_HMAC_KEY is shorter than {NIK_HMAC_KEY_BYTES_MIN} bytes, too short "
                                     f"to keep NIK hashes from being reversed: {fix}")
        return key

    def warn_development_mode(self, relaxed: str) -> None:
        """Say on stderr, once per process and relaxation, that development mode relaxed a safety check."""
        assert self.development_mode, "a development-mode relaxation used outside development mode"
        if relaxed not in _warned:
            _warned.add(relaxed)
            print(f"warning: the ledger is in development mode (LEDGER_DEVELOPMENT_MODE; never in production): "
                  f"{relaxed}", file=sys.stderr)

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
            self.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
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
