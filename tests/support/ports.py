"""Free loopback ports for the real servers the tests start."""

from __future__ import annotations

import socket
import threading

# The kernel hands out a port again as soon as the socket that probed it is
# closed, so two probes in a row can return the same port, and two servers
# told to listen on it collide (a redis-server given one port for TCP and TLS
# exits at start). Ports returned once are not returned again in this process.
_handed_out: set[int] = set()
_lock = threading.Lock()


def _bound(port: int) -> int | None:
    """The port a probe could bind (``port``, or the kernel's pick for 0), else None."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return None
        bound: int = sock.getsockname()[1]
        return bound


def free_port() -> int:
    """A loopback TCP port nobody listens on right now, never returned before."""
    with _lock:
        while True:
            port = _bound(0)
            if port is not None and port not in _handed_out:
                _handed_out.add(port)
                return port


def claim_port(port: int) -> bool:
    """Take this port too if it is free and was never handed out (a cluster bus port)."""
    with _lock:
        if port in _handed_out or _bound(port) is None:
            return False
        _handed_out.add(port)
        return True
