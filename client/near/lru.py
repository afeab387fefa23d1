"""Entries bounded by their bytes, least recently used first out, indexed by study."""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import Any

# Bookkeeping per entry beyond its answer's wire size: the key, the entry, the index.
ENTRY_OVERHEAD = 256


@dataclass(slots=True)
class Entry:
    """One kept answer: the objects handed out, until ``deadline`` (monotonic seconds)."""

    value: Any
    studies: frozenset[str]
    deadline: float
    size: int


class ByteLru:
    """A map of entries whose sizes sum to at most ``max_bytes``. Not thread-safe: the
    near cache holds its lock around every call. No clock (deadlines are the caller's).
    """

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: collections.OrderedDict[Hashable, Entry] = collections.OrderedDict()
        self._by_study: dict[str, set[Hashable]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Entry | None:
        """The entry, made the most recently used; None if absent."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: Hashable, entry: Entry) -> int:
        """Keep ``entry`` (not if larger than the bound); returns how many were evicted."""
        self.pop(key)
        if entry.size > self.max_bytes:
            return 0
        self._entries[key] = entry
        self.bytes += entry.size
        for uid in entry.studies:
            self._by_study.setdefault(uid, set()).add(key)
        evicted = 0
        while self.bytes > self.max_bytes:
            oldest = next(iter(self._entries))
            self.pop(oldest)
            evicted += 1
        return evicted

    def pop(self, key: Hashable) -> Entry | None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return None
        self.bytes -= entry.size
        for uid in entry.studies:
            keys = self._by_study.get(uid)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._by_study[uid]
        return entry

    def drop_studies(self, uids: Iterable[str]) -> int:
        """Drop every entry holding one of the studies; returns how many went."""
        keys = {key for uid in uids for key in self._by_study.get(uid, ())}
        for key in keys:
            self.pop(key)
        return len(keys)

    def clear(self) -> int:
        """Drop everything; returns how many entries went."""
        count = len(self._entries)
        self._entries.clear()
        self._by_study.clear()
        self.bytes = 0
        return count
