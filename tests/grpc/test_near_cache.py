"""CachedSearcher with a near cache, over a real server on port 0 (memory backend).

Nothing here waits on time: each test waits for the near cache's own state (in
sync, an invalidation counted) with generous timeouts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import prometheus_client
import pytest
from dicomtrolley.core import Query, QueryLevels, Study, StudyReference

from dicomcache.client import CachedSearcher
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.near import NearCache
from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.v1 import cache_service_pb2 as pb
from tests.grpc.conftest import RunningServer, start_server
from tests.grpc.test_searcher import FakeArchive
from tests.support.clock import FakeClock
from tests.support.messages import make_study, text_element
from tests.support.serve_process import serve_process

WAIT = 10.0  # seconds: generous, only ever waited for a state
INSTANCE = QueryLevels.INSTANCE


@dataclass
class Near:
    running: RunningServer
    archive: FakeArchive
    near: NearCache
    searcher: CachedSearcher

    @property
    def uid(self) -> str:
        return next(iter(self.archive.studies))

    def find(self) -> Study:
        return self.searcher.find_study_by_id(self.uid, INSTANCE)

    def other_searcher(self) -> CachedSearcher:
        return CachedSearcher(self.archive, target=self.running.target, namespace="ns")


def near_on(running: RunningServer, clock: FakeClock | None = None, **options) -> Near:
    archive = FakeArchive([study_from_proto(make_study(n, 2, 3)) for n in (1, 2)])
    near = NearCache(max_bytes=10_000_000, **({"clock": clock} if clock else {}))
    searcher = CachedSearcher(
        archive, target=running.target, namespace="ns", near_cache=near, **options
    )
    assert near.wait(lambda n: n.in_sync, WAIT)
    return Near(running, archive, near, searcher)


@pytest.fixture
def running() -> Iterator[RunningServer]:
    running = start_server()
    yield running
    running.channel.close()
    running.server.stop(grace=0)


@pytest.fixture
def near(running: RunningServer) -> Iterator[Near]:
    case = near_on(running)
    yield case
    case.near.close()
    case.searcher.client.close()


def settled(near: NearCache) -> None:
    """Wait for two heartbeats: every message the server sent before now has been heard."""
    beats = near.heartbeats
    assert near.wait(lambda n: n.heartbeats >= beats + 2, WAIT)


def warmed(case: Near) -> Study:
    """Find until the answer is kept, and stays kept once the store's own message came."""
    for _ in range(20):
        found = case.find()
        if case.near.counts().entries:
            settled(case.near)
            if case.near.counts().entries:
                return found
    raise AssertionError("never kept")


def test_a_repeated_search_is_the_same_objects_from_the_near_cache(near: Near):
    first = warmed(near)
    hits = near.near.hits
    again = near.find()
    assert again is first and near.near.hits == hits + 1
    assert near.archive.calls == 1


def test_a_repeated_query_is_served_from_the_near_cache(near: Near):
    query = Query(PatientID="PAT1", query_level=QueryLevels.STUDY)
    for _ in range(20):
        first = near.searcher.find_studies(query)
        if near.near.counts().entries:
            settled(near.near)
            if near.near.counts().entries:
                break
    hits = near.near.hits
    again = near.searcher.find_studies(query)
    assert near.near.hits == hits + 1
    assert [s.uid for s in again] == [s.uid for s in first] and again[0] is first[0]


def test_an_invalidate_through_the_same_client_drops_before_it_returns(near: Near):
    warmed(near)
    near.searcher.client.invalidate("ns", StudyReference(study_uid=near.uid))
    hits = near.near.hits
    near.find()
    assert near.near.hits == hits  # not from the near cache
    assert near.archive.calls == 2  # the cache server's copy went too


def test_an_invalidate_through_another_client_drops_once_its_message_arrives(near: Near):
    warmed(near)
    seen = near.near.invalidations
    other = near.other_searcher()
    other.client.invalidate("ns", StudyReference(study_uid=near.uid))
    assert near.near.wait(lambda n: n.invalidations > seen, WAIT)
    hits = near.near.hits
    near.find()
    assert near.near.hits == hits and near.archive.calls == 2
    other.client.close()


