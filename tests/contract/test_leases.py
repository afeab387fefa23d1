"""Contract: invalidation wins over every store that began before it (issue 10, item 2).

A miss takes a lease; the archive is asked; meanwhile an invalidation comes; the
store under the old lease must be refused, or the old answer would be served for
the whole TTL.
"""

from __future__ import annotations

import pytest

from dicomcache.server.model import Level
from tests.contract.backends import CacheUnderTest
from tests.support.builders import make_study

KEY = b"query-1"


def store(cache: CacheUnderTest, how: str, lease: int, uid: str = "1.2") -> bool:
    study = make_study(uid, 1, 2)
    if how == "query":
        return cache.backend.store_query("ns", KEY, [study, make_study("1.9")], None, lease)
    return cache.backend.store_study("ns", study, Level.INSTANCE, None, lease)


def hit(cache: CacheUnderTest, how: str, uid: str = "1.2") -> bool:
    if how == "query":
        return cache.backend.lookup_query("ns", KEY) is not None
    return cache.backend.lookup_study("ns", uid, Level.INSTANCE) is not None


HOW = ["query", "study"]
INVALIDATIONS = {
    "the study": ("1.2",),
    "a cached instance": ("1.2", "1.2.1", "1.2.1.1"),
    "a new instance": ("1.2", "1.2.1", "1.2.1.7"),
    "a new study": ("1.2",),
    "the namespace": None,
}


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("what", list(INVALIDATIONS))
def test_a_store_under_a_lease_revoked_by_an_invalidation_is_refused(
    cache: CacheUnderTest, how: str, what: str
) -> None:
    if what != "a new study":
        store(cache, how, 0)  # something cached, so that the invalidation finds it
    lease = cache.backend.lease("ns")
    cache.backend.invalidate("ns", INVALIDATIONS[what])

    assert store(cache, how, lease) is False
    assert not hit(cache, how)


@pytest.mark.parametrize("how", HOW)
def test_a_lease_taken_after_the_invalidation_stores(cache: CacheUnderTest, how: str) -> None:
    cache.backend.invalidate("ns", ("1.2",))
    lease = cache.backend.lease("ns")

    assert store(cache, how, lease) is True
    assert hit(cache, how)


@pytest.mark.parametrize("how", HOW)
def test_invalidating_another_study_keeps_the_lease(cache: CacheUnderTest, how: str) -> None:
    # "ns" holds data: an invalidation of a namespace that holds nothing, or of one
    # that it empties, refuses the leases before it (test_namespace_lifecycle.py).
    cache.backend.add_objects("ns", [make_study("1.9")], None)
    lease = cache.backend.lease("ns")
    cache.backend.invalidate("ns", ("1.3",))

    assert store(cache, how, lease) is True
    assert hit(cache, how)


@pytest.mark.parametrize("how", HOW)
def test_a_store_without_a_lease_is_not_ordered(cache: CacheUnderTest, how: str) -> None:
    cache.backend.invalidate("ns", ("1.2",))

    assert store(cache, how, 0) is True
    assert hit(cache, how)


@pytest.mark.parametrize("how", HOW)
def test_a_lease_never_handed_out_is_refused(cache: CacheUnderTest, how: str) -> None:
    forged = cache.backend.lease("ns") + 10**9

    assert store(cache, how, forged) is False
    assert not hit(cache, how)


def test_leases_are_never_zero(cache: CacheUnderTest) -> None:
    assert cache.backend.lease("ns") != 0
    assert cache.backend.lease("never-seen") != 0
