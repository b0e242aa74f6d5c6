"""Bearer tokens (projections/tokens.py): a genuine token names its reader; every forgery an outsider or an insider
could try is refused with `Unauthenticated`, saying why and never repeating the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import ConfigurationError, InvalidInput, Unauthenticated
from ledger.settings import Settings
from projections.access import Reader, Role
from projections.tokens import (
    LEEWAY_S,
    TOKEN_CACHE_S,
    TOKEN_CHARS_MAX,
    TOKEN_TTL_S_MAX,
    TokenVerifier,
    _FileKeys,
    claims_for,
    generate_keys,
    mint,
    parse_ttl,
    thumbprint,
)
from tests.support.tokens import AUDIENCE, ISSUER, TokenKit

NOW = datetime.now(UTC)  # for arithmetic only: what is checked against the clock takes the time when it is made


@pytest.fixture
def kit(tmp_path: Path) -> TokenKit:
    return TokenKit.create(tmp_path / "keys")


@pytest.fixture
def verifier(kit: TokenKit) -> TokenVerifier:
    return TokenVerifier.from_settings(kit.settings(Settings()))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def now_s() -> int:
    return int(datetime.now(UTC).timestamp())


def payload(**overrides: Any) -> dict[str, Any]:
    claims = {"sub": "ani@kc-bekasi", "role": "branch-staff", "branches": ["BEKASI-KOTA"], "iss": ISSUER,
              "aud": AUDIENCE, "iat": now_s(), "exp": now_s() + 3_600}
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def signed(kit: TokenKit, claims: dict[str, Any], **headers: Any) -> str:
    """A token signed with the kit's own key (what the identity provider would sign)."""
    key = serialization.load_pem_private_key(kit.key_file.read_bytes(), password=None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kit.kid, **headers})


def refused(verifier: TokenVerifier, token: str, reason: str) -> str:
    with pytest.raises(Unauthenticated, match=reason) as caught:
        verifier.verify(token)
    assert all(part not in str(caught.value) for part in token.split(".") if len(part) > 8)
    return str(caught.value)


def test_a_genuine_token_names_its_reader_and_scope(kit: TokenKit, verifier: TokenVerifier) -> None:
    assert verifier.verify(signed(kit, payload())) == Reader("ani@kc-bekasi", Role.BRANCH_STAFF,
                                                             frozenset({"BEKASI-KOTA"}))
    portal = verifier.verify(kit.token("member-service", "portal", kpj="15000000001"))
    assert (portal.role, portal.kpj, portal.branches) == (Role.MEMBER_SERVICE, "15000000001", frozenset())
    assert verifier.verify(kit.token("auditor", "budi")).role is Role.AUDITOR
    assert verifier.verify(kit.token("operator", "ops")).role is Role.OPERATOR


def test_a_token_signed_by_another_key_under_the_trusted_kid_is_refused(kit: TokenKit,
                                                                       verifier: TokenVerifier) -> None:
    impostor = Ed25519PrivateKey.generate()
    token = jwt.encode(payload(role="auditor"), impostor, algorithm="EdDSA", headers={"kid": kit.kid})
    refused(verifier, token, "signature does not verify")


def test_a_token_of_an_unknown_kid_or_none_is_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    other = TokenKit.create(kit.key_file.parent.parent / "other")
    refused(verifier, other.token("auditor"), "a key this API does not know")
    key = serialization.load_pem_private_key(kit.key_file.read_bytes(), password=None)
    no_kid = jwt.encode(payload(), key, algorithm="EdDSA")
    refused(verifier, no_kid, "a key this API does not know")


