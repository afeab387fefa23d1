"""Answers (a study's listings, query answers) are charged at least what they take.

Objects are charged about what they cost (``tree.NODE_OVERHEAD``); answers were
charged about half (``answer.ANSWER_OVERHEAD``, ``ITEM_OVERHEAD``), so a cache whose
share of answers grew at a flat total grew in memory (issue 11's soak). Measured
with tracemalloc: what is allocated and still held after the store, against the
charge it added.
"""

from __future__ import annotations

import gc
import hashlib
import tracemalloc
from collections.abc import Callable

from dicomcache.server.backends.memory import MemoryBackend
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from tests.support.clock import FakeClock

NS = "ns"
STUDIES = 200


def _study(n: int) -> StudyData:
    """One series of ten 700-byte instances, with uids of realistic length."""
    uid = f"1.2.826.0.1.3680043.8.498.{10**11 + n}"
    series = f"{uid}.1"
    instances = tuple(InstanceData(f"{series}.{i}", _data(f"{series}.{i}")) for i in range(10))
    return StudyData(uid, _data(uid), (SeriesData(series, _data(series), instances),))


def _data(uid: str) -> bytes:
    return (hashlib.sha256(uid.encode()).hexdigest() * 11)[:700].encode()


def _held_and_charged(backend: MemoryBackend, change: Callable[[], None]) -> tuple[int, int]:
    """Bytes allocated by ``change`` and still held, and the bytes it added to the charge."""
    gc.collect()
    tracemalloc.start()
    try:
        charged = backend._bytes
        change()
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return held, backend._bytes - charged


def _cached() -> tuple[MemoryBackend, list[StudyData]]:
    backend = MemoryBackend(ttl=600.0, clock=FakeClock(), readings_bytes=0)
    studies = [_study(n) for n in range(STUDIES)]
    backend.add_objects(NS, studies, None)
    return backend, studies


def test_a_listing_is_charged_what_it_holds() -> None:
    backend, studies = _cached()

    def listings() -> None:
        for study in studies:  # the objects are cached: only the listing is new
            assert backend.store_study(NS, study, Level.INSTANCE, None)

    held, charged = _held_and_charged(backend, listings)
    per = STUDIES
    assert held <= charged, f"{held / per:.0f} B held per listing, {charged / per:.0f} B charged"


def test_a_query_answer_is_charged_what_it_holds() -> None:
    backend, studies = _cached()
    groups = [studies[n : n + 3] for n in range(0, STUDIES - 2, 3)]

    def answers() -> None:
        for n, group in enumerate(groups):
            assert backend.store_query(NS, b"query %d " % n + b"k" * 56, group, None)

    held, charged = _held_and_charged(backend, answers)
    per = len(groups)
    assert held <= charged, f"{held / per:.0f} B held per answer, {charged / per:.0f} B charged"
