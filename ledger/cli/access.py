"""The HTTP API's commands for operators: `ledger api ...` (the access log's publisher; docs/audit.md, "The access
log")."""

import signal
import sys
import threading
from typing import Annotated

import typer

from ledger.cli.common import AsJson, print_json, reporting
from projections.access_log import AccessLogPublisher

api_app = typer.Typer(help="The HTTP API's tools: its access log, and development keys and tokens.",
                      no_args_is_help=True)


@api_app.command("publish-access")
def publish_access(
    ctx: typer.Context,
    follow: Annotated[bool, typer.Option("--follow", help="Keep publishing new entries until SIGTERM/SIGINT.")
                      ] = False,
    as_json: AsJson = False,
) -> None:
    """Publish the access log's new entries to its Kafka topic, in order, exactly once; catch up and exit, or
    --follow. `ledger serve` does the same in the background; this is for catching up by hand.

    Exits 8 when the store's chain is broken or the topic's last record is not the store's: nothing more is
    published."""
    stopping = threading.Event()  # SIGTERM/SIGINT: commit or abort the transaction in hand, then report and exit
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    settings = ctx.obj.settings
    with reporting(as_json):
        publisher = AccessLogPublisher.open(settings, log=lambda line: print(line, file=sys.stderr))
    try:
        with reporting(as_json):
            published = publisher.run(follow=follow, stop=stopping.is_set)
    finally:
        publisher.close()
        publisher.store.close()
    seq = publisher.published[0]
    if as_json:
        print_json({"published": published, "seq": seq, "topic": publisher.topic})
    else:
        print(f"published {published:,} access log entries to {publisher.topic}; last seq {seq:,}")
