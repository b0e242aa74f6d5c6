"""The settings' safety checks: the NIK hash key the write side publishes with, development mode, and unknown
LEDGER_* variables (ledger/settings.py). The environment is set through pytest's monkeypatch; nothing is read from
disk."""

from __future__ import annotations

import pytest

from ledger import settings as settings_module
from ledger.application import Ledger
from ledger.errors import ConfigurationError, InvalidInput
from ledger.settings import (
    DEVELOPMENT_NIK_HMAC_KEY,
    NIK_HMAC_KEY_BYTES_MIN,
    SCRIPT_VARIABLES,
    Settings,
)
from ledger.tlog.note import SIGNATURE_TYPE_COSIGNATURE_V1, SignerKey

WARNING = ("warning: the ledger is in development mode (LEDGER_DEVELOPMENT_MODE; never in production): NIK hashes are "
           "made with the public development key and are not protected\n")


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """The process environment, without the two variables these tests are about."""
    monkeypatch.delenv("LEDGER_NIK_HMAC_KEY", raising=False)
    monkeypatch.delenv("LEDGER_DEVELOPMENT_MODE", raising=False)
    return monkeypatch


def refusal(**values: object) -> str:
    with pytest.raises(ConfigurationError) as refused:
        Settings(**values).nik_hmac_key_bytes()
    assert refused.value.exit_code == InvalidInput.exit_code == 2
    return str(refused.value)


@pytest.mark.parametrize("key", [None, "", "k" * (NIK_HMAC_KEY_BYTES_MIN - 1), DEVELOPMENT_NIK_HMAC_KEY.decode()],
                         ids=["not set", "empty", "one byte short", "the development key"])
def test_the_nik_key_is_refused_when_missing_empty_short_or_public(environment, key: str | None) -> None:
    if key is not None:
        environment.setenv("LEDGER_NIK_HMAC_KEY", key)
    message = refusal()
    assert message.startswith("LEDGER_NIK_HMAC_KEY ")
    assert "LEDGER_DEVELOPMENT_MODE=true" in message and "secrets.token_hex(32)" in message  # how to fix it
    if key:
        assert key not in message


def test_a_key_of_the_minimum_length_is_used_as_given(environment, capsys) -> None:
    key = "é" * (NIK_HMAC_KEY_BYTES_MIN // 2)  # bytes of its UTF-8 text are what counts: 16 characters, 32 bytes
    environment.setenv("LEDGER_NIK_HMAC_KEY", key)
    assert Settings().nik_hmac_key_bytes() == key.encode()
    short = "é" * (NIK_HMAC_KEY_BYTES_MIN // 2 - 1) + "k"  # one byte short
    assert short not in refusal(nik_hmac_key=short)
    assert capsys.readouterr().err == ""


def test_development_mode_allows_only_the_development_key_and_says_so_once(environment, capsys) -> None:
    environment.setattr(settings_module, "_warned", set())  # a fresh process, as far as the warning knows
    environment.setenv("LEDGER_DEVELOPMENT_MODE", "true")
    settings = Settings()
    assert settings.nik_hmac_key_bytes() == settings.nik_hmac_key_bytes() == DEVELOPMENT_NIK_HMAC_KEY
    assert Settings(nik_hmac_key=DEVELOPMENT_NIK_HMAC_KEY.decode()).nik_hmac_key_bytes() == DEVELOPMENT_NIK_HMAC_KEY
    assert capsys.readouterr().err == WARNING  # once per process
    for weak in ("", "short"):
        refusal(nik_hmac_key=weak)
    assert Settings(nik_hmac_key="k" * 32).nik_hmac_key_bytes() == b"k" * 32  # a real key: no relaxation, no warning
    assert capsys.readouterr().err == ""


def test_development_mode_is_off_unless_set_and_must_be_a_boolean(environment) -> None:
    assert Settings().development_mode is False
    environment.setenv("LEDGER_DEVELOPMENT_MODE", "perhaps")
    with pytest.raises(ValueError, match="development_mode"):
        Settings()


def test_an_unknown_ledger_variable_is_an_error_naming_it(environment) -> None:
    environment.setenv("LEDGER_KAFKA_SASL_TOKEN", "x")
    environment.setenv("ledger_sqlite_pahT", "books.db")  # read case-insensitively, like the settings themselves
    with pytest.raises(ConfigurationError) as refused:
        Settings()
    message = str(refused.value)
    assert message.startswith("unknown setting(s) ")
    assert "LEDGER_KAFKA_SASL_TOKEN" in message and "ledger_sqlite_pahT" in message
    assert "SASL_SSL" not in message


def test_the_scripts_variables_and_every_setting_are_known(environment) -> None:
    for name in SCRIPT_VARIABLES:
        environment.setenv(name, "1")
    environment.setenv("LEDGER_NIK_HMAC_KEY", "k" * 32)
    environment.setenv("LEDGER_DEVELOPMENT_MODE", "false")
    environment.setenv("LEDGER_PROJECTION_STORE", "sqlite")
    Settings()


def test_a_ledger_has_no_default_nik_key() -> None:
    with pytest.raises(TypeError, match="nik_key"):
        Ledger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})  # type: ignore[call-arg]


