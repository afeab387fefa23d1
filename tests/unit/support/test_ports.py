"""free_port: the ports the tests' servers listen on."""

from __future__ import annotations

from tests.support.ports import claim_port, free_port


def test_a_port_is_never_handed_out_twice() -> None:
    # The kernel reuses a probed port soon after; CI once gave a redis-server
    # the same port for TCP and TLS, and it exited at start.
    ports = [free_port() for _ in range(3000)]
    assert len(set(ports)) == len(ports)


def test_a_port_is_claimed_once() -> None:
    port = free_port()
    assert not claim_port(port)
    bus = port + 1
    while not claim_port(bus):
        bus += 1
    assert not claim_port(bus)
