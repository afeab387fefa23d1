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

R = TypeVar("R")

# A piece of work that yields between chunks and returns its result.
Steps: TypeAlias = Generator[None, None, R]


class Budget:
    """Items left in the current chunk; ``size`` 0 means one unbounded chunk.

    Not thread-safe: one request's work uses it. No clock: it counts items.
    """

    __slots__ = ("left", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.left = size

    def spend(self) -> bool:
        """Count one item; True when the chunk is used up (the caller yields, then goes on)."""
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
    """A lock that tells its holder whether another thread waited for it (``wanted``).

    A request working in chunks lets go of the lock between chunks, and pauses so
    that a waiting thread can take it (Python's lock is not fair) only when one
    did wait: a pause with nobody waiting is time lost, and on a busy machine a
    short sleep can last milliseconds. ``wanted`` is a hint, set by waiters and
    cleared by the holder; one set too late is seen at the next chunk.
    Thread-safe. No clock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.wanted = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock (as ``threading.Lock.acquire``), saying so if it has to wait."""
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        self.wanted = True
        return self._lock.acquire(True, timeout)

    def release(self) -> None:
        """Let go of the lock."""
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()