def test_alg_none_is_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    for alg in ("none", "None", "NONE"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT", "kid": kit.kid}).encode())
        token = f"{header}.{b64(json.dumps(payload(role='auditor')).encode())}."
        refused(verifier, token, "an algorithm this API does not accept")


def test_hs256_signed_with_the_public_key_is_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    # The classic confusion: the attacker knows the public key and uses it as an HMAC secret, hoping the verifier
    # hands the same key to HS256. Tried with every form the public key is published in.
    jwk = json.loads(kit.jwks_file.read_text())["keys"][0]
    public = serialization.load_pem_private_key(kit.key_file.read_bytes(), password=None).public_key()
    secrets = [kit.jwks_file.read_bytes(), json.dumps(jwk).encode(), base64.urlsafe_b64decode(jwk["x"] + "="),
               public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)]
    for secret in secrets:
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kit.kid}).encode())
        body = b64(json.dumps(payload(role="auditor")).encode())
        signature = b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
        refused(verifier, f"{header}.{body}.{signature}", "an algorithm this API does not accept")


def test_a_tampered_payload_is_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    header, _, signature = signed(kit, payload()).split(".")
    for change in ({"role": "auditor"}, {"branches": ["BEKASI-KOTA", "BOGOR"]}, {"sub": "someone-else"},
                   {"exp": now_s() + 365 * 86_400}):
        body = b64(json.dumps(payload(**change)).encode())
        refused(verifier, f"{header}.{body}.{signature}", "signature does not verify")


