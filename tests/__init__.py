"""The test suite. Every folder is a package, so that a test module and its helpers are imported by their full module
path (`tests.support.scenario`) from the repository root, which pytest puts on `sys.path` (`pythonpath` in
pyproject.toml): no test reaches into another folder through `sys.path`.

- `tests/unit`: the write side, the rules and the pure functions, in memory, with no network and no services:
  `scripts/test tests/unit` starts neither Kafka nor PostgreSQL.
- `tests/integration`: against the real Kafka broker, SQLite and PostgreSQL that `scripts/test` starts.
- `tests/e2e`: the CLI and the HTTP API as a user runs them, against the same running pieces.
- `tests/support`: helpers the test modules import; it holds no tests.
"""
