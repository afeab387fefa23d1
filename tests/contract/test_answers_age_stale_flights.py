"""Contract (issue 13): an answer's time left, stale copies, and flights.

Every backend tells how long a hit has left on its own clock (so Search tells
the answer's age), keeps stale copies that die with any invalidation of their
namespace, and hands out flights (the memory backend always answers LEAD: its
server's own single-flight coalesces).
"""

from __future__ import annotations

import pytest

from dicomcache.server.backends import Flight
from tests.contract.backends import CacheUnderTest
from tests.contract.conftest import MakeCache
from tests.support.builders import make_study

KEY = b"request-1"
DOCUMENT = b'[{"0020000D": {"vr": "UI", "Value": ["1.2"]}}]'
KEEP = 900.0


def shared(cache: CacheUnderTest) -> bool:
    """Whether the backend is shared by servers (flights matter), i.e. not the memory one."""
    return type(cache.backend).__name__ != "MemoryBackend"


# -- time left ---------------------------------------------------------------------------


def test_a_hit_tells_the_time_its_answer_has_left(cache: CacheUnderTest) -> None:
    cache.backend.store_query("ns", KEY, [make_study("1.2", 1, 1)], 120.0)

    fresh = cache.backend.lookup_answer("ns", KEY)
    cache.advance(50.0)
    older = cache.backend.lookup_answer("ns", KEY)

    assert fresh is not None and older is not None
    assert 119.0 <= fresh.left <= 120.0
    assert 69.0 <= older.left <= 70.0
    assert [study.uid for study in older.studies] == ["1.2"]


def test_an_empty_answer_has_the_negative_ttl_left(make_cache: MakeCache) -> None:
    cache = make_cache(ttl=600.0, negative_ttl=30.0)
    cache.backend.store_query("ns", KEY, [], None)

    found = cache.backend.lookup_answer("ns", KEY)

    assert found is not None and found.studies == []
    assert 29.0 <= found.left <= 30.0


def test_a_miss_has_no_time_left(cache: CacheUnderTest) -> None:
    assert cache.backend.lookup_answer("ns", KEY) is None
    cache.backend.store_query("ns", KEY, [make_study("1.2")], 10.0)
    cache.advance(11.0)
    assert cache.backend.lookup_answer("ns", KEY) is None


# -- stale copies ------------------------------------------------------------------------


def test_a_stale_copy_outlives_its_answer_until_kept_long_enough(cache: CacheUnderTest) -> None:
    lease = cache.backend.lease("ns")
    cache.backend.store_query("ns", KEY, [make_study("1.2")], 600.0, lease)
    assert cache.backend.store_stale("ns", KEY, DOCUMENT, KEEP, lease) is True

    cache.advance(700.0)  # the answer is gone, its copy is not
    assert cache.backend.lookup_answer("ns", KEY) is None
    copy = cache.backend.lookup_stale("ns", KEY)
    assert copy is not None and copy.document == DOCUMENT
    assert 199.0 <= copy.left <= 200.0
    assert 700.0 <= copy.age <= 701.0

    cache.advance(201.0)
    assert cache.backend.lookup_stale("ns", KEY) is None


def test_no_stale_copy_was_ever_kept(cache: CacheUnderTest) -> None:
    assert cache.backend.lookup_stale("ns", KEY) is None


@pytest.mark.parametrize(
    "address", [None, ("1.2",), ("1.9",), ("1.2", "1.2.1", "1.2.1.1")], ids=str
)
def test_any_invalidation_of_the_namespace_kills_its_stale_copies(
    cache: CacheUnderTest, address: tuple[str, ...] | None
) -> None:
    cache.backend.store_query("ns", KEY, [make_study("1.2", 1, 1)], None)
    cache.backend.store_stale("ns", KEY, DOCUMENT, KEEP, cache.backend.lease("ns"))

    cache.backend.invalidate("ns", address)

    assert cache.backend.lookup_stale("ns", KEY) is None
    cache.advance(700.0)
    assert cache.backend.lookup_stale("ns", KEY) is None


