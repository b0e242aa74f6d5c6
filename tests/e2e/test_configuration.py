"""The NIK hash key and the LEDGER_* settings, end to end: what the CLI does with no key, a bad key, a good key, in
development mode, and with a LEDGER_* variable it does not know (docs/cli.md, "Configuration").

The published `nik_hmac` is only as secret as its key: a NIK is a district, a birth date and a 4-digit serial, few
enough candidates for whoever has the key to try them all. So everything that computes or publishes NIK hashes (the
writing commands, `submit`, `generate`, `demo`, `relay`) refuses to start with a key that is not set, empty, shorter
than 32 bytes or the public development key, unless development mode is set explicitly: exit 2, the variable named,
the key never echoed, nothing written.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import uuid
from pathlib import Path

import pytest

from ledger.publishing import kafka_client
from tests.support.cli_runner import NO_KAFKA, Cli
from tests.support.kafka_roles import KafkaRoles

pytestmark = pytest.mark.e2e

NPP = "10012345"
KPJ = "15000000001"
NIK = "3275011505900001"
GOOD_KEY = secrets.token_hex(32)
DEVELOPMENT_KEY = "development-only-nik-key"  # as published in ledger/settings.py: anyone can know it
BAD_KEYS = {"not set": None, "empty": "", "31 bytes": "k" * 31, "the development key": DEVELOPMENT_KEY}
REGISTER = ("employer", "register", "--npp", NPP, "--name", "PT Maju Jaya", "--branch", "BEKASI-KOTA",
            "--kind", "company", "--risk", "low", "--registered-on", "2015-07-01")
ENROLL = ("member", "enroll", "--kpj", KPJ, "--nik", NIK, "--name", "Budi Santoso", "--birth-date", "1990-05-15",
          "--npp", NPP, "--wage", "5000000", "--effective", "2024-03-01")
DEVELOPMENT_WARNING = ("warning: the ledger is in development mode (LEDGER_DEVELOPMENT_MODE; never in production): "
                       "NIK hashes are made with the public development key and are not protected\n")


def cli_with(folder: Path, key: str | None, kafka: KafkaRoles | None = None, **variables: str) -> Cli:
    """The CLI on the folder's store, with this NIK hash key (None: unset), outside development mode unless a
    variable says otherwise; with `kafka`, each command that talks to Kafka as its role."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("LEDGER_NIK_HMAC_KEY", "LEDGER_DEVELOPMENT_MODE")}
    env.update(LEDGER_PERSISTENCE="sqlite", LEDGER_SQLITE_PATH=str(folder / "ledger.db"),
               LEDGER_PROJECTION_SQLITE_PATH=str(folder / "views.db"),
               LEDGER_ACCESS_LOG_SQLITE_PATH=str(folder / "access-log.db"), **variables)
    if key is not None:
        env["LEDGER_NIK_HMAC_KEY"] = key
    return Cli(env=env, folder=folder, kafka=kafka)


def assert_refused(done, key: str | None) -> None:
    assert done.stderr.startswith("error: LEDGER_NIK_HMAC_KEY "), done.stderr
    assert "LEDGER_DEVELOPMENT_MODE" in done.stderr  # how to fix it, both ways
    if key:
        assert key not in done.stderr + done.stdout


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=BAD_KEYS.keys())
def test_writing_commands_refuse_a_missing_empty_short_or_public_key_and_write_nothing(tmp_path: Path,
                                                                                       key: str | None) -> None:
    good, bad = cli_with(tmp_path, GOOD_KEY), cli_with(tmp_path, key)

    assert_refused(bad(*REGISTER, expect=2), key)
    assert_refused(bad("employer", "register", *REGISTER[2:-2], expect=2), key)  # --registered-on: today, no key
    assert not (tmp_path / "ledger.db").exists()  # refused before the store was even opened
    good(*REGISTER)

    assert_refused(bad(*ENROLL, expect=2), key)
    error = bad.json(*ENROLL, expect=2)["error"]
    assert error["type"] == "ConfigurationError" and "LEDGER_NIK_HMAC_KEY" in error["message"]
    enroll_line = {"command": "enroll-member", "id": "enroll-1", "npp": NPP, "effective": "2024-03-01",
                   "member": {"kpj": KPJ, "nik": NIK, "name": "Budi Santoso", "birth_date": "1990-05-15",
                              "wage": 5_000_000}}
    assert_refused(bad("submit", bad.jsonl("enroll.jsonl", [enroll_line]), expect=2), key)
    assert_refused(bad("generate", "--employers", "1", "--members", "1", "--bpu", "0", "--months", "1",
                       expect=2), key)

    assert "no member with KPJ" in good("history", "--kpj", KPJ, expect=3).stderr
    assert [row["type"] for row in good.history("--npp", NPP)] == ["EmployerRegistered"]


