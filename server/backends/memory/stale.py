"""Stale copies: documents kept beside answers, for the archive's bad moments (stale-if-error).

A copy is kept ``keep`` seconds from its store, and dies at once with any
invalidation of its namespace: each namespace that holds copies has a
generation, bumped by every invalidation of it, and a copy of an older
generation is gone (dropped when next read or reaped). So an invalidation costs
O(1) whatever the number of copies, and a namespace without copies costs
nothing. Copies are the first thing evicted when memory is short, oldest first.

Costs: a copy counts ``len(key) + len(document) + COPY_OVERHEAD`` bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

# What a copy costs beyond its key and document: the record, its slot in the
# ordered dict, the key tuple (measured the way ``tree.NODE_OVERHEAD`` was, roughly).
COPY_OVERHEAD = 240


@dataclass(slots=True)
class Copy:
    """One stale copy."""

    namespace: str
    document: bytes
    expires_at: float
    generation: int
    size: int
    kept_at: float


class StaleCopies:
    """The stale copies of every namespace, in store order (the oldest first).

    Not thread-safe: the backend's lock guards it. Reads no clock: ``now`` is passed in.
    """

    def __init__(self) -> None:
        self._copies: OrderedDict[tuple[str, bytes], Copy] = OrderedDict()
        self._generations: dict[str, list[int]] = {}  # namespace -> [generation, copies held]
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._copies)

    def put(
        self, namespace: str, key: bytes, document: bytes, expires_at: float, now: float = 0.0
    ) -> None:
        """Keep ``document`` as the copy of ``key`` from ``now`` until ``expires_at``
        (replacing one)."""
        self._drop((namespace, key))
        counted = self._generations.setdefault(namespace, [0, 0])
        counted[1] += 1
        size = len(key) + len(document) + COPY_OVERHEAD
        self._copies[(namespace, key)] = Copy(
            namespace, document, expires_at, counted[0], size, now
        )
        self.bytes += size

    def get(self, namespace: str, key: bytes, now: float) -> Copy | None:
        """The live copy of ``key``; a dead one (expired, invalidated) is dropped."""
        found = self._copies.get((namespace, key))
        if found is None:
            return None
        if self._alive(found, now):
            return found
        self._drop((namespace, key))
        return None

    def invalidate(self, namespace: str) -> None:
        """Every copy of ``namespace`` dies (freed as it is read, reaped or evicted)."""
        counted = self._generations.get(namespace)
        if counted is not None:
            counted[0] += 1

    def reap(self, now: float, max_items: int) -> int:
        """Drop at most ``max_items`` dead copies from the oldest; returns how many went.

        Stops at the first live copy: copies are kept alike long, so the oldest
        expire first (one kept shorter waits for those before it, unseen meanwhile).
        """
        dropped = 0
        while dropped < max_items and self._copies:
            unit, oldest = next(iter(self._copies.items()))
            if self._alive(oldest, now):
                break
            self._drop(unit)
            dropped += 1
        return dropped

    def evict_oldest(self) -> bool:
        """Drop the oldest copy; False when there is none."""
        if not self._copies:
            return False
        self._drop(next(iter(self._copies)))
        return True

    def _alive(self, found: Copy, now: float) -> bool:
        return found.expires_at > now and self._generations[found.namespace][0] == found.generation

    def _drop(self, unit: tuple[str, bytes]) -> None:
        found = self._copies.pop(unit, None)
        if found is None:
            return
        self.bytes -= found.size
        counted = self._generations[found.namespace]
        counted[1] -= 1
        if counted[1] == 0:
            del self._generations[found.namespace]
