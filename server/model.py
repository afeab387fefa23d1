"""Plain-Python shapes of the objects the cache holds.

The storage backends see only these: a study tree whose attributes are the
serialized bytes of a ``dicomcache.v1.Dataset``, opaque to them. Keeping the bytes
as they came off the wire means a hit never re-parses or re-serializes datasets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TypeAlias

from dicomcache.server.pacing import step


class Level(IntEnum):
    """Depth in the DICOM hierarchy; the values match ``dicomcache.v1.QueryLevel``."""

    STUDY = 1
    SERIES = 2
    INSTANCE = 3


@dataclass(frozen=True, slots=True)
class InstanceData:
    """An instance: its SOPInstanceUID and serialized attributes."""

    uid: str
    attributes: bytes | None


@dataclass(frozen=True, slots=True)
class SeriesData:
    """A series with the instances that come with it.

    ``attributes`` is None when the series is only a path to its instances (on
    writes: leave the series' own data as it is).
    """

    uid: str
    attributes: bytes | None
    instances: tuple[InstanceData, ...] = ()


@dataclass(frozen=True, slots=True, weakref_slot=True)  # weak: encode._Recent
class StudyData:
    """A study with the series that come with it; ``attributes`` as for SeriesData."""

    uid: str
    attributes: bytes | None
    series: tuple[SeriesData, ...] = ()


CachedObject: TypeAlias = StudyData | SeriesData | InstanceData

# The address of an object in the tree: (study,), (study, series) or
# (study, series, instance).
Address: TypeAlias = tuple[str, ...]


@dataclass(slots=True)
class NamespaceStats:
    """Counters and sizes of one namespace."""

    namespace: str
    studies: int = 0
    series: int = 0
    instances: int = 0
    queries: int = 0
    bytes: int = 0
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    expirations: int = 0


@dataclass(slots=True)
class Stats:
    """Counters of every namespace asked for, and the cache's totals."""

    namespaces: list[NamespaceStats] = field(default_factory=list)
    total_bytes: int = 0
    max_bytes: int = 0


def release(studies: list[StudyData]) -> None:
    """Let go of large study trees a series at a time; ``studies`` is emptied.

    Dropping the last reference to a tree of 300,000 instances frees it in one long
    deallocation that holds the interpreter lock (about 40 ms); a series at a time,
    other threads get their turns in between. Only references held by ``studies``
    are let go of: the caller passes the list as its only reference to the trees.
    """
    series: list[SeriesData] = []
    while studies:
        series.extend(studies.pop().series)
        while series:
            step()  # a step of the call's work (``server.pacing``)
            series.pop()
