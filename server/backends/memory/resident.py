"""The memory backend's bound held for the process's resident memory, not only its accounting.

The backend counts the bytes it keeps and evicts to ``max_bytes`` (``backend``). The
process's resident set grows by more than that count: the allocator keeps freed
blocks inside its heaps, scattered among live ones, where only blocks of fitting
sizes reuse them; gRPC keeps buffers; threads touch their stacks. Under a steady
churn of writes, evictions and expiries that free space grew in spells for minutes
(issue 11: soaks of 24 threads at 64 MiB ended 1.08-1.25x over the limit, still
rising 1-1.5 MiB a minute, while the accounted bytes stayed at the limit). A
sidecar's container is killed on its resident memory, so that is what the bound
must hold.

``ResidentGuard`` closes the loop on it. The server's sweeper calls ``check`` once a
second; it reads the resident set and compares its growth since the server started
(``start``) with the cache's room: ``max_bytes`` until the cache is first full (a
write evicted for room), then the growth it took to get there, if that was less.
A full cache replaces what it holds and needs no more memory than it took to fill;
what the process grows by after that is the allocator's free space (soaks: 7-10
MiB in 3 minutes at 64 MiB), so that is what the bound answers:

* over the room, and grown since the bound last went down: the bound the backend evicts to
  (``MemoryBackend.hold``) goes down by ``GAIN`` times that growth, at most ``STEP`` of max_bytes
  a check (so one write's eviction stays small: issue 11's stalls), never below
  ``FLOOR`` of max_bytes. The writes that follow evict the least recently used
  studies first and fill the holes they leave, instead of growing the heaps. Over
  but not growing, nothing moves: evicting frees space inside the heaps, which the
  allocator keeps, so the resident set does not come down with the bound, and a
  guard that kept lowering it while over would empty the cache to its floor (a
  soak did: 35 of 64 MiB held). The first step down is logged at INFO; a
  growth still over at the floor is not the cache's, and is logged once at WARNING;
* under the room by more than ``MARGIN`` of max_bytes: the bound goes back up a ``STEP`` at
  a time, to max_bytes (logged at INFO when it gets there).

Only a process that is the server's alone can use it (``dicomcache serve`` does):
in another process the resident set holds the host's memory too. Reads no clock.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("dicomcache")

STEP = 0.02  # of max_bytes: the most the bound moves in one check
# Bytes the bound goes down per byte of new growth: what an eviction frees is reused
# only by blocks that fit its holes, so answering growth byte for byte let the
# resident set go on creeping (a soak: +2.2 MiB over its last half, the bound down
# from 64 to 55 MiB).
GAIN = 2
FLOOR = 0.5  # of max_bytes: the bound never goes lower
MARGIN = 0.05  # of max_bytes: how far under the growth must be before the bound goes up


class Held(Protocol):
    """What the guard moves: a backend's configured bound and the bound it evicts to."""

    max_bytes: int | None
    filled: bool  # once it evicted for room

    def hold(self, limit: int) -> None:
        """Evict to ``limit`` bytes (at most ``max_bytes``) from the next write on."""


class ResidentGuard:
    """Keeps the resident set's growth since ``start`` within the cache's room (the module).

    Not thread-safe: one thread (the sweeper) calls ``start`` once, then ``check``.

    Args:
        backend: the bound to move; its ``max_bytes`` must be set.
        resident: the process's resident bytes now, or None when it cannot be read.
    """

    def __init__(self, backend: Held, resident: Callable[[], int | None]) -> None:
        if backend.max_bytes is None:
            raise ValueError("a resident guard needs a backend with max_bytes")
        self._backend = backend
        self._resident = resident
        self._most = backend.max_bytes
        self.limit = self._most
        self.base: int | None = None
        self._answered = 0  # the resident bytes past the bound that lowering it answered
        self._room: int | None = None  # the growth allowed once the cache is full (``check``)
        self._warned = False

    def start(self) -> None:
        """Take the resident set now, before the cache holds anything, as the base."""
        self.base = self._resident()

    def check(self) -> None:
        """Move the backend's bound after the resident set's growth (see the module)."""
        if self.base is None:
            return
        now = self._resident()
        if now is None:
            return
        most = self._most
        room = self._room
        if room is None:
            if not self._backend.filled:
                room = most
            else:
                # Full: from now on the cache replaces what it holds, and needs no more
                # room than it took to fill; what grows after is the allocator's free space.
                room = self._room = max(int(most * FLOOR), min(most, now - self.base))
        over = now - self.base - room
        step = max(1, int(most * STEP))
        limit = self.limit
        if over > 0:
            grown = over - self._answered  # since the bound last went down
            if grown <= 0:
                return  # over, not growing: the writes reuse the space evictions freed
            floor = int(most * FLOOR)
            if limit <= floor:
                self._warn(over, limit)
                return
            lowered = min(GAIN * grown, step, limit - floor)
            self._answered += -(-lowered // GAIN)  # the growth that lowering answers
            limit -= lowered
        elif -over > most * MARGIN:  # the heaps gave memory back
            self._answered = 0
            if limit >= most:
                return
            limit = min(most, limit + step)
            self._warned = False
        else:
            return  # just under: where the bound is holds the resident set there
        if self.limit == most:
            log.info("resident memory %d bytes past its room: the cache is held under it", over)
        elif limit == most:
            log.info("resident memory back within its room: the cache may fill max_memory again")
        self.limit = limit
        self._backend.hold(limit)

    def _warn(self, over: int, limit: int) -> None:
        if not self._warned:
            self._warned = True
            log.warning(
                "resident memory is %d bytes past its room with the cache held at %d bytes, "
                "its floor: the rest of the growth is not the cache's",
                over,
                limit,
            )


def resident_bytes() -> int | None:
    """This process's resident set in bytes (Linux's ``/proc/self/statm``), or None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
