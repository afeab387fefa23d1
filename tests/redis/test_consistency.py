"""Atomic study writes and reads, and entries checked on read (issue 5)."""

from __future__ import annotations

import contextlib
import threading

import pytest
from redis.exceptions import MovedError

from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.model import Level, StudyData
from tests.support.builders import make_study
from tests.support.redis_servers import RedisCluster, RedisServer

pytestmark = pytest.mark.redis

SERIES, INSTANCES = 20, 25  # 521 objects per write


def _versions(study: StudyData) -> set[bytes]:
    """The write versions (after '#') found in a study tree."""
    found = {study.attributes.split(b"#")[1]} if study.attributes else set()
    for series in study.series:
        found.add((series.attributes or b"#?").split(b"#")[1])
        found.update(i.attributes.split(b"#")[1] for i in series.instances if i.attributes)
    return found


def _race(backend: RedisBackend, read: object) -> list[StudyData]:
    """Write versions 1..6 of a big study while another thread keeps reading it."""
    assert callable(read)
    done = threading.Event()
    seen: list[StudyData] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            while not done.is_set():
                got = read()
                if got is not None:
                    seen.append(got)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    backend.store_study("ns", make_study("1.2", SERIES, INSTANCES, version=0), Level.INSTANCE, None)
    backend.store_query("ns", b"key", [make_study("1.2", SERIES, INSTANCES, version=0)], None)
    first = read()  # before any rewrite: a hit for sure
    assert first is not None
    seen.append(first)
    thread = threading.Thread(target=reader)
    thread.start()
    try:
        # Each version stored as an answer and a listing: a rewrite with other
        # attributes kills the answers that saw the old ones (issue 10).
        for version in range(1, 7):
            study = make_study("1.2", SERIES, INSTANCES, version=version)
            backend.store_study("ns", study, Level.INSTANCE, None)
            backend.store_query("ns", b"key", [study], None)
    finally:
        done.set()
        thread.join()
    assert not errors, errors
    return seen


@pytest.mark.parametrize("where", ["single", "cluster"])
@pytest.mark.parametrize("how", ["get_object", "lookup_study", "lookup_query"])
def test_no_reader_sees_half_a_study(request: pytest.FixtureRequest, where: str, how: str) -> None:
    _, backend = request.getfixturevalue(where)
    reads = {
        "get_object": lambda: backend.get_object("ns", ("1.2",)),
        "lookup_study": lambda: backend.lookup_study("ns", "1.2", Level.INSTANCE),
        "lookup_query": lambda: (backend.lookup_query("ns", b"key") or [None])[0],
    }
    seen = _race(backend, reads[how])

    assert seen, "the reader never got an answer"
    for study in seen:
        assert len(_versions(study)) == 1, _versions(study)
        assert sum(len(s.instances) for s in study.series) == SERIES * INSTANCES


def test_a_single_evicted_object_makes_the_answer_a_miss(
    single: tuple[RedisServer, RedisBackend],
) -> None:
    server, backend = single
    backend.store_query("ns", b"key", [make_study("1.2", 2, 2)], None)
    backend.store_study("ns", make_study("1.2", 2, 2), Level.INSTANCE, None)
    client = server.client()

    assert client.delete("dc:1:ns:{1.2}:o:1.2.2:1.2.2.1") == 1  # as maxmemory eviction would

    assert backend.lookup_query("ns", b"key") is None
    assert backend.lookup_study("ns", "1.2", Level.STUDY) is None
    assert client.exists("dc:1:{ns}:q:" + b"key".hex()) == 0  # the dead entry was dropped
    stats = backend.stats("ns").namespaces[0]
    assert (stats.instances, stats.evictions) == (3, 1)


def test_a_single_evicted_object_makes_the_answer_a_miss_on_a_cluster(
    cluster: tuple[RedisCluster, RedisBackend],
) -> None:
    nodes, backend = cluster
    backend.store_query("ns", b"key", [make_study("1.2", 2, 2), make_study("1.3", 1, 1)], None)
    assert backend.lookup_query("ns", b"key") is not None

    deleted = 0
    for client in nodes.clients():
        with contextlib.suppress(MovedError):  # only the node holding the slot has it
            deleted += client.delete("dc:1:ns:{1.3}:o:1.3.1")
    assert deleted == 1

    assert backend.lookup_query("ns", b"key") is None
    assert backend.stats("ns").namespaces[0].evictions == 1


def test_real_maxmemory_eviction_never_serves_a_partial_answer() -> None:
    from tests.support.redis_servers import redis_server

    with redis_server("--maxmemory", "3mb", "--maxmemory-policy", "volatile-lru") as server:
        backend = RedisBackend.from_url(server.url, ttl=600, negative_ttl=60)
        try:
            stored = []
            for n in range(40):
                study = make_study(f"1.{n}", 2, 2, size=20_000)
                backend.store_query("ns", str(n).encode(), [study], None)
                stored.append(study)
            hits = 0
            for n, study in enumerate(stored):
                got = backend.lookup_query("ns", str(n).encode())
                if got is not None:
                    hits += 1
                    assert got == [study]
            assert server.client().info("stats")["evicted_keys"] > 0
            assert hits < len(stored)
            # Which answers survive depends on Redis's sampled LRU; a fresh one must hit.
            fresh = make_study("2.1", 2, 2, size=20_000)
            backend.store_query("ns", b"fresh", [fresh], None)
            assert backend.lookup_query("ns", b"fresh") == [fresh]
        finally:
            backend.close()
