"""`ledger kafka init` and `ledger kafka acls` as the administrator runs them (docs/kafka.md, "Topics" and
"Principals and ACLs"): the topics are created once, with the durability settings, and each named principal gets
exactly its role's ACLs, which `kafka acls` then lists; a replication factor the cluster cannot hold, or one copy
outside development mode, is refused before anything is created."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from ledger.publishing import kafka_client
from ledger.publishing.topics import Principals, Topics, durability_config, role_grants
from ledger.settings import REPLICATION_FACTOR_DEFAULT
from tests.support.cli_runner import Cli
from tests.support.kafka_roles import ADMIN, API, AUDITOR, PROJECTIONS, RELAY, TEAMS, WITNESS, KafkaRoles

pytestmark = pytest.mark.e2e


@pytest.fixture
def cli(tmp_path: Path, kafka_roles: KafkaRoles) -> Cli:
    unique = uuid.uuid4().hex[:10]
    return Cli(env={**os.environ, "LEDGER_KAFKA_TOPIC_PREFIX": f"test-kafka-cli-{unique}",
                    "LEDGER_RELAY_TRANSACTIONAL_ID": f"r-{unique}", "LEDGER_KAFKA_PARTITIONS": "3",
                    "LEDGER_ACCESS_LOG_TRANSACTIONAL_ID": f"a-{unique}"},
               folder=tmp_path, kafka=kafka_roles)


def test_init_creates_the_topics_once_with_their_durability_and_the_teams_dead_letters(
        cli: Cli, kafka_roles: KafkaRoles) -> None:
    prefix = cli.env["LEDGER_KAFKA_TOPIC_PREFIX"]
    team = f"team-{prefix}"
    first = cli.kafka_init({team: TEAMS[0]})
    names = [f"{prefix}.events", f"{prefix}.relay-state", f"{prefix}.checkpoints", f"{prefix}.witness",
             f"{prefix}.access", f"{team}.dead-letters"]
    assert (first["events_topic"], first["state_topic"], first["checkpoints_topic"], first["witness_topic"],
            first["access_topic"], first["dead_letter_topics"]) == (*names[:5], names[5:])
    factor = int(kafka_roles.env(ADMIN).get("LEDGER_KAFKA_REPLICATION_FACTOR", REPLICATION_FACTOR_DEFAULT))
    assert (sorted(first["created"]), first["partitions"], first["replication_factor"]) == (sorted(names), 3, factor)
    assert cli.kafka_init({team: TEAMS[0]})["created"] == []  # idempotent

    assert len(kafka_client.topic_partitions(kafka_roles.admin, names[0])) == 3
    for name in names:
        config = kafka_client.describe_topic_config(kafka_roles.admin, name)
        assert durability_config(factor).items() <= config.items(), name
    for kept_forever in (names[0], names[2], names[3], names[4]):  # events, checkpoints, cosignatures, access log
        assert kafka_client.describe_topic_config(kafka_roles.admin, kept_forever)["retention.ms"] == "-1"
    assert len(kafka_client.topic_partitions(kafka_roles.admin, names[4])) == 1  # the access log: one chain
    assert kafka_client.describe_topic_config(kafka_roles.admin, names[1])["cleanup.policy"] == "compact"

    text = cli("kafka", "init").stdout
    copies = "1 copy" if factor == 1 else f"{factor} copies"
    assert text.startswith(f"topics {names[0]} (3 partitions, kept forever), {names[1]}, {names[2]}, {names[3]}, "
                           f"{names[4]}, {copies} each: already there")


def test_init_refuses_a_factor_the_cluster_cannot_hold_or_one_copy_outside_development_mode(
        cli: Cli, kafka_roles: KafkaRoles) -> None:
    # The administrator's settings with another replication factor: given as they are, not as the role's file says.
    admin = {**cli.env, **kafka_roles.env(ADMIN)}
    admin.pop("LEDGER_DEVELOPMENT_MODE", None)
    prefix = cli.env["LEDGER_KAFKA_TOPIC_PREFIX"]
    brokers = kafka_client.broker_count(kafka_roles.admin)

    too_many = Cli(env={**admin, "LEDGER_KAFKA_REPLICATION_FACTOR": str(brokers + 1)}, folder=cli.folder)
    refused = too_many("kafka", "init", expect=2).stderr
    assert f"LEDGER_KAFKA_REPLICATION_FACTOR={brokers + 1} is more copies than the cluster" in refused
    assert f"has brokers ({brokers}): nothing was created" in refused

    one_copy = Cli(env={**admin, "LEDGER_KAFKA_REPLICATION_FACTOR": "1"}, folder=cli.folder)
    if brokers == 1:
        assert one_copy.json("kafka", "init", expect=2)["error"]["message"].startswith(
            "LEDGER_KAFKA_REPLICATION_FACTOR=1 keeps one copy of the history")
    assert kafka_client.topic_partitions(kafka_roles.admin, f"{prefix}.events") == []


def test_init_grants_each_role_exactly_its_acls_and_acls_lists_them(cli: Cli, kafka_roles: KafkaRoles) -> None:
    # scripts/test always starts the secured broker: a plain one (no authorizer, no ACLs) is a failure, not a skip.
    assert kafka_roles.secured, "run with scripts/test: the ACL checks need the secured broker"
    prefix = cli.env["LEDGER_KAFKA_TOPIC_PREFIX"]
    team = f"team-{prefix}"
    expected = role_grants(Topics.for_prefix(prefix), cli.env["LEDGER_RELAY_TRANSACTIONAL_ID"], Principals(
        relay=f"User:{RELAY}", projections=f"User:{PROJECTIONS}", auditors=(f"User:{AUDITOR}",),
        witnesses=(f"User:{WITNESS}",), teams={team: f"User:{TEAMS[0]}"}, api=f"User:{API}"),
        access_transactional_id=cli.env["LEDGER_ACCESS_LOG_TRANSACTIONAL_ID"])

    assert cli.kafka_init({team: TEAMS[0]})["acls"] == [vars(grant) for grant in expected]
    mine = {prefix, team, cli.env["LEDGER_RELAY_TRANSACTIONAL_ID"], cli.env["LEDGER_ACCESS_LOG_TRANSACTIONAL_ID"]}
    listed = [acl for acl in cli.json("kafka", "acls")
              if any(acl["name"].startswith(name) for name in mine)]
    assert listed == [vars(grant) for grant in expected]
    table = cli("kafka", "acls").stdout
    assert f"{'User:' + RELAY:<28} {'WRITE':<16} {'TOPIC':<17} {prefix}.events\n" in table
    assert f"{prefix}.projection.*  (every name starting so)" in table
