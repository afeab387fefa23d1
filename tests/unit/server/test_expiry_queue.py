"""The expiry queue hands out due items in order, in bounded chunks."""

from __future__ import annotations

from dataclasses import dataclass

from dicomcache.server.backends.memory.expiry import ExpiryQueue


@dataclass
class Item:
    name: str
    expires_at: float


def test_only_due_items_come_out_oldest_first() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue(merge_window=0)
    a, b, c = Item("a", 10), Item("b", 20), Item("c", 15)
    queue.push(10, 10, [a])
    queue.push(10, 20, [b])
    queue.push(5, 15, [c])

    assert queue.pop_due(9, 100) == []
    assert [i.name for i in queue.pop_due(15, 100)] == ["a", "c"]
    assert [i.name for i in queue.pop_due(100, 100)] == ["b"]
    assert len(queue) == 0


def test_a_large_batch_comes_out_in_chunks() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue()
    items = [Item(str(i), 10) for i in range(25)]
    queue.push(10, 10, items)

    chunks = [queue.pop_due(10, 10) for _ in range(4)]

    assert [len(c) for c in chunks] == [10, 10, 5, 0]
    assert [i for c in chunks for i in c] == items


def test_batches_close_in_time_merge_and_wait_for_the_later() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue(merge_window=1.0)
    queue.push(10, 10.0, [Item("a", 10.0)])
    queue.push(10, 10.5, [Item("b", 10.5)])

    assert queue.pop_due(10.2, 10) == []
    assert [i.name for i in queue.pop_due(10.5, 10)] == ["a", "b"]


def test_batches_further_apart_stay_apart() -> None:
    queue: ExpiryQueue[Item] = ExpiryQueue(merge_window=1.0)
    queue.push(10, 10.0, [Item("a", 10.0)])
    queue.push(10, 12.0, [Item("b", 12.0)])

    assert [i.name for i in queue.pop_due(10.0, 10)] == ["a"]
