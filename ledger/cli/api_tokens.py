"""The read API's development tokens: `ledger api keys generate` and `ledger api token issue` (docs/cli.md).

In production the fund's identity provider signs the tokens and publishes its keys (LEDGER_API_JWKS_URL). On a
developer's machine and in the tests, these commands play its part: a local Ed25519 key signs tokens, and its JWKS
file is what `ledger serve` verifies them with (LEDGER_API_JWKS_FILE).
"""

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import AsJson, print_json, reporting
from ledger.errors import AlreadyExists, InvalidInput
from ledger.private_files import FILE_MODE, make_private_dir
from projections.access import Role
from projections.tokens import claims_for, generate_keys, mint, parse_ttl

api_app = typer.Typer(help="Development keys and tokens of the read API (docs/projections.md, \"Authentication\").",
                      no_args_is_help=True)
keys_app = typer.Typer(help="Make a local signing key and its JWKS.", no_args_is_help=True)
token_app = typer.Typer(help="Issue a bearer token signed with the local key.", no_args_is_help=True)
api_app.add_typer(keys_app, name="keys")
api_app.add_typer(token_app, name="token")


def _exists(option: str, path: Path) -> AlreadyExists:
    return AlreadyExists(f"{option} {path} exists: a key file is never overwritten (tokens signed with the old key "
                         f"would no longer verify); choose another path, or remove it deliberately")


def _create(path: Path, option: str) -> int:
    """A new private file at `path` (never an existing one): its descriptor."""
    try:
        make_private_dir(path.parent)
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        raise _exists(option, path) from None
    except OSError as error:
        raise InvalidInput(f"{option} {path}: cannot create it: {error.strerror}") from None


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option("--out", metavar="KEYFILE", show_default=False,
                                      help="where to write the private signing key (PEM, a new file, mode 0600)")],
    jwks: Annotated[Path, typer.Option("--jwks", metavar="JWKSFILE", show_default=False,
                                       help="where to write its public key as a JWKS (a new file, mode 0600 like "
                                            "every file ledger writes), for LEDGER_API_JWKS_FILE")],
    as_json: AsJson = False,
) -> None:
    """Write a new Ed25519 token-signing key to KEYFILE and its JWKS to JWKSFILE; neither file may exist.

    Point LEDGER_API_TOKEN_SIGNING_KEY_FILE at KEYFILE (for `ledger api token issue`) and LEDGER_API_JWKS_FILE at
    JWKSFILE (for `ledger serve`). The key id is the key's RFC 7638 thumbprint."""
    with reporting(as_json):
        if out.resolve() == jwks.resolve():
            raise InvalidInput("--out and --jwks are the same file: the private key and the JWKS go to two files")
        for option, path in (("--out", out), ("--jwks", jwks)):  # both checked before anything is written
            if path.exists() or path.is_symlink():
                raise _exists(option, path)
        pem, document = generate_keys()
        kid = document["keys"][0]["kid"]
        with os.fdopen(_create(out, "--out"), "wb") as file:
            file.write(pem)
        with os.fdopen(_create(jwks, "--jwks"), "w", encoding="utf-8") as file:
            file.write(json.dumps(document, indent=2) + "\n")
    if as_json:
        print_json({"kid": kid, "signing_key_file": str(out), "jwks_file": str(jwks)})
        return
    print(f"wrote the token signing key to {out} (mode 0600: keep it secret) and its JWKS to {jwks}; its key id is "
          f"on stdout", file=sys.stderr)
    print(kid)


ROLES = ", ".join(role.value for role in Role)


@token_app.command("issue")
def token_issue(
    ctx: typer.Context,
    subject: Annotated[str, typer.Option("--subject", show_default=False,
                                         help="who the token is for (its sub): a user or service id")],
    role: Annotated[str, typer.Option("--role", show_default=False, help=f"one of {ROLES}")],
    ttl: Annotated[str, typer.Option("--ttl", show_default=False, help="lifetime: 30s, 15m, 8h, 7d (at most 7d)")],
    branch: Annotated[list[str] | None, typer.Option("--branch", metavar="CODE", show_default=False,
                                                     help="branch-staff: a branch it may read (repeat for more)")
                      ] = None,
    kpj: Annotated[str | None, typer.Option("--kpj", show_default=False,
                                            help="member-service: the KPJ of the member it acts for")] = None,
    as_json: AsJson = False,
) -> None:
    """Print a bearer token signed with LEDGER_API_TOKEN_SIGNING_KEY_FILE, for LEDGER_API_ISSUER and
    LEDGER_API_AUDIENCE: the token alone on stdout (with --json, the token and its claims)."""
    with reporting(as_json):
        claims = claims_for(subject=subject, role=role, branches=branch or (), kpj=kpj)
        seconds = parse_ttl(ttl)
        key, issuer, audience = ctx.obj.settings.api_token_signing()
        token, expires = mint(key, issuer=issuer, audience=audience, claims=claims, ttl_s=seconds,
                              now=datetime.now(UTC))
    if as_json:
        print_json({"token": token, "expires_at": expires.isoformat(), "issuer": issuer, "audience": audience,
                    **claims})
        return
    print(token)
