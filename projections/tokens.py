"""The read API's bearer tokens: verifying them (every request), and making them and their keys for development.

A token is a JWT (RFC 7519) signed by the fund's identity provider, whose public keys the API reads as a JWKS (RFC
7517) from a file or a URL (`LEDGER_API_JWKS_FILE` / `LEDGER_API_JWKS_URL`). PyJWT does the cryptography and the
standard claims; this module decides what it is asked, so that none of JWT's known traps is left to a default:

1. The token is at most `TOKEN_CHARS_MAX` characters of ASCII, checked before anything is parsed.
2. Its header's `alg` must be one of the configured algorithms (`LEDGER_API_ALGORITHMS`, a subset of EdDSA and
   RS256): `none` and the shared-secret HS256 are never accepted, so a token "signed" with nothing, or with the
   public key used as an HMAC secret, is refused before any key is looked at.
3. Its `kid` must name a key of the JWKS, and that key's own algorithm must be the header's: an RSA key never checks
   an EdDSA signature, or the other way round. A URL's JWKS is fetched with PyJWT's `PyJWKClient`, cached for
   `JWKS_CACHE_S`, each fetch bounded by `JWKS_FETCH_TIMEOUT_S`; an unknown `kid` refetches it at most once per
   `JWKS_REFRESH_COOLDOWN_S`, so made-up key ids cannot turn the API into a flood of requests to the provider.
4. The signature, then `exp` (required), `iss` and `aud` (required, equal to the configured ones), `nbf` and `iat` when
   present, with `LEEWAY_S` of clock difference allowed; `exp` must be a number at most `TOKEN_LIFETIME_S_MAX` away.
5. The ledger's own claims: `sub` (who), `role` (one of `projections.access.Role`), `branches` (branch-staff: at least
   one branch code) and `kpj` (member-service: the one member's KPJ). A token that fails any check is
   `Unauthenticated` (the API's 401); its message says which check, and never repeats the token or its claims.

A token that passed every check is remembered, by its whole text (so only that very token, signature and all, is
recognised), for at most `TOKEN_CACHE_S` and never past its `exp`; at most `TOKEN_CACHE_MAX` of them, the least
recently used forgotten first. A reader's next requests then skip the signature check and PyJWT's parsing, which were
about a third of a read's cost (`scripts/bench api`, docs/benchmarks.md). Tokens that fail are not remembered. The
price: a key withdrawn from the JWKS (a URL's, refetched after `JWKS_CACHE_S`) stops its tokens at most
`TOKEN_CACHE_S` later than it would otherwise.

For development and tests, `mint` signs tokens with a local Ed25519 key (`ledger api token issue`), and
`generate_keys` makes such a key and the JWKS that `ledger serve` verifies its tokens with (`ledger api keys
generate`); the key id is the key's RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger import identifiers
from ledger.errors import ConfigurationError, InvalidInput, Unauthenticated
from ledger.settings import API_TOKEN_ALGORITHMS, Settings, TokenVerification
from projections.access import BRANCHES_PER_TOKEN_MAX, SUBJECT_CHARS_MAX, Reader, Role

# An identity provider's access token is a few hundred bytes to a few kilobytes (claims, a 2048-bit RSA signature);
# a longer one is not a token of ours, and is refused before it is parsed.
TOKEN_CHARS_MAX = 8_192
# Clock difference allowed between the identity provider and this machine when checking exp, nbf and iat.
LEEWAY_S = 30
# A JWKS is a handful of public keys (the current one and the next, during a rotation).
JWKS_BYTES_MAX = 1_048_576
JWKS_KEYS_MAX = 64
JWKS_FETCH_TIMEOUT_S = 5.0  # one fetch of a URL's JWKS; a request waits at most this for it
JWKS_CACHE_S = 300.0  # a fetched JWKS is used this long before it is fetched again
JWKS_REFRESH_COOLDOWN_S = 60.0  # an unknown kid refetches the JWKS at most this often
# Verified tokens remembered (see the module's docstring): a minute of a busy API's readers, a few megabytes at most.
TOKEN_CACHE_MAX = 10_000
TOKEN_CACHE_S = 60.0
# The longest a token may live: the verifier refuses one whose exp is further from now than this (and the leeway),
# whoever signed it, so that a token made to last for years (a misconfigured client, a key in the wrong hands) is no
# key for years once it leaks. An identity provider's access tokens live minutes or hours.
TOKEN_LIFETIME_S_MAX = 7 * 86_400
# The lifetime `ledger api token issue` allows a development token: a week is the longest a test or a developer's
# session needs; a token that outlives its purpose is one more thing that can leak.
TOKEN_TTL_S_MAX = TOKEN_LIFETIME_S_MAX
TTL_UNITS_S = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_TTL = re.compile(r"([1-9][0-9]{0,6})([smhd])")
# Printable characters only in a subject: it is written into the access log and shown on the console.
_SUBJECT = re.compile(r"[\x21-\x7e]+")
MINTED_ALGORITHM = "EdDSA"  # what `mint` signs with: Ed25519, like the log's keys


# --- verification ----------------------------------------------------------------------------------------------------

class _FileKeys:
    """The keys of a JWKS file, read once at start (a new key needs a restart of `ledger serve`)."""

    def __init__(self, path: Path) -> None:
        try:
            if path.stat().st_size > JWKS_BYTES_MAX:
                raise ConfigurationError(f"LEDGER_API_JWKS_FILE {path} is larger than {JWKS_BYTES_MAX} bytes: not "
                                         f"a JWKS")
            data = json.loads(path.read_bytes())
        except (OSError, ValueError) as error:
            raise ConfigurationError(f"LEDGER_API_JWKS_FILE {path} cannot be read as JSON: "
                                     f"{getattr(error, 'strerror', None) or error}") from None
        self.keys = jwks_keys(data, f"LEDGER_API_JWKS_FILE {path}")

    def key(self, kid: str) -> jwt.PyJWK | None:
        return self.keys.get(kid)


class _UrlKeys:
    """The keys published at a URL, fetched by PyJWKClient (cached, bounded in time, refetched on an unknown kid at
    most once per cooldown)."""

    def __init__(self, url: str) -> None:
        self.client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=JWKS_CACHE_S, timeout=JWKS_FETCH_TIMEOUT_S,
                                      cooldown_duration=JWKS_REFRESH_COOLDOWN_S)

    def key(self, kid: str) -> jwt.PyJWK | None:
        try:
            return self.client.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError:
            raise Unauthenticated("the bearer token cannot be verified now: the identity provider's keys could not "
                                  "be fetched") from None
        except jwt.PyJWKClientError:
            return None


def jwks_keys(data: Any, what: str) -> dict[str, jwt.PyJWK]:
    """The public keys of a JWKS document, by kid; raises `ConfigurationError` for anything but a JWKS of public
    EdDSA or RSA keys each with a kid."""
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list) or not data["keys"]:
        raise ConfigurationError(f"{what} is not a JWKS: a JSON object with a non-empty list \"keys\"")
    if len(data["keys"]) > JWKS_KEYS_MAX:
        raise ConfigurationError(f"{what} holds more than {JWKS_KEYS_MAX} keys")
    keys: dict[str, jwt.PyJWK] = {}
    for number, entry in enumerate(data["keys"], start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or not entry["kid"]:
            raise ConfigurationError(f"{what}: key {number} has no kid (tokens name their key by it)")
        if "d" in entry or entry.get("kty") == "oct":
            raise ConfigurationError(f"{what}: key {entry['kid']!r} is a private or shared-secret key; a JWKS the "
                                     f"API trusts holds public keys only")
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError) as error:
            raise ConfigurationError(f"{what}: key {entry['kid']!r} is not a usable public key: {error}") from None
        if key.algorithm_name not in API_TOKEN_ALGORITHMS:
            raise ConfigurationError(f"{what}: key {entry['kid']!r} is for {key.algorithm_name}, not one of "
                                     f"{', '.join(API_TOKEN_ALGORITHMS)}")
        keys[entry["kid"]] = key
    return keys


@dataclass
class TokenVerifier:
    """Checks bearer tokens against the configured keys, issuer, audience and algorithms (the module's steps)."""

    config: TokenVerification
    keys: _FileKeys | _UrlKeys
    clock: Callable[[], float] = time.time  # seconds since the epoch, as `exp` counts them: when remembered tokens end
    cache_max: int = TOKEN_CACHE_MAX
    # token -> (its reader, until when it is remembered); in the order of last use. Requests come in a pool of threads.
    _verified: OrderedDict[str, tuple[Reader, float]] = field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TokenVerifier:
        """Raises `ConfigurationError` when the settings are missing or wrong, or the JWKS file is not one."""
        config = settings.api_token_verification()
        keys = _FileKeys(config.jwks_file) if config.jwks_file is not None else _UrlKeys(str(config.jwks_url))
        return cls(config, keys)

    def remembered(self, token: str) -> Reader | None:
        """The reader of a token verified lately and still remembered (see the module's docstring), or None: then
        `verify` it. Never does I/O."""
        now = self.clock()
        with self._lock:
            remembered = self._verified.get(token)
            if remembered is None:
                return None
            if now < remembered[1]:
                self._verified.move_to_end(token)
                return remembered[0]
            del self._verified[token]
            return None

    def verify(self, token: str) -> Reader:
        """The reader a token stands for, or `Unauthenticated` saying which check failed."""
        reader = self.remembered(token)
        if reader is not None:
            return reader
        now = self.clock()
        reader, expires = self._checked(token)
        until = min(expires, now + TOKEN_CACHE_S)
        if until > now:
            with self._lock:
                self._verified[token] = (reader, until)
                while len(self._verified) > self.cache_max:
                    self._verified.popitem(last=False)
        return reader

    def _checked(self, token: str) -> tuple[Reader, float]:
        """Every check of the module's docstring: the token's reader and its `exp`, or `Unauthenticated`."""
        # 1. Bounded, before anything is parsed.
        if len(token) > TOKEN_CHARS_MAX:
            raise Unauthenticated(f"the bearer token is longer than {TOKEN_CHARS_MAX} characters: not a token of "
                                  f"this API")
        if not token.isascii():
            raise Unauthenticated("the bearer token is malformed: not a JWT")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise Unauthenticated("the bearer token is malformed: not a JWT") from None
        # 2. Only the configured public-key algorithms: never `none`, never HS256.
        algorithm = header.get("alg")
        if algorithm not in self.config.algorithms:
            raise Unauthenticated(f"the bearer token is signed with an algorithm this API does not accept (it accepts "
                                  f"{', '.join(self.config.algorithms)})")
        # 3. A known key, of the header's algorithm.
        kid = header.get("kid")
        key = self.keys.key(kid) if isinstance(kid, str) and kid else None
        if key is None:
            raise Unauthenticated("the bearer token is signed by a key this API does not know (its kid is not in the "
                                  "identity provider's JWKS)")
        if key.algorithm_name != algorithm:
            raise Unauthenticated("the bearer token's algorithm is not the one of the key it names")
        # 4. Signature and standard claims, and a lifetime within bounds.
        claims = self._decode(token, key, str(algorithm))
        check_expiry(claims["exp"], time.time())
        # 5. The ledger's claims.
        return reader_of(claims), float(claims["exp"])

    def _decode(self, token: str, key: jwt.PyJWK, algorithm: str) -> dict[str, Any]:
        try:
            return jwt.decode(token, key=key, algorithms=[algorithm], audience=self.config.audience,
                              issuer=self.config.issuer, leeway=LEEWAY_S,
                              options={"require": ["exp", "iss", "aud", "sub"], "verify_signature": True,
                                       "verify_exp": True, "verify_nbf": True, "verify_iat": True,
                                       "verify_aud": True, "verify_iss": True})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the bearer token has expired: get a new one") from None
        except jwt.MissingRequiredClaimError as error:
            raise Unauthenticated(f"the bearer token has no {error.claim!r} claim") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the bearer token is not for this API (its aud is not LEDGER_API_AUDIENCE)") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the bearer token is not from the identity provider this API trusts (its iss is "
                                  "not LEDGER_API_ISSUER)") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the bearer token is not valid yet (nbf or iat in the future)") from None
        except jwt.InvalidSignatureError:
            raise Unauthenticated("the bearer token's signature does not verify") from None
        except jwt.InvalidTokenError:
            raise Unauthenticated("the bearer token is malformed or its claims are invalid") from None