def test_an_expired_token_is_refused_beyond_the_leeway(kit: TokenKit, verifier: TokenVerifier) -> None:
    refused(verifier, signed(kit, payload(exp=now_s() - LEEWAY_S - 5)), "expired")
    # Expired by half the leeway: still accepted (a clock a little behind the identity provider's).
    assert verifier.verify(signed(kit, payload(exp=now_s() - LEEWAY_S // 2))).subject == "ani@kc-bekasi"
    minted_long_ago = kit.token("auditor", ttl_s=60, now=datetime.now(UTC) - timedelta(hours=1))
    refused(verifier, minted_long_ago, "expired")


def test_a_token_not_valid_yet_is_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    refused(verifier, signed(kit, payload(nbf=now_s() + 600)), "not valid yet")
    refused(verifier, signed(kit, payload(iat=now_s() + 600)), "not valid yet")


def test_a_token_for_another_issuer_or_audience_is_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    refused(verifier, signed(kit, payload(iss="https://evil.example/")), "iss is not LEDGER_API_ISSUER")
    refused(verifier, signed(kit, payload(aud="another-api")), "aud is not LEDGER_API_AUDIENCE")
    refused(verifier, signed(kit, payload(aud=["another-api", "third-api"])), "aud is not LEDGER_API_AUDIENCE")
    assert verifier.verify(signed(kit, payload(aud=["another-api", AUDIENCE]))).role is Role.BRANCH_STAFF


@pytest.mark.parametrize("claim", ["exp", "iss", "aud", "sub"])
def test_a_token_without_a_required_claim_is_refused(kit: TokenKit, verifier: TokenVerifier, claim: str) -> None:
    refused(verifier, signed(kit, payload(**{claim: None})), f"no '{claim}' claim")


@pytest.mark.parametrize(("claims", "reason"), [
    ({"role": None}, "role is missing or unknown"),
    ({"role": "admin"}, "role is missing or unknown"),
    ({"role": ["auditor"]}, "role is missing or unknown"),
    ({"branches": None}, "branch-staff token needs a branches claim"),
    ({"branches": []}, "branch-staff token needs a branches claim"),
    ({"branches": "BEKASI-KOTA"}, "branch-staff token needs a branches claim"),
    ({"branches": ["bekasi kota"]}, "branch-staff token needs a branches claim"),
    ({"branches": [f"B{n}" for n in range(401)]}, "more than 400 branches"),
    ({"role": "member-service", "kpj": None}, "member-service token needs a kpj claim"),
    ({"role": "member-service", "kpj": "1500000000"}, "member-service token needs a kpj claim"),
    ({"role": "member-service", "kpj": 15000000001}, "member-service token needs a kpj claim"),
    ({"sub": ""}, "sub is not a subject"),
    ({"sub": "a b"}, "sub is not a subject"),
    ({"sub": "x" * 257}, "sub is not a subject"),
])
def test_a_token_whose_ledger_claims_are_wrong_is_refused(kit: TokenKit, verifier: TokenVerifier,
                                                          claims: dict[str, Any], reason: str) -> None:
    refused(verifier, signed(kit, payload(**claims)), reason)


def test_oversized_and_malformed_tokens_are_refused_before_parsing(kit: TokenKit, verifier: TokenVerifier) -> None:
    padded = signed(kit, payload(padding="x" * TOKEN_CHARS_MAX))
    assert len(padded) > TOKEN_CHARS_MAX
    refused(verifier, padded, f"longer than {TOKEN_CHARS_MAX} characters")
    for junk in ("", "abc", "a.b.c", "é.é.é", "eyJhbGciOiJFZERTQSJ9", "....."):
        refused(verifier, junk, "malformed")


def test_rs256_tokens_verify_with_an_rsa_key_and_only_when_allowed(tmp_path: Path) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    kid = thumbprint(jwk)
    ed_pem, ed_jwks = generate_keys()
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": kid}, *ed_jwks["keys"]]}))
    base = Settings(api_jwks_file=jwks, api_issuer=ISSUER, api_audience=AUDIENCE)
    token = jwt.encode(payload(role="auditor"), rsa_key, algorithm="RS256", headers={"kid": kid})
    assert TokenVerifier.from_settings(base).verify(token).role is Role.AUDITOR
    eddsa_only = TokenVerifier.from_settings(base.model_copy(update={"api_algorithms": "EdDSA"}))
    refused(eddsa_only, token, "an algorithm this API does not accept")
    # An RS256 header over the Ed25519 key's kid: the key decides the algorithm, and it is not RS256.
    ed_key = serialization.load_pem_private_key(ed_pem, password=None)
    ed_token = jwt.encode(payload(), ed_key, algorithm="EdDSA",
                          headers={"kid": ed_jwks["keys"][0]["kid"]})
    _, body, signature = ed_token.split(".")
    swapped = b64(json.dumps({"alg": "RS256", "typ": "JWT", "kid": ed_jwks["keys"][0]["kid"]}).encode())
    refused(TokenVerifier.from_settings(base), f"{swapped}.{body}.{signature}", "not the one of the key it names")
    # And a token signed by the RSA key but naming the Ed25519 key's kid.
    crossed = jwt.encode(payload(), rsa_key, algorithm="RS256", headers={"kid": ed_jwks["keys"][0]["kid"]})
    refused(TokenVerifier.from_settings(base), crossed, "not the one of the key it names")


def test_the_key_id_is_the_rfc_7638_thumbprint() -> None:
    # RFC 8037, appendix A.3: the thumbprint of the example Ed25519 public key.
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
    assert thumbprint(jwk) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    _, jwks = generate_keys()
    key = jwks["keys"][0]
    assert key["kid"] == thumbprint(key) and (key["kty"], key["crv"], key["alg"]) == ("OKP", "Ed25519", "EdDSA")
    assert "d" not in key


def test_minted_tokens_carry_exactly_the_claims_asked_for(kit: TokenKit) -> None:
    claims = claims_for(subject="portal", role="member-service", kpj="15000000001")
    token, expires = mint(kit.key_file.read_bytes(), issuer=ISSUER, audience=AUDIENCE, claims=claims, ttl_s=900,
                          now=NOW)
    body = jwt.decode(token, options={"verify_signature": False})
    assert {k: body[k] for k in ("sub", "role", "kpj", "iss", "aud")} == {
        "sub": "portal", "role": "member-service", "kpj": "15000000001", "iss": ISSUER, "aud": AUDIENCE}
    assert body["exp"] - body["iat"] == 900 and expires == NOW + timedelta(seconds=900) and "branches" not in body
    assert jwt.get_unverified_header(token) == {"alg": "EdDSA", "kid": kit.kid, "typ": "JWT"}


@pytest.mark.parametrize(("fields", "problem"), [
    ({"role": "admin"}, "--role 'admin': choose from auditor, branch-staff, member-service, operator"),
    ({"role": "branch-staff"}, "needs at least one --branch CODE"),
    ({"role": "branch-staff", "branches": ["bekasi"]}, "--branch: branch code must start with an upper-case"),
    ({"role": "member-service"}, "needs --kpj KPJ"),
    ({"role": "member-service", "kpj": "3275011505900001"}, "--kpj: KPJ number must be exactly 11 digits"),
    ({"role": "auditor", "branches": ["BEKASI-KOTA"]}, "--branch is for branch-staff tokens only"),
    ({"role": "auditor", "kpj": "15000000001"}, "--kpj is for member-service tokens only"),
    ({"role": "auditor", "subject": "two words"}, "--subject: 1 to 256 printable characters"),
])
def test_claims_for_a_token_are_checked_like_the_verifier_checks_them(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as caught:
        claims_for(**{"subject": "s", **fields})
    assert "3275011505900001" not in str(caught.value)


def test_ttl_is_a_number_and_a_unit_bounded_by_a_week() -> None:
    assert [parse_ttl(t) for t in ("30s", "15m", "8h", "7d")] == [30, 900, 28_800, 604_800]
    assert parse_ttl("7d") == TOKEN_TTL_S_MAX
    for bad in ("", "15", "0s", "1w", "-5m", "1.5h", "8 h", "99999999s"):
        with pytest.raises(InvalidInput, match="--ttl"):
            parse_ttl(bad)
    with pytest.raises(InvalidInput, match="at most 7d"):
        parse_ttl("8d")


def test_the_api_settings_must_name_one_jwks_an_issuer_and_an_audience(kit: TokenKit) -> None:
    good = kit.settings(Settings())
    assert good.api_token_verification().algorithms == ("EdDSA", "RS256")
    cases = [
        ({"api_jwks_file": None}, "set LEDGER_API_JWKS_FILE .* or LEDGER_API_JWKS_URL"),
        ({"api_jwks_url": "https://id.example/jwks"}, "are both set"),
        ({"api_issuer": None}, "LEDGER_API_ISSUER not set"),
        ({"api_audience": ""}, "LEDGER_API_AUDIENCE not set"),
        ({"api_jwks_file": None, "api_jwks_url": "http://id.example/jwks"}, "must be an https:// URL"),
        ({"api_jwks_file": None, "api_jwks_url": "file:///etc/passwd"}, "must be an https:// URL"),
        ({"api_algorithms": "HS256"}, "LEDGER_API_ALGORITHMS='HS256'"),
        ({"api_algorithms": "EdDSA,none"}, "LEDGER_API_ALGORITHMS"),
        ({"api_algorithms": " , "}, "LEDGER_API_ALGORITHMS"),
    ]
    for update, problem in cases:
        with pytest.raises(ConfigurationError, match=problem):
            TokenVerifier.from_settings(good.model_copy(update=update))


@pytest.mark.parametrize(("document", "problem"), [
    ("not json", "cannot be read as JSON"),
    ({"keys": []}, "not a JWKS"),
    ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}, "has no kid"),
    ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}, "private or shared-secret key"),
    ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
                "d": "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A", "kid": "p"}]}, "private or shared-secret key"),
    ({"keys": [{"kty": "EC", "crv": "P-256", "kid": "e", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}, "is for ES256"),
])
def test_a_jwks_file_of_anything_but_public_eddsa_or_rsa_keys_is_refused(tmp_path: Path, document: Any,
                                                                         problem: str) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    settings = Settings(api_jwks_file=path, api_issuer=ISSUER, api_audience=AUDIENCE)
    with pytest.raises(ConfigurationError, match=problem):
        TokenVerifier.from_settings(settings)


