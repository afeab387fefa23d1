"""Contract: a hit lists studies, series and instances in the order they were stored
(the archive's order), never sorted (issue 10, item 5)."""

from __future__ import annotations

import pytest

from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from tests.contract.backends import CacheUnderTest
from tests.support.builders import attrs, canonical_study


def reversed_study(uid: str, paths: bool = False) -> StudyData:
    """A study whose series and instances come in descending uid order."""
    series = tuple(
        SeriesData(
            f"{uid}.{s}",
            None if paths else attrs(f"{uid}.{s}"),
            tuple(InstanceData(f"{uid}.{s}.{i}", attrs(f"{uid}.{s}.{i}")) for i in (9, 3, 5, 1)),
        )
        for s in (7, 2, 4)
    )
    return StudyData(uid, None if paths else attrs(uid), series)


@pytest.mark.parametrize("paths", [False, True], ids=["with data", "as paths"])
def test_a_query_hit_keeps_the_archive_order(cache: CacheUnderTest, paths: bool) -> None:
    answer = [
        reversed_study("1.9", paths),
        reversed_study("1.2", paths),
        reversed_study("1.5", paths),
    ]
    cache.backend.store_query("ns", b"key", answer, None)

    assert cache.backend.lookup_query("ns", b"key") == answer


@pytest.mark.parametrize("paths", [False, True], ids=["with data", "as paths"])
def test_a_listing_keeps_the_archive_order(cache: CacheUnderTest, paths: bool) -> None:
    study = reversed_study("1.2", paths)
    cache.backend.store_study("ns", study, Level.INSTANCE, None)

    assert cache.backend.lookup_study("ns", "1.2", Level.INSTANCE) == study


def test_a_shallower_lookup_from_a_deeper_listing_keeps_the_order(cache: CacheUnderTest) -> None:
    study = reversed_study("1.2")
    cache.backend.store_study("ns", study, Level.INSTANCE, None)

    got = cache.backend.lookup_study("ns", "1.2", Level.SERIES)
    assert got is not None
    assert [s.uid for s in got.series] == [s.uid for s in study.series]


def test_get_objects_children_after_a_partial_expiry_and_a_rewrite(cache: CacheUnderTest) -> None:
    """GetObjects promises no order of children (cache_service.proto): the same objects come
    back whichever order the backend keeps, each once, after part of a study expired and
    was written again (the memory backend then keeps it last, Redis in uid order)."""
    study = reversed_study("1.2")
    first, *rest = study.series
    cache.backend.add_objects("ns", [StudyData(study.uid, study.attributes, (first,))], 10)
    cache.backend.add_objects("ns", [StudyData(study.uid, study.attributes, tuple(rest))], None)
    cache.advance(11)  # the first series expired with its instances (the study was renewed)
    cache.backend.expire(1000)  # and was reaped (the memory backend's sweeper)
    cache.backend.add_objects("ns", [StudyData(study.uid, study.attributes, (first,))], None)

    got = cache.backend.get_object("ns", ("1.2",))
    assert isinstance(got, StudyData)
    assert sorted(s.uid for s in got.series) == sorted(s.uid for s in study.series)
    assert canonical_study(got) == canonical_study(study)
