"""The memory backend holds only what it counts (issue 11: memory past --max-memory).

What left the cache must leave the process: expired entries are reaped on time
under a steady write rate; evicted, invalidated and replaced nodes, answers and
dictionaries are let go; names that hold nothing cost nothing, and a namespace's
own bytes count inside the bound.
"""

from __future__ import annotations

import gc
import sys

from dicomcache.server.backends.memory.answer import Answer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.memory.namespace import NAMESPACE_OVERHEAD
from dicomcache.server.backends.memory.tree import Node
from dicomcache.server.model import Level
from tests.support.builders import make_study
from tests.support.clock import FakeClock


def live_objects() -> tuple[int, int]:
    """Nodes and answers alive in this process (after a collection)."""
    gc.collect()
    objects = gc.get_objects()
    return (
        sum(1 for o in objects if isinstance(o, Node)),
        sum(1 for o in objects if isinstance(o, Answer)),
    )


def held(backend: MemoryBackend) -> tuple[int, int]:
    """Nodes and answers the backend's namespaces hold (the roots included).

    A held answer holds its objects' nodes by identity: those it saw, even when
    they have been dropped or replaced since (then the answer is dead, and goes
    when it is next read, expires or is evicted).
    """
    nodes: set[int] = set()
    answers = 0
    for ns in backend._namespaces.values():
        stack: list[Node] = [ns]
        for answer in ns.answers():
            answers += 1
            for study, series in answer.shape:
                items = [study, *(s for s, _ in series), *(i for _, ii in series for i in ii)]
                stack.extend(i for i in items if isinstance(i, Node))
        while stack:
            node = stack.pop()
            if id(node) not in nodes:
                nodes.add(id(node))
                stack.extend((node.children or {}).values())
    return len(nodes), answers


def test_a_steady_write_rate_is_reaped_on_time() -> None:
    """60 studies with a 5 s TTL written every 0.5 s, the sweeper running: they go on time."""
    clock = FakeClock()
    backend = MemoryBackend(ttl=5, clock=clock)
    for step in range(60):
        clock.advance(0.5)
        backend.add_objects("ns", [make_study(f"1.{step}", 1, 1)], None)
        backend.expire(1000)

    # Written in the last 5 s, or due less than a second ago: 11 at most.
    assert backend.stats("ns").namespaces[0].studies <= 11


def test_what_leaves_the_cache_leaves_the_process() -> None:
    """Evicted, invalidated, replaced and expired entries are not kept alive by anything."""
    clock = FakeClock()
    backend = MemoryBackend(ttl=60, max_bytes=40_000, clock=clock)
    before = live_objects()
    for step in range(400):
        clock.advance(0.25)
        uid = f"1.{step % 150}"
        backend.store_study("ns", make_study(uid, 1, 3, version=step % 7), Level.INSTANCE, None)
        backend.store_query("ns", f"q{step % 40}".encode(), [make_study(uid, 1, 3)], None)
        if step % 5 == 0:
            backend.invalidate("ns", (f"1.{(step * 7) % 150}",))
        backend.expire(1000)

    nodes, answers = live_objects()
    assert (nodes - before[0], answers - before[1]) == held(backend)


def test_an_evicted_study_lets_go_of_its_dictionary() -> None:
    backend = MemoryBackend(max_bytes=40_000, clock=FakeClock())
    study = make_study("1.1", 1, 5, size=200)  # instances long enough to give a dictionary
    backend.store_study("ns", study, Level.INSTANCE, None)
    backend.store_query("ns", b"key", [study], None)  # an answer holds it too
    dictionary = backend._namespaces["ns"].dictionary_of("1.1")
    assert dictionary is not None
    references = sys.getrefcount(dictionary)

    for step in range(2, 40):  # evicts 1.1 and the answer
        backend.add_objects("ns", [make_study(f"1.{step}", 1, 5, size=200)], None)
    assert backend.get_object("ns", ("1.1",)) is None

    assert sys.getrefcount(dictionary) == references - 1  # only this test holds it now


def test_lookups_and_invalidations_of_unknown_namespaces_create_nothing() -> None:
    backend = MemoryBackend(clock=FakeClock())
    records = len(backend._leases._log)
    for n in range(1000):
        name = f"stranger-{n}"
        assert backend.lookup_query(name, b"key") is None
        assert backend.lookup_study(name, "1.2", Level.STUDY) is None
        assert backend.get_object(name, ("1.2",)) is None
        backend.lease(name)
        backend.invalidate(name, ("1.2",))
        backend.invalidate(name, None)

    stats = backend.stats(None)
    assert (stats.namespaces, stats.total_bytes) == ([], 0)
    assert len(backend._leases._log) == records  # no record per name either


def test_a_namespace_counts_inside_the_bound_and_goes_when_empty() -> None:
    max_bytes = 60_000
    backend = MemoryBackend(max_bytes=max_bytes, clock=FakeClock())
    for n in range(1000):
        backend.add_objects(f"ns-{n}", [make_study("1.2", 1, 1)], None)

    stats = backend.stats(None)
    assert stats.total_bytes <= max_bytes
    # Each namespace holds its study and counts its own bytes; evicted, it is gone.
    assert len(stats.namespaces) * NAMESPACE_OVERHEAD < max_bytes
    assert all(s.bytes > NAMESPACE_OVERHEAD for s in stats.namespaces)
    assert stats.total_bytes == sum(s.bytes for s in stats.namespaces)


def test_a_write_of_paths_only_leaves_no_namespace() -> None:
    backend = MemoryBackend(clock=FakeClock())
    path = make_study("1.2", 1, 0)
    assert backend.add_objects("ns", [type(path)(path.uid, None, ())], None) == 0

    assert backend.stats(None).namespaces == []
    assert backend.stats(None).total_bytes == 0
