"""Work done a chunk at a time, so that one large request never holds the lock for long.

A large write or read is a generator that yields whenever it has handled a
chunk of items (``Budget``); the backend lets go of its lock at each yield, lets
other requests in, and checks that the work may go on before it resumes it.
``run`` drives such a generator to its end without yielding the lock, for
callers that do not chunk.
"""

from __future__ import annotations

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
