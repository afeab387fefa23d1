"""Contract: invalidating an instance, a series, a study or a namespace (issue 3, point 9)."""

from __future__ import annotations

import pytest

from dicomcache.server.model import Level, StudyData
from tests.contract.backends import CacheUnderTest
from tests.support.builders import attrs, make_series, make_study


def test_invalidating_an_instance_drops_it_alone(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 1, 2)], None)

    assert cache.backend.invalidate("ns", ("1.2", "1.2.1", "1.2.1.2")) == 1
    assert cache.backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.2")) is None
    assert cache.backend.get_object("ns", ("1.2",)) == StudyData(
        "1.2", attrs("1.2"), (make_series("1.2.1", 1),)
    )


def test_invalidating_a_series_drops_it_and_its_instances(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 2, 3)], None)

    assert cache.backend.invalidate("ns", ("1.2", "1.2.1")) == 1 + 3
    assert cache.backend.get_object("ns", ("1.2", "1.2.1")) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.1")) is None
    assert cache.backend.get_object("ns", ("1.2",)) == StudyData(
        "1.2", attrs("1.2"), (make_series("1.2.2", 3),)
    )


def test_invalidating_a_study_drops_everything_under_it(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 2, 3), make_study("1.3", 1, 1)], None)
    cache.backend.store_study("ns", make_study("1.2", 2, 3), Level.INSTANCE, None)

    assert cache.backend.invalidate("ns", ("1.2",)) == 1 + 2 + 2 * 3
    assert cache.backend.get_object("ns", ("1.2",)) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.2", "1.2.2.3")) is None
    assert cache.backend.lookup_study("ns", "1.2", Level.STUDY) is None
    assert cache.backend.get_object("ns", ("1.3",)) == make_study("1.3", 1, 1)


def test_invalidating_an_object_keeps_answers_without_it(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 2, 1)
    cache.backend.store_query("ns", b"all", [study], None)
    only_second = StudyData("1.2", attrs("1.2"), (make_series("1.2.2", 1),))
    cache.backend.store_query("ns", b"second", [only_second], None)

    cache.backend.invalidate("ns", ("1.2", "1.2.1", "1.2.1.1"))

    assert cache.backend.lookup_query("ns", b"all") is None
    assert cache.backend.lookup_query("ns", b"second") == [only_second]


def test_invalidating_a_namespace_drops_it_and_only_it(cache: CacheUnderTest) -> None:
    for ns in ("a", "b"):
        cache.backend.store_query(ns, b"key", [make_study("1.2", 1, 1)], None)
        cache.backend.store_query(ns, b"empty", [], None)
        cache.backend.store_study(ns, make_study("1.3", 1, 1), Level.INSTANCE, None)

    assert cache.backend.invalidate("a", None) == 6

    assert cache.backend.get_object("a", ("1.2",)) is None
    assert cache.backend.lookup_query("a", b"key") is None
    assert cache.backend.lookup_query("a", b"empty") is None
    assert cache.backend.lookup_study("a", "1.3", Level.STUDY) is None
    assert cache.backend.get_object("b", ("1.2",)) == make_study("1.2", 1, 1)
    assert cache.backend.lookup_query("b", b"key") == [make_study("1.2", 1, 1)]
    assert cache.backend.lookup_query("b", b"empty") == []
    assert cache.backend.lookup_study("b", "1.3", Level.INSTANCE) == make_study("1.3", 1, 1)


def test_invalidating_what_is_not_cached_drops_nothing(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1)], None)

    assert cache.backend.invalidate("ns", ("1.3",)) == 0
    assert cache.backend.invalidate("ns", ("1.3", "1.3.1", "1.3.1.1")) == 0
    assert cache.backend.invalidate("other", ("1.2",)) == 0
    assert cache.backend.invalidate("other", None) == 0
    assert cache.backend.get_object("ns", ("1.2",)) == make_study("1.2", 1, 1)


def test_expired_objects_do_not_count_as_invalidated(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 1, 2)
    cache.backend.add_objects("ns", [study], None)
    cache.advance(300)
    cache.backend.add_objects("ns", [StudyData("1.2", attrs("1.2"))], None)
    cache.advance(300)  # the series and its instances expired, the study did not

    assert cache.backend.invalidate("ns", ("1.2",)) == 1


def test_a_series_path_written_after_invalidation_is_fresh(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1)], None)
    cache.backend.invalidate("ns", ("1.2",))
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1, paths=True, version=2)], None)

    assert cache.backend.get_object("ns", ("1.2",)) is None
    assert cache.backend.get_object("ns", ("1.2", "1.2.1")) is None
    got = cache.backend.get_object("ns", ("1.2", "1.2.1", "1.2.1.1"))
    assert got is not None and got.attributes == attrs("1.2.1.1", 2)


@pytest.mark.parametrize(
    "address",
    [("1.2", "1.2.1", "1.2.1.9"), ("1.2", "1.2.9"), ("1.2", "1.2.9", "1.2.9.1")],
    ids=["new instance", "new series", "instance of a new series"],
)
def test_invalidating_an_object_never_cached_drops_its_study(
    cache: CacheUnderTest, address: tuple[str, ...]
) -> None:
    """A new object in the archive: whatever should have held it must be a miss (issue 10)."""
    study = make_study("1.2", 1, 2)
    for level in (Level.STUDY, Level.SERIES, Level.INSTANCE):
        cache.backend.store_study("ns", study, level, None)
    cache.backend.store_query("ns", b"with", [make_study("1.2", 1, 1), make_study("1.3")], None)
    cache.backend.store_query("ns", b"without", [make_study("1.4", 1, 1)], None)

    assert cache.backend.invalidate("ns", address) == 1 + 1 + 2

    for level in (Level.STUDY, Level.SERIES, Level.INSTANCE):
        assert cache.backend.lookup_study("ns", "1.2", level) is None
    assert cache.backend.lookup_query("ns", b"with") is None
    assert cache.backend.lookup_query("ns", b"without") == [make_study("1.4", 1, 1)]
    assert cache.backend.get_object("ns", ("1.3",)) == make_study("1.3")
