"""Large lists of a write or a hit are let go one item at a time, never in one long deallocation."""

from __future__ import annotations

import gc
from typing import Any

from dicomcache.server.backends.memory import compression, packing
from dicomcache.server.backends.memory.backend import _let_go
from dicomcache.server.model import InstanceData, SeriesData, StudyData


class _Dies:
    """Records, when freed, how many pairs the list still held."""

    def __init__(self, packed: list[Any], held: list[int]) -> None:
        self._packed = packed
        self._held = held

    def __del__(self) -> None:
        self._held.append(len(self._packed))


def test_each_pair_is_freed_while_the_list_still_holds_the_rest() -> None:
    # Issue 11, stall row S3: ``packed.clear()`` freed a 100,000-study answer's pairs
    # in one call holding the interpreter lock (6-10 ms); the list was already
    # empty when the first of them went.
    packed: list[Any] = []
    held: list[int] = []
    packed += [(StudyData(f"1.{i}", None), _Dies(packed, held)) for i in range(5)]
    _let_go(packed)
    assert held == [4, 3, 2, 1, 0]
    assert packed == []


def _attributes(n: int) -> bytes:
    return b"the attributes of an instance of the study, number %06d, " % n * 3


def test_a_hit_makes_its_blob_pairs_a_batch_at_a_time(monkeypatch: Any) -> None:
    # Issue 11, stall row S2: unpacking a hit listed every instance's (blob,
    # dictionary) pair first, and freed the list of 300,000 in one deallocation.
    # Each pair must be held by its batch alone while zlib unpacks it.
    instances = tuple(InstanceData(f"1.1.{n}", _attributes(n)) for n in range(40))
    study = StudyData("1", None, (SeriesData("1.1", None, instances),))
    dictionary = compression.dictionary(_attributes(0))
    packed = packing.pack_study(study, dictionary)
    monkeypatch.setattr(packing, "UNPACK_BYTES", 1000)  # many batches
    lists: list[int] = []
    real = compression.unpack_all

    def watched(batch: list[tuple[bytes, bytes | None]]) -> list[bytes]:
        lists.append(sum(type(r) is list for r in gc.get_referrers(batch[0])))
        return real(batch)

    monkeypatch.setattr(compression, "unpack_all", watched)
    assert packing.unpack_studies([packed], [dictionary]) == [study]
    assert len(lists) > 1
    assert lists == [1] * len(lists)  # its batch; before, the list of all pairs too
