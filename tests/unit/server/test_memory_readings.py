"""Hits served from a kept reading (``memory/readings``) are exactly the hits a fresh read gives."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dicomcache.server.api import encode
from dicomcache.server.backends.memory import MemoryBackend
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from tests.support.clock import FakeClock

NS = "ns"
STUDIES = ("1.1", "1.2")


def _dataset(tag: str) -> bytes:
    """Serialized Dataset bytes, different for each tag (the backend keeps them as given)."""
    return b"\x0a\x0c\x08\x10\x12\x08\x0a\x02LO\x12\x02" + tag.encode()[:2].ljust(2, b"_")


def _study(uid: str, series: int, instances: int, tag: str, paths: bool = False) -> StudyData:
    """A study down to instances; ``paths``: study and series only as paths."""

    def data(name: str) -> bytes | None:
        return None if paths else _dataset(tag + name)

    return StudyData(
        uid,
        data("s"),
        tuple(
            SeriesData(
                f"{uid}.{s}",
                data(f"{s}"),
                tuple(
                    InstanceData(f"{uid}.{s}.{i}", _dataset(f"{tag}{s}{i}"))
                    for i in range(instances)
                ),
            )
            for s in range(series)
        ),
    )


_LEVELS = st.sampled_from(list(Level))
_OPERATIONS = st.one_of(
    st.tuples(
        st.just("store"),
        st.sampled_from(STUDIES),
        _LEVELS,
        st.integers(1, 3),
        st.integers(1, 3),
        st.sampled_from("ab"),
        st.booleans(),
        st.sampled_from([None, 5.0, 50.0]),
    ),
    st.tuples(
        st.just("add"),
        st.sampled_from(STUDIES),
        st.integers(1, 3),
        st.integers(1, 3),
        st.sampled_from("ab"),
        st.sampled_from([None, 5.0, 50.0]),
    ),
    st.tuples(
        st.just("invalidate"),
        st.sampled_from(STUDIES),
        st.integers(0, 3),
        st.integers(0, 2),
        st.integers(0, 2),
    ),
    st.tuples(
        st.just("rewrite one"),
        st.sampled_from(STUDIES),
        st.integers(0, 2),
        st.integers(0, 2),
        st.sampled_from("abc"),
    ),
    st.tuples(st.just("drop namespace")),
    st.tuples(st.just("wait"), st.sampled_from([1.0, 4.0, 10.0, 60.0])),
    st.tuples(st.just("look"), st.sampled_from(STUDIES), _LEVELS),
)


def _apply(backend: MemoryBackend, operation: tuple[Any, ...]) -> Any:
    kind = operation[0]
    if kind == "store":
        _, uid, level, series, instances, tag, paths, ttl = operation
        return backend.store_study(NS, _study(uid, series, instances, tag, paths), level, ttl)
    if kind == "add":
        _, uid, series, instances, tag, ttl = operation
        return backend.add_objects(NS, [_study(uid, series, instances, tag)], ttl)
    if kind == "invalidate":
        _, uid, depth, series, instance = operation
        address = (uid, f"{uid}.{series}", f"{uid}.{series}.{instance}")[:depth]
        return backend.invalidate(NS, address or None)
    if kind == "rewrite one":  # one instance, under its study and series as paths
        _, uid, s, i, tag = operation
        instance = InstanceData(f"{uid}.{s}.{i}", _dataset(f"{tag}{s}{i}"))
        series = SeriesData(f"{uid}.{s}", None, (instance,))
        return backend.add_objects(NS, [StudyData(uid, None, (series,))], None)
    if kind == "drop namespace":
        return backend.invalidate(NS, None)
    if kind == "look":
        _, uid, level = operation
        found = backend.study_answer(NS, uid, level)
        return None if found is None else (found.studies, found.left)
    raise AssertionError(kind)


@settings(max_examples=300, deadline=None)
@given(st.lists(_OPERATIONS, max_size=30))
def test_every_hit_is_what_a_backend_without_readings_gives(operations: list[Any]) -> None:
    clocks = FakeClock(), FakeClock()
    kept = MemoryBackend(ttl=30.0, clock=clocks[0])
    fresh = MemoryBackend(ttl=30.0, clock=clocks[1], readings_bytes=0)
    for operation in operations:
        if operation[0] == "wait":
            for clock in clocks:
                clock.advance(operation[1])
            continue
        ours, theirs = _apply(kept, operation), _apply(fresh, operation)
        assert ours == theirs, operation
        # A lookup after every step: readings are kept and tried as often as can be.
        for uid in STUDIES:
            for level in Level:
                assert _apply(kept, ("look", uid, level)) == _apply(fresh, ("look", uid, level))
    assert kept.stats(NS).namespaces == fresh.stats(NS).namespaces


def test_a_repeated_hit_is_served_from_the_reading() -> None:
    backend = MemoryBackend(clock=FakeClock())
    assert backend.store_study(NS, _study("1.1", 2, 3, "a"), Level.INSTANCE, None)
    first = backend.lookup_study(NS, "1.1", Level.INSTANCE)
    again = backend.lookup_study(NS, "1.1", Level.INSTANCE)
    assert first == again == _study("1.1", 2, 3, "a")
    assert again is first  # no read, no unpacking
    assert backend.stats(NS).namespaces[0].hits == 2


def test_a_rewrite_of_the_same_attributes_with_a_shorter_ttl_voids_the_reading() -> None:
    clock = FakeClock()
    backend = MemoryBackend(ttl=600.0, clock=clock)
    study = _study("1.1", 1, 2, "a")
    assert backend.store_study(NS, study, Level.INSTANCE, 600.0)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) == study
    backend.add_objects(NS, [study], 5.0)  # no change a read could see, but earlier expiry
    clock.advance(10.0)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) is None


def test_readings_stay_within_their_bound() -> None:
    backend = MemoryBackend(clock=FakeClock(), readings_bytes=20_000)
    for n in range(40):
        uid = f"1.{n}"
        assert backend.store_study(NS, _study(uid, 2, 10, "a"), Level.INSTANCE, None)
        assert backend.lookup_study(NS, uid, Level.INSTANCE) is not None
    assert 0 < backend._readings.bytes <= 20_000
    assert 0 < len(backend._readings) < 40


def test_an_instance_written_again_with_other_attributes_voids_the_reading() -> None:
    backend = MemoryBackend(clock=FakeClock())
    assert backend.store_study(NS, _study("1.1", 1, 2, "a"), Level.INSTANCE, None)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) is not None
    instance = InstanceData("1.1.0.1", _dataset("zz"))
    backend.add_objects(
        NS, [StudyData("1.1", None, (SeriesData("1.1.0", None, (instance,)),))], None
    )
    fresh = MemoryBackend(clock=FakeClock(), readings_bytes=0)
    assert fresh.store_study(NS, _study("1.1", 1, 2, "a"), Level.INSTANCE, None)
    fresh.add_objects(NS, [StudyData("1.1", None, (SeriesData("1.1.0", None, (instance,)),))], None)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) == fresh.lookup_study(
        NS, "1.1", Level.INSTANCE
    )


def test_a_listing_that_expires_before_its_objects_voids_the_reading() -> None:
    clock = FakeClock()
    backend = MemoryBackend(ttl=600.0, clock=clock)
    study = _study("1.1", 1, 2, "a")
    assert backend.store_study(NS, study, Level.INSTANCE, 5.0)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) == study
    backend.add_objects(NS, [study], 600.0)  # the objects live on; the listing does not
    clock.advance(10.0)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) is None


def test_the_readings_of_a_dropped_namespace_go_with_it() -> None:
    """A reading holds the nodes it read: kept past its namespace's drop, it would keep the
    whole dropped tree alive, outside the backend's bound."""
    backend = MemoryBackend(ttl=60, negative_ttl=10, clock=FakeClock())
    backend.store_study(NS, _study("1.1", 2, 3, "a"), Level.INSTANCE, None)
    backend.store_study("other", _study("1.2", 1, 1, "b"), Level.INSTANCE, None)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) is not None
    assert backend.lookup_study("other", "1.2", Level.INSTANCE) is not None
    assert len(backend._readings) == 2
    backend.invalidate(NS, None)
    assert len(backend._readings) == 1  # the other namespace's stays