def check_expiry(exp: object, now_s: float) -> None:
    """`Unauthenticated` unless `exp` is a NumericDate (a JSON number: PyJWT would also take a string of digits)
    at most `TOKEN_LIFETIME_S_MAX` (and the leeway) after `now_s`."""
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise Unauthenticated("the bearer token's exp is not a NumericDate (a number of seconds since 1970)")
    if exp > now_s + TOKEN_LIFETIME_S_MAX + LEEWAY_S:
        raise Unauthenticated(f"the bearer token expires too far in the future: this API accepts tokens that expire "
                              f"within {TOKEN_LIFETIME_S_MAX // 86_400} days")


def reader_of(claims: Mapping[str, Any]) -> Reader:
    """The reader a verified token's claims describe, or `Unauthenticated` for claims this API cannot act on."""
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject_ok(subject):
        raise Unauthenticated(f"the bearer token's sub is not a subject: 1 to {SUBJECT_CHARS_MAX} printable "
                              f"characters")
    claimed = claims.get("role")
    if not isinstance(claimed, str) or claimed not in set(Role):
        raise Unauthenticated(f"the bearer token's role is missing or unknown: one of "
                              f"{', '.join(r.value for r in Role)}")
    role = Role(claimed)
    if role is Role.BRANCH_STAFF:
        branches = claims.get("branches")
        if not isinstance(branches, list) or not branches or not all(branch_ok(b) for b in branches):
            raise Unauthenticated("a branch-staff token needs a branches claim: a list of branch codes")
        if len(branches) > BRANCHES_PER_TOKEN_MAX:
            raise Unauthenticated(f"the bearer token names more than {BRANCHES_PER_TOKEN_MAX} branches")
        return Reader(subject=subject, role=role, branches=frozenset(branches))
    if role is Role.MEMBER_SERVICE:
        kpj = claims.get("kpj")
        if not isinstance(kpj, str) or not kpj_ok(kpj):
            raise Unauthenticated("a member-service token needs a kpj claim: the KPJ (11 digits) of the member it "
                                  "acts for")
        return Reader(subject=subject, role=role, kpj=kpj)
    return Reader(subject=subject, role=role)


