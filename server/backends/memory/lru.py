"""The recency order of eviction units (a namespace's study, or its query answer)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")


class Lru(Generic[K]):
    """Keys from least to most recently used; every operation is O(1).

    Not thread-safe: the backend's lock guards it. No clock: order is all it keeps.
    """

    def __init__(self) -> None:
        self._order: OrderedDict[K, None] = OrderedDict()

    def touch(self, key: K) -> None:
        """Make ``key`` the most recently used, adding it if new."""
        self._order[key] = None
        self._order.move_to_end(key)

    def refresh(self, key: K) -> None:
        """Make ``key`` the most recently used if it is tracked."""
        if key in self._order:
            self._order.move_to_end(key)

    def discard(self, key: K) -> None:
        """Stop tracking ``key``."""
        self._order.pop(key, None)

    def pop_oldest(self) -> K | None:
        """Remove and return the least recently used key, or None when empty."""
        return self._order.popitem(last=False)[0] if self._order else None

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order
