"""The one place configuration is read.

Every entry point (the CLI, the scripts, the tests' fixtures) builds a `Settings` from the environment and passes
the values it needs down; no other module reads `os.environ`. Variables are prefixed `LEDGER_`, for example
`LEDGER_KAFKA_BOOTSTRAP_SERVERS=broker1:9092,broker2:9092` or `LEDGER_PERSISTENCE=postgres`.

Unknown settings are errors: a `LEDGER_*` variable that is neither a setting below nor one of the scripts' own
(`SCRIPT_VARIABLES`) stops every entry point with a `ConfigurationError` naming it, because a misspelt or unsupported
setting silently ignored leaves the ledger running with a default its operator thought was changed.

Safety checks that a developer's machine may relax are relaxed only by one explicit setting, `LEDGER_DEVELOPMENT_MODE`
(never in production), and each relaxation prints a warning on stderr when it is used (`warn_development_mode`).
It relaxes five checks:
- without `LEDGER_NIK_HMAC_KEY`, the NIK hashes the write side publishes are made with the public development key
  (`nik_hmac_key_bytes`);
- `LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT` (a password sent where anyone on the network can read it) is
  accepted (`kafka`);
- topics may be created with one copy, `LEDGER_KAFKA_REPLICATION_FACTOR=1` (`replication_factor_checked`);
- without `LEDGER_LOG_SIGNING_KEY_FILE`, the relay publishes without signed checkpoints (`log_signing_key`);
- `LEDGER_API_JWKS_URL` may be a plain `http://` URL (`api_token_verification`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger.errors import ConfigurationError, TlogInvalid
from ledger.private_files import create_private_database
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, SIGNATURE_TYPE_ED25519, Ed25519Verifier, SignerKey

ENV_PREFIX = "LEDGER_"

# `LEDGER_*` variables that are not settings of the ledger but are read by the scripts (scripts/lib.sh: the
# virtualenv, the runtime state and the download cache; scripts/test: "the broker and database are up, never skip",
# and where the test broker's principals' files are). The one exception to "an unknown LEDGER_* variable is an error".
SCRIPT_VARIABLES = frozenset({"LEDGER_VENV", "LEDGER_RUN_DIR", "LEDGER_CACHE_DIR", "LEDGER_TEST_SERVICES",
                              "LEDGER_TEST_KAFKA_PRINCIPALS"})

# The shortest NIK hash key accepted, in bytes (of its UTF-8 text). The key is the only secret protecting a published
# NIK: a NIK is a district, a birth date and a 4-digit serial, so for one branch and a known birth year about 90
# million candidates remain, which anyone holding the key tries in minutes on one machine. HMAC-SHA256 takes its
# strength from a key at least as long as its 32-byte output (RFC 2104, section 3: shorter keys are "strongly
# discouraged"), so 32 bytes is the floor; `secrets.token_hex(32)` gives 64 characters of 256 random bits.
NIK_HMAC_KEY_BYTES_MIN = 32

# The key used in development mode when LEDGER_NIK_HMAC_KEY is unset. It is public (it is in this file), so hashes
# made with it protect nothing: outside development mode it is refused, even when set explicitly.
DEVELOPMENT_NIK_HMAC_KEY = b"development-only-nik-key"

# A signing key file is one line of about 100 characters (`ledger keys generate`): anything much larger is not one.
SIGNING_KEY_FILE_BYTES_MAX = 4096
# Group or others may not read a signing key file: whoever reads it can sign checkpoints as the fund's log.
SIGNING_KEY_FILE_FORBIDDEN_MODE = 0o077

# The replication factor and in-sync replicas of the topics the ledger creates, on a production cluster: three copies
# of the history, of which two must have every record before the relay's write counts (acks=all), so one broker can
# be lost at any moment without losing an acknowledged record, and writes go on while it is away.
REPLICATION_FACTOR_DEFAULT = 3
MIN_INSYNC_REPLICAS = 2
REPLICATION_FACTOR_MAX = 7  # more copies than this is a typo, not a design
LOG_VERIFIER_KEYS_MAX = 20  # the log's keys over its rotations, as many as `ledger audit verify --key` takes

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256"]


@dataclass(frozen=True, repr=False)
class KafkaConnection:
    """How to reach and authenticate to the Kafka cluster, as one role: built from the settings by `Settings.kafka()`
    and given to every function of `ledger.publishing.kafka_client`, which passes each field to the client
    explicitly. The password is kept out of `repr`, so a traceback or a log line never shows it."""

    bootstrap_servers: tuple[str, ...]
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def plain(cls, bootstrap_servers: list[str] | tuple[str, ...]) -> KafkaConnection:
        """An unauthenticated, unencrypted connection: for a development broker only."""
        return cls(bootstrap_servers=tuple(bootstrap_servers))

    @property
    def servers(self) -> str:
        return ",".join(self.bootstrap_servers)

    @property
    def principal(self) -> str:
        """Who this connection is, as far as the settings tell: the SASL user, the client certificate, or nobody."""
        if self.sasl_username:
            return f"User:{self.sasl_username}"
        if self.ssl_certfile:
            return f"the certificate {self.ssl_certfile}"
        return "ANONYMOUS"

    def __repr__(self) -> str:
        return (f"KafkaConnection({self.servers}, {self.security_protocol}"
                f"{', ' + self.principal if self.principal != 'ANONYMOUS' else ''})")


# The signature algorithms an API token may use (LEDGER_API_ALGORITHMS picks among them): public-key signatures only,
# so the API holds no secret that could sign a token, and no shared-secret algorithm (HS256) can be confused with them.
API_TOKEN_ALGORITHMS = ("EdDSA", "RS256")


@dataclass(frozen=True)
class TokenVerification:
    """How the API verifies bearer tokens (`Settings.api_token_verification`, used by projections/tokens.py)."""

    jwks_file: Path | None
    jwks_url: str | None
    issuer: str
    audience: str
    algorithms: tuple[str, ...]


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
    # A secured cluster (docs/kafka.md): TLS, SASL/SCRAM, or both; a client certificate for mutual TLS. Every command
    # that talks to Kafka connects as the principal these name, through `kafka()`, which checks they fit together.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None  # no default: a secret
    kafka_ssl_cafile: Path | None = None  # the CA that signed the brokers' certificates (PEM)
    kafka_ssl_certfile: Path | None = None  # this client's certificate (PEM), for mutual TLS
    kafka_ssl_keyfile: Path | None = None  # its private key (PEM)
    # Copies of every record the topics the ledger creates keep (`ledger kafka init`); 1 only in development mode.
    kafka_replication_factor: int = Field(default=REPLICATION_FACTOR_DEFAULT, ge=1, le=REPLICATION_FACTOR_MAX)

    # The key of the NIK's HMAC published to Kafka: a random secret of at least NIK_HMAC_KEY_BYTES_MIN bytes, set
    # once per fund (changing it unlinks history). No default: the write side refuses to run without one, see
    # `nik_hmac_key_bytes`.
    nik_hmac_key: SecretStr | None = None
    # Development mode: relaxes the safety checks listed in this module's docstring, each with a warning on stderr.
    # For a developer's machine and synthetic data only; never in production.
    development_mode: bool = False

    # The file holding the signing key of the fund's log (`ledger keys generate`): the relay signs a checkpoint of the
    # Merkle tree over the events with it in every transaction (docs/audit.md). Required outside development mode.
    log_signing_key_file: Path | None = None

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
    # The log's verifier keys (`ledger keys generate` prints them; public), comma-separated, oldest first over a
    # rotation: the console's receipts are proved against checkpoints they verify, and its operator page shows the
    # latest checkpoint the newest one verifies. Empty: the console offers no receipts and checks no checkpoint.
    log_verifier_keys: str = ""
    # Its bearer tokens (docs/projections.md, "Authentication, roles and scope"): JWTs of the fund's identity provider,
    # verified against its public keys, a JWKS given as a file or fetched from a URL (exactly one of the two); the
    # issuer and audience a token must name; the signature algorithms accepted. `ledger serve` refuses to start
    # without them (`api_token_verification`). No defaults: whose tokens the API trusts is the operator's decision.
    api_jwks_file: Path | None = None
    api_jwks_url: str | None = None
    api_issuer: str | None = None
    api_audience: str | None = None
    api_algorithms: str = "EdDSA,RS256"
    # The private key `ledger api token issue` signs development tokens with (`ledger api keys generate`, mode 0600).
    api_token_signing_key_file: Path | None = None
    # The access log (docs/audit.md, "The access log"): every read of a member's data, append-only and hash-chained,
    # in this SQLite file (or, with LEDGER_PROJECTION_STORE=postgres, in the table `access_log` of the PostgreSQL
    # database); published to `<prefix>.access` with this transactional id.
    access_log_sqlite_path: Path = Path(".run/access-log.db")
    access_log_transactional_id: str = "ledger-access-log"

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

    def log_signing_key(self) -> SignerKey | None:
        """The log's signing key, read from `LEDGER_LOG_SIGNING_KEY_FILE` and checked: raises `ConfigurationError`
        when it is not set (outside development mode, where the relay then publishes no checkpoints: None), cannot
        be read, is readable by group or others, or is not an Ed25519 signer key. Messages never contain the key."""
        path = self.log_signing_key_file
        if path is None:
            if not self.development_mode:
                raise ConfigurationError(
                    "LEDGER_LOG_SIGNING_KEY_FILE is not set, and the relay signs a checkpoint of the events with the "
                    "fund's log key in every transaction: make one with `ledger keys generate --name NAME --out FILE` "
                    "and point LEDGER_LOG_SIGNING_KEY_FILE at the file (docs/audit.md)")
            self.warn_development_mode("the relay publishes no signed checkpoints (no LEDGER_LOG_SIGNING_KEY_FILE): "
                                       "`ledger audit verify --key` will report every event as unsigned")
            return None
        return read_signing_key(path, "LEDGER_LOG_SIGNING_KEY_FILE", SIGNATURE_TYPE_ED25519)

    def log_verifiers(self) -> list[Ed25519Verifier]:
        """The log's verifier keys from `LEDGER_LOG_VERIFIER_KEYS`, oldest first, checked: raises `ConfigurationError`
        when one is not a verifier key, when there are more than LOG_VERIFIER_KEYS_MAX, or when they name different
        logs (several keys are one log's keys over a rotation)."""
        texts = [one.strip() for one in self.log_verifier_keys.split(",") if one.strip()]
        if len(texts) > LOG_VERIFIER_KEYS_MAX:
            raise ConfigurationError(f"LEDGER_LOG_VERIFIER_KEYS holds {len(texts)} keys: at most "
                                     f"{LOG_VERIFIER_KEYS_MAX}, the log's keys over its rotations")
        try:
            keys = [Ed25519Verifier.of(one) for one in texts]
        except TlogInvalid as error:
            raise ConfigurationError(f"LEDGER_LOG_VERIFIER_KEYS: not a log verifier key ({error}); give the lines "
                                     f"`ledger keys generate` prints as the verifier key, comma-separated") from None
        if len({one.name for one in keys}) > 1:
            raise ConfigurationError("LEDGER_LOG_VERIFIER_KEYS names keys of different logs: they are one log's keys "
                                     "over time, all of one name")
        return keys
    def api_token_verification(self) -> TokenVerification:
        """How the API verifies bearer tokens, checked: raises `ConfigurationError` naming the setting when the JWKS
        (exactly one of LEDGER_API_JWKS_FILE and LEDGER_API_JWKS_URL), the issuer or the audience is missing, the
        URL is not https (http only in development mode, with a warning), or an algorithm is not one accepted."""
        if self.api_jwks_file is not None and self.api_jwks_url is not None:
            raise ConfigurationError("LEDGER_API_JWKS_FILE and LEDGER_API_JWKS_URL are both set: the API trusts one "
                                     "set of keys, so set only one of them")
        if self.api_jwks_file is None and self.api_jwks_url is None:
            raise ConfigurationError(
                "the API verifies bearer tokens against its identity provider's public keys: set LEDGER_API_JWKS_FILE "
                "(a JWKS file) or LEDGER_API_JWKS_URL (where the provider publishes it); for development, `ledger api "
                "keys generate --out KEYFILE --jwks JWKSFILE` makes a signing key and its JWKS (docs/projections.md)")
        missing = [name for name, value in (("LEDGER_API_ISSUER", self.api_issuer),
                                            ("LEDGER_API_AUDIENCE", self.api_audience)) if not value]
        if missing:
            raise ConfigurationError(f"{' and '.join(missing)} not set: a bearer token is accepted only when it names "
                                     f"the issuer and audience the API is configured with")
        url = self.api_jwks_url
        if url is not None:
            if url.startswith("http://") and self.development_mode:
                self.warn_development_mode("the API fetches its token keys over plain http (LEDGER_API_JWKS_URL)")
            elif not url.startswith("https://"):
                raise ConfigurationError(f"LEDGER_API_JWKS_URL must be an https:// URL (whoever could change the keys "
                                         f"in transit could sign tokens), got {url[:80]!r}")
        algorithms = tuple(a.strip() for a in self.api_algorithms.split(",") if a.strip())
        wrong = [a for a in algorithms if a not in API_TOKEN_ALGORITHMS]
        if wrong or not algorithms:
            raise ConfigurationError(f"LEDGER_API_ALGORITHMS={self.api_algorithms!r}: give a comma-separated list of "
                                     f"{', '.join(API_TOKEN_ALGORITHMS)} (public-key signatures only)")
        assert self.api_issuer and self.api_audience
        return TokenVerification(jwks_file=self.api_jwks_file, jwks_url=url, issuer=self.api_issuer,
                                 audience=self.api_audience, algorithms=algorithms)

    def api_token_signing(self) -> tuple[bytes, str, str]:
        """What `ledger api token issue` signs with: the private key (PEM bytes) read from
        LEDGER_API_TOKEN_SIGNING_KEY_FILE, checked like the log's signing key (only its owner may read it, a key file's
        size), and the issuer and audience the tokens name. Raises `ConfigurationError`; never shows the key."""
        path = self.api_token_signing_key_file
        if path is None:
            raise ConfigurationError("LEDGER_API_TOKEN_SIGNING_KEY_FILE is not set: make a development key with "
                                     "`ledger api keys generate --out KEYFILE --jwks JWKSFILE` and point it at KEYFILE")
        if not self.api_issuer or not self.api_audience:
            raise ConfigurationError("LEDGER_API_ISSUER and LEDGER_API_AUDIENCE must be set: a token names them, and "
                                     "`ledger serve` accepts only tokens naming its own")
        return read_private_file(path, "LEDGER_API_TOKEN_SIGNING_KEY_FILE"), self.api_issuer, self.api_audience

    def warn_development_mode(self, relaxed: str) -> None:
        """Say on stderr, once per process and relaxation, that development mode relaxed a safety check."""
        assert self.development_mode, "a development-mode relaxation used outside development mode"
        if relaxed not in _warned:
            _warned.add(relaxed)
            print(f"warning: the ledger is in development mode (LEDGER_DEVELOPMENT_MODE; never in production): "
                  f"{relaxed}", file=sys.stderr)

    def kafka(self) -> KafkaConnection:
        """The connection to the Kafka cluster these settings describe, checked: raises `ConfigurationError` naming
        the setting when they do not fit together (a password without SASL, SASL without a password, a certificate
        without its key, a file that cannot be read), and refuses SASL over plaintext outside development mode."""
        protocol = self.kafka_security_protocol
        sasl, tls = protocol.startswith("SASL_"), protocol.endswith("SSL")
        if not self.bootstrap_servers:
            raise ConfigurationError("LEDGER_KAFKA_BOOTSTRAP_SERVERS is empty: give the cluster's host:port list")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password
                         and self.kafka_sasl_password.get_secret_value()):
            raise ConfigurationError(f"LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} needs LEDGER_KAFKA_SASL_USERNAME and "
                                     f"LEDGER_KAFKA_SASL_PASSWORD (the principal's SCRAM credentials)")
        if not sasl and (self.kafka_sasl_username or self.kafka_sasl_password):
            raise ConfigurationError(f"LEDGER_KAFKA_SASL_USERNAME/PASSWORD are set but "
                                     f"LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} does not use SASL: set it to "
                                     f"SASL_SSL, or unset them")
        tls_files = {"LEDGER_KAFKA_SSL_CAFILE": self.kafka_ssl_cafile, "LEDGER_KAFKA_SSL_CERTFILE":
                     self.kafka_ssl_certfile, "LEDGER_KAFKA_SSL_KEYFILE": self.kafka_ssl_keyfile}
        given = {name: path for name, path in tls_files.items() if path is not None}
        if given and not tls:
            raise ConfigurationError(f"{', '.join(given)} set but LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} does not "
                                     f"use TLS: set it to SSL or SASL_SSL, or unset them")
        if (self.kafka_ssl_certfile is None) != (self.kafka_ssl_keyfile is None):
            raise ConfigurationError("LEDGER_KAFKA_SSL_CERTFILE and LEDGER_KAFKA_SSL_KEYFILE go together: a client "
                                     "certificate needs its private key")
        for name, path in given.items():
            if not path.is_file() or not os.access(path, os.R_OK):
                raise ConfigurationError(f"{name}={path}: no readable file there")
        if protocol == "SASL_PLAINTEXT":
            if not self.development_mode:
                raise ConfigurationError("LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT sends the password and every "
                                         "record unencrypted: use SASL_SSL (on a development machine only: "
                                         "LEDGER_DEVELOPMENT_MODE=true allows it)")
            self.warn_development_mode("Kafka credentials and records cross the network unencrypted (SASL_PLAINTEXT)")
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        return KafkaConnection(
            bootstrap_servers=tuple(self.bootstrap_servers), security_protocol=protocol,
            sasl_mechanism=self.kafka_sasl_mechanism if sasl else None,
            sasl_username=self.kafka_sasl_username if sasl else None, sasl_password=password if sasl else None,
            ssl_cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None,
            ssl_certfile=str(self.kafka_ssl_certfile) if self.kafka_ssl_certfile else None,
            ssl_keyfile=str(self.kafka_ssl_keyfile) if self.kafka_ssl_keyfile else None)

    def replication_factor_checked(self) -> int:
        """The replication factor for new topics; one copy only in development mode (with a warning)."""
        if self.kafka_replication_factor == 1:
            if not self.development_mode:
                raise ConfigurationError(
                    "LEDGER_KAFKA_REPLICATION_FACTOR=1 keeps one copy of the history, lost with one disk: use 3 on a "
                    "cluster of three or more brokers (on a single development broker only: "
                    "LEDGER_DEVELOPMENT_MODE=true allows 1)")
            self.warn_development_mode("topics are created with one copy (LEDGER_KAFKA_REPLICATION_FACTOR=1)")
        return self.kafka_replication_factor

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


