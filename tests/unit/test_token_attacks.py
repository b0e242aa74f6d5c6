"""Tokens an insider could craft or keep (projections/tokens.py): headers that bring their own key, critical
extensions, claims in another case or shape, scope claims that look like wildcards or paths, a token made to last for
years. Each is refused with `Unauthenticated` (the API's 401); none makes the verifier fetch anything (the unit
tests' network guard would raise another error if it tried)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.errors import Unauthenticated
from ledger.settings import Settings
from projections.access import Role
from projections.tokens import LEEWAY_S, TOKEN_LIFETIME_S_MAX, TokenVerifier, public_jwk, thumbprint
from tests.support.tokens import AUDIENCE, ISSUER, TokenKit

ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}  # ASCII's fullwidth forms: "A" -> U+FF21


@pytest.fixture
def kit(tmp_path: Path) -> TokenKit:
    return TokenKit.create(tmp_path / "keys")


@pytest.fixture
def verifier(kit: TokenKit) -> TokenVerifier:
    return TokenVerifier.from_settings(kit.settings(Settings()))


def now_s() -> int:
    return int(datetime.now(UTC).timestamp())


def claims(**overrides: Any) -> dict[str, Any]:
    base = {"sub": "budi@kc-bekasi", "role": "branch-staff", "branches": ["BEKASI-KOTA"], "iss": ISSUER,
            "aud": AUDIENCE, "iat": now_s(), "exp": now_s() + 900}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def signed(kit: TokenKit, body: dict[str, Any], **headers: Any) -> str:
    """Signed with the trusted key, as the identity provider would sign: what is refused is refused for what it says."""
    key = serialization.load_pem_private_key(kit.key_file.read_bytes(), password=None)
    return jwt.encode(body, key, algorithm="EdDSA", headers={"kid": kit.kid, **headers})


def refused(verifier: TokenVerifier, token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        verifier.verify(token)


def test_a_key_brought_in_the_header_is_never_used(kit: TokenKit, verifier: TokenVerifier) -> None:
    """`jwk`, `jku`, `x5u`, `x5c`: an attacker's own key, or where to fetch one. The verifier looks keys up by kid in
    the configured JWKS only, so a token signed by the attacker's key is refused whatever the header says."""
    attacker = Ed25519PrivateKey.generate()
    jwk = {**public_jwk(attacker.public_key()), "alg": "EdDSA"}
    own_kid = thumbprint(jwk)
    brought = [{"jwk": jwk}, {"jku": "http://127.0.0.1:9/jwks.json"}, {"x5u": "http://127.0.0.1:9/cert.pem"},
               {"x5c": ["MIIBfake"]}, {"jwk": jwk, "jku": "http://127.0.0.1:9/jwks.json"}]
    for headers in brought:
        for kid in (own_kid, kit.kid):  # its own key's kid, and the trusted key's kid
            token = jwt.encode(claims(role="auditor"), attacker, algorithm="EdDSA", headers={**headers, "kid": kid})
            refused(verifier, token, "a key this API does not know" if kid == own_kid else "signature does not verify")


def test_critical_extensions_the_verifier_does_not_know_are_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    """RFC 7515 4.1.11: a token whose `crit` names an extension the recipient does not understand must be refused, even
    with a good signature; and `b64: false` (an unencoded payload, RFC 7797) is not a token of this API."""
    for header in ({"crit": ["exp-in-ms"], "exp-in-ms": True}, {"crit": []}, {"crit": "b64"},
                   {"crit": ["b64"], "b64": False}, {"b64": False}):
        refused(verifier, signed(kit, claims(), **header), "malformed")
    assert verifier.verify(signed(kit, claims())).role is Role.BRANCH_STAFF  # the control


@pytest.mark.parametrize("role", ["Auditor", "AUDITOR", " auditor", "auditor ", "auditor\x00", "auditor\u200b",
                                  "\u0430uditor", ["auditor"], {"auditor": True}, 1, True, None])
def test_a_role_in_another_case_shape_or_script_is_unknown(kit: TokenKit, verifier: TokenVerifier,
                                                           role: Any) -> None:
    refused(verifier, signed(kit, claims(role=role, branches=None)), "role is missing or unknown")


