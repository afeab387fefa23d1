"""The memory backend's byte bound: LRU eviction of whole studies (issue 3, point 6)."""

from __future__ import annotations

import random

import pytest

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from tests.support.builders import make_study
from tests.support.clock import FakeClock

SIZE = 1000  # attribute bytes per object: a study of 1 series x 2 instances holds 4 objects


def heavy(uid: str, n_series: int = 0, n_instances: int = 0) -> StudyData:
    """``make_study`` with objects that weigh SIZE bytes even packed (random bytes do not
    compress), so a study outweighs the answers that hold it, as real studies do."""
    study = make_study(uid, n_series, n_instances)
    return StudyData(
        study.uid,
        weigh(study.attributes),
        tuple(
            SeriesData(
                s.uid,
                weigh(s.attributes),
                tuple(InstanceData(i.uid, weigh(i.attributes)) for i in s.instances),
            )
            for s in study.series
        ),
    )


def weigh(data: bytes | None) -> bytes:
    """``data`` padded to SIZE with bytes drawn from it: the same data, the same padding."""
    assert data is not None
    return data + random.Random(data).randbytes(SIZE - len(data))


def study_bytes() -> int:
    """What one study of the test's shape costs, as the backend accounts it."""
    probe = MemoryBackend()
    probe.add_objects("ns", [heavy("1.0", 1, 2)], None)
    return probe.stats("ns").total_bytes


def backend_for(studies: int) -> MemoryBackend:
    """A backend with room for ``studies`` studies, not one more."""
    return MemoryBackend(max_bytes=studies * study_bytes() + study_bytes() // 2, clock=FakeClock())


def cached(backend: MemoryBackend, uid: str, namespace: str = "ns") -> bool:
    return backend.get_object(namespace, (uid,)) is not None


def test_the_least_recently_used_study_goes_first() -> None:
    backend = backend_for(3)
    for uid in ("1.1", "1.2", "1.3"):
        backend.add_objects("ns", [heavy(uid, 1, 2)], None)

    backend.add_objects("ns", [heavy("1.4", 1, 2)], None)

    assert [cached(backend, u) for u in ("1.1", "1.2", "1.3", "1.4")] == [False, True, True, True]
    assert backend.stats("ns").namespaces[0].evictions == 4  # the study and its 3 descendants


@pytest.mark.parametrize("hit", ["query", "study", "object"])
def test_a_hit_makes_its_study_recent(hit: str) -> None:
    backend = backend_for(3)
    backend.store_query("ns", b"key", [heavy("1.1", 1, 2)], None)
    backend.store_study("ns", heavy("1.1", 1, 2), Level.INSTANCE, None)
    for uid in ("1.2", "1.3"):
        backend.add_objects("ns", [heavy(uid, 1, 2)], None)

    if hit == "query":
        assert backend.lookup_query("ns", b"key") is not None
    elif hit == "study":
        assert backend.lookup_study("ns", "1.1", Level.SERIES) is not None
    else:
        assert backend.get_object("ns", ("1.1", "1.1.1")) is not None
    backend.add_objects("ns", [heavy("1.4", 1, 2)], None)

    assert [cached(backend, u) for u in ("1.1", "1.2", "1.3", "1.4")] == [True, False, True, True]


def test_an_evicted_study_kills_the_answers_that_held_it() -> None:
    backend = backend_for(2)
    backend.store_query("ns", b"both", [heavy("1.1"), heavy("1.2")], None)
    backend.store_study("ns", heavy("1.1", 1, 2), Level.INSTANCE, None)

    for uid in ("1.3", "1.4"):
        backend.add_objects("ns", [heavy(uid, 1, 2)], None)

    assert not cached(backend, "1.1")
    assert backend.lookup_query("ns", b"both") is None
    assert backend.lookup_study("ns", "1.1", Level.STUDY) is None


def test_the_bound_holds_after_every_write_across_namespaces() -> None:
    backend = backend_for(5)
    assert backend.max_bytes is not None
    for i in range(40):
        backend.store_query(f"ns{i % 3}", b"k%d" % i, [heavy(f"1.{i}", 1, 2)], None)
        stats = backend.stats(None)
        assert stats.total_bytes <= backend.max_bytes
        assert stats.total_bytes == sum(s.bytes for s in stats.namespaces)

    evicted = sum(s.evictions for s in backend.stats(None).namespaces)
    assert evicted == (40 - 5) * 4


def test_a_write_keeps_its_own_studies_when_older_ones_can_go() -> None:
    backend = backend_for(2)
    backend.add_objects("ns", [heavy("1.1", 1, 2)], None)
    backend.add_objects("ns", [heavy("1.2", 1, 2)], None)

    backend.store_query(
        "ns",
        b"pair",
        [heavy("1.3", 1, 2), heavy("1.4", 1, 2)],
        None,
    )

    assert [cached(backend, u) for u in ("1.1", "1.2", "1.3", "1.4")] == [False, False, True, True]
    assert backend.lookup_query("ns", b"pair") is not None


def test_a_write_larger_than_the_bound_does_not_stay() -> None:
    backend = backend_for(1)
    assert backend.max_bytes is not None
    backend.add_objects("ns", [heavy("1.1", 4, 4)], None)

    assert not cached(backend, "1.1")
    assert backend.stats(None).total_bytes <= backend.max_bytes


def test_empty_answers_are_evicted_too() -> None:
    backend = MemoryBackend(max_bytes=2000, clock=FakeClock())
    for i in range(100):
        backend.store_query("ns", b"empty-%d" % i, [], None)

    assert backend.stats(None).total_bytes <= 2000
    assert backend.lookup_query("ns", b"empty-99") == []
    assert backend.lookup_query("ns", b"empty-0") is None
