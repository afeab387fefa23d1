"""Contract: study-by-id listings, complete only from store_study (issue 3, points 4-5)."""

from __future__ import annotations

import pytest

from dicomcache.server.model import Level, StudyData
from tests.contract.backends import CacheUnderTest
from tests.support.builders import (
    attrs,
    canonical_study,
    make_study,
    series_only,
    study_only,
)

LEVELS = [Level.STUDY, Level.SERIES, Level.INSTANCE]
TRIM = {Level.STUDY: study_only, Level.SERIES: series_only, Level.INSTANCE: lambda s: s}


def lookup(cache: CacheUnderTest, level: Level, uid: str = "1.2") -> StudyData | None:
    got = cache.backend.lookup_study("ns", uid, level)
    return canonical_study(got) if got is not None else None


@pytest.mark.parametrize("level", LEVELS)
def test_a_listing_answers_its_own_level(cache: CacheUnderTest, level: Level) -> None:
    study = TRIM[level](make_study("1.2", 2, 2))
    cache.backend.store_study("ns", study, level, None)

    assert lookup(cache, level) == canonical_study(study)


@pytest.mark.parametrize("level", LEVELS)
def test_a_deeper_listing_answers_shallower_levels_trimmed(
    cache: CacheUnderTest, level: Level
) -> None:
    study = make_study("1.2", 2, 3)
    cache.backend.store_study("ns", study, Level.INSTANCE, None)

    assert lookup(cache, level) == canonical_study(TRIM[level](study))


def test_a_shallower_listing_does_not_answer_deeper_levels(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 2, 2)
    cache.backend.add_objects("ns", [study], None)
    cache.backend.store_study("ns", series_only(study), Level.SERIES, None)

    assert lookup(cache, Level.INSTANCE) is None
    assert lookup(cache, Level.SERIES) == canonical_study(series_only(study))


@pytest.mark.parametrize("level", LEVELS)
def test_query_answers_and_added_objects_are_never_listings(
    cache: CacheUnderTest, level: Level
) -> None:
    cache.backend.store_query("ns", b"key", [make_study("1.2", 2, 2)], None)
    cache.backend.add_objects("ns", [make_study("1.2", 2, 2)], None)

    assert lookup(cache, level) is None


def test_a_listing_holds_exactly_its_children(cache: CacheUnderTest) -> None:
    cache.backend.add_objects("ns", [make_study("1.2", 3, 2)], None)
    listed = StudyData("1.2", attrs("1.2"), make_study("1.2", 2, 0).series)
    cache.backend.store_study("ns", listed, Level.SERIES, None)

    assert lookup(cache, Level.SERIES) == listed


def test_a_listing_whose_objects_changed_is_a_miss(cache: CacheUnderTest) -> None:
    cache.backend.store_study("ns", make_study("1.2", 1, 1), Level.INSTANCE, None)
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1, version=3)], None)

    assert lookup(cache, Level.INSTANCE) is None


def test_a_listing_survives_a_write_of_the_same_attributes(cache: CacheUnderTest) -> None:
    cache.backend.store_study("ns", make_study("1.2", 1, 1), Level.INSTANCE, None)
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1)], None)

    assert lookup(cache, Level.INSTANCE) == make_study("1.2", 1, 1)


def test_listings_are_kept_per_namespace(cache: CacheUnderTest) -> None:
    cache.backend.store_study("a", make_study("1.2", 1, 1), Level.INSTANCE, None)

    assert cache.backend.lookup_study("b", "1.2", Level.STUDY) is None
    assert cache.backend.lookup_study("a", "1.2", Level.STUDY) == make_study("1.2")


@pytest.mark.parametrize("level", LEVELS)
def test_an_expired_object_breaks_the_listing(cache: CacheUnderTest, level: Level) -> None:
    cache.backend.store_study("ns", make_study("1.2", 2, 2), Level.INSTANCE, None)
    cache.backend.add_objects("ns", [make_study("1.2", 1, 1, paths=True)], 10)

    cache.advance(9)
    assert lookup(cache, level) is not None
    cache.advance(1)
    assert lookup(cache, level) is None


def test_a_listing_expires_on_its_own_ttl(cache: CacheUnderTest) -> None:
    study = make_study("1.2", 1, 1)
    cache.backend.store_study("ns", study, Level.INSTANCE, None)
    cache.advance(500)
    cache.backend.add_objects("ns", [study], None)

    cache.advance(100)
    assert lookup(cache, Level.STUDY) is None


