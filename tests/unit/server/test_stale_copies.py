"""StaleCopies, the memory backend's stale-if-error copies: expiry, generations, eviction, bytes."""

from __future__ import annotations

from dicomcache.server.backends.memory.stale import COPY_OVERHEAD, StaleCopies


def test_a_copy_lives_until_its_expiry() -> None:
    copies = StaleCopies()
    copies.put("ns", b"k", b"[]", expires_at=10.0)

    assert copies.get("ns", b"k", 9.9) is not None
    assert copies.get("ns", b"k", 10.0) is None
    assert len(copies) == 0 and copies.bytes == 0  # dropped as it was found dead


def test_an_invalidation_kills_every_copy_of_its_namespace_at_once() -> None:
    copies = StaleCopies()
    for key in (b"a", b"b"):
        copies.put("ns", key, b"[]", 100.0)
    copies.put("other", b"a", b"[]", 100.0)

    copies.invalidate("ns")

    assert copies.get("ns", b"a", 0.0) is None
    assert copies.get("other", b"a", 0.0) is not None
    copies.put("ns", b"c", b"[]", 100.0)  # a copy kept after the invalidation lives
    assert copies.get("ns", b"c", 0.0) is not None
    assert copies.reap(0.0, 10) == 1  # b, dead by its generation; then "other"'s is alive
    assert len(copies) == 2


def test_bytes_count_key_document_and_overhead_and_come_back_on_drop() -> None:
    copies = StaleCopies()
    copies.put("ns", b"key", b"12345", 10.0)
    assert copies.bytes == 3 + 5 + COPY_OVERHEAD
    copies.put("ns", b"key", b"1", 10.0)  # replaced
    assert copies.bytes == 3 + 1 + COPY_OVERHEAD
    assert copies.evict_oldest()
    assert copies.bytes == 0 and not copies.evict_oldest()


def test_reaping_takes_the_dead_from_the_oldest_and_stops_at_the_first_live() -> None:
    copies = StaleCopies()
    for n in range(5):
        copies.put("ns", b"%d" % n, b"[]", 10.0 + n)

    assert copies.reap(12.5, 100) == 3
    assert copies.reap(12.5, 100) == 0
    assert len(copies) == 2
    assert copies.reap(100.0, 1) == 1
