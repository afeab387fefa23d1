"""The expiry queue hands out due items in order, in bounded chunks, each item once."""

from __future__ import annotations

import sys

from dicomcache.server.backends.memory.expiry import BUCKET_ITEMS, Bucket, ExpiryQueue, unqueue


class Item:
    def __init__(self, name: str, expires_at: float) -> None:
        self.name = name
        self.expires_at = expires_at
        self.queued: Bucket | None = None


def names(items: list[Item]) -> list[str]:
    return sorted(i.name for i in items)


def test_only_due_items_come_out_earliest_first() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue(granularity=1.0)
    a, b, c = Item("a", 10), Item("b", 20), Item("c", 15)
    queue.push(10, [a])
    queue.push(20, [b])
    queue.push(15, [c])

    assert queue.pop_due(9, 100) == []
    assert names(queue.pop_due(15, 100)) == ["a", "c"]
    assert names(queue.pop_due(100, 100)) == ["b"]
    assert len(queue) == 0


def test_a_large_batch_comes_out_in_chunks() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue()
    items = [Item(str(i), 10) for i in range(25)]
    queue.push(10, items)

    chunks = [queue.pop_due(10, 10) for _ in range(4)]

    assert [len(c) for c in chunks] == [10, 10, 5, 0]
    assert sorted(id(i) for c in chunks for i in c) == sorted(id(i) for i in items)


def test_a_steady_write_rate_never_postpones_what_is_due() -> None:
    """A write every 0.5 s with a 5 s TTL, for 30 s: each item comes out at most 1 s late."""
    queue: ExpiryQueue[Item] = ExpiryQueue(granularity=1.0)
    late: list[float] = []
    now = 1000.0
    for step in range(60):
        now += 0.5
        item = Item(str(step), now + 5)
        queue.push(item.expires_at, [item])
        late.extend(now - i.expires_at for i in queue.pop_due(now, 1000))

    assert len(late) == 60 - 10  # all but those written in the last 5 s
    assert all(0 <= d <= 1.0 for d in late)


def test_an_item_is_queued_once_and_leaves_at_once() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue()
    a, b = Item("a", 10), Item("b", 10)
    for _ in range(100):
        queue.push(10, [a, b])  # written again and again: still one entry each
    assert len(queue) == 2

    unqueue(a)

    assert len(queue) == 1 and a.queued is None
    assert names(queue.pop_due(10, 100)) == ["b"]


def test_a_refreshed_item_stays_queued_for_its_earlier_time() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue()
    a = Item("a", 10)
    queue.push(10, [a])
    a.expires_at = 20
    queue.push(20, [a])

    assert names(queue.pop_due(10, 100)) == ["a"]  # the caller finds it refreshed
    assert a.queued is None


def test_an_earlier_expiry_moves_the_item_forward() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue()
    a = Item("a", 20)
    queue.push(20, [a])
    a.expires_at = 10
    queue.push(10, [a])

    assert names(queue.pop_due(10, 100)) == ["a"]
    assert queue.pop_due(20, 100) == []


def test_a_bucket_that_lost_most_of_its_items_gives_the_room_back() -> None:
    """A second's writes, nearly all evicted before they are due, must not keep their room."""
    queue: ExpiryQueue[Item] = ExpiryQueue()
    items = [Item(str(i), 10) for i in range(10_000)]
    queue.push(10, items)
    bucket = items[0].queued
    assert bucket is not None
    full = sys.getsizeof(bucket)

    for item in items[10:]:
        unqueue(item)

    assert len(queue) == 10
    assert sys.getsizeof(bucket) * 50 < full
    assert all(i.queued is bucket for i in items[:10])
    assert names(queue.pop_due(10, 100)) == names(items[:10])


def test_a_span_of_many_items_is_kept_in_bounded_buckets():
    """300,000 instances of one store, all due in the same second, were one set, and
    its rehash as it grew held the interpreter lock 10-30 ms (issue 11, stall row S1):
    a span's items go in buckets of at most BUCKET_ITEMS, and all still come due."""
    queue: ExpiryQueue[Item] = ExpiryQueue(granularity=1.0)
    items = [Item(str(n), 10.0) for n in range(3 * BUCKET_ITEMS + 5)]
    for start in range(0, len(items), 1000):  # the chunks of a write
        queue.push(10.0, items[start : start + 1000])
    buckets = {id(item.queued): item.queued for item in items}
    assert len(buckets) == 4
    assert all(len(b) <= BUCKET_ITEMS for b in buckets.values() if b is not None)
    assert len(queue) == len(items)
    unqueue(items[0])  # leaves its bucket, not the others
    assert items[0].queued is None and len(queue) == len(items) - 1
    assert queue.pop_due(9.0, len(items)) == []
    due = queue.pop_due(10.0, BUCKET_ITEMS + 1)  # a chunk at a time, across buckets
    due += queue.pop_due(10.0, len(items))
    assert sorted(map(id, due)) == sorted(map(id, items[1:]))
    assert all(item.queued is None for item in items)
    assert len(queue) == 0 and queue.pop_due(11.0, 10) == []
