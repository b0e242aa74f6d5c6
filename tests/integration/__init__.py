"""Integration tests: against the real Kafka broker, SQLite and PostgreSQL that scripts/test starts."""
