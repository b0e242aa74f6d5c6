"""The collections commands: the monthly close that bills dues (`ledger billing`), money received, refunded, imported
from bank statements and matched by hand (`ledger payment`)."""

import typer

billing_app = typer.Typer(help="Close a month: bill every payer its dues.", no_args_is_help=True)
payment_app = typer.Typer(help="Money received from payers: record, import from a bank statement, match, refund.",
                          no_args_is_help=True)


# --- the monthly close ---------------------------------------------------------------------------------------------
# (ledger billing close)


# --- money received and refunded -----------------------------------------------------------------------------------
# (ledger payment receive, ledger payment refund)


# --- bank statements and money held until matched ------------------------------------------------------------------
# (ledger payment import, ledger payment unmatched, ledger payment match)
