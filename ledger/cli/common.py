"""What the commands of every group share: the runtime, option types, printing, and parsing."""

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from enum import Enum
from functools import cached_property
from typing import Annotated, Any, cast

import typer

from ledger import bulk
from ledger.application import Ledger
from ledger.commands import (
    Command,
)
from ledger.errors import InvalidInput, LedgerError
from ledger.formatting import describe
from ledger.publishing.topics import Topics
from ledger.rules import Program
from ledger.settings import Settings
from projections.access import AccessEntry
from projections.queries import AccessLogWriter, ReadSide
from projections.store import ViewStore


@dataclass
class Runtime:
    """What every command shares: the settings read once by `main()`, and the ledger opened on first use."""

    settings: Settings
    clock: Callable[[], date] = date.today  # the ledger's clock: dates that default to today

    @cached_property
    def ledger(self) -> Ledger:
        """The write side, for the writing commands and the relay. The NIK's keyed hash it writes into
        MemberEnrolled is published, so it opens only with the fund's own secret key (or the development key in
        development mode): `nik_hmac_key_bytes` raises `ConfigurationError` (exit 2) before anything is written."""
        key = self.settings.nik_hmac_key_bytes()  # first: `eventsourcing_env` creates the store's file
        return Ledger(env=self.settings.eventsourcing_env(), clock=self.clock, nik_key=key)

    @cached_property
    def reader(self) -> Ledger:
        """The event store for the reading commands (`history`, `balance --from-store`): they hash no NIK, so they
        need no key."""
        return Ledger(env=self.settings.eventsourcing_env(), clock=self.clock, nik_key=None)

    @cached_property
    def views(self) -> ViewStore:
        return ViewStore.open(self.settings)

    @cached_property
    def access_log(self) -> AccessLogWriter:
        """The access log every read of a member's data is recorded in (projections/access_log.py), for `ledger
        balance` and `ledger serve`; opened on first use, so commands that read no member's data never open it."""
        from projections.access_log import AccessLog  # imported here: most commands never open it

        return AccessLog.open(self.settings)

    @cached_property
    def read_side(self) -> ReadSide:
        """The scoped read side for the reading commands, which read as `Reader.local()`. The view store too is opened
        when a question first needs it: `ledger history --kpj` and `balance --from-store` read the event store only,
        and must neither need the projections' database nor create it."""
        return ReadSide(cast(ViewStore, _ViewsOnFirstUse(self)), _AccessLogOnFirstUse(self))


@dataclass
class _ViewsOnFirstUse:
    """The runtime's view store, opened when a question first reads it."""

    runtime: Runtime

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runtime.views, name)


@dataclass
class _AccessLogOnFirstUse:
    """The runtime's access log, opened when a read first records an entry (a branch report records none)."""

    runtime: Runtime

    def record(self, entry: AccessEntry) -> None:
        self.runtime.access_log.record(entry)


def one_of(choices: type[Enum]) -> str:
    return "|".join(choice.value for choice in choices)


PROGRAMS_HELP = f"programs, comma-separated: {','.join(p.value for p in Program)}"
DATE_HELP = "YYYY-MM-DD"

AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON on stdout.")]
CommandId = Annotated[str | None, typer.Option(
    "--command-id", help="Your id for this command: repeating it answers the first result and writes nothing. "
                         "Default: a new random id.")]
Kpj = Annotated[str, typer.Option("--kpj", help="the member's KPJ number, 11 digits")]
Npp = Annotated[str, typer.Option("--npp", help="the employer's NPP number, 8 digits")]


def print_json(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False))


def print_error(error: LedgerError, as_json: bool, **details: Any) -> None:
    if as_json:
        print_json({"error": {"type": type(error).__name__, "message": str(error), **details}})
    else:
        print(f"error: {error}", file=sys.stderr)


@contextmanager
def reporting(as_json: bool) -> Iterator[None]:
    """Turn an operating error into its message and exit code; anything else is a bug and keeps its traceback."""
    try:
        yield
    except LedgerError as error:
        print_error(error, as_json)
        raise typer.Exit(error.exit_code) from None


def execute(ctx: typer.Context, command_type: type[Command], command_id: str | None, as_json: bool,
             **fields: Any) -> None:
    """Build one command (options left out take the model's defaults), run it, and print the result."""
    given = {name: value for name, value in {**fields, "command_id": command_id}.items() if value is not None}
    with reporting(as_json):
        result = ctx.obj.ledger.execute(command_type.build(**given))
    emit(result, as_json)


def emit(result: dict[str, Any], as_json: bool, *, line: int | None = None) -> None:
    """One result: a JSON object, or a summary line; `line` is the line of a submitted file it came from."""
    if as_json:
        print_json(result if line is None else {"line": line, **result})
    else:
        print(describe(result) if line is None else f"line {line}: {describe(result)}")


def today(ctx: typer.Context) -> date:
    runtime: Runtime = ctx.obj
    return runtime.clock()


def checked(validate: Callable[[str], str], value: str) -> str:
    try:
        return validate(value)
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def programs_option(text: str | None) -> list[str] | None:
    """--programs: left out, the default programs; given, at least one. Empty text is a mistake (an unset shell
    variable, say), not a request for the default."""
    if text is None:
        return None
    if not text.strip():
        raise InvalidInput(f"--programs is empty: give at least one of {','.join(p.value for p in Program)}, or "
                           f"leave the option out for the default")
    return bulk.split_programs(text)


# The one form of a date the docs give (`DATE_HELP`): Python's `date.fromisoformat` also reads 20241231 and 2024-W52-2.
DATE_PATTERN = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(option: str, text: str) -> date:
    try:
        if not DATE_PATTERN.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{option} must be a date YYYY-MM-DD, got {text!r}") from None


def topics_for(settings: Settings) -> Topics:
    return Topics.for_prefix(settings.kafka_topic_prefix)


