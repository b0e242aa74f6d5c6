"""The command line, one module per group of users (clerks, operators, auditors), sharing `common`; `main`
assembles them into `ledger`. Run as `ledger ...` or `python -m ledger.cli ...`."""
