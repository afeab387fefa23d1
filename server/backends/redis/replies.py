"""The Lua scripts' replies, each parsed in one place into a named tuple.

A reply arrives as redis-py hands it over: nested lists of bytes and ints, nil (a
Lua ``false``) as None. Addresses and members stay escaped, as the keys hold them
(``names.py`` turns them back into UIDs).
"""

from __future__ import annotations

from typing import Any, NamedTuple


def _pairs(flat: list[Any]) -> list[tuple[Any, Any]]:
    """``[a, b, c, d]`` as ``[(a, b), (c, d)]``."""
    return list(zip(flat[::2], flat[1::2], strict=True))


def _data(value: bytes) -> bytes:
    """An object's attributes, without the token stored before them."""
    return value.partition(b"|")[2]


class StudyWritten(NamedTuple):
    """study_write: the token of every object it wrote."""

    tokens: dict[str, str]  # by member

    @classmethod
    def parse(cls, reply: list[bytes]) -> StudyWritten:
        return cls({member.decode(): token.decode() for member, token in _pairs(reply)})


class StudyRead(NamedTuple):
    """study_read: the study down to the level asked for, or what a miss found gone."""

    depth: int  # of the listing it was read from; 0: a miss
    objects: list[tuple[str, bytes | None]]  # (member, attributes; None: a path only)
    missing: list[str]  # on a miss: addresses whose keys were gone
    left_ms: int = 0  # on a hit: the PTTL of the listing read

    @property
    def hit(self) -> bool:
        return self.depth > 0

    @classmethod
    def parse(cls, reply: list[Any]) -> StudyRead:
        depth = int(reply[0])
        if depth == 0:
            return cls(0, [], [address.decode() for address in reply[1:]])
        objects = [(m.decode(), data) for m, data in _pairs(reply[2:])]
        return cls(depth, objects, [], int(reply[1]))


class EntryLine(NamedTuple):
    """One line of a query entry: an object's address and the token it had."""

    address: str
    token: str  # '': the level was only a path


def _lines(entry: bytes) -> list[EntryLine]:
    """An entry's lines ('<address>|<token>' each); an empty entry: an empty answer."""
    if not entry:
        return []
    return [EntryLine(*line.partition("|")[::2]) for line in entry.decode().split("\n")]


class QueryEntry(NamedTuple):
    """A stored answer's entry alone, as GET and PTTL read it (Redis Cluster)."""

    raw: bytes  # as stored: a miss drops the entry only if it is still this one
    lines: list[EntryLine]
    left_ms: int

    @classmethod
    def parse(cls, reply: bytes | None, left_ms: int = 0) -> QueryEntry | None:
        """The entry, or None on a miss."""
        return None if reply is None else cls(reply, _lines(reply), left_ms)


class QueryRead(NamedTuple):
    """query_read: a stored answer, each of its objects with its attributes."""

    objects: list[tuple[str, bytes | None]]  # (address, attributes; None: a path only)
    left_ms: int  # the entry's PTTL when it was read

    @classmethod
    def parse(cls, reply: list[Any] | None) -> QueryRead | None:
        """The answer, or None on a miss."""
        if reply is None:
            return None
        lines = _lines(reply[0])
        objects = [(line.address, data) for line, data in zip(lines, reply[2:], strict=True)]
        return cls(objects, int(reply[1]))


class StaleRead(NamedTuple):
    """stale_read: a stale copy's value (sealed or not), its PTTL and its age."""

    value: bytes
    left_ms: int
    age_ms: int

    @classmethod
    def parse(cls, reply: list[Any] | None) -> StaleRead | None:
        """The copy, or None when there is none alive."""
        return None if reply is None else cls(reply[0], int(reply[1]), int(reply[2]))


class NamespaceCounts(NamedTuple):
    """namespace_stats: live objects and queries, and the namespace's counters."""

    studies: int
    series: int
    instances: int
    queries: int
    counters: dict[str, int]  # lookups, misses, bytes, evictions, expirations

    @classmethod
    def parse(cls, reply: list[Any]) -> NamespaceCounts:
        studies, series, instances, queries, counters = reply
        return cls(
            int(studies),
            int(series),
            int(instances),
            int(queries),
            {name.decode(): int(value) for name, value in _pairs(counters)},
        )


class Invalidated(NamedTuple):
    """study_invalidate: how many objects it dropped, and every member it forgot."""

    dropped: int
    members: list[str]

    @classmethod
    def parse(cls, reply: list[Any]) -> Invalidated:
        return cls(int(reply[0]), [member.decode() for member in reply[1:]])


class ObjectRead(NamedTuple):
    """object_read: an object's attributes and those of its cached descendants."""

    data: bytes
    descendants: list[tuple[str, bytes]]  # (member, attributes)

    @classmethod
    def parse(cls, reply: list[bytes] | None) -> ObjectRead | None:
        """The object, or None when it is not cached."""
        if reply is None:
            return None
        descendants = [(member.decode(), _data(value)) for member, value in _pairs(reply[1:])]
        return cls(_data(reply[0]), descendants)