def read_private_file(path: Path, what: str) -> bytes:
    """The bytes of a key file `path` (named `what` in messages), checked: only its owner may read it, and it is no
    larger than a key file. Raises `ConfigurationError`; messages never contain the key."""
    try:
        status = path.stat()
        if status.st_mode & SIGNING_KEY_FILE_FORBIDDEN_MODE:
            raise ConfigurationError(f"{what} {path} may be read by group or others (mode "
                                     f"{status.st_mode & 0o777:03o}): whoever reads it can sign as its owner; "
                                     f"`chmod 600 {path}`, and make a new key if others may have read it")
        if status.st_size > SIGNING_KEY_FILE_BYTES_MAX:
            raise ConfigurationError(f"{what} {path} is {status.st_size} bytes: not a key file")
        return path.read_bytes()
    except OSError as error:
        raise ConfigurationError(f"{what} {path} cannot be read: {type(error).__name__}: "
                                 f"{error.strerror or error}") from None


def read_signing_key(path: Path, what: str, signature_type: int) -> SignerKey:
    """A signer key of `signature_type` from the file `path` (named `what` in messages), checked: only its owner may
    read it, it is one key line, and its type is the one asked for. Messages never contain the key."""
    try:
        text = read_private_file(path, what).decode("utf-8").strip()
    except UnicodeDecodeError as error:
        raise ConfigurationError(f"{what} {path} cannot be read: {type(error).__name__}: {error}") from None
    try:
        key = SignerKey.parse(text)
    except TlogInvalid:
        raise ConfigurationError(f"{what} {path} does not hold a signer key (one line PRIVATE+KEY+..., as "
                                 f"`ledger keys generate` writes)") from None
    if key.signature_type != signature_type:
        whose = "a witness" if signature_type == SIGNATURE_TYPE_COSIGNATURE_V1 else "the log"
        raise ConfigurationError(f"{what} {path} holds a key of signature type 0x{key.signature_type:02x}, not "
                                 f"0x{signature_type:02x} ({whose}'s); "
                                 f"`ledger keys generate` makes one of each")
    return key
