"""Unit tests: in memory, no network, no services (tests/unit/conftest.py refuses network connections)."""
