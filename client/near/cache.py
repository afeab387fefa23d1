"""NearCache: answers kept in the client's own memory, coherent with the server.

The rules, each kept by the code below:

* Served only while in sync: from the first message of a watch stream
  (``WatchInvalidations``) for as long as every Invalidation is numbered one more
  than the last, every heartbeat repeats the last number, and some message came
  within the stream's heartbeat deadline. Any doubt (a gap, the stream's end or
  error, the deadline missed, a watcher too slow on the server) flushes every entry
  and serves nothing until a new stream's first message: a message lost while out
  of sync cannot matter, as nothing kept from before is served after.
* An answer is kept only if no invalidation that could touch it arrived between the
  start of its lookup and its insert (``ticket`` before the lookup, ``put`` after:
  Redis's placeholder technique with the stream's sequence number). The last
  ``RECENT`` invalidations are remembered to tell; a lookup older than those is not
  kept. An insert after a reconnect (another epoch) is not kept either.
* Never past the server's expiry: an entry lives ``fresh_for`` seconds (the
  lookup's ``fresh_for_ms``) less ``FRESH_MARGIN``, counted from the ticket, taken
  before the lookup was sent, so it ends before the server's copy does. The margin
  covers what ``fresh_for_ms`` does not see: on Redis an answer's objects are
  written (with the same TTL) just before its entry, whose PTTL it is, so they
  expire up to that write's time earlier.
* An invalidation through this process's own CacheClient drops at once (``local``):
  when ``invalidate`` returns, nothing it touched is served here. Through any other
  client, it is dropped when the server's message arrives (p99 in the benchmarks).

Objects are shared, not copied: every caller of a repeated search gets the very
same pydicom/dicomtrolley objects (as dicomtrolley's ``DICOMObjectCache`` hands
out), so callers must treat them as read-only; a change one caller makes is seen
by every later caller. A list of studies is a new list each time (the studies in it
are shared). A deep copy per hit would cost far more than the hit itself (measured
in ``benchmarks/rows/near_cache.py``); freezing pydicom objects is not possible.

Thread-safe: one lock guards the entries and the stream's state; the hit path holds
it for a dictionary lookup. Clock: the injected monotonic ``clock``.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dicomcache.client.near.lru import ENTRY_OVERHEAD, ByteLru, Entry

if TYPE_CHECKING:
    from dicomcache.client.cache_client import CacheClient
    from dicomcache.client.near.watcher import StreamWatcher

log = logging.getLogger(__name__)

RECENT = 4096  # invalidations remembered for the race rule
FRESH_MARGIN = 1.0  # seconds an entry ends before the server's copy of its answer
# The Python objects of an answer take up to this many times its wire size: an
# 80-instance hit measured 2.7x as it comes (datasets are built on first read) and
# 12.8x once every element of every dataset was read (tracemalloc, measured once on
# this machine, not by the benchmarks), so max_bytes bounds the memory its objects
# may come to take.
OBJECT_FACTOR = 13


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken before a lookup: the stream's state then, to judge the insert after it."""

    epoch: int
    sequence: int
    local: int
    started: float


@dataclass(frozen=True, slots=True)
class Counts:
    """A near cache's counters at one moment."""

    hits: int
    misses: int
    invalidations: int
    flushes: int
    entries: int
    bytes: int
    in_sync: bool


