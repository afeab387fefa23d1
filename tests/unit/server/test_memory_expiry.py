"""The memory backend's expiry: incremental reaping, counting, and days-long TTLs (point 7)."""

from __future__ import annotations

from dicomcache.server.backends.memory.backend import REAP_PER_WRITE, MemoryBackend
from dicomcache.server.model import Level
from tests.support.builders import make_study
from tests.support.clock import FakeClock

DAY = 24 * 3600.0


def test_expiry_is_right_past_24_hours() -> None:
    clock = FakeClock()
    backend = MemoryBackend(ttl=3 * DAY, negative_ttl=3 * DAY, clock=clock)
    backend.store_query("ns", b"key", [make_study("1.2", 1, 1)], None)
    backend.store_query("ns", b"empty", [], None)
    backend.store_study("ns", make_study("1.2", 1, 1), Level.INSTANCE, None)

    clock.advance(3 * DAY - 1)
    assert backend.lookup_query("ns", b"key") is not None
    assert backend.lookup_query("ns", b"empty") == []
    assert backend.lookup_study("ns", "1.2", Level.INSTANCE) is not None
    clock.advance(1)
    assert backend.lookup_query("ns", b"key") is None
    assert backend.lookup_query("ns", b"empty") is None
    assert backend.lookup_study("ns", "1.2", Level.INSTANCE) is None
    assert backend.get_object("ns", ("1.2",)) is None


def test_a_write_reaps_only_a_bounded_number_of_expired_items() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    backend.add_objects("ns", [make_study("1.1", 10, 100)], None)  # 1011 objects, one batch
    clock.advance(601)

    backend.add_objects("ns", [make_study("1.2")], None)

    assert backend.stats("ns").namespaces[0].expirations == REAP_PER_WRITE


def test_expire_reaps_in_chunks_until_nothing_is_due() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    backend.store_query("ns", b"key", [make_study("1.1", 3, 10)], None)
    backend.add_objects("ns", [make_study("1.2")], None)
    clock.advance(601)

    chunks = []
    while (n := backend.expire(10)) == 10:
        chunks.append(n)
    chunks.append(n)

    assert all(n <= 10 for n in chunks)
    assert sum(chunks) == 1 + (1 + 3 + 30) + 1  # the answer, the objects: each once
    # Empty, the namespace is gone, with its counters.
    assert backend.stats(None).namespaces == []
    assert backend.stats(None).total_bytes == 0
    assert backend.expire(10) == 0


def test_refreshed_objects_are_not_reaped_by_their_old_expiry() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    study = make_study("1.2", 1, 2)
    backend.add_objects("ns", [study], None)
    clock.advance(300)
    backend.add_objects("ns", [study], None)
    clock.advance(301)

    backend.expire(1000)

    assert backend.stats("ns").namespaces[0].expirations == 0
    assert backend.get_object("ns", ("1.2",)) == study


def test_a_reaped_study_with_live_series_stays_as_a_path() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    backend.add_objects("ns", [make_study("1.2")], None)
    clock.advance(300)
    backend.add_objects("ns", [make_study("1.2", 1, 1, paths=True)], None)
    clock.advance(301)

    backend.expire(1000)

    ns = backend.stats("ns").namespaces[0]
    assert (ns.expirations, ns.studies, ns.instances) == (1, 0, 1)
    assert backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.1")) is not None


def test_expired_objects_are_invisible_before_they_are_reaped() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    backend.add_objects("ns", [make_study("1.2", 1, 1)], None)
    clock.advance(600)

    assert backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.1")) is None
    assert backend.stats("ns").namespaces[0].expirations == 0  # not reaped yet


def test_dropping_a_namespace_removes_it_with_its_counters() -> None:
    backend = MemoryBackend(clock=FakeClock())
    backend.store_query("ns", b"key", [make_study("1.2")], None)
    backend.lookup_query("ns", b"key")
    backend.lookup_query("ns", b"nope")

    backend.invalidate("ns", None)

    assert backend.stats(None).namespaces == []
    ns = backend.stats("ns").namespaces[0]
    assert (ns.hits, ns.misses, ns.studies, ns.queries, ns.bytes) == (0, 0, 0, 0, 0)
    assert backend.stats(None).total_bytes == 0
