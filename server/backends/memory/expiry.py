"""The expiry queue: what to reap, in order of expiry, a little at a time.

Reads never need it (they check each entry's own ``expires_at``); it only lets the
backend free expired entries without scanning the cache. Entries are queued per
write batch, not per object: one batch holds a list of items that share a TTL, so
queueing costs a pointer per object. Within one TTL, batches are queued in the
order they were written, which with a monotonic clock is their order of expiry.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar


class Expiring(Protocol):
    """Anything with its own expiry time (refreshing it moves the time)."""

    expires_at: float


T = TypeVar("T", bound=Expiring)


class _Batch(Generic[T]):
    """Items written together with one TTL; ``start`` counts those already handed out."""

    __slots__ = ("expires_at", "items", "start")

    def __init__(self, expires_at: float, items: list[T]) -> None:
        self.expires_at = expires_at
        self.items = items
        self.start = 0


class ExpiryQueue(Generic[T]):
    """Write batches by TTL, oldest first; hands out due items in bounded chunks.

    A batch written within ``merge_window`` seconds after the previous one of the
    same TTL joins it (its due time becomes the later one), so a stream of small
    writes costs one batch per window, and items are reaped at most that much late.
    Not thread-safe: the backend's lock guards it. Reads no clock: ``now`` is
    passed in.
    """

    def __init__(self, merge_window: float = 1.0) -> None:
        self.merge_window = merge_window
        self._queues: dict[float, deque[_Batch[T]]] = {}

    def push(self, ttl: float, expires_at: float, items: Iterable[T]) -> None:
        """Queue items written together that expire at ``expires_at`` (``ttl`` after now)."""
        batch = list(items)
        if not batch:
            return
        queue = self._queues.setdefault(ttl, deque())
        last = queue[-1] if queue else None
        if last is not None and abs(expires_at - last.expires_at) <= self.merge_window:
            last.items.extend(batch)
            last.expires_at = max(last.expires_at, expires_at)
        else:
            queue.append(_Batch(expires_at, batch))

    def pop_due(self, now: float, max_items: int) -> list[T]:
        """At most ``max_items`` items of batches due at ``now``.

        An item may have been refreshed since (its ``expires_at`` moved on) or
        dropped: the caller checks it. Costs O(max_items + number of distinct TTLs).
        """
        due: list[T] = []
        for ttl in list(self._queues):
            queue = self._queues[ttl]
            while queue and len(due) < max_items and queue[0].expires_at <= now:
                batch = queue[0]
                end = batch.start + max_items - len(due)
                due.extend(batch.items[batch.start : end])
                batch.start = min(end, len(batch.items))
                if batch.start == len(batch.items):
                    queue.popleft()
            if not queue:
                del self._queues[ttl]
            if len(due) >= max_items:
                break
        return due

    def __len__(self) -> int:
        """How many items are queued and not yet handed out."""
        return sum(len(b.items) - b.start for q in self._queues.values() for b in q)
