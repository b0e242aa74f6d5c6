"""How the ledger connects to a secured Kafka cluster, and what each role may do there, without a broker:
`Settings.kafka()` and `Settings.replication_factor_checked()` (ledger/settings.py), the topics' durability settings
and every role's ACLs (`durability_config`, `role_grants` in ledger/publishing/topics.py; docs/kafka.md has the same
table).

Every refusal is a `ConfigurationError` (exit 2) that names the setting to fix and never shows the password.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from ledger import settings as settings_module
from ledger.errors import ConfigurationError
from ledger.publishing import kafka_client
from ledger.publishing.kafka_client import Grant
from ledger.publishing.topics import (
    TEAMS_MAX,
    Principals,
    Topics,
    dead_letter_topic,
    durability_config,
    init_topics,
    role_grants,
)
from ledger.settings import KafkaConnection, Settings

PASSWORD = "pw-Sup3r-s3cret-of-the-relay"  # noqa: S105 - a test's, which must appear in no message and no repr
CONNECTION_VARIABLES = ("BOOTSTRAP_SERVERS", "SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD",
                        "SSL_CAFILE", "SSL_CERTFILE", "SSL_KEYFILE", "REPLICATION_FACTOR")
WARNING = "warning: the ledger is in development mode (LEDGER_DEVELOPMENT_MODE; never in production): "


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment without any Kafka connection setting or development mode, and a process that has not
    yet warned about a development-mode relaxation."""
    for name in CONNECTION_VARIABLES:
        monkeypatch.delenv(f"LEDGER_KAFKA_{name}", raising=False)
    monkeypatch.delenv("LEDGER_DEVELOPMENT_MODE", raising=False)
    monkeypatch.setattr(settings_module, "_warned", set())
    return monkeypatch


@pytest.fixture
def pem(tmp_path: Path) -> dict[str, str]:
    """Files where a CA certificate, a client certificate and its key would be (only their readability is checked)."""
    files = {}
    for name in ("ca.pem", "relay.crt", "relay.key"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
        files[name] = str(tmp_path / name)
    return files


def refused(**values: object) -> str:
    """The message of the ConfigurationError these settings' connection raises; checks it never shows the password."""
    with pytest.raises(ConfigurationError) as refusal:
        Settings(**values).kafka()
    message = str(refusal.value)
    assert refusal.value.exit_code == 2
    assert PASSWORD not in message and PASSWORD not in repr(refusal.value)
    return message


# --- Settings.kafka() -------------------------------------------------------------------------------------------------


def test_by_default_the_connection_is_plain_to_the_local_broker() -> None:
    connection = Settings().kafka()
    assert connection == KafkaConnection(bootstrap_servers=("127.0.0.1:9092",))
    assert (connection.security_protocol, connection.principal) == ("PLAINTEXT", "ANONYMOUS")
    assert Settings(kafka_bootstrap_servers=" k1:9093, k2:9093 ,,k3:9093").kafka().bootstrap_servers == \
        ("k1:9093", "k2:9093", "k3:9093")


def test_sasl_ssl_carries_the_scram_credentials_and_the_ca(pem: dict[str, str]) -> None:
    connection = Settings(kafka_bootstrap_servers="k1:9093", kafka_security_protocol="SASL_SSL",
                          kafka_sasl_username="relay", kafka_sasl_password=PASSWORD,
                          kafka_ssl_cafile=pem["ca.pem"]).kafka()
    assert connection == KafkaConnection(
        bootstrap_servers=("k1:9093",), security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
        sasl_username="relay", sasl_password=PASSWORD, ssl_cafile=pem["ca.pem"])
    assert connection.principal == "User:relay"
    sha256 = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                      kafka_sasl_username="relay", kafka_sasl_password=PASSWORD).kafka()
    assert (sha256.sasl_mechanism, sha256.ssl_cafile) == ("SCRAM-SHA-256", None)  # None: the system's CAs


def test_mutual_tls_carries_the_client_certificate_and_its_key(pem: dict[str, str]) -> None:
    connection = Settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pem["ca.pem"],
                          kafka_ssl_certfile=pem["relay.crt"], kafka_ssl_keyfile=pem["relay.key"]).kafka()
    assert (connection.ssl_cafile, connection.ssl_certfile, connection.ssl_keyfile) == \
        (pem["ca.pem"], pem["relay.crt"], pem["relay.key"])
    assert (connection.sasl_mechanism, connection.sasl_username, connection.sasl_password) == (None, None, None)
    assert connection.principal == f"the certificate {pem['relay.crt']}"


def test_every_option_reaches_the_client_explicitly(pem: dict[str, str]) -> None:
    connection = Settings(kafka_bootstrap_servers="k1:9093,k2:9093", kafka_security_protocol="SASL_SSL",
                          kafka_sasl_username="relay", kafka_sasl_password=PASSWORD, kafka_ssl_cafile=pem["ca.pem"],
                          kafka_ssl_certfile=pem["relay.crt"], kafka_ssl_keyfile=pem["relay.key"]).kafka()
    assert kafka_client._options(connection) == {
        "bootstrap_servers": ["k1:9093", "k2:9093"], "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512", "sasl_plain_username": "relay", "sasl_plain_password": PASSWORD,
        "ssl_cafile": pem["ca.pem"], "ssl_certfile": pem["relay.crt"], "ssl_keyfile": pem["relay.key"],
        "ssl_check_hostname": True}


SASL = {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "relay", "kafka_sasl_password": PASSWORD}
# Settings that do not fit together -> what the refusal must name.
MISFITS: dict[str, tuple[dict[str, object], list[str]]] = {
    "SASL without a password": ({**SASL, "kafka_sasl_password": None},
                                ["LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_SSL", "LEDGER_KAFKA_SASL_PASSWORD"]),
    "SASL with an empty password": ({**SASL, "kafka_sasl_password": ""},
                                    ["LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_SSL", "LEDGER_KAFKA_SASL_PASSWORD"]),
    "SASL without a username": ({**SASL, "kafka_sasl_username": None},
                                ["LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_SSL", "LEDGER_KAFKA_SASL_USERNAME"]),
    "a password without SASL": ({"kafka_sasl_password": PASSWORD},
                                ["LEDGER_KAFKA_SASL_USERNAME/PASSWORD", "LEDGER_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"]),
    "a password over plain TLS": ({"kafka_security_protocol": "SSL", "kafka_sasl_username": "relay",
                                   "kafka_sasl_password": PASSWORD},
                                  ["LEDGER_KAFKA_SASL_USERNAME/PASSWORD", "LEDGER_KAFKA_SECURITY_PROTOCOL=SSL"]),
    "SASL over plaintext outside development mode": (
        {**SASL, "kafka_security_protocol": "SASL_PLAINTEXT"},
        ["LEDGER_KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT", "LEDGER_DEVELOPMENT_MODE=true"]),
    "no bootstrap server": ({"kafka_bootstrap_servers": " , "}, ["LEDGER_KAFKA_BOOTSTRAP_SERVERS"]),
}


@pytest.mark.parametrize("what", MISFITS)
def test_settings_that_do_not_fit_together_are_refused_naming_the_setting(what: str) -> None:
    values, named = MISFITS[what]
    message = refused(**values)
    for name in named:
        assert name in message, message


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SASL_PLAINTEXT"])
@pytest.mark.parametrize("setting", ["kafka_ssl_cafile", "kafka_ssl_certfile", "kafka_ssl_keyfile"])
def test_tls_files_without_tls_are_refused_naming_them(pem: dict[str, str], setting: str, protocol: str,
                                                       environment: pytest.MonkeyPatch) -> None:
    environment.setenv("LEDGER_DEVELOPMENT_MODE", "true")  # lets SASL_PLAINTEXT past its own check
    sasl = {"kafka_sasl_username": "relay", "kafka_sasl_password": PASSWORD} if protocol.startswith("SASL") else {}
    message = refused(kafka_security_protocol=protocol, **{setting: pem["ca.pem"]}, **sasl)
    assert f"LEDGER_{setting.upper()} set but LEDGER_KAFKA_SECURITY_PROTOCOL={protocol} does not use TLS" in message