# --- The log's signing key file (LEDGER_LOG_SIGNING_KEY_FILE). ------------------------------------------------------

def _key_file(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "log.key"
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


def test_the_relay_key_is_required_outside_development_mode(environment, monkeypatch) -> None:
    monkeypatch.delenv("LEDGER_LOG_SIGNING_KEY_FILE", raising=False)
    with pytest.raises(ConfigurationError, match=r"LEDGER_LOG_SIGNING_KEY_FILE is not set.*ledger keys generate"):
        Settings().log_signing_key()


def test_development_mode_runs_without_a_log_key_and_says_so(environment, monkeypatch, capsys) -> None:
    monkeypatch.delenv("LEDGER_LOG_SIGNING_KEY_FILE", raising=False)
    environment.setattr(settings_module, "_warned", set())
    assert Settings(development_mode=True).log_signing_key() is None
    assert "publishes no signed checkpoints" in capsys.readouterr().err


def test_a_log_key_file_is_read_and_checked(environment, tmp_path) -> None:
    key = SignerKey.generate("bpjs.example/ledger")
    path = _key_file(tmp_path, key.format())
    assert Settings(log_signing_key_file=path).log_signing_key() == key


@pytest.mark.parametrize(("text", "mode", "problem"), [
    ("PRIVATE+KEY+bpjs.example/ledger+00000000+AAAA", 0o600, "does not hold a signer key"),
    ("", 0o600, "does not hold a signer key"),
    ("x" * 5000, 0o600, "not a key file"),
    (None, 0o644, "may be read by group or others"),
    (None, 0o640, "may be read by group or others"),
    ("witness", 0o600, "signature type 0x04, not 0x01"),
], ids=["wrong id", "empty", "huge", "world-readable", "group-readable", "a witness key"])
def test_a_bad_log_key_file_is_refused_without_showing_the_key(environment, tmp_path, text, mode, problem) -> None:
    key = SignerKey.generate("bpjs.example/ledger")
    if text is None:
        text = key.format()
    elif text == "witness":
        text = SignerKey.generate("witness.example", SIGNATURE_TYPE_COSIGNATURE_V1).format()
    path = _key_file(tmp_path, text, mode)
    with pytest.raises(ConfigurationError) as refused:
        Settings(log_signing_key_file=path).log_signing_key()
    assert problem in str(refused.value) and str(path) in str(refused.value)
    assert key.format().split("+", 4)[4] not in str(refused.value)  # the seed's base64 (it may hold a +)


def test_a_missing_log_key_file_is_named(environment, tmp_path) -> None:
    with pytest.raises(ConfigurationError, match="cannot be read: FileNotFoundError"):
        Settings(log_signing_key_file=tmp_path / "absent.key").log_signing_key()
