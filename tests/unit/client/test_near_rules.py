"""The near cache's rules without a stream: the LRU's byte bound, sync, numbering, the race rule."""

from __future__ import annotations

import pytest

from dicomcache.client.near.cache import (
    ENTRY_OVERHEAD,
    FRESH_MARGIN,
    OBJECT_FACTOR,
    RECENT,
    NearCache,
)
from dicomcache.client.near.lru import ByteLru, Entry
from tests.support.clock import FakeClock

QIDO = 1


def synced(max_bytes: int = 1_000_000) -> tuple[NearCache, FakeClock]:
    clock = FakeClock()
    near = NearCache(max_bytes, clock=clock)
    near.protocol = QIDO
    near.synced(deadline=0.25)
    return near, clock


def kept(near: NearCache, key: str, studies: list[str], fresh_for: float = 60.0) -> bool:
    ticket = near.ticket()
    assert ticket is not None
    return near.put(ticket, key, f"answer {key}", studies, fresh_for, 100)


def test_the_lru_keeps_its_bytes_within_the_bound_dropping_the_least_recent():
    lru = ByteLru(max_bytes=1000)
    for n in range(20):
        lru.put(n, Entry(n, frozenset({f"s{n}"}), 1e9, 300))
        assert lru.bytes <= 1000
        lru.get(0)  # 0 stays the most recently used
    assert lru.get(0) is not None and lru.get(19) is not None and lru.get(1) is None
    assert len(lru) == 3 and lru.bytes == 900
    assert lru.drop_studies(["s0", "s19"]) == 2 and lru.bytes == 300


def test_an_entry_larger_than_the_bound_is_not_kept():
    lru = ByteLru(max_bytes=100)
    lru.put("big", Entry(None, frozenset(), 1e9, 101))
    assert len(lru) == 0 and lru.bytes == 0


def test_the_near_cache_counts_its_entries_at_their_wire_size_times_the_factor():
    near, _ = synced(max_bytes=3 * (100 * OBJECT_FACTOR + ENTRY_OVERHEAD))
    for n in range(10):
        assert kept(near, f"k{n}", [f"s{n}"])
        assert near.counts().bytes <= near._lru.max_bytes
    assert near.counts().entries == 3


def test_nothing_is_served_or_kept_before_the_first_message():
    near = NearCache(1_000_000, clock=FakeClock())
    assert near.ticket() is None and near.get("k") is None


def test_a_hit_is_the_same_object_and_a_list_a_new_list_of_the_same_objects():
    near, _ = synced()
    answer = [object(), object()]
    ticket = near.ticket()
    assert ticket is not None
    assert near.put(ticket, "q", answer, [], 60.0, 10)
    first, second = near.get("q"), near.get("q")
    assert first == answer and first is not answer and first is not second
    assert all(a is b for a, b in zip(first, answer, strict=True))


def test_an_invalidation_after_the_ticket_that_touches_the_answer_refuses_the_insert():
    near, _ = synced()
    ticket = near.ticket()
    assert ticket is not None
    assert near.heard(1, QIDO, "s1")
    assert not near.put(ticket, "k", "answer", ["s1", "s2"], 60.0, 10)
    assert near.put(ticket, "k", "answer", ["s2", "s3"], 60.0, 10)  # s1 not in it


def test_an_invalidation_of_another_protocol_does_not_refuse_it():
    near, _ = synced()
    ticket = near.ticket()
    assert ticket is not None
    assert near.heard(1, 2, "s1")
    assert near.put(ticket, "k", "answer", ["s1"], 60.0, 10)


def test_a_namespace_invalidation_after_the_ticket_refuses_every_insert():
    near, _ = synced()
    ticket = near.ticket()
    assert ticket is not None
    assert near.heard(1, QIDO, "")
    assert not near.put(ticket, "k", "answer", [], 60.0, 10)


def test_a_lookup_older_than_the_invalidations_remembered_is_not_kept():
    near, _ = synced()
    ticket = near.ticket()
    assert ticket is not None
    for sequence in range(1, RECENT + 2):
        assert near.heard(sequence, 2, "other")
    assert not near.put(ticket, "k", "answer", ["s1"], 60.0, 10)


def test_invalidations_drop_the_entries_holding_their_study():
    near, _ = synced()
    assert kept(near, "a", ["s1"]) and kept(near, "b", ["s2"])
    assert near.heard(1, QIDO, "s1")
    assert near.get("a") is None and near.get("b") == "answer b"
    assert near.heard(2, QIDO, "")
    assert near.get("b") is None and near.counts().invalidations == 2


def test_a_gap_in_the_numbering_flushes_and_stops_serving():
    near, _ = synced()
    assert kept(near, "a", ["s1"])
    assert not near.heard(2, QIDO, "s9")  # 1 was lost
    assert not near.in_sync and near.get("a") is None and near.counts().entries == 0
    assert near.ticket() is None and near.counts().flushes == 1


def test_a_heartbeat_that_does_not_repeat_the_last_number_flushes():
    near, _ = synced()
    assert near.heard(1, QIDO, "s1") and near.heard(1, None, "")
    assert not near.heard(0, None, "")
    assert not near.in_sync


def test_a_missed_heartbeat_deadline_flushes_at_the_next_lookup():
    near, clock = synced()
    assert kept(near, "a", ["s1"])
    clock.advance(0.2)
    assert near.heard(0, None, "")  # a heartbeat in time
    clock.advance(0.2)
    assert near.get("a") == "answer a"
    clock.advance(0.3)  # nothing heard for 0.5 s
    assert near.get("a") is None and not near.in_sync and near.counts().flushes == 1


def test_an_entry_ends_a_margin_before_its_fresh_for_counted_from_before_the_lookup():
    near, clock = synced()
    ticket = near.ticket()
    assert ticket is not None
    clock.advance(0.1)  # the lookup took a while: its answer is counted from its start
    assert near.put(ticket, "a", "answer", ["s1"], FRESH_MARGIN + 1.0, 10)
    clock.advance(0.85)
    assert near.heard(0, None, "")
    assert near.get("a") == "answer"
    clock.advance(0.06)  # 1.01 s after the ticket: the server's copy has a margin left
    assert near.heard(0, None, "")
    assert near.get("a") is None


@pytest.mark.parametrize("fresh_for", [0.0, FRESH_MARGIN])
def test_an_answer_with_no_more_than_the_margin_left_is_not_kept(fresh_for: float):
    near, _ = synced()
    assert not kept(near, "a", ["s1"], fresh_for=fresh_for)


def test_a_new_stream_is_a_new_epoch_the_old_tickets_keep_nothing():
    near, _ = synced()
    ticket = near.ticket()
    assert ticket is not None
    near.lost("stream ended")
    near.synced(deadline=0.25)
    assert not near.put(ticket, "k", "answer", ["s1"], 60.0, 10)


def test_a_local_invalidation_drops_at_once_and_refuses_lookups_in_flight():
    near, _ = synced()
    near.namespace = "ns"
    assert kept(near, "a", ["s1"]) and kept(near, "b", ["s2"])
    ticket = near.ticket()
    assert ticket is not None
    near.local("ns", "s1")
    assert near.get("a") is None and near.get("b") == "answer b"
    assert not near.put(ticket, "c", "answer", ["s3"], 60.0, 10)
    near.local("ns", None)
    assert near.get("b") is None