def test_a_rewrite_with_other_attributes_is_served_fresh(near: Near):
    first = warmed(near)
    changed = make_study(1, 2, 3)
    changed.attributes.elements[0x00081030].CopyFrom(text_element("LO", "rewritten"))
    seen = near.near.invalidations
    stub = near.running.stub
    stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[changed]))
    assert near.near.wait(lambda n: n.invalidations > seen, WAIT)
    again = near.find()
    assert again is not first
    assert "StudyDescription" not in first.data  # the old objects were not changed


def test_an_entry_never_outlives_the_servers_expiry_of_its_answer():
    server_clock, near_clock = FakeClock(), FakeClock()
    running = start_server(server_clock)
    case = near_on(running, near_clock, ttl=60)
    try:
        case.find()  # a miss: stored for 60 s on the server's clock
        server_clock.advance(50)  # 10 s left there
        heard = near_clock.now
        warmed(case)
        near_clock.advance(8.5)
        assert case.near.wait(lambda n: n._heard > heard, WAIT)  # a heartbeat since
        hits = case.near.hits
        case.find()
        assert case.near.hits == hits + 1  # 8.5 s after its lookup: still fresh
        near_clock.advance(1.0)  # within FRESH_MARGIN of the server's 10 s
        heard = near_clock.now
        assert case.near.wait(lambda n: n._heard >= heard, WAIT)
        hits = case.near.hits
        case.find()
        assert case.near.hits == hits
    finally:
        case.near.close()
        case.searcher.client.close()
        running.server.stop(grace=0)


def test_a_server_killed_mid_test_flushes_and_the_searcher_falls_back():
    running = start_server()
    case = near_on(running)
    try:
        warmed(case)
        running.server.stop(grace=0)
        assert case.near.wait(lambda n: not n.in_sync, WAIT)
        assert case.near.counts().entries == 0 and case.near.flushes == 1
        calls = case.archive.calls
        found = case.find()  # the cache is gone: the archive answers, no error
        assert found.uid == case.uid and case.archive.calls == calls + 1
    finally:
        case.near.close()
        case.searcher.client.close()


def test_a_restarted_server_brings_the_near_cache_back_in_sync():
    running = start_server()
    port = running.server.port
    case = near_on(running)
    try:
        running.server.stop(grace=0)
        assert case.near.wait(lambda n: not n.in_sync, WAIT)
        again = CacheServer(Settings(listen=f"127.0.0.1:{port}"), backend=MemoryBackend())
        again.start()
        assert case.near.wait(lambda n: n.in_sync, WAIT)
        again.stop(grace=0)
    finally:
        case.near.close()
        case.searcher.client.close()


def test_the_counters_go_to_the_searchers_registry(running: RunningServer):
    registry = prometheus_client.CollectorRegistry()
    case = near_on(running, metrics=registry)
    try:
        warmed(case)
        case.find()
        hits = registry.get_sample_value("dicomcache_client_near_hits_total", {"namespace": "ns"})
        assert hits is not None and hits >= 1
        assert registry.get_sample_value("dicomcache_client_near_in_sync", {"namespace": "ns"}) == 1
        size = registry.get_sample_value("dicomcache_client_near_bytes", {"namespace": "ns"})
        assert size is not None and size > 0
    finally:
        case.near.close()
        case.searcher.client.close()


def test_a_near_cache_serves_one_searcher(near: Near):
    with pytest.raises(ValueError, match="another searcher"):
        CachedSearcher(
            near.archive, target=near.running.target, namespace="ns", near_cache=near.near
        )


def test_without_a_near_cache_nothing_changes(running: RunningServer):
    archive = FakeArchive([study_from_proto(make_study(1, 1, 1))])
    searcher = CachedSearcher(archive, target=running.target, namespace="ns")
    uid = next(iter(archive.studies))
    first = searcher.find_study_by_id(uid, INSTANCE)
    second = searcher.find_study_by_id(uid, INSTANCE)
    assert second is not first and archive.calls == 1
    assert searcher.near is None
    searcher.client.close()


