"""The errors a user of the ledger can meet. Each message says what is wrong and names the thing it is about.

Every one of them means: nothing was written. `assert` is kept for programmer errors; these are for the world.
"""


class LedgerError(Exception):
    """Base of every operating error. The CLI prints the message and exits with `exit_code`."""

    exit_code = 1


class InvalidInput(LedgerError):
    """A value is malformed or out of range: a NIK, a KPJ, a wage, a date."""

    exit_code = 2


class ConfigurationError(InvalidInput):
    """A LEDGER_* setting is unknown, missing or unsafe: e.g. a NIK hash key that is not set, empty, short or public."""


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
