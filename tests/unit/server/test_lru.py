"""The LRU order: touched keys move to the back, the oldest comes out first."""

from __future__ import annotations

from dicomcache.server.backends.memory.lru import Lru


def test_oldest_first_and_touch_moves_to_the_back() -> None:
    lru: Lru[str] = Lru()
    for key in "abc":
        lru.touch(key)
    lru.touch("a")
    lru.refresh("b")
    lru.refresh("zz")  # not tracked: not added

    assert "zz" not in lru
    assert [lru.pop_oldest() for _ in range(4)] == ["c", "a", "b", None]


def test_discard_forgets_a_key() -> None:
    lru: Lru[str] = Lru()
    lru.touch("a")
    lru.touch("b")
    lru.discard("a")
    lru.discard("missing")

    assert len(lru) == 1
    assert lru.pop_oldest() == "b"
