"""Helpers the test modules import by their module path (`from tests.support.scenario import new_ledger`); no tests.

- `scenario.py`: a ledger in memory with a fixed clock, and the commands most unit scenarios start with.
- `history.py`: the generated branch history the integration tests read, and copies of its topic.
- `books_history.py`: a small history with every event type that posts to the books, figures worked by hand.
- `cli_runner.py`: the real `ledger` CLI in a subprocess or on a pseudo-terminal (end-to-end tests and the auditor's
  tools), each command as its own principal.
- `kafka_roles.py`: each role's connection to the test broker, and a test's topics and ACLs made as the administrator.
- `unit_only.py`: whether a pytest command line runs unit tests only, so that `scripts/test` starts no service.
"""