def test_the_signing_key_file_must_be_private(kit: TokenKit) -> None:
    settings = kit.settings(Settings())
    assert settings.api_token_signing()[0] == kit.key_file.read_bytes()
    kit.key_file.chmod(0o640)
    with pytest.raises(ConfigurationError, match="may be read by group or others"):
        settings.api_token_signing()
    with pytest.raises(ConfigurationError, match="LEDGER_API_TOKEN_SIGNING_KEY_FILE is not set"):
        settings.model_copy(update={"api_token_signing_key_file": None}).api_token_signing()


# --- remembered tokens ---------------------------------------------------------------------------------------------

@pytest.fixture
def clocked(kit: TokenKit) -> tuple[TokenVerifier, list[float]]:
    """A verifier whose clock for remembered tokens the test moves (PyJWT's own checks keep the real time)."""
    now = [datetime.now(UTC).timestamp()]
    verifier = TokenVerifier.from_settings(kit.settings(Settings()))
    return TokenVerifier(verifier.config, verifier.keys, clock=lambda: now[0], cache_max=3), now


def withdraw_the_key(verifier: TokenVerifier, tmp_path: Path) -> None:
    """The identity provider's JWKS now holds another key only: every token of the kit's key is refused when
    checked."""
    verifier.keys = _FileKeys(TokenKit.create(tmp_path / "other-keys").jwks_file)


