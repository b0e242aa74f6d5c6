"""Every operating error a user of the ledger can meet, and every exit code of `ledger` (docs/cli.md, "Exit codes").

Each message says what is wrong and names the thing it is about. The errors of the writing commands mean: nothing was
written. `assert` is kept for programmer errors; these are for the world. The auditor's verdicts (a breach, a
difference, a disagreement) are results, not errors: their exit codes are the `EXIT_*` constants below.
"""

# The auditor's verdicts: the command ran, and found something wrong.
EXIT_BREACH = 8  # `audit verify` found a breach of the topic; `audit verify-export` a file missing or altered
EXIT_DIFFERENCES = 11  # `audit as-of` found the topic's figures and the projections' answers differ
EXIT_UNRECONCILED = 13  # `audit reconcile` found the event store, the relay's state and the topic disagree
# `books check` found an invariant of the books broken or a tie that does not hold: the code of an invariant that
# stops a rebuild (`RebuildStopped`), which the same checks stop since issue 18.
EXIT_BOOKS_UNTIED = 10


class LedgerError(Exception):
    """Base of every operating error. The CLI prints the message and exits with `exit_code`."""

    exit_code = 1


class InvalidInput(LedgerError):
    """A value is malformed or out of range: a NIK, a KPJ, a wage, a date."""

    exit_code = 2


class ConfigurationError(InvalidInput):
    """A LEDGER_* setting is unknown, missing or unsafe: e.g. a NIK hash key that is not set, empty, short or public."""


class ExportRefused(InvalidInput):
    """The audit export's directory is not empty (or not a directory): a bundle is never mixed with other files."""


class NotFound(LedgerError):
    """An employer, member, event or command the input refers to is not in the ledger."""

    exit_code = 3


class AlreadyExists(LedgerError):
    """The fact is already recorded: an employer registered twice, a month paid twice, a second JKM claim."""

    exit_code = 4


class RuleViolation(LedgerError):
    """The input is well formed, but the fund's rules forbid it: a claim above the balance, a claim before exit."""

    exit_code = 5


class CommandIdConflict(LedgerError):
    """A command id was used before with different content; the first use stands."""

    exit_code = 6


class ConcurrencyConflict(LedgerError):
    """Other writers kept changing the same records; the bounded retries ran out. Safe to try again."""

    exit_code = 7


class RelayStateInvalid(LedgerError):
    """The relay's saved state on Kafka cannot be true: it says a notification beyond the event store's last one was
    published, or it is not a relay state at all. The relay publishes nothing until an operator has found out why
    (`ledger audit reconcile`, docs/kafka.md)."""

    exit_code = 12


class NotProjected(LedgerError):
    """A query needs a projection that has not been built yet (`ledger projections run`)."""

    exit_code = 9


class RebuildStopped(LedgerError):
    """A rebuild stopped (an invariant failed, or a record it cannot apply); the live version is unchanged."""

    exit_code = 10


class KafkaRefused(LedgerError):
    """The Kafka cluster refused this process's principal: credentials it does not accept, or no ACL for what the
    command does (docs/kafka.md lists each role's). Nothing was written."""

    exit_code = 14


class KafkaUnavailable(LedgerError):
    """The Kafka cluster did not answer (no broker reachable at the configured address, or not within the bounded
    waits). A Kafka transaction commits whole or not at all: what was committed stays, and the command can be run
    again once the cluster answers."""

    exit_code = 15


class AccessLogUnavailable(LedgerError):
    """A read of a member's data could not be written to the access log (its store refused the write, or did not
    answer within the bounded wait), so the read is refused: nobody reads a member's data unrecorded (API 503)."""

    exit_code = 18


class AccessLogBroken(LedgerError):
    """The access log's chain is broken where it is published from: an entry of the store that does not hash to what
    it says or does not link to the one before, or an access topic whose last record is not the store's entry. The
    publisher stops there, publishing nothing more, until an operator has found out why (docs/audit.md)."""

    exit_code = EXIT_BREACH


class Unprovable(LedgerError):
    """`ledger audit prove` found no checkpoint it can prove the event (or the sizes) against: the event is in no
    checkpoint, or no checkpoint covering it has the root of the topic's events (`ledger audit verify --key` names the
    breach)."""

    exit_code = EXIT_BREACH


class TopicUnreadable(LedgerError):
    """The events topic could not be read to its end, or holds a record that is not a ledger envelope."""


# The read side's refusals (`ledger serve`, the console, and the CLI's reads): who may read what (docs/projections.md,
# "Authentication, roles and scope"). The API answers them with the HTTP status each names.

class Unauthenticated(LedgerError):
    """A request without a valid bearer token: none, malformed, oversized, badly signed, expired, or not issued for
    this API. The API answers 401 with `WWW-Authenticate: Bearer` (`error="invalid_token"` when a token was given).
    The message says which, never the token."""

    def __init__(self, message: str, *, token_given: bool = True) -> None:
        super().__init__(message)
        self.token_given = token_given


class Forbidden(LedgerError):
    """The reader's role or scope does not cover what was asked: a member or branch outside a branch-staff token's
    branches, another member than a member-service token's own, any member or branch for an operator. The API
    answers 403, the same for a KPJ that exists elsewhere and one that exists nowhere."""

    exit_code = 16


class RateLimited(LedgerError):
    """The reader made more reads in the last minute than `READS_PER_MINUTE_MAX` allows (projections/queries.py). The
    API answers 429 with `Retry-After`: the whole seconds until the next read is allowed."""

    exit_code = 17

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


# Raised inside a projection's run or rebuild; the command line reports them as `RebuildStopped` (exit 10).

class ProjectionError(Exception):
    """A record the runner cannot apply: it stops rather than skip an event and leave the view wrong."""


class InvariantViolation(Exception):
    """A projection's invariant failed: the rebuild stops and names the event it could trace the failure to."""

    def __init__(self, projection: str, problem: str, event_id: str | None) -> None:
        self.projection, self.problem, self.event_id = projection, problem, event_id
        super().__init__(f"{projection}: {problem} (event {event_id or 'unknown'})")


# Raised by ledger/tlog (the signed log's formats and proofs); the relay, `ledger audit` and the witness report it as
# their verdict (a breach, a proof that fails, a key refused), so it carries no exit code of its own.

class TlogInvalid(ValueError):
    """A signed note, checkpoint, cosignature, proof bundle, key or frontier is malformed or does not verify. The
    message says which part and why; nothing in it is trusted."""


class ReceiptsBusy(LedgerError):
    """The console is already making as many receipts as it makes at once (each reads the whole events topic): the
    page answers 503, and the download can be tried again in a moment."""
