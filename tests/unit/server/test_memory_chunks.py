"""Large requests work a chunk at a time: others get in between, and see nothing half-done.

Each test swaps the backend's lock for ``HandoverLock``, a real lock that, every
time the backend lets go of it, runs other requests right there (in the same
thread, the lock free): what a concurrent request would see at that moment. No
threads, no timings: the hand-overs are the backend's own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.memory.tree import find
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from tests.support.builders import attrs, make_study, study_only
from tests.support.clock import FakeClock

NS = "ns"
BIG = "1.2"
SERIES, INSTANCES = 5, 1000  # 5,000 instances: several chunks, whatever their size
FIRST = (BIG, f"{BIG}.1", f"{BIG}.1.1")
LAST = (BIG, f"{BIG}.{SERIES}", f"{BIG}.{SERIES}.{INSTANCES}")


class HandoverLock:
    """A real lock that runs ``between`` each time it is let go of (not from inside it)."""

    def __init__(self, inner: threading.Lock, between: Callable[[], None]) -> None:
        self.inner = inner
        self.between = between
        self.releases = 0
        self._busy = False

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self.inner.acquire(blocking, timeout)

    def release(self) -> None:
        self.inner.release()
        if self._busy:
            return
        self.releases += 1
        self._busy = True
        try:
            self.between()
        finally:
            self._busy = False

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def big_study(version: int = 0) -> StudyData:
    return make_study(BIG, SERIES, INSTANCES, version=version, size=300)


def handover(backend: MemoryBackend, between: Callable[[], None]) -> HandoverLock:
    lock = HandoverLock(backend._lock, between)  # the seam: see the module docstring
    backend._lock = lock  # type: ignore[assignment]  # a real lock with a hook, same methods
    return lock


def test_a_large_store_lets_others_in_between_chunks_and_is_seen_only_whole() -> None:
    backend = MemoryBackend(clock=FakeClock())
    other = make_study("9.9", 1, 2)
    backend.store_study(NS, other, Level.INSTANCE, None)
    seen: list[tuple[bool, bool, StudyData | None, StudyData | None]] = []

    def look() -> None:
        seen.append(
            (
                backend.get_object(NS, FIRST) is not None,
                backend.get_object(NS, LAST) is not None,
                backend.lookup_study(NS, BIG, Level.INSTANCE),
                backend.lookup_study(NS, other.uid, Level.INSTANCE),
            )
        )

    handover(backend, look)
    assert backend.store_study(NS, big_study(), Level.INSTANCE, None)

    halfway = [s for s in seen if s[0] and not s[1]]
    assert halfway, "the lock was never let go of while the study was half written"
    assert all(listing is None for _, _, listing, _ in halfway)  # a miss, never a part
    assert all(hit == other for _, _, _, hit in halfway)  # others were served meanwhile
    assert backend.lookup_study(NS, BIG, Level.INSTANCE) == big_study()


def test_a_large_store_query_is_seen_as_the_old_answer_or_a_miss_until_it_is_whole() -> None:
    backend = MemoryBackend(clock=FakeClock())
    count = 3000
    old = [study_only(make_study(f"2.{i}", version=0)) for i in range(count)]
    new = [study_only(make_study(f"2.{i}", version=1)) for i in range(count)]
    assert backend.store_query(NS, b"key", old, None)
    seen: list[tuple[bytes | None, bytes | None, list[StudyData] | None]] = []

    def look() -> None:
        first = backend.get_object(NS, ("2.0",))
        last = backend.get_object(NS, (f"2.{count - 1}",))
        seen.append(
            (
                first.attributes if first is not None else None,
                last.attributes if last is not None else None,
                backend.lookup_query(NS, b"key"),
            )
        )

    handover(backend, look)
    assert backend.store_query(NS, b"key", new, None)

    halfway = [s for s in seen if s[0] == attrs("2.0", 1) and s[1] == attrs(f"2.{count - 1}", 0)]
    assert halfway, "the lock was never let go of while the answer was half written"
    assert all(answer is None for _, _, answer in halfway)
    assert all(answer in (None, old, new) for _, _, answer in seen)
    assert backend.lookup_query(NS, b"key") == new


def test_a_large_hit_read_in_chunks_misses_when_its_study_changes_meanwhile() -> None:
    backend = MemoryBackend(clock=FakeClock())
    assert backend.store_study(NS, big_study(), Level.INSTANCE, None)
    changed = []

    def change() -> None:
        if not changed:  # another write gives one instance other attributes
            rewritten = InstanceData(FIRST[2], attrs(FIRST[2], 1, 300))
            study = StudyData(BIG, None, (SeriesData(FIRST[1], None, (rewritten,)),))
            changed.append(backend.add_objects(NS, [study], None))

    lock = handover(backend, change)
    assert backend.lookup_study(NS, BIG, Level.INSTANCE) is None
    assert changed == [1]
    lock.between = lambda: None
    assert backend.lookup_study(NS, BIG, Level.INSTANCE) is None  # the listing is dead


def test_a_large_hit_read_in_chunks_lets_others_in_and_stays_exact() -> None:
    backend = MemoryBackend(clock=FakeClock())
    stored = big_study()
    assert backend.store_study(NS, stored, Level.INSTANCE, None)
    writes = []

    def write() -> None:
        # An unrelated study, and the same attributes again for one of this study's
        # instances: neither changes what the hit must be.
        writes.append(backend.add_objects(NS, [make_study(f"3.{len(writes)}", 1, 1)], None))
        same = StudyData(BIG, None, (SeriesData(FIRST[1], None, (stored.series[0].instances[0],)),))
        backend.add_objects(NS, [same], None)

    lock = handover(backend, write)
    before = lock.releases
    assert backend.lookup_study(NS, BIG, Level.INSTANCE) == stored
    assert lock.releases - before >= 3, "the read held the lock from start to end"


def test_dropping_a_large_namespace_lets_others_in_before_taking_it_apart() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    for i in range(40):
        backend.add_objects("big", [make_study(f"4.{i}", 2, 60, size=100)], None)
    small = make_study("5.1", 1, 3)
    backend.store_study("small", small, Level.INSTANCE, None)
    node = find(backend._namespaces["big"], ("4.7", "4.7.2", "4.7.2.9"))  # the seam
    assert node is not None
    new = make_study("4.7", 1, 1)
    seen = []

    def use() -> None:
        if seen:
            return
        seen.append(
            (
                node.parent is not None,  # the old tree is still whole: not taken apart yet
                backend.get_object("big", ("4.7", "4.7.2", "4.7.2.9")),
                backend.store_study("big", new, Level.INSTANCE, None),
                backend.lookup_study("small", small.uid, Level.INSTANCE),
            )
        )

    handover(backend, use)
    dropped = backend.invalidate("big", None)

    assert dropped == 40 * (1 + 2 + 2 * 60)
    (whole, old, stored, hit), *_ = seen
    assert whole, "the namespace was taken apart with the lock held"
    assert old is None and stored and hit == small
    assert node.parent is None  # then taken apart
    assert backend.lookup_study("big", "4.7", Level.INSTANCE) == new
    expected = MemoryBackend(clock=clock)
    expected.store_study("small", small, Level.INSTANCE, None)
    expected.store_study("big", new, Level.INSTANCE, None)
    assert backend.stats(None).total_bytes == expected.stats(None).total_bytes


def test_a_store_whose_study_is_invalidated_midway_stops_and_is_refused() -> None:
    backend = MemoryBackend(clock=FakeClock())
    lease = backend.lease(NS)
    invalidated = []

    def invalidate() -> None:
        if not invalidated and backend.get_object(NS, FIRST) is not None:
            invalidated.append(backend.invalidate(NS, (BIG,)))

    handover(backend, invalidate)
    assert not backend.store_study(NS, big_study(), Level.INSTANCE, None, lease)

    assert invalidated and invalidated[0] > 0, "the store was never seen half written"
    assert backend.get_object(NS, LAST) is None  # nothing written after the invalidation
    assert backend.lookup_study(NS, BIG, Level.INSTANCE) is None
    stats = backend.stats(NS)
    assert [s.instances for s in stats.namespaces] in ([], [0])
    assert stats.total_bytes == sum(s.bytes for s in backend.stats(None).namespaces)
