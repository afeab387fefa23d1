"""A circuit breaker, so that a dead cache costs its users nothing per call.

After ``threshold`` failures in a row the breaker opens: calls skip the cache for
``backoff`` seconds. Then one call at a time may try the cache (half-open); a
success closes the breaker, a failure opens it for another back-off. A refusal
(the server's authorization policy said no: it will not heal in seconds) opens
it at once, for the longer back-off the caller gives. It logs once per change of
state, never per call.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import Enum

log = logging.getLogger(__name__)


class State(Enum):
    """Where the breaker stands."""

    CLOSED = "closed"  # the cache is used
    OPEN = "open"  # the cache is skipped until the back-off ends
    HALF_OPEN = "half-open"  # one trial call is on its way


class Breaker:
    """Counts failures of the cache and decides whether to try it.

    Thread-safe. Reads the injected monotonic clock.
    """

    def __init__(
        self,
        *,
        threshold: int = 3,
        backoff: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        name: str = "cache",
    ) -> None:
        if threshold < 1 or backoff < 0:
            raise ValueError("threshold must be >= 1 and backoff >= 0")
        self.threshold = threshold
        self.backoff = backoff
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._state = State.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._open_for = backoff  # the back-off of the current opening
        self._refusal: str | None = None  # why it is open, when a refusal opened it

    @property
    def state(self) -> State:
        """The current state (OPEN turns HALF_OPEN only when a call is allowed through)."""
        return self._state

    def allow(self) -> bool:
        """Whether this call should try the cache."""
        with self._lock:
            if self._state is State.CLOSED:
                return True
            if self._state is State.OPEN and self._clock() - self._opened_at >= self._open_for:
                self._state = State.HALF_OPEN
                return True
            return False

    def succeeded(self) -> None:
        """The cache answered (a hit or a miss)."""
        with self._lock:
            self._failures = 0
            if self._state is not State.CLOSED:
                self._state = State.CLOSED
                log.info("%s is back: using it again", self.name)

    def inconclusive(self) -> None:
        """The call ended without a word on the cache's health (the request was refused).

        Nothing moves: the failures in a row stay as they were. A half-open trial
        hands its turn back, so the next call tries the cache instead of none ever again.
        """
        with self._lock:
            if self._state is State.HALF_OPEN:
                self._state = State.OPEN  # opened at least ``backoff`` ago: the next call tries

    def failed(self) -> None:
        """The cache failed or timed out."""
        with self._lock:
            self._failures += 1
            if self._state is State.HALF_OPEN or (
                self._state is State.CLOSED and self._failures >= self.threshold
            ):
                if self._state is State.CLOSED:
                    log.warning(
                        "%s failed %d times in a row: going to the upstream only, retrying in %gs",
                        self.name,
                        self._failures,
                        self.backoff,
                    )
                self._state = State.OPEN
                self._opened_at = self._clock()
                self._open_for = self.backoff
                self._refusal = None

    def refused(self, backoff: float, reason: str) -> None:
        """The cache refused this caller (authorization): skip it for ``backoff`` seconds.

        Opens at once, whatever the count: the next call would be refused too.
        Logs ``reason`` (no request content, no credentials) when it is news: the
        breaker was closed, or open for another cause. A trial refused for the same
        reason reopens it without a word.
        """
        with self._lock:
            self._failures += 1
            if self._state is State.CLOSED or self._refusal != reason:
                log.warning(
                    "%s %s: going to the upstream only, retrying in %gs", self.name, reason, backoff
                )
            self._state = State.OPEN
            self._opened_at = self._clock()
            self._open_for = backoff
            self._refusal = reason