@pytest.mark.parametrize("given", ["kafka_ssl_certfile", "kafka_ssl_keyfile"])
def test_a_client_certificate_and_its_key_go_together(pem: dict[str, str], given: str) -> None:
    message = refused(kafka_security_protocol="SSL", **{given: pem["relay.crt"]})
    assert "LEDGER_KAFKA_SSL_CERTFILE and LEDGER_KAFKA_SSL_KEYFILE go together" in message


def test_a_tls_file_that_cannot_be_read_is_refused_naming_the_setting_and_the_path(
        pem: dict[str, str], tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    assert refused(kafka_security_protocol="SSL", kafka_ssl_cafile=missing) == \
        f"LEDGER_KAFKA_SSL_CAFILE={missing}: no readable file there"
    assert refused(kafka_security_protocol="SASL_SSL", kafka_sasl_username="relay", kafka_sasl_password=PASSWORD,
                   kafka_ssl_cafile=tmp_path) == f"LEDGER_KAFKA_SSL_CAFILE={tmp_path}: no readable file there"
    assert refused(kafka_security_protocol="SSL", kafka_ssl_certfile=pem["relay.crt"], kafka_ssl_keyfile=missing) \
        == f"LEDGER_KAFKA_SSL_KEYFILE={missing}: no readable file there"
    if os.geteuid() != 0:  # root reads any file
        Path(pem["ca.pem"]).chmod(0)
        assert refused(kafka_security_protocol="SSL", kafka_ssl_cafile=pem["ca.pem"]).startswith(
            "LEDGER_KAFKA_SSL_CAFILE=")


def test_sasl_over_plaintext_is_allowed_in_development_mode_only_with_a_warning(
        environment: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    environment.setenv("LEDGER_DEVELOPMENT_MODE", "true")
    connection = Settings(**{**SASL, "kafka_security_protocol": "SASL_PLAINTEXT"}).kafka()
    assert (connection.security_protocol, connection.principal) == ("SASL_PLAINTEXT", "User:relay")
    err = capsys.readouterr().err
    assert err.startswith(WARNING) and "SASL_PLAINTEXT" in err and PASSWORD not in err


@pytest.mark.parametrize(("setting", "value"), [("kafka_security_protocol", "SASL_TLS"),
                                                 ("kafka_sasl_mechanism", "PLAIN"),
                                                 ("kafka_replication_factor", "0"),
                                                 ("kafka_replication_factor", "8")])
def test_a_value_outside_the_choices_is_refused_naming_the_setting(environment: pytest.MonkeyPatch, setting: str,
                                                                   value: str) -> None:
    environment.setenv(f"LEDGER_{setting.upper()}", value)
    with pytest.raises(ValidationError, match=setting):
        Settings()


def test_the_password_appears_in_no_repr_or_str(pem: dict[str, str]) -> None:
    settings = Settings(**SASL, kafka_ssl_cafile=pem["ca.pem"])
    connection = settings.kafka()
    assert connection.sasl_password == PASSWORD  # it is there, for the client
    for text in (repr(connection), str(connection), f"{connection}", f"{connection!r}", repr([connection]),
                 repr(settings), str(settings), str(settings.kafka_sasl_password)):
        assert PASSWORD not in text, text
    assert repr(connection) == "KafkaConnection(127.0.0.1:9092, SASL_SSL, User:relay)"


# --- the replication factor -------------------------------------------------------------------------------------------


def test_the_replication_factor_is_3_by_default_and_any_of_2_to_7_is_taken_as_given(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert Settings().replication_factor_checked() == 3
    assert [Settings(kafka_replication_factor=n).replication_factor_checked() for n in (2, 5, 7)] == [2, 5, 7]
    assert capsys.readouterr().err == ""


def test_one_copy_is_refused_outside_development_mode_naming_both_settings() -> None:
    with pytest.raises(ConfigurationError) as refusal:
        Settings(kafka_replication_factor=1).replication_factor_checked()
    assert refusal.value.exit_code == 2
    assert str(refusal.value).startswith("LEDGER_KAFKA_REPLICATION_FACTOR=1 keeps one copy of the history")
    assert "LEDGER_DEVELOPMENT_MODE=true" in str(refusal.value)


def test_one_copy_is_allowed_in_development_mode_with_a_warning(environment: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    environment.setenv("LEDGER_DEVELOPMENT_MODE", "true")
    assert Settings(kafka_replication_factor=1).replication_factor_checked() == 1
    err = capsys.readouterr().err
    assert err.startswith(WARNING) and "LEDGER_KAFKA_REPLICATION_FACTOR=1" in err


# --- durability -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("factor", "config"), [
    (1, {"unclean.leader.election.enable": "false"}),
    (2, {"unclean.leader.election.enable": "false"}),  # 2 in sync of 2 would stop writes whenever one broker is away
    (3, {"unclean.leader.election.enable": "false", "min.insync.replicas": "2"}),
    (7, {"unclean.leader.election.enable": "false", "min.insync.replicas": "2"}),
])
def test_every_topic_refuses_unclean_elections_and_needs_two_copies_in_sync_from_three(factor: int,
                                                                                       config: dict[str, str]) -> None:
    assert durability_config(factor) == config


def test_init_refuses_more_teams_than_its_limit_before_touching_the_cluster() -> None:
    nowhere = KafkaConnection.plain(["127.0.0.1:1"])  # the unit tests have no network: any connection would raise
    with pytest.raises(ConfigurationError, match=f"at most {TEAMS_MAX}"):
        init_topics(nowhere, Topics.for_prefix("ledger"), 1, replication_factor=1,
                    teams=[f"team-{n}" for n in range(TEAMS_MAX + 1)])


# --- who may do what (docs/kafka.md, "Principals and ACLs") -----------------------------------------------------------

TOPICS = Topics.for_prefix("ledger")
EVERYONE = Principals(relay="User:relay", projections="User:projections", auditors=("User:auditor", "User:auditor-2"),
                      witnesses=("User:witness-bpk", "User:witness-apindo"),
                      teams={"claims-notifier": "User:claims-notifier", "warehouse-exporter": "User:warehouse"},
                      api="User:api")
GRANTS = role_grants(TOPICS, "ledger-relay", EVERYONE)


def granted(principal: str, grants: list[Grant] = GRANTS) -> set[tuple[str, str, str, str]]:
    return {(g.operation, g.resource, g.name, g.pattern) for g in grants if g.principal == principal}


def allows(grants: list[Grant], principal: str, operation: str, resource: str, name: str) -> bool:
    """What Kafka's StandardAuthorizer decides from these ALLOW ACLs (no DENY, no wildcard): READ or WRITE imply
    DESCRIBE; a LITERAL name matches itself, a PREFIXED one every name that starts with it."""
    implied = {"DESCRIBE": {"DESCRIBE", "READ", "WRITE"}}.get(operation, {operation})
    return any(g.principal == principal and g.operation in implied and g.resource == resource
               and (g.name == name if g.pattern == "LITERAL" else name.startswith(g.name)) for g in grants)


def test_the_relay_writes_the_events_its_checkpoints_and_its_state_in_its_own_transactions() -> None:
    assert granted("User:relay") == {("WRITE", "TOPIC", "ledger.events", "LITERAL"),
                                     ("WRITE", "TOPIC", "ledger.relay-state", "LITERAL"),
                                     ("READ", "TOPIC", "ledger.relay-state", "LITERAL"),
                                     ("WRITE", "TOPIC", "ledger.checkpoints", "LITERAL"),
                                     ("READ", "TOPIC", "ledger.checkpoints", "LITERAL"),
                                     ("WRITE", "TRANSACTIONAL_ID", "ledger-relay", "LITERAL")}
    other_id = role_grants(TOPICS, "relay-7", Principals(relay="User:relay"))
    assert ("WRITE", "TRANSACTIONAL_ID", "relay-7", "LITERAL") in granted("User:relay", other_id)


def test_the_projections_read_the_events_in_their_own_groups() -> None:
    assert granted("User:projections") == {("READ", "TOPIC", "ledger.events", "LITERAL"),
                                           ("READ", "GROUP", "ledger.projection.", "PREFIXED")}


def test_an_auditor_reads_the_events_the_relay_state_the_signed_log_and_the_access_log_and_nothing_else() -> None:
    for auditor in EVERYONE.auditors:
        assert granted(auditor) == {("READ", "TOPIC", "ledger.events", "LITERAL"),
                                    ("READ", "TOPIC", "ledger.relay-state", "LITERAL"),
                                    ("READ", "TOPIC", "ledger.checkpoints", "LITERAL"),
                                    ("READ", "TOPIC", "ledger.witness", "LITERAL"),
                                    ("READ", "TOPIC", "ledger.access", "LITERAL")}


def test_the_api_publishes_the_access_log_in_its_own_transactions_and_reads_what_the_console_shows() -> None:
    assert granted("User:api") == {("WRITE", "TOPIC", "ledger.access", "LITERAL"),
                                   ("READ", "TOPIC", "ledger.access", "LITERAL"),
                                   ("WRITE", "TRANSACTIONAL_ID", "ledger-access-log", "LITERAL"),
                                   ("READ", "TOPIC", "ledger.events", "LITERAL"),
                                   ("READ", "TOPIC", "ledger.relay-state", "LITERAL"),
                                   ("READ", "TOPIC", "ledger.checkpoints", "LITERAL"),
                                   ("READ", "TOPIC", "ledger.witness", "LITERAL")}
    other_id = role_grants(TOPICS, "ledger-relay", Principals(api="User:api"), access_transactional_id="api-7")
    assert ("WRITE", "TRANSACTIONAL_ID", "api-7", "LITERAL") in granted("User:api", other_id)


def test_only_the_api_may_write_the_access_log_and_it_may_write_nothing_else() -> None:
    for principal in {g.principal for g in GRANTS} - {"User:api"}:
        assert not allows(GRANTS, principal, "WRITE", "TOPIC", TOPICS.access), principal
        assert not allows(GRANTS, principal, "WRITE", "TRANSACTIONAL_ID", "ledger-access-log"), principal
    assert {(g.name, g.resource) for g in GRANTS if g.principal == "User:api" and g.operation == "WRITE"} == {
        (TOPICS.access, "TOPIC"), ("ledger-access-log", "TRANSACTIONAL_ID")}
    assert not allows(GRANTS, "User:api", "WRITE", "TRANSACTIONAL_ID", "ledger-relay")


def test_a_witness_reads_the_checkpoints_and_writes_its_cosignatures_but_never_reads_the_events() -> None:
    for witness in EVERYONE.witnesses:
        assert granted(witness) == {("READ", "TOPIC", "ledger.checkpoints", "LITERAL"),
                                    ("READ", "TOPIC", "ledger.witness", "LITERAL"),
                                    ("WRITE", "TOPIC", "ledger.witness", "LITERAL")}


def test_a_team_reads_the_events_in_its_own_groups_and_owns_only_its_dead_letters() -> None:
    assert granted("User:claims-notifier") == {("READ", "TOPIC", "ledger.events", "LITERAL"),
                                               ("READ", "GROUP", "claims-notifier", "LITERAL"),
                                               ("READ", "GROUP", "claims-notifier.", "PREFIXED"),
                                               ("WRITE", "TOPIC", "claims-notifier.dead-letters", "LITERAL"),
                                               ("READ", "TOPIC", "claims-notifier.dead-letters", "LITERAL")}
    assert granted("User:warehouse") == {("READ", "TOPIC", "ledger.events", "LITERAL"),
                                         ("READ", "GROUP", "warehouse-exporter", "LITERAL"),
                                         ("READ", "GROUP", "warehouse-exporter.", "PREFIXED"),
                                         ("WRITE", "TOPIC", "warehouse-exporter.dead-letters", "LITERAL"),
                                         ("READ", "TOPIC", "warehouse-exporter.dead-letters", "LITERAL")}


def test_a_team_cannot_reach_another_teams_groups_or_dead_letters_even_with_a_name_that_starts_alike() -> None:
    teams = {"claims": "User:claims", "claims-notifier": "User:claims-notifier"}
    grants = role_grants(TOPICS, "ledger-relay", Principals(teams=teams))
    assert allows(grants, "User:claims", "READ", "GROUP", "claims.replay-2024")
    for team, other in [("claims", "claims-notifier"), ("claims-notifier", "claims")]:
        principal = teams[team]
        assert allows(grants, principal, "READ", "GROUP", team)
        assert not allows(grants, principal, "READ", "GROUP", other)
        assert not allows(grants, principal, "DESCRIBE", "GROUP", f"{other}.v2")
        assert not allows(grants, principal, "READ", "TOPIC", dead_letter_topic(other))
        assert not allows(grants, principal, "WRITE", "TOPIC", dead_letter_topic(other))


def test_only_the_relay_may_write_the_events_the_checkpoints_or_the_relay_state() -> None:
    for principal in {g.principal for g in GRANTS} - {"User:relay"}:
        for topic in (TOPICS.events, TOPICS.state, TOPICS.checkpoints):
            assert not allows(GRANTS, principal, "WRITE", "TOPIC", topic), principal
    assert not allows(GRANTS, "User:projections", "WRITE", "TRANSACTIONAL_ID", "ledger-relay")


def test_no_one_is_granted_to_create_delete_or_alter_anything_nor_any_cluster_right() -> None:
    assert {g.operation for g in GRANTS} == {"READ", "WRITE"}
    assert {g.resource for g in GRANTS} == {"TOPIC", "GROUP", "TRANSACTIONAL_ID"}
    assert all(g.name and g.name != "*" for g in GRANTS)  # no wildcard resource
    assert not any(g.pattern == "PREFIXED" and g.resource != "GROUP" for g in GRANTS)  # topics are named exactly


def test_a_role_left_out_gets_nothing_and_the_grants_are_sorted_without_repeats() -> None:
    assert role_grants(TOPICS, "ledger-relay", Principals()) == []
    assert {g.principal for g in role_grants(TOPICS, "x", Principals(projections="User:p"))} == {"User:p"}
    # One principal in two roles holds the union, each ACL once.
    both = role_grants(TOPICS, "x", Principals(projections="User:ops", auditors=("User:ops",)))
    assert both == sorted(set(both))
    assert granted("User:ops", both) == {("READ", "TOPIC", "ledger.events", "LITERAL"),
                                         ("READ", "TOPIC", "ledger.relay-state", "LITERAL"),
                                         ("READ", "TOPIC", "ledger.checkpoints", "LITERAL"),
                                         ("READ", "TOPIC", "ledger.witness", "LITERAL"),
                                         ("READ", "TOPIC", "ledger.access", "LITERAL"),
                                         ("READ", "GROUP", "ledger.projection.", "PREFIXED")}
    assert sorted(set(GRANTS)) == GRANTS
