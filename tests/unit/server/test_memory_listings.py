"""The memory backend keeps a study's listings consistent with each other and with new children."""

from __future__ import annotations

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.model import Level, StudyData
from tests.support.builders import attrs, make_series, make_study, path_to, series_only, study_only
from tests.support.clock import FakeClock


def test_a_newer_listing_that_disagrees_drops_the_older_ones() -> None:
    backend = MemoryBackend(clock=FakeClock())
    backend.store_study("ns", make_study("1.2", 2, 1), Level.INSTANCE, None)
    fewer = StudyData("1.2", attrs("1.2"), (make_series("1.2.1"),))  # series 1.2.2 is gone

    backend.store_study("ns", fewer, Level.SERIES, None)

    assert backend.lookup_study("ns", "1.2", Level.INSTANCE) is None
    assert backend.lookup_study("ns", "1.2", Level.SERIES) == fewer


def test_a_newer_listing_that_agrees_keeps_the_older_ones() -> None:
    backend = MemoryBackend(clock=FakeClock())
    study = make_study("1.2", 2, 1)
    backend.store_study("ns", study, Level.INSTANCE, None)

    backend.store_study("ns", series_only(study), Level.SERIES, None)

    assert backend.lookup_study("ns", "1.2", Level.INSTANCE) == study


def test_a_child_the_listing_did_not_have_drops_it() -> None:
    backend = MemoryBackend(clock=FakeClock())
    backend.store_study("ns", make_study("1.2", 1, 1), Level.INSTANCE, None)
    backend.store_study("ns", series_only(make_study("1.2", 1, 1)), Level.SERIES, None)
    backend.store_study("ns", study_only(make_study("1.2")), Level.STUDY, None)

    backend.add_objects("ns", [path_to(make_study("1.2"), make_series("1.2.9", 1))], None)

    assert backend.lookup_study("ns", "1.2", Level.INSTANCE) is None
    assert backend.lookup_study("ns", "1.2", Level.SERIES) is None
    assert backend.lookup_study("ns", "1.2", Level.STUDY) == make_study("1.2")