def test_the_reading_of_an_evicted_study_goes_with_it() -> None:
    study = _study("1.1", 2, 3, "a")
    backend = MemoryBackend(
        ttl=60, negative_ttl=10, clock=FakeClock(), max_bytes=9000, readings_bytes=100_000
    )  # room for one study (3930 B) and its reading (2259 B), not for two and the reading
    backend.store_study(NS, study, Level.INSTANCE, None)
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) is not None
    assert len(backend._readings) == 1
    for n in range(2, 40):  # enough other studies to evict the first
        backend.store_study(NS, _study(f"1.{n}", 2, 3, "b"), Level.INSTANCE, None)
    assert (NS, "1.1", Level.INSTANCE) not in backend._readings._kept  # before any read
    assert backend.lookup_study(NS, "1.1", Level.INSTANCE) is None  # it was evicted


def test_the_readings_count_in_the_bound() -> None:
    """Readings (and the encodings kept of them) are memory too: the tree makes room for
    them, so the total stays within ``max_bytes`` (before: readings came on top of it)."""
    backend = MemoryBackend(clock=FakeClock(), max_bytes=200_000, readings_bytes=50_000)
    for n in range(200):  # far more than the bound holds
        uid = f"1.{n}"
        assert backend.store_study(NS, _study(uid, 2, 10, "a"), Level.INSTANCE, None)
        assert backend.lookup_study(NS, uid, Level.INSTANCE) is not None
        assert backend._bytes + backend._readings.bytes <= 200_000
    assert backend._readings.bytes > 0