class NearCache:
    """An opt-in, bounded, coherent in-process cache for one CachedSearcher.

    Args:
        max_bytes: the bound on the entries' sizes (their answers' wire size times
            ``OBJECT_FACTOR``, plus ``ENTRY_OVERHEAD``), least recently used out first.
        clock: monotonic seconds.

    One NearCache serves one namespace and protocol: give each searcher its own.
    ``close`` stops its watch stream (``CachedSearcher`` does not own it).
    """

    def __init__(self, max_bytes: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._lru = ByteLru(max_bytes)
        self._clock = clock
        self._lock = threading.RLock()  # re-entered by ``wait``'s predicates
        self._changed = threading.Condition(self._lock)
        self._in_sync = False
        self._epoch = 0
        self._sequence = 0
        self._local = 0
        self._heard = 0.0
        self._deadline = 0.0
        self._recent: collections.deque[tuple[int, int, str]] = collections.deque(maxlen=RECENT)
        self.protocol = 0
        self.namespace = ""
        self._watcher: StreamWatcher | None = None
        self._client: CacheClient | None = None
        self.hits = self.misses = self.invalidations = self.flushes = 0
        self.heartbeats = 0  # heard in any stream: a reader can tell the stream moved on

    # -- attaching --------------------------------------------------------------------

    def attach(self, client: CacheClient, namespace: str, protocol: int) -> None:
        """Start watching ``namespace``'s invalidations through ``client``.

        Raises:
            ValueError: already attached (one NearCache per searcher).
        """
        from dicomcache.client.near.watcher import StreamWatcher

        with self._lock:
            if self._watcher is not None:
                raise ValueError("this NearCache serves another searcher already: make one each")
            self.namespace, self.protocol = namespace, protocol
            self._watcher = StreamWatcher(self, client, namespace)
            self._client = client
        client.invalidation_listeners.append(self.local)
        self._watcher.start()

    def close(self) -> None:
        """Stop watching and drop everything; serves nothing after."""
        watcher, client = self._watcher, self._client
        if watcher is not None:
            watcher.stop()
        if client is not None and self.local in client.invalidation_listeners:
            client.invalidation_listeners.remove(self.local)
        with self._lock:
            self._lost_locked("closed")

    # -- the searcher's side ------------------------------------------------------------

    def get(self, key: Hashable) -> Any | None:
        """The kept answer for ``key`` if it may be served now, else None (a miss)."""
        with self._lock:
            now = self._clock()
            if not self._in_sync:
                self.misses += 1
                return None
            if now - self._heard > self._deadline:
                self._lost_locked("no message within the heartbeat deadline")
                self.misses += 1
                return None
            entry = self._lru.get(key)
            if entry is None or now >= entry.deadline:
                if entry is not None:
                    self._lru.pop(key)
                self.misses += 1
                return None
            self.hits += 1
            value = entry.value
        return list(value) if isinstance(value, tuple) else value

    def ticket(self) -> Ticket | None:
        """The state before a lookup, for ``put``; None when nothing can be kept now."""
        with self._lock:
            if not self._in_sync:
                return None
            return Ticket(self._epoch, self._sequence, self._local, self._clock())

    def put(
        self,
        ticket: Ticket,
        key: Hashable,
        value: Any,
        studies: Iterable[str],
        fresh_for: float,
        wire_bytes: int,
    ) -> bool:
        """Keep a lookup's answer unless something that could touch it came since ``ticket``.

        A list is kept as a tuple (``get`` gives a new list each time). Returns
        whether it was kept.
        """
        held = frozenset(studies)
        if isinstance(value, list):
            value = tuple(value)
        size = wire_bytes * OBJECT_FACTOR + ENTRY_OVERHEAD
        lifetime = fresh_for - FRESH_MARGIN
        with self._lock:
            if lifetime <= 0 or not self._keepable(ticket, held):
                return False
            self._lru.put(key, Entry(value, held, ticket.started + lifetime, size))
            return True

    def _keepable(self, ticket: Ticket, studies: frozenset[str]) -> bool:
        """The race rule (see the module docstring), under the lock."""
        if not self._in_sync or ticket.epoch != self._epoch or ticket.local != self._local:
            return False
        if ticket.sequence == self._sequence:
            return True
        recent = self._recent
        if not recent or recent[0][0] > ticket.sequence + 1:
            return False  # older than what is remembered: cannot tell
        for sequence, protocol, uid in reversed(recent):
            if sequence <= ticket.sequence:
                break
            if protocol == self.protocol and (not uid or uid in studies):
                return False
        return True

    def local(self, namespace: str, study_uid: str | None) -> None:
        """An invalidation through this process's client: drop at once (None: all)."""
        if namespace != self.namespace:
            return
        with self._lock:
            self._local += 1
            if study_uid is None:
                self._lru.clear()
            else:
                self._lru.drop_studies([study_uid])

    # -- the stream's side ----------------------------------------------------------------

    def synced(self, deadline: float) -> None:
        """A stream's first message: in sync from now, as a new epoch, nothing kept."""
        with self._lock:
            self._lru.clear()
            self._epoch += 1
            self._sequence = 0
            self._recent.clear()
            self._deadline = deadline
            self._heard = self._clock()
            was, self._in_sync = self._in_sync, True
            self._changed.notify_all()
        if not was:
            log.info("near cache of namespace %s: in sync", self.namespace)

    def heard(self, sequence: int, protocol: int | None, study_uid: str) -> bool:
        """A message after the first: an Invalidation (``protocol`` set) or a heartbeat.

        Returns False, flushing, when it breaks the numbering: out of sync.
        """
        with self._lock:
            if not self._in_sync:
                return False
            expected = self._sequence + (1 if protocol is not None else 0)
            if sequence != expected:
                self._lost_locked(f"sequence {sequence} after {self._sequence}")
                return False
            self._heard = self._clock()
            if protocol is None:
                self.heartbeats += 1
            else:
                self._sequence = sequence
                self._recent.append((sequence, protocol, study_uid))
                if protocol == self.protocol:
                    self.invalidations += 1
                    if study_uid:
                        self._lru.drop_studies([study_uid])
                    else:
                        self._lru.clear()
            self._changed.notify_all()
            return True

    def lost(self, reason: str) -> None:
        """The stream ended or broke: flush and serve nothing until the next stream."""
        with self._lock:
            self._lost_locked(reason)

    def _lost_locked(self, reason: str) -> None:
        if self._in_sync:
            log.info("near cache of namespace %s: out of sync (%s)", self.namespace, reason)
            self.flushes += 1
            watcher = self._watcher
            if watcher is not None:
                watcher.cancel()  # the stream may be alive but stalled: start a new one
        self._in_sync = False
        self._lru.clear()
        self._changed.notify_all()

    # -- looking at it ----------------------------------------------------------------------

    @property
    def in_sync(self) -> bool:
        return self._in_sync

    @property
    def sequence(self) -> int:
        """The last Invalidation's number in the current stream."""
        return self._sequence

    def counts(self) -> Counts:
        with self._lock:
            return Counts(
                self.hits,
                self.misses,
                self.invalidations,
                self.flushes,
                len(self._lru),
                self._lru.bytes,
                self._in_sync,
            )

    def wait(self, predicate: Callable[[NearCache], bool], timeout: float) -> bool:
        """Wait until ``predicate(self)`` holds, re-checked at each stream message."""
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)
