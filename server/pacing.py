"""A large request's work pauses a moment every slice, so that small calls never wait long.

Every call of the server shares one interpreter lock. A request whose work is
Python through and through (checking a 300,000-instance store, writing it, reading
it back) holds it nearly all the time, and grpcio's threads need it several times
for each small call: to take the call in, to run its handler, to send the reply.
Python's forced switches (``sys.setswitchinterval``) do not save them: at every
switch the holder waits until another thread took the lock, and on a busy host
either thread may then wait for a CPU. Measured here (issue 11, stall rows: a
probe process sending small hits from 2 threads; 2 cores): beside a server thread
busy in Python, the small calls' p50 went from 0.8 ms to 11-13 ms at the server's
0.5 ms switch interval, 3-5 ms at 0.1 ms and 1.4-2.8 ms at 0.05 ms, their p99
16-21 ms at all three; the same thread pausing for a moment (a zero-length sleep,
which the kernel's timer slack makes some tens of microseconds on Linux) every
0.1-0.2 ms of its work gave p50 2.0-2.3 ms and p99 5-7 ms, what two processes
spinning beside the server cost them (the host's floor, row S0); ``os.sched_yield``
instead left p50 at 6-7 ms (the holder takes the lock back at once). A
90,000-instance StreamStoreStudy: the others' p50 5 -> 2.2 ms and p99 14.8 -> 8-10
ms, while it took 13-17 s instead of 8.8 s.

So a request pays for being large, when others are about: its ``Pace`` sleeps
``PAUSE`` once the request's work has run ``FIRST`` (most requests never get
there), then after every ``SLICE``, whenever its server is busy: another call is in
flight, or one began within ``RECENT`` (grpcio's threads need the lock to take a
call in before it counts as in flight; ``InFlight.busy``). Alone, a large request
runs flat out: a pause would only make it slower.

The handler makes each call's Pace the thread's current one (``with Pace(...)``),
and the loops over a request's objects, wherever they are, call ``step()`` at
every object: no signature carries it, and outside a call (a backend used alone,
the tests) ``step`` does nothing. A pause while another thread waits for a lock
the request holds is the holder's business (``backends.memory.chunks``).
Clocks: whether a request is large is its thread's CPU time (``time.thread_time``:
by wall time a small call under load passed ``FIRST`` and paused too, which cut the
hits' throughput at 16 in flight from 0.84x an echo's to 0.66x, row 4b); its slices
and whether the server is busy, ``time.monotonic`` (slices of CPU time paused too
seldom: the small calls' p99 beside the stall rows' large requests 9.5-13.8 ms
against 5.0-6.5). Neither is the cache's clock.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextvars import ContextVar, Token

FIRST = 0.002  # seconds of a request's own work (its thread's CPU time) before its first pause
SLICE = 0.0002  # seconds (wall time) between two pauses after that
EVERY = 8  # steps between two looks at the thread's CPU time, until it is large
PAUSE = 0.0  # a sleep's length: lets go of the interpreter lock and of the CPU for a moment
RECENT = 0.005  # seconds after a call began that its server still counts as busy


class Pace:
    """Called at every object of one request's work: pauses when a slice is used up
    and the server is ``busy(now)`` (``InFlight.busy``). Not thread-safe: one
    request's work uses one; inside ``with`` it is the thread's current Pace (``step``).

    A request is large once its thread has spent ``FIRST`` of CPU time (``work``),
    looked at every ``EVERY`` steps: a small call's wall time grows with the calls
    beside it, its work does not, and such a look costs a system call (about 0.3
    us) where a step costs a subtraction. From then on its slices are wall time
    (``clock``), looked at every step (a read of the vDSO's clock).
    """

    __slots__ = (
        "_busy",
        "_clock",
        "_left",
        "_next",
        "_sleep",
        "_start",
        "_token",
        "_work",
        "pauses",
    )

    def __init__(
        self,
        busy: Callable[[float], bool],
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        work: Callable[[], float] = time.thread_time,
    ) -> None:
        self._busy = busy
        self._clock = clock
        self._sleep = sleep
        self._work = work
        self._left = EVERY
        self._start = -1.0  # the work at the first look (a Pace costs no clock until then)
        self._next = -1.0  # when the slice ends; negative: not large yet
        self._token: Token[Pace | None] | None = None  # while it is the current one
        self.pauses = 0  # how many it made (for the tests)

    def __enter__(self) -> Pace:
        self._token = _CURRENT.set(self)
        return self

    def __exit__(self, *_: object) -> None:
        if self._token is not None:
            try:
                _CURRENT.reset(self._token)
            except ValueError:  # a stream closed from another context than it began in
                _CURRENT.set(None)
            self._token = None

    def __call__(self) -> None:
        """Pause if the work since the last pause (or the start) used up its slice."""
        if self._next < 0 and not self._large():
            return
        now = self._clock()
        if now < self._next:
            return
        if self._busy(now):
            self._sleep(PAUSE)
            self.pauses += 1
            now = self._clock()
        self._next = now + SLICE

    def _large(self) -> bool:
        """Whether the request has done FIRST of work (looked at every EVERY steps)."""
        self._left -= 1
        if self._left:
            return False
        self._left = EVERY
        work = self._work()
        if self._start < 0:
            self._start = work
            return False
        if work - self._start < FIRST:
            return False
        self._next = 0.0
        return True


_CURRENT: ContextVar[Pace | None] = ContextVar("dicomcache_pace", default=None)


def step() -> None:
    """One object of the current call's work: its Pace may pause (none outside a call)."""
    pace = _CURRENT.get()
    if pace is not None:
        pace()
