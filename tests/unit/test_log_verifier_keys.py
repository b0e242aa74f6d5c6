"""LEDGER_LOG_VERIFIER_KEYS: the log's public keys the console proves receipts and checks checkpoints with."""

from __future__ import annotations

import pytest

from ledger.errors import ConfigurationError
from ledger.settings import LOG_VERIFIER_KEYS_MAX, Settings
from ledger.tlog.note import SignerKey


def verifier(name: str = "test.bpjs.example/ledger") -> str:
    return SignerKey.generate(name).verifier_key().format()


def test_the_keys_are_read_oldest_first_and_none_means_none() -> None:
    old, new = verifier(), verifier()
    keys = Settings(log_verifier_keys=f" {old} ,{new},").log_verifiers()
    assert [f"{key.name}+{key.key_id:08x}" for key in keys] == [
        "+".join(text.split("+")[:2]) for text in (old, new)]
    assert Settings().log_verifiers() == []


@pytest.mark.parametrize(("value", "problem"), [
    ("not-a-key", "not a log verifier key"),
    (SignerKey.generate("x.example/log").format(), "not a log verifier key"),  # a private key is refused
    (f"{verifier('a.example/log')},{verifier('b.example/log')}", "keys of different logs"),
    (",".join(verifier() for _ in range(LOG_VERIFIER_KEYS_MAX + 1)), f"at most {LOG_VERIFIER_KEYS_MAX}"),
], ids=["not-a-key", "a-private-key", "two-logs", "too-many"])  # fixed ids: the keys are random, and xdist's workers
# must collect the same test names
def test_a_wrong_key_list_is_a_configuration_error_that_shows_no_key(value: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=problem) as raised:
        Settings(log_verifier_keys=value).log_verifiers()
    assert "PRIVATE" not in str(raised.value)