@pytest.mark.parametrize("branches", [["*"], ["BEKASI-KOTA", "*"], [".."], ["../BOGOR"], ["BEKASI-KOTA/.."],
                                      ["bekasi-kota"], ["Bekasi-Kota"], ["BEKASI-KOTA "], [" BEKASI-KOTA"],
                                      ["BEKASI_KOTA"], ["BEKASI-KOTA\n"], ["BEKASI--KOTA"], ["%"], [""],
                                      ["BEKASI".translate(FULLWIDTH)], [["BEKASI-KOTA"]], [None], "BEKASI-KOTA", "*",
                                      {"BEKASI-KOTA": True}])
def test_a_branch_claim_is_a_list_of_branch_codes_exactly(kit: TokenKit, verifier: TokenVerifier,
                                                          branches: Any) -> None:
    """No wildcard, no path, no other case or padding: a branch code is compared as it is, so anything but the
    project's exact codes is refused where the token is read, never matched loosely later."""
    refused(verifier, signed(kit, claims(branches=branches)), "needs a branches claim")


@pytest.mark.parametrize("kpj", ["15000000001".translate(ARABIC_INDIC), "15000000001".translate(FULLWIDTH),
                                 "15000000001 ", " 15000000001", "015000000001", "1500000000", "1500000000*",
                                 15000000001, ["15000000001"], "15000000001\n"])
def test_a_member_service_kpj_claim_is_eleven_ascii_digits(kit: TokenKit, verifier: TokenVerifier, kpj: Any) -> None:
    refused(verifier, signed(kit, claims(role="member-service", branches=None, kpj=kpj)), "needs a kpj claim")


def test_a_token_made_to_last_for_years_is_refused(kit: TokenKit, verifier: TokenVerifier) -> None:
    """A token that leaks is good until it expires: an `exp` further away than any access token lives
    (`TOKEN_LIFETIME_S_MAX`) is refused, whoever signed it, so a stolen long-lived token is no key for years."""
    for exp in (now_s() + 10 * 365 * 86_400, now_s() + TOKEN_LIFETIME_S_MAX + LEEWAY_S + 60, 2**62, 1e300,
                10**30):
        refused(verifier, signed(kit, claims(exp=exp)), "expires too far in the future")
    # A number in a string or a boolean is not a NumericDate (RFC 7519 2), however PyJWT would read it.
    for exp in (str(now_s() + 900), True, [now_s() + 900]):
        refused(verifier, signed(kit, claims(exp=exp)), "exp|malformed")
    # The longest lifetime allowed is accepted.
    assert verifier.verify(signed(kit, claims(exp=now_s() + TOKEN_LIFETIME_S_MAX))).subject == "budi@kc-bekasi"


def test_a_token_stays_expired_however_often_it_is_sent(kit: TokenKit, verifier: TokenVerifier) -> None:
    """Nothing about a token is cached between requests: one past its expiry (and the leeway) is refused every time,
    even after it was accepted before."""
    token = signed(kit, claims(exp=now_s() - LEEWAY_S - 2))
    for _ in range(3):
        refused(verifier, token, "expired")
    fresh = signed(kit, claims())
    assert verifier.verify(fresh) == verifier.verify(fresh)


def test_a_token_of_another_identity_providers_jwks_is_refused_even_under_a_known_kid(tmp_path: Path,
                                                                                     kit: TokenKit) -> None:
    """Another JWKS (another environment's identity provider, a test's keys) whose key id happens to be the one this
    API trusts: the signature decides, and it does not verify."""
    other = TokenKit.create(tmp_path / "other")
    other_key = serialization.load_pem_private_key(other.key_file.read_bytes(), password=None)
    token = jwt.encode(claims(role="auditor", branches=None), other_key, algorithm="EdDSA", headers={"kid": kit.kid})
    refused(TokenVerifier.from_settings(kit.settings(Settings())), token, "signature does not verify")
    # And the other provider's API refuses this one's tokens: the trust is in the keys, not in the claims.
    refused(TokenVerifier.from_settings(other.settings(Settings())), kit.token("auditor"),
            "a key this API does not know")
    assert json.loads(other.jwks_file.read_text())["keys"][0]["kid"] != kit.kid
