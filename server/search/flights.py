"""Single flight: of concurrent calls for one key, one runs; the others wait for its result.

groupcache's ``singleflight`` is the model: the first caller of a key is its
leader and runs the function; callers of the same key that come while it runs
wait for it and get its result, or its exception. Unlike groupcache each waiter
waits at most its own timeout (its call's deadline), and the leader never waits
for anyone. Once the leader is done the key is free again: a later call runs the
function anew (the caller looks in its cache first; see ``SearchEngine``).

Within one process. Coalescing across servers that share a Redis backend is the
backend's flight (``Backend.fly``), taken by the leader here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

T = TypeVar("T")


class WaitTimeout(TimeoutError):
    """The leader did not finish within the waiter's timeout."""


class Coalescer(Protocol):
    """What the engine needs of a single flight (``Flights``, or one across servers)."""

    def run(self, key: Hashable, call: Callable[[], T], timeout: float) -> tuple[T, bool]:
        """``call()``'s result, run once for concurrent callers of ``key``; and whether
        this caller ran it (False: it waited for another's)."""
        ...


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "result", "waiters")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None
        self.waiters = 0


class Flights:
    """Calls in flight, by key. Thread-safe. No clock: waits are bounded by ``Event.wait``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight[object]] = {}

    def run(self, key: Hashable, call: Callable[[], T], timeout: float) -> tuple[T, bool]:
        """Run ``call`` unless a call for ``key`` is in flight; then wait for that one.

        Args:
            key: what makes two calls the same.
            call: run by the leader, in its own thread.
            timeout: seconds a waiter waits for the leader (the leader is not bounded).
        Returns:
            The result, and True for the leader, False for a waiter.
        Raises:
            WaitTimeout: a waiter's timeout passed first.
            Exception: whatever the leader's call raised, to the leader and every waiter.
        """
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
            else:
                flight.waiters += 1
        if leader:
            try:
                flight.result = call()
                return flight.result, True
            except BaseException as exc:
                flight.error = exc
                raise
            finally:
                with self._lock:
                    del self._flights[key]
                flight.done.set()
        if not flight.done.wait(max(timeout, 0.0)):
            raise WaitTimeout(f"the call in flight did not finish within {timeout:.3f} s")
        if flight.error is not None:
            raise flight.error
        return flight.result, False  # type: ignore[return-value]  # the leader's T

    def waiting(self, key: Hashable) -> int:
        """How many callers wait for the call of ``key`` now in flight (0: none in flight)."""
        with self._lock:
            flight = self._flights.get(key)
            return flight.waiters if flight is not None else 0

    def __len__(self) -> int:
        """Keys in flight now."""
        with self._lock:
            return len(self._flights)
