"""A clock for tests: it moves only when told to."""

from __future__ import annotations


class FakeClock:
    """A clock that only moves when told to. Not thread-safe; for tests."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds
