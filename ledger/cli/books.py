"""The fund's books in double entry (`ledger books`): the chart of accounts, the trial balance at a date, the journal
and an account's running balance over a period, and the check that the books balance and tie to every member and
branch (docs/books.md)."""

import typer

books_app = typer.Typer(help="The fund's books in double entry: chart, trial balance, journal, accounts, check.",
                        no_args_is_help=True)


# --- reading the books: chart, trial-balance, journal, account ------------------------------------------------------


# --- the check: every entry balances, and the books tie to the other projections ------------------------------------
