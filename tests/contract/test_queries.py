"""Contract: the query index, exact answers, current data, negative TTL (issue 3, points 2-3)."""

from __future__ import annotations

import pytest

from dicomcache.server.model import InstanceData, SeriesData, StudyData
from tests.contract.backends import CacheUnderTest
from tests.contract.conftest import MakeCache
from tests.support.builders import attrs, canonical, make_series, make_study, study_only

KEY = b"query-1"


def test_a_stored_answer_is_served_as_stored(cache: CacheUnderTest) -> None:
    answer = [make_study("1.2", 2, 2), make_study("1.3", 1, 3)]
    cache.backend.store_query("ns", KEY, answer, None)

    assert canonical(cache.backend.lookup_query("ns", KEY)) == canonical(answer)


def test_an_unknown_key_is_a_miss(cache: CacheUnderTest) -> None:
    cache.backend.store_query("ns", KEY, [make_study("1.2")], None)

    assert cache.backend.lookup_query("ns", b"query-2") is None
    assert cache.backend.lookup_query("other", KEY) is None


def test_answers_of_one_key_are_kept_per_namespace(cache: CacheUnderTest) -> None:
    cache.backend.store_query("a", KEY, [make_study("1.2", version=1)], None)
    cache.backend.store_query("b", KEY, [make_study("1.3", version=2)], None)

    assert cache.backend.lookup_query("a", KEY) == [make_study("1.2", version=1)]
    assert cache.backend.lookup_query("b", KEY) == [make_study("1.3", version=2)]


@pytest.mark.parametrize("level", [1, 2, 3])
def test_a_hit_never_serves_attributes_written_by_another_answer(
    cache: CacheUnderTest, level: int
) -> None:
    """Query A asked for more attributes than query B; B's write must not thin A's hit."""
    cache.backend.store_query("ns", KEY, [make_study("1.2", 1, 2)], None)
    other = StudyData("1.2", attrs("1.2", 7) if level == 1 else None)
    if level > 1:
        instances = (InstanceData("1.2.1.2", attrs("1.2.1.2", 7)),) if level == 3 else ()
        other = StudyData(
            "1.2",
            None,
            (SeriesData("1.2.1", attrs("1.2.1", 7) if level == 2 else None, instances),),
        )
    cache.backend.store_query("ns", b"query-b", [other], None)

    assert cache.backend.lookup_query("ns", KEY) is None
    assert cache.backend.lookup_query("ns", b"query-b") == [other]


def test_writing_the_same_attributes_again_keeps_the_answer(cache: CacheUnderTest) -> None:
    answer = [make_study("1.2", 1, 2)]
    cache.backend.store_query("ns", KEY, answer, None)
    cache.backend.add_objects("ns", [make_study("1.2", 1, 2)], None)
    cache.backend.store_query("ns", b"query-b", [make_study("1.2", 1, 1)], None)

    assert canonical(cache.backend.lookup_query("ns", KEY)) == canonical(answer)


def test_a_hit_holds_exactly_the_objects_answered(cache: CacheUnderTest) -> None:
    answered = StudyData("1.2", attrs("1.2"), (make_series("1.2.1", 1),))
    cache.backend.store_query("ns", KEY, [answered], None)
    cache.backend.add_objects("ns", [make_study("1.2", 3, 3)], None)  # more series, more instances

    assert cache.backend.lookup_query("ns", KEY) == [answered]


def test_a_study_level_answer_does_not_grow_the_cached_series(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 2, 2)
    cache.backend.add_objects("ns", [study], None)
    cache.backend.store_query("ns", KEY, [study_only(study)], None)

    assert cache.backend.lookup_query("ns", KEY) == [study_only(study)]
    assert cache.backend.get_object("ns", ("1.2",)) == study  # the series are still cached


def test_an_answer_dies_with_any_of_its_objects_and_is_dropped(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 1, 2)
    cache.backend.store_query("ns", KEY, [study], None)
    instance = make_study("1.2", 1, 1, paths=True)
    cache.backend.add_objects("ns", [instance], 10)  # this one instance now expires first

    cache.advance(9)
    assert cache.backend.lookup_query("ns", KEY) is not None
    cache.advance(1)
    assert cache.backend.lookup_query("ns", KEY) is None
    cache.backend.add_objects("ns", [instance], None)
    assert cache.backend.lookup_query("ns", KEY) is None  # the dead answer was dropped


def test_an_answer_expires_on_its_own_ttl(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 1, 1)
    cache.backend.store_query("ns", KEY, [study], None)
    cache.advance(500)
    cache.backend.add_objects("ns", [study], None)  # the objects live on

    cache.advance(100)
    assert cache.backend.lookup_query("ns", KEY) is None
    assert cache.backend.get_object("ns", ("1.2",)) == study


def test_an_answer_may_ask_for_a_shorter_ttl(cache: CacheUnderTest) -> None:
    cache.backend.store_query("ns", KEY, [make_study("1.2")], 30)

    cache.advance(29)
    assert cache.backend.lookup_query("ns", KEY) == [make_study("1.2")]
    cache.advance(1)
    assert cache.backend.lookup_query("ns", KEY) is None


def test_storing_again_replaces_the_answer(cache: CacheUnderTest) -> None:
    cache.backend.store_query("ns", KEY, [make_study("1.2")], None)
    cache.backend.store_query("ns", KEY, [make_study("1.3")], None)

    assert cache.backend.lookup_query("ns", KEY) == [make_study("1.3")]


def test_an_empty_answer_is_cached_for_the_negative_ttl(cache: CacheUnderTest) -> None:
    cache.backend.store_query("ns", KEY, [], None)

    assert cache.backend.lookup_query("ns", KEY) == []
    cache.advance(59)
    assert cache.backend.lookup_query("ns", KEY) == []
    cache.advance(1)
    assert cache.backend.lookup_query("ns", KEY) is None


def test_an_empty_answer_may_ask_for_less_than_the_negative_ttl(cache: CacheUnderTest) -> None:
    cache.backend.store_query("ns", KEY, [], 20)

    cache.advance(20)
    assert cache.backend.lookup_query("ns", KEY) is None


def test_the_negative_ttl_is_never_longer_than_the_ttl(make_cache: MakeCache) -> None:
    cache = make_cache(ttl=30, negative_ttl=60)
    cache.backend.store_query("ns", KEY, [], None)

    cache.advance(30)
    assert cache.backend.lookup_query("ns", KEY) is None


def test_an_invalidated_object_kills_its_answers_even_once_written_again(
    cache: CacheUnderTest,
) -> None:
    study = make_study("1.2", 2, 1)
    cache.backend.store_query("ns", KEY, [study], None)
    cache.backend.store_query("ns", b"other", [make_study("1.3", 1, 1)], None)

    cache.backend.invalidate("ns", ("1.2", "1.2.2"))
    cache.backend.add_objects("ns", [study], None)

    assert cache.backend.lookup_query("ns", KEY) is None
    assert cache.backend.lookup_query("ns", b"other") == [make_study("1.3", 1, 1)]
