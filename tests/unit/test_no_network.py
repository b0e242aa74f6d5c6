"""The unit tests' guard (tests/unit/conftest.py): a unit test that connects to a service fails at once, with a reason,
instead of hanging or failing only where no broker runs."""

from __future__ import annotations

import socket

import pytest


def test_a_network_connection_fails_at_once_and_says_where_the_test_belongs() -> None:
    with pytest.raises(RuntimeError, match="belongs in tests/integration"):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_local_sockets_stay_allowed() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"x")
        assert right.recv(1) == b"x"