def test_an_invalidation_of_another_namespace_keeps_the_copy(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("other", [make_study("1.2")], None)
    cache.backend.store_stale("ns", KEY, DOCUMENT, KEEP, cache.backend.lease("ns"))

    cache.backend.invalidate("other", None)
    cache.backend.invalidate("other", ("1.2",))

    copy = cache.backend.lookup_stale("ns", KEY)
    assert copy is not None and copy.document == DOCUMENT


@pytest.mark.parametrize("address", [None, ("1.2",), ("1.9",)], ids=str)
def test_a_stale_copy_under_a_lease_an_invalidation_came_after_is_refused(
    cache: CacheUnderTest, address: tuple[str, ...] | None
) -> None:
    cache.backend.add_objects("ns", [make_study("1.2"), make_study("1.8")], None)
    lease = cache.backend.lease("ns")
    cache.backend.invalidate("ns", address)

    assert cache.backend.store_stale("ns", KEY, DOCUMENT, KEEP, lease) is False
    assert cache.backend.lookup_stale("ns", KEY) is None


def test_a_stale_copy_kept_after_an_invalidation_lives(cache: CacheUnderTest) -> None:
    cache.backend.invalidate("ns", ("1.2",))
    lease = cache.backend.lease("ns")

    assert cache.backend.store_stale("ns", KEY, DOCUMENT, KEEP, lease) is True
    copy = cache.backend.lookup_stale("ns", KEY)
    assert copy is not None and copy.document == DOCUMENT


def test_a_stale_copy_is_replaced_by_the_next(cache: CacheUnderTest) -> None:
    cache.backend.store_stale("ns", KEY, b"[]", KEEP, cache.backend.lease("ns"))
    cache.backend.store_stale("ns", KEY, DOCUMENT, KEEP, cache.backend.lease("ns"))

    copy = cache.backend.lookup_stale("ns", KEY)
    assert copy is not None and copy.document == DOCUMENT


def test_stale_copies_of_namespaces_and_keys_are_apart(cache: CacheUnderTest) -> None:
    cache.backend.store_stale("ns", KEY, DOCUMENT, KEEP, cache.backend.lease("ns"))

    assert cache.backend.lookup_stale("ns2", KEY) is None
    assert cache.backend.lookup_stale("ns", b"request-2") is None


def test_stale_copies_are_evicted_before_answers(make_cache: MakeCache) -> None:
    cache = make_cache(max_bytes=20_000)  # Redis skips: its maxmemory bounds it
    cache.backend.store_query("ns", KEY, [make_study("1.2", 1, 2)], None)
    for i in range(40):
        cache.backend.store_stale("ns", b"k%d" % i, b"x" * 1000, KEEP, 0)

    stats = cache.backend.stats(None)
    assert stats.total_bytes <= 20_000
    assert cache.backend.lookup_query("ns", KEY) is not None
    assert cache.backend.lookup_stale("ns", b"k0") is None
    assert cache.backend.lookup_stale("ns", b"k39") is not None


# -- flights -----------------------------------------------------------------------------


def test_the_first_holder_leads_and_the_others_wait(cache: CacheUnderTest) -> None:
    assert cache.backend.fly("ns", KEY, "a", 10.0) is Flight.LEAD
    assert cache.backend.fly("ns", KEY, "a", 10.0) is Flight.LEAD
    expected = Flight.WAIT if shared(cache) else Flight.LEAD
    assert cache.backend.fly("ns", KEY, "b", 10.0) is expected
    assert cache.backend.fly("ns", b"request-2", "b", 10.0) is Flight.LEAD
    assert cache.backend.fly("ns2", KEY, "b", 10.0) is Flight.LEAD


def test_a_landed_flight_is_free(cache: CacheUnderTest) -> None:
    cache.backend.fly("ns", KEY, "a", 10.0)
    cache.backend.land("ns", KEY, "b")  # not b's: kept
    if shared(cache):
        assert cache.backend.fly("ns", KEY, "b", 10.0) is Flight.WAIT
    cache.backend.land("ns", KEY, "a")

    assert cache.backend.fly("ns", KEY, "b", 10.0) is Flight.LEAD


def test_a_flight_runs_out_by_itself(cache: CacheUnderTest) -> None:
    cache.backend.fly("ns", KEY, "crashed", 10.0)
    cache.advance(11.0)

    assert cache.backend.fly("ns", KEY, "b", 10.0) is Flight.LEAD


def test_a_stored_answer_ends_the_wait(cache: CacheUnderTest) -> None:
    cache.backend.fly("ns", KEY, "a", 10.0)
    cache.backend.store_query("ns", KEY, [make_study("1.2")], None)

    expected = Flight.ANSWERED if shared(cache) else Flight.LEAD
    assert cache.backend.fly("ns", KEY, "b", 10.0) is expected
