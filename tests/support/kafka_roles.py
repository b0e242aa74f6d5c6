"""Each piece of the tests connects to Kafka as its own principal, as a deployment does.

`scripts/test` starts a secured broker (`scripts/kafka start`) and passes the folder of its principals' files in
`LEDGER_TEST_KAFKA_PRINCIPALS`: one `<role>.env` per role, with the `LEDGER_KAFKA_*` settings of that role
(docs/kafka.md). Without it (a plain development broker), every role connects the same unauthenticated way, and the
tests still run, proving less.

- `roles.connection("relay")`: the `KafkaConnection` of a role, for tests that call the Python API;
- `roles.env("auditor")`: its `LEDGER_*` variables, for tests that run the CLI;
- `roles.settings("projections", base)`: `base` (a test's stores and topic prefix) connecting as the role, for code
  that takes `Settings` (the projection runner);
- `roles.kcat("auditor")`: kcat's options to connect as the role (by its client certificate on a secured broker);
- `roles.provision(prefix, ...)`: as the administrator, create a test's topics and grant every role its ACLs on them,
  exactly as `ledger kafka init --relay ... --projections ... --auditor ... --api ... --consumer TEAM=...` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.publishing import kafka_client
from ledger.publishing.topics import Principals, Topics, init_topics, role_grants
from ledger.settings import KafkaConnection, Settings

ADMIN, RELAY, PROJECTIONS, AUDITOR, WITNESS, API = "admin", "relay", "projections", "auditor", "witness", "api"
TEAMS = ("claims-notifier", "warehouse-exporter")  # the two consumer teams' principals
ROLES = (ADMIN, RELAY, PROJECTIONS, AUDITOR, WITNESS, API, *TEAMS)
# On a single test broker the administrator creates topics with one copy, which only development mode allows.
SINGLE_BROKER_ADMIN = {"LEDGER_KAFKA_REPLICATION_FACTOR": "1", "LEDGER_DEVELOPMENT_MODE": "true"}
# The settings that say where Kafka is and who connects: what `KafkaRoles.settings` takes from the role.
CONNECTION_FIELDS = ("kafka_bootstrap_servers", "kafka_security_protocol", "kafka_sasl_mechanism",
                     "kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile", "kafka_ssl_certfile",
                     "kafka_ssl_keyfile")


def read_env_file(path: Path) -> dict[str, str]:
    """`NAME=value` lines (comments and blank lines skipped), as scripts/kafka writes them."""
    variables = {}
    for text in path.read_text(encoding="utf-8").splitlines():
        line = text.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            variables[name.strip()] = value.strip()
    return variables


def settings_of(variables: dict[str, str]) -> Settings:
    """Settings from these `LEDGER_*` variables (over the process's own environment)."""
    return Settings(**{name.removeprefix("LEDGER_").lower(): value for name, value in variables.items()})


@dataclass(frozen=True)
class KafkaRoles:
    envs: dict[str, dict[str, str]]  # role -> its LEDGER_KAFKA_* (and, for admin, replication) variables
    secured: bool
    principals_dir: Path | None = None

    @classmethod
    def from_environment(cls, principals_dir: str | None, plain_servers: str) -> KafkaRoles:
        if not principals_dir:
            plain = {"LEDGER_KAFKA_BOOTSTRAP_SERVERS": plain_servers}
            return cls(envs={role: dict(plain, **(SINGLE_BROKER_ADMIN if role == ADMIN else {})) for role in ROLES},
                       secured=False)
        folder = Path(principals_dir)
        return cls(envs={role: read_env_file(folder / f"{role}.env") for role in ROLES}, secured=True,
                   principals_dir=folder)

    def env(self, role: str) -> dict[str, str]:
        return dict(self.envs[role])

    def connection(self, role: str) -> KafkaConnection:
        return settings_of(self.envs[role]).kafka()

    def connection_tls(self, role: str) -> KafkaConnection:
        """The role over the mutual-TLS listener, by its client certificate (`<role>-tls.env`); secured brokers only."""
        assert self.principals_dir is not None, "a plain broker has no mutual-TLS listener"
        return settings_of(read_env_file(self.principals_dir / f"{role}-tls.env")).kafka()

    def settings(self, role: str, base: Settings) -> Settings:
        """`base` (its stores, topic prefix, ...) with the role's connection in place of its own."""
        own = settings_of(self.envs[role])
        return base.model_copy(update={name: getattr(own, name) for name in CONNECTION_FIELDS})

    def kcat(self, role: str) -> list[str]:
        """kcat's options to connect as the role: on a secured broker by its client certificate over the mutual-TLS
        listener (docs/consumers.md: Debian's kcat has failed SCRAM), else the plain address."""
        if not self.secured:
            return ["-b", self.envs[role]["LEDGER_KAFKA_BOOTSTRAP_SERVERS"]]
        tls = self.connection_tls(role)
        return ["-b", tls.servers, "-X", "security.protocol=ssl", "-X", f"ssl.ca.location={tls.ssl_cafile}",
                "-X", f"ssl.certificate.location={tls.ssl_certfile}", "-X", f"ssl.key.location={tls.ssl_keyfile}"]

    @property
    def admin(self) -> KafkaConnection:
        return self.connection(ADMIN)

    def principal(self, role: str) -> str:
        return f"User:{role}"

    def provision(self, prefix: str, *, partitions: int = 3, teams: Sequence[str] = (),
                  transactional_id: str | None = None, team_principal: str = TEAMS[0],
                  access_transactional_id: str | None = None) -> Topics:
        """As the administrator: the topics of `prefix` (and each team's dead-letter topic), and on a secured broker
        every role's ACLs on them; `teams` are consumer group ids, all granted to `team_principal`'s role. The
        relay's transactional id defaults to `relay-<prefix>`, the access log publisher's to `access-<prefix>`."""
        topics = Topics.for_prefix(prefix)
        init_topics(self.admin, topics, partitions, replication_factor=1, teams=list(teams))
        if self.secured:
            who = Principals(relay=self.principal(RELAY), projections=self.principal(PROJECTIONS),
                             auditors=(self.principal(AUDITOR),), witnesses=(self.principal(WITNESS),),
                             teams={team: self.principal(team_principal) for team in teams},
                             api=self.principal(API))
            kafka_client.create_acls(self.admin, role_grants(
                topics, transactional_id or f"relay-{prefix}", who,
                access_transactional_id=access_transactional_id or f"access-{prefix}"))
        return topics
