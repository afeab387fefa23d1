"""Contract: objects at tree addresses, per-object expiry, refresh, paths (issue 3, point 1)."""

from __future__ import annotations

from dicomcache.server.model import InstanceData, SeriesData, StudyData
from tests.contract.backends import CacheUnderTest
from tests.support.builders import (
    attrs,
    canonical_study,
    make_series,
    make_study,
    path_to,
    study_only,
)


def test_added_objects_come_back_at_every_address(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 2, 3)
    assert cache.backend.add_objects("ns", [study], None) == 1 + 2 + 2 * 3

    assert canonical_study(cache.backend.get_object("ns", ("1.2",))) == canonical_study(study)  # type: ignore[arg-type]  # found, so a StudyData
    series = study.series[1]
    assert cache.backend.get_object("ns", ("1.2", "1.2.2")) == series
    assert cache.backend.get_object("ns", ("1.2", "1.2.2", "1.2.2.3")) == series.instances[2]


def test_absent_objects_are_none(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1)], None)

    assert cache.backend.get_object("ns", ("1.3",)) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.9")) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.9")) is None
    assert cache.backend.get_object("never-seen", ("1.2",)) is None


def test_namespaces_never_see_each_other(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("a", [make_study("1.2", 1, 1, version=1)], None)
    cache.backend.add_objects("b", [make_study("1.2", 1, 1, version=2)], None)

    a = cache.backend.get_object("a", ("1.2", "1.2.1", "1.2.1.1"))
    b = cache.backend.get_object("b", ("1.2", "1.2.1", "1.2.1.1"))
    assert a == InstanceData("1.2.1.1", attrs("1.2.1.1", 1))
    assert b == InstanceData("1.2.1.1", attrs("1.2.1.1", 2))
    assert cache.backend.get_object("c", ("1.2",)) is None


def test_an_object_lives_ttl_seconds_after_its_write(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2")], None)

    cache.advance(599.5)
    assert cache.backend.get_object("ns", ("1.2",)) is not None
    cache.advance(0.5)
    assert cache.backend.get_object("ns", ("1.2",)) is None


def test_a_write_may_ask_for_a_shorter_ttl(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2")], 10)

    cache.advance(9)
    assert cache.backend.get_object("ns", ("1.2",)) is not None
    cache.advance(1)
    assert cache.backend.get_object("ns", ("1.2",)) is None


def test_a_write_cannot_ask_for_a_longer_ttl_than_the_stores(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2")], 10_000)

    cache.advance(600)
    assert cache.backend.get_object("ns", ("1.2",)) is None


def test_each_object_expires_on_its_own(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 1, 1)
    cache.backend.add_objects("ns", [study], None)
    cache.advance(300)
    cache.backend.add_objects("ns", [path_to(study, make_series("1.2.1", 1))], None)

    cache.advance(300)  # the study's write is 600 s old, the series' and instance's 300 s
    assert cache.backend.get_object("ns", ("1.2",)) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.1")) == make_series("1.2.1", 1)


def test_re_adding_refreshes_only_what_was_re_added(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 1, 1)
    cache.backend.add_objects("ns", [study], None)
    cache.advance(500)
    cache.backend.add_objects("ns", [study_only(study)], None)

    cache.advance(200)
    assert cache.backend.get_object("ns", ("1.2",)) == study_only(study)
    assert cache.backend.get_object("ns", ("1.2", "1.2.1")) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.1")) is None


def test_re_adding_replaces_the_data(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1, version=1)], None)
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1, version=2)], None)

    assert cache.backend.get_object("ns", ("1.2",)) == make_study("1.2", 1, 1, version=2)


def test_paths_are_neither_written_nor_refreshed(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 1, 0, version=1)], None)
    cache.advance(500)
    written = cache.backend.add_objects(
        "ns", [make_study("1.2", 1, 2, version=2, paths=True)], None
    )

    assert written == 2  # the instances; the study and series were only paths
    assert cache.backend.get_object("ns", ("1.2", "1.2.1")) == SeriesData(
        "1.2.1", attrs("1.2.1", 1), make_series("1.2.1", 2, version=2).instances
    )
    cache.advance(100)  # the study and series are 600 s old: not refreshed by the paths
    assert cache.backend.get_object("ns", ("1.2",)) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.1")) is None
    instance = cache.backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.2"))
    assert instance == InstanceData("1.2.1.2", attrs("1.2.1.2", 2))


def test_an_object_comes_with_its_live_descendants_only(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 2, 2)
    cache.backend.add_objects("ns", [study], None)
    cache.advance(300)
    cache.backend.add_objects("ns", [study_only(study)], None)
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1, paths=True)], None)

    cache.advance(300)  # everything but the study and instance 1.2.1.1 expired
    got = cache.backend.get_object("ns", ("1.2",))
    # The expired series stays as a path (no attributes) to its live instance.
    path = SeriesData("1.2.1", None, (InstanceData("1.2.1.1", attrs("1.2.1.1")),))
    assert got == StudyData("1.2", attrs("1.2"), (path,))


def test_an_empty_write_writes_nothing(cache: CacheUnderTest) -> None:
    assert cache.backend.add_objects("ns", [], None) == 0
    assert cache.backend.add_objects("ns", [StudyData("1.2", None)], None) == 0
    assert cache.backend.get_object("ns", ("1.2",)) is None
