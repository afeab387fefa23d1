"""What a server counted but has not yet written to Redis: lookups, misses, registry entries.

A hit must need nothing but the slots it reads (issue 11): counting it in the
namespace's hash, or naming the namespace in the registry, would make every hit
depend on those slots' masters too. So lookups are counted here, in the process,
and stores note until when their namespace holds data (Redis drops the counts of a
namespace that holds nothing, ``namespace_count.lua``); the backend writes both
to Redis in the background about once a second, and before it reports stats.
A write that fails is given back and tried again, so nothing is lost while its
slot is down, within a bound: at most ``limit`` namespaces wait, and counts of
others are dropped (and counted in ``dropped``) rather than grow without end.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

LIMIT = 10_000  # namespaces waiting at most: about 2 MB


@dataclass
class Pending:
    """One batch taken from a Tally: counts by namespace and registry horizons."""

    counts: dict[str, list[int]] = field(default_factory=dict)  # [lookups, misses]
    horizons: dict[str, int] = field(default_factory=dict)  # Redis ms its data lasts

    def __bool__(self) -> bool:
        return bool(self.counts or self.horizons)


class Tally:
    """Counts and horizons waiting to be written. Thread-safe (one lock); no clock."""

    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._pending = Pending()
        self._lock = threading.Lock()
        self.dropped = 0  # counts not kept because too many namespaces waited

    def count(self, namespace: str, *, miss: bool) -> None:
        """One lookup (and maybe one miss) of ``namespace``."""
        with self._lock:
            counts = self._pending.counts.get(namespace)
            if counts is None:
                if len(self._pending.counts) >= self._limit:
                    self.dropped += 1
                    return
                counts = self._pending.counts[namespace] = [0, 0]
            counts[0] += 1
            counts[1] += miss

    def hold(self, namespace: str, until_ms: int) -> None:
        """``namespace`` holds data until ``until_ms`` (Redis time) at least."""
        with self._lock:
            horizons = self._pending.horizons
            if namespace in horizons or len(horizons) < self._limit:
                horizons[namespace] = max(until_ms, horizons.get(namespace, 0))
            else:
                self.dropped += 1

    def forget(self, namespace: str) -> None:
        """``namespace`` was dropped: nothing it stored is to be registered."""
        with self._lock:
            self._pending.horizons.pop(namespace, None)

    def take(self) -> Pending:
        """Everything waiting, now the caller's to write."""
        with self._lock:
            pending, self._pending = self._pending, Pending()
            return pending

    def give_back(self, pending: Pending) -> None:
        """Part of a batch that could not be written: wait with what came since."""
        for namespace, (lookups, misses) in pending.counts.items():
            with self._lock:
                counts = self._pending.counts.get(namespace)
                if counts is None and len(self._pending.counts) >= self._limit:
                    self.dropped += lookups
                    continue
                counts = self._pending.counts.setdefault(namespace, [0, 0])
                counts[0] += lookups
                counts[1] += misses
        for namespace, until_ms in pending.horizons.items():
            self.hold(namespace, until_ms)
