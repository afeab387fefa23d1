"""Many threads on one memory backend: hits stay complete and exact, namespaces never mix.

Each writer stores whole studies whose every object carries the namespace and a
write number, so a torn write, a partial answer or a foreign namespace shows in
the data of a hit. Time is a FakeClock moved by one thread; no sleeps.
"""

from __future__ import annotations

import random
import threading

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from tests.support.clock import FakeClock

NAMESPACES = ["a", "b", "c"]
STUDIES = ["1.1", "1.2", "1.3", "1.4"]
SERIES, INSTANCES = 3, 4
THREADS = 8
ROUNDS = 400


def study(ns: str, uid: str, stamp: int) -> StudyData:
    def data(of: str) -> bytes:
        return f"{ns}|{of}|{stamp}".encode()

    series = tuple(
        SeriesData(
            f"{uid}.{s}",
            data(f"{uid}.{s}"),
            tuple(InstanceData(f"{uid}.{s}.{i}", data(f"{uid}.{s}.{i}")) for i in range(INSTANCES)),
        )
        for s in range(SERIES)
    )
    return StudyData(uid, data(uid), series)


def check_whole(ns: str, uid: str, got: StudyData, level: Level = Level.INSTANCE) -> None:
    """A hit: this namespace's study, every level there, all from one write."""
    stamps = set()
    objects: list[StudyData | SeriesData | InstanceData] = [got]
    assert got.uid == uid
    if level >= Level.SERIES:
        assert sorted(s.uid for s in got.series) == [f"{uid}.{s}" for s in range(SERIES)]
        objects.extend(got.series)
    else:
        assert got.series == ()
    for series in got.series:
        if level >= Level.INSTANCE:
            assert len(series.instances) == INSTANCES
            objects.extend(series.instances)
        else:
            assert series.instances == ()
    for obj in objects:
        assert obj.attributes is not None
        owner, of, stamp = obj.attributes.decode().split("|")
        assert (owner, of) == (ns, obj.uid)
        stamps.add(stamp)
    assert len(stamps) == 1, stamps


def test_concurrent_mixed_operations_keep_the_invariants() -> None:
    clock = FakeClock()
    max_bytes = 30_000  # room for about half the studies: eviction runs
    backend = MemoryBackend(ttl=50, negative_ttl=10, max_bytes=max_bytes, clock=clock)
    errors: list[BaseException] = []
    hits: list[int] = []  # one entry per hit checked (list.append is atomic)
    evicted: list[int] = []  # evictions counted by the namespaces of the moment
    counter = iter(range(10**9))
    counter_lock = threading.Lock()

    def stamp() -> int:
        with counter_lock:
            return next(counter)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(ROUNDS):
                ns, uid = rng.choice(NAMESPACES), rng.choice(STUDIES)
                key = f"q-{uid}".encode()
                op = rng.randrange(9)
                if op == 0:
                    backend.store_query(ns, key, [study(ns, uid, stamp())], None)
                elif op == 1:
                    backend.store_study(ns, study(ns, uid, stamp()), Level.INSTANCE, None)
                elif op == 2:
                    backend.add_objects(ns, [study(ns, uid, stamp())], rng.choice([None, 5.0]))
                elif op == 3:
                    got = backend.lookup_query(ns, key)
                    if got is not None:
                        hits.append(1)
                        assert len(got) == 1
                        check_whole(ns, uid, got[0])
                elif op == 4:
                    level = rng.choice(list(Level))
                    one = backend.lookup_study(ns, uid, level)
                    if one is not None:
                        hits.append(1)
                        check_whole(ns, uid, one, level)
                elif op == 5:
                    obj = backend.get_object(ns, (uid,))
                    if obj is not None:
                        assert isinstance(obj, StudyData) and obj.uid == uid
                        for each in (obj, *obj.series):
                            assert each.attributes is None or each.attributes.startswith(
                                ns.encode()
                            )
                elif op == 6:
                    backend.invalidate(ns, rng.choice([(uid,), (uid, f"{uid}.1"), None]))
                elif op == 7:
                    backend.expire(rng.choice([1, 16]))
                else:
                    now = backend.stats(None)
                    assert now.total_bytes <= max_bytes
                    evicted.append(sum(s.evictions for s in now.namespaces))
                    # The total is the namespaces' sum. Checked under the lock: namespaces
                    # come and go, and stats() lists them apart from the total.
                    with backend._lock:
                        spaces = backend._namespaces.values()
                        assert backend._bytes == sum(n.bytes for n in spaces)
        except BaseException as exc:
            errors.append(exc)

    def ticker() -> None:
        for _ in range(ROUNDS):
            clock.advance(1.0)  # a float store: atomic under the GIL

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    threads.append(threading.Thread(target=ticker))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    # The checks above did run on hits, and eviction ran (counted along the way: a
    # namespace's own counters go with it whenever it empties).
    assert hits
    assert max(evicted) > 0
    clock.advance(1000)
    while backend.expire(100) == 100:
        pass
    assert backend.stats(None).total_bytes == 0
