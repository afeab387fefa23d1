"""Contract: statistics per namespace and for all (issue 3, point 9)."""

from __future__ import annotations

from dicomcache.server.model import Level, NamespaceStats
from tests.contract.backends import CacheUnderTest
from tests.support.builders import make_study


def one(cache: CacheUnderTest, namespace: str) -> NamespaceStats:
    stats = cache.backend.stats(namespace)
    assert [s.namespace for s in stats.namespaces] == [namespace]
    return stats.namespaces[0]


def test_objects_are_counted_per_level_and_namespace(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("a", [make_study("1.2", 2, 3), make_study("1.3", 1, 0)], None)
    cache.backend.add_objects("b", [make_study("1.2", 1, 1, paths=True)], None)

    a, b = one(cache, "a"), one(cache, "b")
    assert (a.studies, a.series, a.instances) == (2, 3, 6)
    assert (b.studies, b.series, b.instances) == (0, 0, 1)


def test_queries_are_counted(cache: CacheUnderTest) -> None:
    cache.backend.store_query("a", b"one", [make_study("1.2")], None)
    cache.backend.store_query("a", b"two", [], None)
    cache.backend.store_query("a", b"two", [], None)

    assert one(cache, "a").queries == 2
    assert one(cache, "b").queries == 0


def test_hits_and_misses_of_queries_and_studies_are_counted(cache: CacheUnderTest) -> None:
    cache.backend.store_query("a", b"key", [make_study("1.2", 1, 1)], None)
    cache.backend.store_study("a", make_study("1.2", 1, 1), Level.INSTANCE, None)

    cache.backend.lookup_query("a", b"key")
    cache.backend.lookup_query("a", b"key")
    cache.backend.lookup_query("a", b"nope")
    cache.backend.lookup_study("a", "1.2", Level.SERIES)
    cache.backend.lookup_study("a", "1.3", Level.SERIES)
    cache.backend.lookup_query("b", b"key")

    a, b = one(cache, "a"), one(cache, "b")
    assert (a.hits, a.misses) == (3, 2)
    assert (b.hits, b.misses) == (0, 0)  # "b" holds nothing: it keeps no counters


def test_bytes_grow_with_data_and_shrink_on_invalidation(cache: CacheUnderTest) -> None:
    assert one(cache, "a").bytes == 0
    cache.backend.add_objects("a", [make_study("1.2", 1, 1, size=100)], None)
    small = one(cache, "a").bytes
    cache.backend.add_objects("a", [make_study("1.3", 1, 1, size=10_000)], None)
    large = one(cache, "a").bytes

    assert 300 <= small < large
    assert large - small >= 3 * 10_000
    cache.backend.invalidate("a", ("1.3",))
    assert one(cache, "a").bytes == small
    cache.backend.invalidate("a", None)
    assert one(cache, "a").bytes == 0


def test_all_namespaces_add_up(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("a", [make_study("1.2", 1, 1)], None)
    cache.backend.add_objects("b", [make_study("1.2", 2, 2)], None)

    stats = cache.backend.stats(None)
    assert sorted(s.namespace for s in stats.namespaces) == ["a", "b"]
    assert stats.total_bytes == sum(s.bytes for s in stats.namespaces) > 0
    assert sum(s.instances for s in stats.namespaces) == 5
