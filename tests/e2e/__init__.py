"""End-to-end tests: the CLI and the HTTP API as a user runs them, against the running broker and database."""
