"""Work done a chunk at a time, so that one large request never holds the lock for long.

A large write or read is a generator that yields whenever it has handled a
chunk of items (``Budget``); the backend lets go of its lock at each yield, lets
other requests in, and checks that the work may go on before it resumes it.
``run`` drives such a generator to its end without yielding the lock, for
callers that do not chunk.
"""

from __future__ import annotations

import threading
from collections.abc import Generator
from typing import TypeAlias, TypeVar

from dicomcache.server.pacing import step

R = TypeVar("R")

# A piece of work that yields between chunks and returns its result.
Steps: TypeAlias = Generator[None, None, R]


class Budget:
    """Items left in the current chunk; ``size`` 0 means one unbounded chunk.

    Each item is a step of the call's work too (``server.pacing``): a large request
    pauses a moment every slice, lock held or not, so that the other calls' threads
    get the interpreter lock in between.
    Not thread-safe: one request's work uses it. No clock of its own: it counts items.
    """

    __slots__ = ("left", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.left = size

    def spend(self) -> bool:
        """Count one item; True when the chunk is used up (the caller yields, then goes on)."""
        step()
        self.left -= 1
        if self.left:
            return False
        self.left = self.size
        return True


def run(steps: Steps[R]) -> R:
    """The result of ``steps``, run to its end in one go."""
    while True:
        try:
            next(steps)
        except StopIteration as stop:
            result: R = stop.value
            return result


class TakingTurns:
    """A lock that tells its holder whether another thread waits for it (``wanted``).

    A request working in chunks lets go of the lock between chunks, and pauses so
    that a waiting thread can take it (Python's lock is not fair) only when one
    waits: a pause with nobody waiting is time lost, and on a busy machine a
    short sleep can last milliseconds. A waiter counts as waiting until it has the
    lock, so the holder pauses at every chunk until it got in: a waiter that did
    not wake within one pause (on a busy host it often does not) is still let in
    at the next. ``wanted`` used to be a flag the first pause cleared, and a waiter
    that missed that pause then waited, unseen, for the rest of the request (issue
    11: small lookups blocked 250-360 ms behind the last second of a
    300,000-instance write).
    Thread-safe. No clock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._count = threading.Lock()  # guards ``_waiting``
        self._waiting = 0

    @property
    def wanted(self) -> bool:
        """Whether a thread waits for the lock now."""
        return self._waiting > 0

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (as ``threading.Lock.acquire``), counted as waiting meanwhile."""
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        with self._count:
            self._waiting += 1
        try:
            return self._lock.acquire(True, timeout)
        finally:
            with self._count:
                self._waiting -= 1

    def release(self) -> None:
        """Let go of the lock."""
        self._lock.release()

    def __enter__(self) -> bool:
        # The free lock taken here, not through ``acquire``: every hit takes it once.
        return self._lock.acquire(False) or self.acquire()

    def __exit__(self, *_: object) -> None:
        self._lock.release()
