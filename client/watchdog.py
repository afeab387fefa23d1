"""A watchdog that cancels calls past their deadline: one thread for all of a client's calls.

gRPC's deadline is fixed when a call starts and covers the whole answer, so it
cannot say "the first piece within 0.25 s, the rest as fast as its size allows".
A streamed lookup is therefore started with a loose gRPC deadline (a backstop)
and watched here: its deadline moves once the first piece says the size, and a
call whose deadline passes is cancelled. One thread per watchdog, not per call:
a hit pays a heap push and a pop, not a thread start.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

# The watchdog's thread sleeps at least this long (seconds), so that under load it
# wakes to cancel in batches, not once per call: deadlines are kept to within it.
RESOLUTION = 0.01


class Cancellable(Protocol):
    """What the watchdog needs of a call: a way to cancel it."""

    def cancel(self) -> bool: ...


class Watch:
    """One call's deadline. ``fired`` is True once the watchdog cancelled the call.

    Thread-safe through its watchdog's lock.
    """

    __slots__ = ("_dog", "call", "deadline", "fired", "stopped")

    def __init__(self, dog: Watchdog, call: Cancellable, deadline: float) -> None:
        self._dog = dog
        self.call = call
        self.deadline = deadline
        self.fired = False
        self.stopped = False

    def move(self, deadline: float) -> None:
        """Give the call until ``deadline`` (on the watchdog's clock) instead."""
        self._dog._move(self, deadline)

    def stop(self) -> None:
        """The call is over: never cancel it."""
        self._dog._stop(self)


class Watchdog:
    """Cancels each watched call whose deadline passed.

    Thread-safe. Reads the injected monotonic clock; its thread starts with the first
    watch and runs as a daemon.

    Args:
        clock: seconds, monotonic.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int, Watch]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, call: Cancellable, timeout: float) -> Watch:
        """Watch ``call``: cancel it unless stopped within ``timeout`` seconds from now."""
        watch = Watch(self, call, self._clock() + timeout)
        with self._wake:
            self._push(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dicomcache-watchdog")
                self._thread.daemon = True
                self._thread.start()
        return watch

    def now(self) -> float:
        """The watchdog's clock."""
        return self._clock()

    def expire(self, now: float) -> list[Watch]:
        """Cancel every call whose deadline is at or before ``now``; returns their watches.

        Finished calls and moved deadlines leave their entries behind; they go here.
        """
        due: list[Watch] = []
        with self._wake:
            while self._heap and self._heap[0][0] <= now:
                deadline, _, watch = heapq.heappop(self._heap)
                if not watch.stopped and deadline == watch.deadline:
                    watch.fired = watch.stopped = True
                    due.append(watch)
        for watch in due:
            watch.call.cancel()
        return due

    def _push(self, watch: Watch) -> None:
        first = self._heap[0][0] if self._heap else None
        heapq.heappush(self._heap, (watch.deadline, next(self._order), watch))
        if first is None or watch.deadline < first:  # rare: the thread sleeps till the first
            self._wake.notify()

    def _move(self, watch: Watch, deadline: float) -> None:
        with self._wake:
            if not watch.stopped:  # the old entry stays in the heap, stale, until popped
                watch.deadline = deadline
                self._push(watch)

    def _stop(self, watch: Watch) -> None:
        with self._wake:
            watch.stopped = True  # its entry goes at its deadline: no wake-up per call

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._heap:
                    self._wake.wait()
                wait = self._heap[0][0] - self._clock()
                if wait > 0:
                    self._wake.wait(max(wait, RESOLUTION))
                    continue
            self.expire(self._clock())