def subject_ok(subject: str) -> bool:
    return len(subject) <= SUBJECT_CHARS_MAX and _SUBJECT.fullmatch(subject) is not None


def branch_ok(branch: object) -> bool:
    try:
        return isinstance(branch, str) and identifiers.validate_branch_code(branch) == branch
    except ValueError:
        return False


def kpj_ok(kpj: str) -> bool:
    try:
        identifiers.validate_kpj(kpj)
    except ValueError:
        return False
    return True


# --- development tokens and keys -------------------------------------------------------------------------------------

def parse_ttl(text: str) -> int:
    """A lifetime like 30s, 15m, 8h or 7d, in seconds: at least one second, at most `TOKEN_TTL_S_MAX`."""
    match = _TTL.fullmatch(text.strip())
    if match is None:
        raise InvalidInput(f"--ttl {text!r}: give a number and a unit, e.g. 30s, 15m, 8h or 7d")
    seconds = int(match.group(1)) * TTL_UNITS_S[match.group(2)]
    if seconds > TOKEN_TTL_S_MAX:
        raise InvalidInput(f"--ttl {text}: at most {TOKEN_TTL_S_MAX // 86_400}d (a token that outlives its purpose is "
                           f"one more thing that can leak)")
    return seconds


def claims_for(*, subject: str, role: str, branches: Iterable[str] = (), kpj: str | None = None) -> dict[str, Any]:
    """The ledger's claims of a token for `role`, checked as `reader_of` will check them: `InvalidInput` otherwise."""
    if not subject_ok(subject):
        raise InvalidInput(f"--subject: 1 to {SUBJECT_CHARS_MAX} printable characters without spaces")
    try:
        chosen = Role(role)
    except ValueError:
        raise InvalidInput(f"--role {role!r}: choose from {', '.join(r.value for r in Role)}") from None
    claims: dict[str, Any] = {"sub": subject, "role": chosen.value}
    codes = sorted(set(branches))
    if chosen is Role.BRANCH_STAFF:
        claims["branches"] = _branches_claim(codes)
    elif codes:
        raise InvalidInput(f"--branch is for branch-staff tokens only, not {chosen.value}")
    if chosen is Role.MEMBER_SERVICE:
        claims["kpj"] = _kpj_claim(kpj)
    elif kpj is not None:
        raise InvalidInput(f"--kpj is for member-service tokens only, not {chosen.value}")
    return claims


def _branches_claim(codes: list[str]) -> list[str]:
    if not codes:
        raise InvalidInput("a branch-staff token needs at least one --branch CODE: the branches it may read")
    if len(codes) > BRANCHES_PER_TOKEN_MAX:
        raise InvalidInput(f"at most {BRANCHES_PER_TOKEN_MAX} --branch options")
    for code in codes:
        try:
            identifiers.validate_branch_code(code)
        except ValueError as error:
            raise InvalidInput(f"--branch: {error}") from None
    return codes


def _kpj_claim(kpj: str | None) -> str:
    if kpj is None:
        raise InvalidInput("a member-service token needs --kpj KPJ: the member it acts for")
    try:
        return identifiers.validate_kpj(kpj)
    except ValueError as error:
        raise InvalidInput(f"--kpj: {error}") from None


def mint(private_key_pem: bytes, *, issuer: str, audience: str, claims: Mapping[str, Any], ttl_s: int,
         now: datetime) -> tuple[str, datetime]:
    """A token signed with the local Ed25519 key (PEM), with `claims` (from `claims_for`) valid for `ttl_s` from
    `now`: the token and when it expires."""
    assert 0 < ttl_s <= TOKEN_TTL_S_MAX
    key = private_key_of(private_key_pem)
    expires = now + timedelta(seconds=ttl_s)
    payload = {**claims, "iss": issuer, "aud": audience, "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
               "exp": int(expires.timestamp()), "jti": str(uuid.uuid4())}
    headers = {"kid": thumbprint(public_jwk(key.public_key())), "typ": "JWT"}
    return jwt.encode(payload, key, algorithm=MINTED_ALGORITHM, headers=headers), expires


