"""`ledger api keys generate` and `ledger api token issue` as docs/cli.md shows them: a private key and its JWKS, never
overwritten; a token alone on stdout that `ledger serve`'s verifier accepts; bad input refused with a clear error and
nothing printed on stdout. And `ledger serve` does not start without its token settings."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import jwt
import pytest

from ledger.settings import Settings
from projections.access import Role
from projections.tokens import TokenVerifier, thumbprint
from tests.support.cli_runner import Cli
from tests.support.tokens import AUDIENCE, ISSUER

pytestmark = pytest.mark.e2e

API_VARIABLES = ("LEDGER_API_JWKS_FILE", "LEDGER_API_JWKS_URL", "LEDGER_API_ISSUER", "LEDGER_API_AUDIENCE",
                 "LEDGER_API_TOKEN_SIGNING_KEY_FILE", "LEDGER_API_ALGORITHMS")


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    env = {name: value for name, value in os.environ.items() if name not in API_VARIABLES}
    return Cli(env=env, folder=tmp_path)


@pytest.fixture
def keyed(cli: Cli, tmp_path: Path) -> Cli:
    """A CLI whose settings name a key made by `ledger api keys generate`, with its issuer and audience."""
    key, jwks = tmp_path / "keys" / "token.key", tmp_path / "keys" / "jwks.json"
    cli("api", "keys", "generate", "--out", str(key), "--jwks", str(jwks))
    return cli.with_env(LEDGER_API_TOKEN_SIGNING_KEY_FILE=str(key), LEDGER_API_JWKS_FILE=str(jwks),
                        LEDGER_API_ISSUER=ISSUER, LEDGER_API_AUDIENCE=AUDIENCE)


def verifier(cli: Cli) -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(api_jwks_file=Path(cli.env["LEDGER_API_JWKS_FILE"]),
                                                api_issuer=ISSUER, api_audience=AUDIENCE))


def test_keys_generate_writes_a_private_key_and_its_jwks_and_prints_the_kid(cli: Cli, tmp_path: Path) -> None:
    key, jwks = tmp_path / "dev" / "token.key", tmp_path / "dev" / "jwks.json"
    done = cli("api", "keys", "generate", "--out", str(key), "--jwks", str(jwks))
    document = json.loads(jwks.read_text())
    (public,) = document["keys"]
    assert done.stdout == public["kid"] + "\n" and public["kid"] == thumbprint(public)
    assert (public["kty"], public["crv"], public["alg"], public["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
    assert "d" not in public
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    secret = key.read_text().splitlines()[1]
    assert secret not in done.stdout + done.stderr


def test_keys_generate_never_overwrites_either_file(cli: Cli, tmp_path: Path) -> None:
    key, jwks = tmp_path / "token.key", tmp_path / "jwks.json"
    first = cli.json("api", "keys", "generate", "--out", str(key), "--jwks", str(jwks))
    before = key.read_bytes(), jwks.read_bytes()
    other_jwks = tmp_path / "other.json"
    refused = cli("api", "keys", "generate", "--out", str(key), "--jwks", str(other_jwks), expect=4)
    assert f"--out {key} exists" in refused.stderr and not other_jwks.exists()
    refused = cli("api", "keys", "generate", "--out", str(tmp_path / "new.key"), "--jwks", str(jwks), expect=4)
    assert f"--jwks {jwks} exists" in refused.stderr and not (tmp_path / "new.key").exists()
    assert (key.read_bytes(), jwks.read_bytes()) == before and first["kid"] in jwks.read_text()
    same = cli("api", "keys", "generate", "--out", str(tmp_path / "x"), "--jwks", str(tmp_path / "x"), expect=2)
    assert "the same file" in same.stderr and not (tmp_path / "x").exists()


def test_token_issue_prints_a_token_the_api_accepts(keyed: Cli) -> None:
    done = keyed("api", "token", "issue", "--subject", "budi@kc-bekasi", "--role", "branch-staff",
                 "--branch", "BEKASI-KOTA", "--branch", "BOGOR", "--ttl", "15m")
    token = done.stdout.strip()
    assert done.stdout == token + "\n" and token.count(".") == 2  # the token alone: `TOKEN=$(ledger api token ...)`
    reader = verifier(keyed).verify(token)
    assert (reader.subject, reader.role, reader.branches) == ("budi@kc-bekasi", Role.BRANCH_STAFF,
                                                               frozenset({"BEKASI-KOTA", "BOGOR"}))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    portal = keyed.json("api", "token", "issue", "--subject", "portal", "--role", "member-service",
                        "--kpj", "15000000001", "--ttl", "30s")
    assert (portal["role"], portal["kpj"], portal["sub"], portal["issuer"], portal["audience"]) == (
        "member-service", "15000000001", "portal", ISSUER, AUDIENCE)
    assert verifier(keyed).verify(portal["token"]).kpj == "15000000001"


@pytest.mark.parametrize(("options", "problem"), [
    (("--role", "admin"), "--role 'admin': choose from auditor, branch-staff, member-service, operator"),
    (("--role", "auditor", "--ttl", "15"), "--ttl '15': give a number and a unit"),
    (("--role", "auditor", "--ttl", "30d"), "--ttl 30d: at most 7d"),
    (("--role", "branch-staff",), "a branch-staff token needs at least one --branch CODE"),
    (("--role", "branch-staff", "--branch", "bekasi"), "--branch: branch code must start with an upper-case"),
    (("--role", "member-service",), "a member-service token needs --kpj KPJ"),
    (("--role", "member-service", "--kpj", "3275011505900001"), "--kpj: KPJ number must be exactly 11 digits"),
    (("--role", "auditor", "--branch", "BEKASI-KOTA"), "--branch is for branch-staff tokens only"),
])
def test_token_issue_refuses_bad_input_and_prints_no_token(keyed: Cli, options: tuple[str, ...],
                                                           problem: str) -> None:
    args = ["api", "token", "issue", "--subject", "s", *options]
    if "--ttl" not in options:
        args += ["--ttl", "15m"]
    done = keyed(*args, expect=2)
    assert done.stdout == "" and problem in done.stderr
    assert "3275011505900001" not in done.stderr
    if options[:2] == ("--role", "admin"):
        refused = keyed.json(*args, expect=2)
        assert refused["error"]["type"] == "InvalidInput" and problem in refused["error"]["message"]


def test_token_issue_needs_a_private_key_and_the_issuer_and_audience(keyed: Cli, cli: Cli) -> None:
    args = ("api", "token", "issue", "--subject", "s", "--role", "auditor", "--ttl", "1h")
    assert "LEDGER_API_TOKEN_SIGNING_KEY_FILE is not set" in cli(*args, expect=2).stderr
    no_issuer = keyed.with_env(LEDGER_API_ISSUER="")
    assert "LEDGER_API_ISSUER and LEDGER_API_AUDIENCE must be set" in no_issuer(*args, expect=2).stderr
    key = Path(keyed.env["LEDGER_API_TOKEN_SIGNING_KEY_FILE"])
    key.chmod(0o644)
    shared = keyed(*args, expect=2)
    assert "may be read by group or others (mode 644)" in shared.stderr and shared.stdout == ""
    key.chmod(0o600)
    not_a_key = keyed.with_env(LEDGER_API_TOKEN_SIGNING_KEY_FILE=keyed.env["LEDGER_API_JWKS_FILE"])
    assert "does not hold a PEM private key" in not_a_key(*args, expect=2).stderr


def test_serve_does_not_start_without_its_token_settings(keyed: Cli, cli: Cli) -> None:
    assert "set LEDGER_API_JWKS_FILE (a JWKS file) or LEDGER_API_JWKS_URL" in cli("serve", expect=2).stderr
    assert "LEDGER_API_AUDIENCE not set" in keyed.with_env(LEDGER_API_AUDIENCE="")("serve", expect=2).stderr
    both = keyed.with_env(LEDGER_API_JWKS_URL="https://id.example/jwks")
    assert "are both set" in both("serve", expect=2).stderr
    hs = keyed.with_env(LEDGER_API_ALGORITHMS="HS256")
    assert "LEDGER_API_ALGORITHMS='HS256'" in hs("serve", expect=2).stderr