def test_a_proper_key_is_the_one_the_published_hash_is_made_with(tmp_path: Path) -> None:
    cli = cli_with(tmp_path, GOOD_KEY)
    assert cli(*REGISTER).stderr == ""
    enrolled = cli(*ENROLL)
    assert enrolled.stderr == ""

    (row,) = cli.history("--kpj", KPJ)
    assert row["data"]["nik_hmac"] == hmac.new(GOOD_KEY.encode(), NIK.encode(), hashlib.sha256).hexdigest()


def test_development_mode_allows_the_development_key_with_a_warning_but_no_other_weak_key(tmp_path: Path) -> None:
    development = cli_with(tmp_path, None, LEDGER_DEVELOPMENT_MODE="true")
    assert development(*REGISTER).stderr == DEVELOPMENT_WARNING
    assert development(*ENROLL).stderr == DEVELOPMENT_WARNING
    (row,) = development.history("--kpj", KPJ)
    assert row["data"]["nik_hmac"] == hmac.new(DEVELOPMENT_KEY.encode(), NIK.encode(), hashlib.sha256).hexdigest()
    assert cli_with(tmp_path, DEVELOPMENT_KEY, LEDGER_DEVELOPMENT_MODE="true")(
        "member", "wage", "--kpj", KPJ, "--wage", "5100000", "--effective", "2024-04-01").stderr == DEVELOPMENT_WARNING

    for weak in ("", "k" * 31):
        assert_refused(cli_with(tmp_path, weak, LEDGER_DEVELOPMENT_MODE="true")(
            "member", "wage", "--kpj", KPJ, "--wage", "5200000", "--effective", "2024-05-01", expect=2), weak)
    assert [r["type"] for r in development.history("--kpj", KPJ)] == ["MemberEnrolled", "MemberWageChanged"]


def test_reading_the_store_needs_no_key(tmp_path: Path) -> None:
    cli_with(tmp_path, GOOD_KEY)(*REGISTER)
    reader = cli_with(tmp_path, None)
    assert reader("history", "--npp", NPP).stderr == ""
    assert reader("balance", "--from-store", KPJ, expect=3).stderr.startswith("error: no member")


def test_an_unknown_ledger_variable_is_an_error_that_names_it(tmp_path: Path) -> None:
    cli = cli_with(tmp_path, GOOD_KEY, LEDGER_KAFKA_SECURITY_PROTOKOL="SASL_SSL", LEDGER_SQLITE_PAHT="books.db")
    refused = cli("history", "--npp", NPP, expect=2)
    assert refused.stderr.startswith("error: configuration (LEDGER_* environment): unknown setting(s) "
                                     "LEDGER_KAFKA_SECURITY_PROTOKOL, LEDGER_SQLITE_PAHT:"), refused.stderr
    assert "SASL_SSL" not in refused.stderr
    assert not (tmp_path / "ledger.db").exists()

    # The scripts' own variables are not settings, and are not errors.
    scripts = cli_with(tmp_path, GOOD_KEY, LEDGER_VENV=".venv", LEDGER_RUN_DIR=".run", LEDGER_CACHE_DIR="cache",
                       LEDGER_TEST_SERVICES="1", LEDGER_TEST_KAFKA_PRINCIPALS=str(tmp_path))
    scripts(*REGISTER)


def test_the_relay_refuses_to_publish_without_a_proper_key(tmp_path: Path, kafka_roles: KafkaRoles) -> None:
    unique = uuid.uuid4().hex[:10]
    topic = {"LEDGER_KAFKA_TOPIC_PREFIX": f"test-key-{unique}", "LEDGER_RELAY_TRANSACTIONAL_ID": f"relay-{unique}"}
    cli_with(tmp_path, GOOD_KEY)(*REGISTER)
    cli_with(tmp_path, GOOD_KEY, kafka_roles, **topic).kafka_init()

    for key in BAD_KEYS.values():
        assert_refused(cli_with(tmp_path, key, kafka_roles, **topic)("relay", expect=2), key)
    ends = kafka_client.end_offsets(kafka_roles.admin, f"test-key-{unique}.events")
    assert ends and set(ends.values()) == {0}  # nothing published

    published = cli_with(tmp_path, GOOD_KEY, kafka_roles, **topic).json("relay")
    assert published["published"] == 1


def test_the_demo_refuses_without_a_key_before_touching_anything(tmp_path: Path) -> None:
    store = tmp_path / "ledger.db"
    store.write_bytes(b"an earlier demo's store")
    # With no Kafka to reach at all: the key is checked before anything else.
    refused = cli_with(tmp_path, None)("demo", expect=2, as_role=NO_KAFKA)
    assert_refused(refused, None)
    assert store.read_bytes() == b"an earlier demo's store"
    assert refused.stdout == ""
