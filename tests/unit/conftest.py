"""Unit tests run without Kafka, PostgreSQL or any network: `scripts/test tests/unit` starts none of them.

So that a unit test cannot come to depend on a service by accident (and then hang or fail only where no broker
runs), every network connection (IPv4 or IPv6) raises while the unit tests run. Local sockets (AF_UNIX), which an
event loop uses to wake itself, stay allowed. The guard is set once for the package and removed after its last test,
so integration tests in the same run are not affected.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

NETWORK_FAMILIES = (socket.AF_INET, socket.AF_INET6)


class NetworkRefused(RuntimeError):
    """Not an OSError: a client that retries on a refused connection would retry this one too, and hang the test."""


def refusing(connect: Callable[..., Any]) -> Callable[..., Any]:
    def guarded(sock: socket.socket, address: Any, *args: Any) -> Any:
        if sock.family in NETWORK_FAMILIES:
            raise NetworkRefused(f"a unit test connects to {address!r}: unit tests run without the network, Kafka or "
                                 f"PostgreSQL; a test that needs them belongs in tests/integration")
        return connect(sock, address, *args)
    return guarded


@pytest.fixture(scope="package", autouse=True)
def no_network() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refusing(socket.socket.connect))
        patch.setattr(socket.socket, "connect_ex", refusing(socket.socket.connect_ex))
        yield
