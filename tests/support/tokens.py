"""Bearer tokens for tests: a local signing key and its JWKS in a folder, the settings that make the API trust them,
and tokens for any role, signed as `ledger api token issue` signs them (projections/tokens.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledger.settings import Settings
from projections.tokens import claims_for, generate_keys, mint

ISSUER = "https://id.test.bpjs.example/"
AUDIENCE = "ledger-read-api"
TTL_S = 900


@dataclass(frozen=True)
class TokenKit:
    key_file: Path
    jwks_file: Path
    kid: str

    @classmethod
    def create(cls, folder: Path) -> TokenKit:
        """A new key pair in `folder`: the private key (0600) and its JWKS."""
        folder.mkdir(parents=True, exist_ok=True)
        pem, jwks = generate_keys()
        key_file, jwks_file = folder / "token.key", folder / "jwks.json"
        key_file.write_bytes(pem)
        key_file.chmod(0o600)
        jwks_file.write_text(json.dumps(jwks))
        return cls(key_file, jwks_file, jwks["keys"][0]["kid"])

    def variables(self) -> dict[str, str]:
        """The LEDGER_API_* settings, as environment variables, under which the API trusts this kit's tokens."""
        return {"LEDGER_API_JWKS_FILE": str(self.jwks_file), "LEDGER_API_ISSUER": ISSUER,
                "LEDGER_API_AUDIENCE": AUDIENCE, "LEDGER_API_TOKEN_SIGNING_KEY_FILE": str(self.key_file)}

    def settings(self, base: Settings) -> Settings:
        return base.model_copy(update={"api_jwks_file": self.jwks_file, "api_issuer": ISSUER,
                                       "api_audience": AUDIENCE, "api_token_signing_key_file": self.key_file})

    def token(self, role: str, subject: str | None = None, *, branches: tuple[str, ...] = (), kpj: str | None = None,
              ttl_s: int = TTL_S, now: datetime | None = None) -> str:
        claims = claims_for(subject=subject or f"test-{role}", role=role, branches=branches, kpj=kpj)
        token, _ = mint(self.key_file.read_bytes(), issuer=ISSUER, audience=AUDIENCE, claims=claims, ttl_s=ttl_s,
                        now=now or datetime.now(UTC))
        return token

    def headers(self, role: str, subject: str | None = None, **kwargs: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(role, subject, **kwargs)}"}