def test_a_listing_may_ask_for_a_shorter_ttl(cache: CacheUnderTest) -> None:
    cache.backend.store_study("ns", make_study("1.2", 1, 1), Level.INSTANCE, 30)

    cache.advance(29)
    assert lookup(cache, Level.INSTANCE) is not None
    cache.advance(1)
    assert lookup(cache, Level.INSTANCE) is None


@pytest.mark.parametrize("shallow", [Level.STUDY, Level.SERIES])
def test_a_shallower_write_keeps_deeper_content_and_listings(
    cache: CacheUnderTest, shallow: Level
) -> None:
    # As dicomtrolley answers at instance level: data at the deepest level only.
    deep_listing = make_study("1.2", 2, 2, paths=True)
    cache.backend.store_study("ns", deep_listing, Level.INSTANCE, None)
    newer = TRIM[shallow](make_study("1.2", 2, 2, version=5))
    cache.backend.store_study("ns", newer, shallow, None)
    cache.backend.store_query("ns", b"key", [newer], None)
    cache.backend.add_objects("ns", [newer], None)

    assert lookup(cache, Level.INSTANCE) == canonical_study(deep_listing)
    assert lookup(cache, shallow) == canonical_study(newer)


def test_a_shallower_write_of_other_attributes_breaks_listings_that_returned_them(
    cache: CacheUnderTest,
) -> None:
    cache.backend.store_study("ns", make_study("1.2", 2, 2), Level.INSTANCE, None)
    cache.backend.store_study("ns", make_study("1.2", version=5), Level.STUDY, None)

    assert lookup(cache, Level.INSTANCE) is None
    assert lookup(cache, Level.STUDY) == make_study("1.2", version=5)


@pytest.mark.parametrize(
    ("address", "broken"),
    [
        (("1.2",), LEVELS),
        (("1.2", "1.2.1"), [Level.SERIES, Level.INSTANCE]),
        (("1.2", "1.2.1", "1.2.1.1"), [Level.INSTANCE]),
    ],
)
def test_invalidation_breaks_the_listings_that_held_the_object(
    cache: CacheUnderTest, address: tuple[str, ...], broken: list[Level]
) -> None:
    study = make_study("1.2", 2, 2)
    for level in LEVELS:
        cache.backend.store_study("ns", TRIM[level](study), level, None)

    cache.backend.invalidate("ns", address)
    cache.backend.add_objects("ns", [study], None)  # written again: still no listing

    for level in LEVELS:
        got = lookup(cache, level)
        if level in broken:
            assert got is None, level
        else:
            assert got == canonical_study(TRIM[level](study)), level


def test_a_deeper_listing_of_paths_answers_shallower_levels_only_with_their_data(
    cache: CacheUnderTest,
) -> None:
    """dicomtrolley's instance-level answers carry data only on instances: the study
    and series come as paths. Served at series level, such a listing would hand out
    series without attributes, a partial answer, unless the series are cached with data.
    """
    study = make_study("1.2", 2, 2, paths=True)
    cache.backend.store_study("ns", study, Level.INSTANCE, None)
    assert lookup(cache, Level.INSTANCE) == canonical_study(study)
    assert lookup(cache, Level.SERIES) is None
    assert lookup(cache, Level.STUDY) is None
    assert lookup(cache, Level.INSTANCE) == canonical_study(study), "still good at its own level"


def test_a_deeper_listing_of_paths_serves_the_current_data_of_the_requested_level(
    cache: CacheUnderTest,
) -> None:
    with_data = make_study("1.2", 2, 0, version=1)
    cache.backend.add_objects("ns", [with_data], None)
    cache.backend.store_study("ns", make_study("1.2", 2, 2, paths=True), Level.INSTANCE, None)

    assert lookup(cache, Level.SERIES) == canonical_study(
        StudyData("1.2", None, with_data.series)
    ), "the instance listing's series with their current data, the study still a path"
    assert lookup(cache, Level.STUDY) == canonical_study(study_only(with_data))


def test_a_listing_of_a_path_series_at_its_own_level_needs_the_series_data(
    cache: CacheUnderTest,
) -> None:
    study = make_study("1.2", 1, 2, paths=True)
    cache.backend.store_study("ns", series_only(study), Level.SERIES, None)
    assert lookup(cache, Level.SERIES) is None
