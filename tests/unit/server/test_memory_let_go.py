"""A write's packed studies are let go one at a time, never in one long deallocation."""

from __future__ import annotations

from typing import Any

from dicomcache.server.backends.memory.backend import _let_go
from dicomcache.server.model import StudyData


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