def test_an_empty_answer_is_dropped_by_a_namespace_invalidation_only(near: Near):
    query = Query(PatientID="NOBODY", query_level=QueryLevels.STUDY)
    for _ in range(20):
        near.searcher.find_studies(query)
        if near.near.counts().entries:
            settled(near.near)
            break
    seen = near.near.invalidations
    stub = near.running.stub
    stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[make_study(7)]))
    assert near.near.wait(lambda n: n.invalidations > seen, WAIT)
    assert near.near.counts().entries == 1
    stub.Invalidate(pb.InvalidateRequest(namespace="ns"))
    assert near.near.wait(lambda n: n.counts().entries == 0, WAIT)


def test_a_server_process_killed_mid_stream_flushes_and_the_searcher_falls_back():
    with serve_process() as served:
        archive = FakeArchive([study_from_proto(make_study(1, 2, 3))])
        near = NearCache(max_bytes=10_000_000)
        target = f"127.0.0.1:{served.port}"
        searcher = CachedSearcher(archive, target=target, namespace="ns", near_cache=near)
        case = Near(None, archive, near, searcher)  # type: ignore[arg-type]  # no in-process server
        try:
            assert near.wait(lambda n: n.in_sync, WAIT)
            warmed(case)
            served.process.kill()  # SIGKILL: no goodbye on the stream
            served.process.wait()
            assert near.wait(lambda n: not n.in_sync, WAIT)
            assert near.counts().entries == 0
            calls = archive.calls
            assert case.find().uid == case.uid and archive.calls == calls + 1
        finally:
            near.close()
            searcher.client.close()


class GatedAnswers(MemoryBackend):
    """A backend whose study lookups, once armed, wait at a gate after reading."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False
        self.read = threading.Event()
        self.gate = threading.Event()

    def study_answer(self, namespace, study_uid, level):  # type: ignore[no-untyped-def]  # an override; the base is typed
        found = super().study_answer(namespace, study_uid, level)
        if self.armed:
            self.read.set()
            self.gate.wait(WAIT)
        return found


def test_an_answer_read_before_an_invalidation_that_arrives_during_its_lookup_is_not_kept():
    backend = GatedAnswers()
    server = CacheServer(Settings(listen="127.0.0.1:0"), backend=backend).start()
    archive = FakeArchive([study_from_proto(make_study(1, 2, 3))])
    near = NearCache(max_bytes=10_000_000)
    target = f"127.0.0.1:{server.port}"
    searcher = CachedSearcher(archive, target=target, namespace="ns", near_cache=near, timeout=5)
    other = CachedSearcher(archive, target=target, namespace="ns")
    uid = next(iter(archive.studies))
    try:
        assert near.wait(lambda n: n.in_sync, WAIT)
        seen = near.invalidations
        searcher.find_study_by_id(uid, INSTANCE)  # the miss that stores it
        assert near.wait(lambda n: n.invalidations > seen, WAIT)  # the store's own message
        backend.armed = True
        found: list[Study] = []
        lookup = threading.Thread(
            target=lambda: found.append(searcher.find_study_by_id(uid, INSTANCE))
        )
        lookup.start()
        assert backend.read.wait(WAIT)  # the old answer is read, not yet returned
        backend.armed = False
        seen = near.invalidations
        other.client.invalidate("ns", StudyReference(study_uid=uid))
        assert near.wait(lambda n: n.invalidations > seen, WAIT)
        backend.gate.set()
        lookup.join(WAIT)
        assert found and found[0].uid == uid  # the caller got its answer
        assert near.counts().entries == 0  # but it was not kept: it may predate the invalidation
    finally:
        backend.gate.set()
        near.close()
        searcher.client.close()
        other.client.close()
        server.stop(grace=0)