def test_a_verified_token_is_remembered_for_token_cache_s_then_checked_again(
        kit: TokenKit, clocked: tuple[TokenVerifier, list[float]], tmp_path: Path) -> None:
    verifier, now = clocked
    token = kit.token("auditor", "ani")
    reader = verifier.verify(token)
    withdraw_the_key(verifier, tmp_path)
    now[0] += TOKEN_CACHE_S - 1
    assert verifier.verify(token) == reader  # remembered: not checked again
    now[0] += 2
    refused(verifier, token, "signed by a key this API does not know")


def test_a_remembered_token_is_never_used_past_its_exp(kit: TokenKit, clocked: tuple[TokenVerifier, list[float]],
                                                       tmp_path: Path) -> None:
    verifier, now = clocked
    expires = now_s() + 20  # before TOKEN_CACHE_S is up
    token = signed(kit, payload(exp=expires))
    verifier.verify(token)
    withdraw_the_key(verifier, tmp_path)
    now[0] = expires - 1
    verifier.verify(token)
    now[0] = expires
    refused(verifier, token, "signed by a key this API does not know")


def test_only_the_very_token_verified_is_remembered(kit: TokenKit, clocked: tuple[TokenVerifier, list[float]]) -> None:
    verifier, _ = clocked
    token = kit.token("branch-staff", "ani", branches=("BEKASI-KOTA",))
    verifier.verify(token)
    head, body, signature = token.split(".")
    forged_body = b64(json.dumps({**json.loads(base64.urlsafe_b64decode(body + "==")),
                                  "branches": ["BOGOR"]}).encode())
    refused(verifier, f"{head}.{forged_body}.{signature}", "signature does not verify")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    refused(verifier, f"{head}.{body}.{flipped}", "signature")


def test_refused_tokens_are_not_remembered_and_at_most_cache_max_are(
        kit: TokenKit, clocked: tuple[TokenVerifier, list[float]], tmp_path: Path) -> None:
    verifier, _ = clocked
    expired = signed(kit, payload(exp=now_s() - LEEWAY_S - 5))
    refused(verifier, expired, "expired")
    tokens = [kit.token("auditor", f"reader-{n}") for n in range(4)]
    for token in tokens:
        verifier.verify(token)
    verifier.verify(tokens[1])  # used again: the least recently used is now tokens[0]
    withdraw_the_key(verifier, tmp_path)
    refused(verifier, expired, "signed by a key this API does not know")  # was never remembered
    refused(verifier, tokens[0], "signed by a key this API does not know")  # forgotten: 3 at most (cache_max)
    assert [verifier.verify(token).subject for token in tokens[1:]] == ["reader-1", "reader-2", "reader-3"]
