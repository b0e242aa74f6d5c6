"""The command-line interface: `ledger employer register ...`, `ledger submit FILE` and the rest (docs/cli.md).

This is an entry point, so configuration is read here and only here: `main()` builds one `Settings` from the
LEDGER_* environment and hands it to the commands through typer's context; the ledger is opened on first use.

Every command that writes builds one command model (shape errors become `InvalidInput`), runs it through
`Ledger.execute` under the client's `--command-id` (a repeat answers the first result and writes nothing), and prints
a one-line summary, or the result as one JSON object with `--json`. An operating error (`LedgerError`) prints
`error: <message>` on stderr, or `{"error": {...}}` on stdout with `--json`, and exits with the error's exit code.
A traceback means a bug, never bad input.

The commands live in one module per group of users: `clerks` (the writing commands and what clerks read back),
`operators` (topics, relay, projections, server, consumers, demo), `auditors` (`ledger audit ...`), `books`
(`ledger books ...`: the fund's double-entry books), `access`
(`ledger api ...`: the HTTP API's access log) and `api_tokens` (`ledger api keys|token`: the API's development keys
and tokens).
"""

import sys

import typer
from pydantic import ValidationError

from ledger.cli import access, api_tokens, auditors, books, clerks, collections, operators
from ledger.cli.common import Runtime, print_error
from ledger.commands import (
    describe_validation_error,
)
from ledger.errors import ConfigurationError, InvalidInput, KafkaRefused, KafkaUnavailable
from ledger.private_files import restrict_umask
from ledger.publishing import kafka_client
from ledger.settings import Settings

app = typer.Typer(
    help="The contribution ledger of a workers' social-security fund. Configure with LEDGER_* environment "
         "variables, e.g. LEDGER_SQLITE_PATH=books.db or LEDGER_PERSISTENCE=postgres.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# Registered here, in the order `ledger --help` lists them: the commands, then the groups.
app.add_typer(clerks.employer_app, name="employer")
app.add_typer(clerks.member_app, name="member")
app.add_typer(clerks.contribution_app, name="contribution")
app.add_typer(clerks.yield_app, name="yield")
app.add_typer(clerks.claim_app, name="claim")
app.add_typer(clerks.report_app, name="report")
app.add_typer(collections.billing_app, name="billing")
app.add_typer(collections.payment_app, name="payment")
app.add_typer(books.books_app, name="books")
app.add_typer(operators.kafka_app, name="kafka")
app.add_typer(operators.keys_app, name="keys")
app.add_typer(auditors.audit_app, name="audit")
app.add_typer(operators.projections_app, name="projections")
app.add_typer(operators.consumers_app, name="consumers")
app.add_typer(access.api_app, name="api")
access.api_app.add_typer(api_tokens.keys_app, name="keys")
access.api_app.add_typer(api_tokens.token_app, name="token")
app.command("reverse")(clerks.reverse)
app.command("history")(clerks.history)
app.command("statement")(clerks.statement)
app.command("balance")(clerks.balance)
app.command("submit")(clerks.submit)
app.command("relay")(operators.run_relay)
app.command("serve")(operators.serve)
app.command("generate")(operators.generate)
app.command("demo")(operators.run_demo)


def main() -> None:
    # Everything this process creates is private to its user: files 0600, directories 0700 (ledger.private_files).
    restrict_umask()
    try:
        settings = Settings()
    except ValidationError as error:
        print(f"error: {describe_validation_error('configuration (LEDGER_* environment)', error)}",
              file=sys.stderr)
        raise SystemExit(InvalidInput.exit_code) from None
    except ConfigurationError as error:
        print(f"error: configuration (LEDGER_* environment): {error}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None
    try:
        app(prog_name="ledger", obj=Runtime(settings))
    except (kafka_client.SaslAuthenticationFailedError, kafka_client.AuthorizationError) as error:
        # Raised wherever a command talks to Kafka: said once here, with who was refused and where to look.
        refused = KafkaRefused(f"the Kafka cluster at {settings.kafka_bootstrap_servers} refused "
                               f"{_principal(settings)}: {type(error).__name__}: {error}. A role may do only what "
                               f"its ACLs grant (docs/kafka.md, 'Principals and ACLs')")
        print_error(refused, "--json" in sys.argv[1:])
        raise SystemExit(refused.exit_code) from None
    except kafka_client.KafkaError as error:
        # Anything else from the cluster, once the command's own bounded retries are spent: said once, without a
        # traceback, with where the command looked.
        unavailable = KafkaUnavailable(f"the Kafka cluster at {settings.kafka_bootstrap_servers} did not answer "
                                       f"(connecting as {_principal(settings)}): {type(error).__name__}: "
                                       f"{str(error).removeprefix(type(error).__name__ + ': ')}. Check "
                                       f"LEDGER_KAFKA_BOOTSTRAP_SERVERS and that the brokers run; what was committed "
                                       f"stays, and the command can be run again")
        print_error(unavailable, "--json" in sys.argv[1:])
        raise SystemExit(unavailable.exit_code) from None


def _principal(settings: Settings) -> str:
    try:
        return settings.kafka().principal
    except ConfigurationError:
        return "this principal"


if __name__ == "__main__":
    main()