def private_key_of(pem: bytes) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError("LEDGER_API_TOKEN_SIGNING_KEY_FILE does not hold a PEM private key without a "
                                 "password (`ledger api keys generate` writes one)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigurationError("LEDGER_API_TOKEN_SIGNING_KEY_FILE holds a key that is not Ed25519: "
                                 "`ledger api token issue` signs EdDSA tokens")
    return key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The public key as a JWK (RFC 8037: kty OKP, crv Ed25519), without its kid."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw)}


# The members of a public key that its RFC 7638 thumbprint hashes, per key type (RFC 7638 section 3.2, RFC 8037 A.3).
THUMBPRINT_MEMBERS = {"OKP": ("crv", "kty", "x"), "RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}


def thumbprint(jwk: Mapping[str, str]) -> str:
    """The JWK's RFC 7638 thumbprint: SHA-256 of its required members, sorted, as compact JSON; in base64url."""
    members = THUMBPRINT_MEMBERS[jwk["kty"]]
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return _b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def generate_keys() -> tuple[bytes, dict[str, Any]]:
    """A new Ed25519 signing key (PKCS#8 PEM) and the JWKS of its public key, whose kid is its thumbprint."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    jwk = public_jwk(key.public_key())
    return pem, {"keys": [{**jwk, "kid": thumbprint(jwk), "alg": MINTED_ALGORITHM, "use": "sig"}]}
