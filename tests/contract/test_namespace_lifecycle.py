"""A namespace exists while it holds data; lookups and invalidations of one that holds
nothing leave nothing behind, and no lease outlives what they announced (issue 11).

The rule every backend keeps: lookups (queries, studies, objects, the lease of a
miss) and invalidations of a namespace that holds nothing create no state for its
name; a namespace is gone once it holds nothing, with its counters. A store
under a lease issued before an invalidation of such a namespace, or before the
namespace became empty, is refused.
"""

from __future__ import annotations

import pytest

from dicomcache.server.model import Level
from tests.contract.backends import CacheUnderTest
from tests.support.builders import make_study


def names(cache: CacheUnderTest) -> list[str]:
    return [s.namespace for s in cache.backend.stats(None).namespaces]


def test_lookups_of_an_unknown_namespace_leave_nothing(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("known", [make_study("1.9")], None)
    before = cache.backend.stats(None).total_bytes

    assert cache.backend.lookup_query("stranger", b"key") is None
    assert cache.backend.lookup_study("stranger", "1.2", Level.STUDY) is None
    assert cache.backend.get_object("stranger", ("1.2",)) is None
    cache.backend.lease("stranger")
    cache.backend.invalidate("stranger", ("1.2",))
    cache.backend.invalidate("stranger", None)

    assert names(cache) == ["known"]
    assert cache.backend.stats(None).total_bytes == before
    stranger = cache.backend.stats("stranger").namespaces[0]
    assert (stranger.hits, stranger.misses, stranger.bytes) == (0, 0, 0)


def test_a_namespace_goes_when_it_holds_nothing(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1)], None)
    cache.backend.lookup_study("ns", "1.3", Level.STUDY)  # a miss, counted while it exists

    cache.backend.invalidate("ns", ("1.2",))

    assert names(cache) == []
    ns = cache.backend.stats("ns").namespaces[0]
    assert (ns.studies, ns.misses) == (0, 0)


@pytest.mark.parametrize("study", [("1.2",), None], ids=["study", "namespace"])
def test_a_lease_from_an_unknown_namespace_loses_to_its_invalidation(
    cache: CacheUnderTest, study: tuple[str] | None
) -> None:
    lease = cache.backend.lease("stranger")
    cache.backend.invalidate("stranger", study)

    stored = cache.backend.store_study(
        "stranger", make_study("1.2", 1, 1), Level.INSTANCE, None, lease
    )
    assert stored is False
    assert cache.backend.lookup_study("stranger", "1.2", Level.STUDY) is None


@pytest.mark.parametrize("how", ["invalidated", "dropped"])
def test_a_lease_from_before_the_namespace_emptied_is_refused(
    cache: CacheUnderTest, how: str
) -> None:
    """Even for another study: nothing is left to tell what else changed meanwhile."""
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1)], None)
    lease = cache.backend.lease("ns")
    cache.backend.invalidate("ns", ("1.2",) if how == "invalidated" else None)

    stored = cache.backend.store_query("ns", b"key", [make_study("1.3", 1, 1)], None, lease)
    assert stored is False
    assert cache.backend.lookup_query("ns", b"key") is None
