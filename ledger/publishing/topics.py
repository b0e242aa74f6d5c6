"""The ledger's Kafka topics and who may do what on them: their names, creating them, and the ACLs of each role
(`ledger kafka init`, `ledger kafka acls`; docs/kafka.md has the same table for operators).

Topics (with the default prefix `ledger`):
- `ledger.events`: every contract event, key = the aggregate id (so one member's or employer's events keep their
  order in one partition), value = the envelope (ledger.publishing.envelope) as JSON, headers `type` and `version`.
  Retention forever.
- `ledger.relay-state`: the relay's position and the Merkle tree's frontier, compacted, one partition.
- `ledger.checkpoints`: the signed checkpoints of the Merkle tree over the events (ledger.publishing.checkpoints),
  one per relay transaction, written in that transaction; one partition, kept forever.
- `ledger.witness`: the witnesses' cosigned checkpoints (`ledger audit witness`); one partition, kept forever.
- `ledger.access`: the access log, every read of a member's data through the API (projections.access_log), in
  order: one partition, kept forever, written only by the API's principal in transactions.
- `TEAM.dead-letters`: one per downstream consumer team, where its subscriber puts the records it could not handle.

Every topic is created with the replication factor of the settings, `min.insync.replicas` of 2 when it keeps 3 or more
copies (so with the producers' acks=all, a record counts as written once two brokers hold it) and unclean leader
election off (a replica that missed records never becomes leader, so an acknowledged record is never lost).

Least privilege: each role gets exactly what its code does, and nobody but the administrator (a super user of the
cluster) may create, alter or delete a topic or delete records, since no ACL here grants CREATE, ALTER, DELETE or
ALTER_CONFIGS.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.errors import ConfigurationError
from ledger.publishing import kafka_client
from ledger.publishing.kafka_client import Grant
from ledger.settings import MIN_INSYNC_REPLICAS, KafkaConnection

EVENT_TOPIC_SUFFIX = "events"
STATE_TOPIC_SUFFIX = "relay-state"
CHECKPOINT_TOPIC_SUFFIX = "checkpoints"
WITNESS_TOPIC_SUFFIX = "witness"
ACCESS_TOPIC_SUFFIX = "access"
# The access log publisher's transactional id when none is given (LEDGER_ACCESS_LOG_TRANSACTIONAL_ID's default).
ACCESS_TRANSACTIONAL_ID_DEFAULT = "ledger-access-log"
PROJECTION_GROUP_INFIX = "projection"  # the projections' consumer groups: `<prefix>.projection.<name>.v<version>`
DEAD_LETTER_SUFFIX = ".dead-letters"
TEAMS_MAX = 100  # consumer teams one `ledger kafka init` provisions: more is a script gone wrong
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"}


@dataclass(frozen=True)
class Topics:
    events: str
    state: str
    checkpoints: str
    witness: str
    access: str
    prefix: str = "ledger"

    @classmethod
    def for_prefix(cls, prefix: str) -> Topics:
        return cls(events=f"{prefix}.{EVENT_TOPIC_SUFFIX}", state=f"{prefix}.{STATE_TOPIC_SUFFIX}",
                   checkpoints=f"{prefix}.{CHECKPOINT_TOPIC_SUFFIX}", witness=f"{prefix}.{WITNESS_TOPIC_SUFFIX}",
                   access=f"{prefix}.{ACCESS_TOPIC_SUFFIX}", prefix=prefix)

    @property
    def projection_groups(self) -> str:
        """The prefix of every consumer group of the projections."""
        return f"{self.prefix}.{PROJECTION_GROUP_INFIX}."


def dead_letter_topic(team: str) -> str:
    """The dead-letter topic of a consumer team whose group id is `team` (the SDK's default)."""
    return f"{team}{DEAD_LETTER_SUFFIX}"


def durability_config(replication_factor: int) -> dict[str, str]:
    """What every ledger topic is created with, for its replication factor (see the module's docstring)."""
    config = {"unclean.leader.election.enable": "false"}
    if replication_factor >= MIN_INSYNC_REPLICAS + 1:
        config["min.insync.replicas"] = str(MIN_INSYNC_REPLICAS)
    return config


def init_topics(kafka: KafkaConnection, topics: Topics, partitions: int, *, replication_factor: int,
                teams: Sequence[str] = ()) -> list[str]:
    """Create the ledger's topics, and each consumer team's dead-letter topic, if missing. Idempotent; returns the
    names it created. Refuses (ConfigurationError) a replication factor larger than the cluster, before creating any."""
    if len(teams) > TEAMS_MAX:
        raise ConfigurationError(f"{len(teams)} consumer teams at once: at most {TEAMS_MAX}")
    brokers = kafka_client.broker_count(kafka)
    if replication_factor > brokers:
        raise ConfigurationError(f"LEDGER_KAFKA_REPLICATION_FACTOR={replication_factor} is more copies than the "
                                 f"cluster at {kafka.servers} has brokers ({brokers}): nothing was created")
    durable = durability_config(replication_factor)
    wanted = [(topics.events, partitions, {**kafka_client.RETENTION_FOREVER, **durable}),
              (topics.state, 1, {**STATE_TOPIC_CONFIG, **durable}),
              (topics.checkpoints, 1, {**kafka_client.RETENTION_FOREVER, **durable}),
              (topics.witness, 1, {**kafka_client.RETENTION_FOREVER, **durable}),
              # One partition: the access log is one chain, published and read in order.
              (topics.access, 1, {**kafka_client.RETENTION_FOREVER, **durable})]
    wanted += [(dead_letter_topic(team), 1, {**kafka_client.RETENTION_FOREVER, **durable}) for team in teams]
    return [name for name, count, config in wanted
            if kafka_client.ensure_topic(kafka, name, count, config, replication_factor=replication_factor)]


@dataclass(frozen=True)
class Principals:
    """Who plays each role, as Kafka principals (`User:relay`); a role left out gets no ACL."""

    relay: str | None = None
    projections: str | None = None
    auditors: tuple[str, ...] = ()
    witnesses: tuple[str, ...] = ()
    teams: Mapping[str, str] | None = None  # consumer team (its group id) -> its principal
    api: str | None = None  # the HTTP API (`ledger serve`): publishes the access log, reads for the console


def role_grants(topics: Topics, transactional_id: str, who: Principals, *,
                access_transactional_id: str = ACCESS_TRANSACTIONAL_ID_DEFAULT) -> list[Grant]:
    """The ACLs of every role named in `who`, and nothing more (docs/kafka.md, "Principals and ACLs").
    `transactional_id` is the relay's, `access_transactional_id` the access log publisher's."""
    grants: list[Grant] = []
    if who.relay:
        # (READ and WRITE imply DESCRIBE, Kafka's rule: no DESCRIBE is granted on its own.)
        grants += [Grant(who.relay, "WRITE", "TOPIC", topics.events),
                   Grant(who.relay, "WRITE", "TOPIC", topics.state),
                   Grant(who.relay, "READ", "TOPIC", topics.state),
                   Grant(who.relay, "WRITE", "TOPIC", topics.checkpoints),
                   # It reads back its last checkpoint on starting, to check its saved tree (`Relay.connect`).
                   Grant(who.relay, "READ", "TOPIC", topics.checkpoints),
                   Grant(who.relay, "WRITE", "TRANSACTIONAL_ID", transactional_id)]
    if who.projections:
        grants += [Grant(who.projections, "READ", "TOPIC", topics.events),
                   Grant(who.projections, "READ", "GROUP", topics.projection_groups, "PREFIXED")]
    for auditor in who.auditors:
        # verify, history, as-of and export read the events; reconcile compares the relay's saved position too;
        # verify and prove read the checkpoints and the witnesses' cosignatures; `audit access` the access log.
        grants += [Grant(auditor, "READ", "TOPIC", topics.events), Grant(auditor, "READ", "TOPIC", topics.state),
                   Grant(auditor, "READ", "TOPIC", topics.checkpoints),
                   Grant(auditor, "READ", "TOPIC", topics.witness),
                   Grant(auditor, "READ", "TOPIC", topics.access)]
    if who.api:
        # The API publishes the access log in transactions, and reads its last record back on starting (the last
        # seq published); the console shows receipts (events, checkpoints, cosignatures) and the relay's lag.
        grants += [Grant(who.api, "WRITE", "TOPIC", topics.access),
                   Grant(who.api, "READ", "TOPIC", topics.access),
                   Grant(who.api, "WRITE", "TRANSACTIONAL_ID", access_transactional_id),
                   Grant(who.api, "READ", "TOPIC", topics.events),
                   Grant(who.api, "READ", "TOPIC", topics.state),
                   Grant(who.api, "READ", "TOPIC", topics.checkpoints),
                   Grant(who.api, "READ", "TOPIC", topics.witness)]
    for witness in who.witnesses:
        # A witness reads the log's checkpoints and adds its cosignatures; it reads the witness topic to find the
        # last checkpoint it cosigned. It never reads the events.
        grants += [Grant(witness, "READ", "TOPIC", topics.checkpoints),
                   Grant(witness, "WRITE", "TOPIC", topics.witness),
                   Grant(witness, "READ", "TOPIC", topics.witness)]
    for team, principal in (who.teams or {}).items():
        grants += [Grant(principal, "READ", "TOPIC", topics.events),
                   Grant(principal, "READ", "GROUP", team),
                   Grant(principal, "READ", "GROUP", f"{team}.", "PREFIXED"),
                   Grant(principal, "WRITE", "TOPIC", dead_letter_topic(team)),
                   Grant(principal, "READ", "TOPIC", dead_letter_topic(team))]
    return sorted(set(grants))
