"""The expiry queue: what to reap, in order of expiry, a little at a time.

Reads never need it (they check each entry's own ``expires_at``); it only lets the
backend free expired entries without scanning the cache. Items are kept in
buckets of ``granularity`` seconds of expiry: a bucket is due once its last
instant has passed, so an item is reaped at most that much late and never early,
and a bucket's due time never moves, however many writes join it.

A span's items are kept in buckets of at most ``BUCKET_ITEMS``, as many as it
takes: a set grows by rehashing all it holds in one call, which held the
interpreter lock 10-30 ms for the 300,000 instances of one store, all due in the
same second (issue 11, stall row S1, named by a watchdog thread in the server).

Each item is queued at most once, in one bucket, and knows it (``queued``), so
an item that leaves the cache leaves the queue at once (``unqueue``, O(1)): the
queue holds exactly the entries the cache holds, never one that was evicted,
invalidated, replaced or dropped, whatever the write rate and the TTL. An item
written again with a later expiry stays where it is; when its bucket comes due,
the backend finds it refreshed and queues it again.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable
from typing import Any, Generic, Protocol, TypeVar


class Bucket(set[Any]):
    """The items of one span of expiry times; ``index`` numbers the span.

    A set never gives back the room it grew to, and a bucket can grow to all the
    writes of a second and then lose nearly all of them to eviction: kept at that
    size until due (a whole TTL), the buckets would hold about 32 bytes per write
    of the last TTL. So a bucket that has shrunk to a quarter of its ``peak`` is
    rebuilt in place (``unqueue``), at a cost paid for by the removals before it.
    """

    __slots__ = ("index", "peak")

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index
        self.peak = 0

    def shrink(self) -> None:
        """Rebuild the set at the size its items need (clear() frees the table)."""
        items = list(self)
        self.clear()
        self.update(items)
        self.peak = len(items)


class Expiring(Protocol):
    """Anything with its own expiry time and a place in the queue (None: not queued)."""

    expires_at: float
    queued: Bucket | None


T = TypeVar("T", bound=Expiring)

_SHRINK_FROM = 64  # items a bucket must have reached before it is ever rebuilt smaller
BUCKET_ITEMS = 4096  # the most items of one bucket: a set's rehash stays short


def unqueue(item: Expiring) -> None:
    """Take ``item`` out of the queue that holds it, if any. O(1)."""
    bucket = item.queued
    if bucket is not None:
        bucket.discard(item)
        item.queued = None
        if bucket.peak >= _SHRINK_FROM and len(bucket) * 4 <= bucket.peak:
            bucket.shrink()


class ExpiryQueue(Generic[T]):
    """Buckets of items by expiry, the earliest first; hands out due items in bounded chunks.

    Memory: a set entry per queued item, and a bucket per ``granularity`` seconds
    of expiry times that hold items (per ``BUCKET_ITEMS`` of them). Not thread-safe:
    the backend's lock guards it and every item in it. Reads no clock: ``now`` is
    passed in.
    """

    def __init__(self, granularity: float = 1.0) -> None:
        if granularity <= 0:
            raise ValueError("granularity must be positive")
        self.granularity = granularity
        self._buckets: dict[int, list[Bucket]] = {}  # a span's buckets, the last filling
        self._due: list[int] = []  # a heap of the spans' indices

    def push(self, expires_at: float, items: Iterable[T]) -> None:
        """Queue items that expire at ``expires_at``; one queued for earlier stays put."""
        index = math.ceil(expires_at / self.granularity)
        chain = self._buckets.get(index)
        if chain is None:
            chain = self._buckets[index] = [Bucket(index)]
            heapq.heappush(self._due, index)
        bucket = chain[-1]
        for item in items:
            current = item.queued
            if current is not None:
                if current.index <= index:
                    continue  # due no later: found refreshed then, and queued again
                unqueue(item)
            if len(bucket) >= BUCKET_ITEMS:
                bucket.peak = max(bucket.peak, len(bucket))
                bucket = Bucket(index)
                chain.append(bucket)
            bucket.add(item)
            item.queued = bucket
        bucket.peak = max(bucket.peak, len(bucket))

    def pop_due(self, now: float, max_items: int) -> list[T]:
        """At most ``max_items`` items of buckets due at ``now``, out of the queue.

        An item may have been refreshed since (its ``expires_at`` moved on): the
        caller checks it, and pushes it again. Costs O(max_items) plus the empty
        buckets passed.
        """
        due: list[T] = []
        while self._due and len(due) < max_items:
            index = self._due[0]
            if index * self.granularity > now:
                break
            chain = self._buckets[index]
            while chain and len(due) < max_items:
                bucket = chain[-1]
                while bucket and len(due) < max_items:
                    item = bucket.pop()
                    item.queued = None
                    due.append(item)
                if not bucket:
                    chain.pop()
            if not chain:
                heapq.heappop(self._due)
                del self._buckets[index]
        return due

    def __len__(self) -> int:
        """How many items are queued. O(buckets)."""
        return sum(len(bucket) for chain in self._buckets.values() for bucket in chain)