def test_a_reading_is_charged_for_the_encoding_the_service_keeps() -> None:
    """The service keeps each hit's encoding while its study lives (``encode._Recent``),
    and the memory backend's study lives as long as its reading: so the reading pays for
    both copies (before: for the unpacked one only)."""
    backend = MemoryBackend(clock=FakeClock())
    small = _study("1.2.3", 2, 10, "a")
    study = StudyData(  # instances of 700 bytes, as a QIDO-RS instance's are
        small.uid,
        small.attributes,
        tuple(
            SeriesData(
                s.uid, s.attributes, tuple(InstanceData(i.uid, _long(i.uid)) for i in s.instances)
            )
            for s in small.series
        ),
    )
    assert backend.store_study(NS, study, Level.INSTANCE, None)
    hit = backend.lookup_study(NS, "1.2.3", Level.INSTANCE)
    assert hit is not None
    data = len(hit.attributes or b"") + sum(
        len(s.attributes or b"") + sum(len(i.attributes or b"") for i in s.instances)
        for s in hit.series
    )
    assert backend._readings.bytes >= data + len(encode.study(hit))


def _long(uid: str) -> bytes:
    """700 bytes that differ from uid to uid."""
    return (hashlib.sha256(uid.encode()).hexdigest() * 11)[:700].encode()


def _walks(monkeypatch: Any) -> list[int]:
    """Count the walks over a listing's objects that keeping a reading takes."""
    from dicomcache.server.backends.memory import readings

    walks: list[int] = []
    real = readings.fresh_until

    def counted(answer: Any, root: Any) -> float:
        walks.append(1)
        return real(answer, root)

    monkeypatch.setattr(readings, "fresh_until", counted)
    return walks


def _stored(monkeypatch: Any, readings_bytes: int) -> tuple[MemoryBackend, StudyData, list[int]]:
    """A backend holding one 80-instance study at instance level; the walks counted from now."""
    backend = MemoryBackend(readings_bytes=readings_bytes)
    study = _study("1.1", 4, 20, "a")
    assert backend.store_study(NS, study, Level.INSTANCE, None)
    return backend, study, _walks(monkeypatch)


def test_a_listing_too_large_for_a_reading_is_not_walked_under_the_lock(monkeypatch):
    # Issue 11, stall row S2: a study-level hit of a 300,000-instance study kept a
    # (small) reading, and took what it depended on by walking every object, locked.
    backend, study, walks = _stored(monkeypatch, 4000)
    first = backend.lookup_study(NS, study.uid, Level.STUDY)
    again = backend.lookup_study(NS, study.uid, Level.STUDY)
    assert first is not None and again == first and not first.series
    assert walks == [] and len(backend._readings) == 0


def test_a_listing_that_fits_is_walked_once_and_its_reading_kept(monkeypatch):
    backend, study, walks = _stored(monkeypatch, 400_000)
    first = backend.lookup_study(NS, study.uid, Level.STUDY)
    assert backend.lookup_study(NS, study.uid, Level.STUDY) == first
    assert walks == [1] and len(backend._readings) == 1
