"""Search's age and stale-if-error against a real Orthanc that then stops answering.

The archive is Orthanc behind a counting proxy (``tests/support/counting_proxy``);
"stopping" it closes the proxy's port, so the server's real QIDO-RS upstream meets
a refused connection, as with a stopped archive. Time moves without sleeping: a
FakeClock under the memory backend, ``advance_ttls`` on Redis (TTLs rewritten).
With ttl 600 s and max_stale 300 s, an answer is served stale up to 900 s after
its fetch, never after, never after an Invalidate, and never when max_stale is 0.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from dicomcache.server.app import CacheServer
from dicomcache.server.backends import Backend
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.sealing import MAGIC, SealedValues
from dicomcache.server.config import Settings
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, objects_pb2, search_pb2
from tests.e2e.conftest import LoadedOrthanc
from tests.support.clock import FakeClock
from tests.support.counting_proxy import CountingProxy, counting_proxy
from tests.support.redis_fixtures import session_key_file, shared_cluster, shared_server
from tests.support.redis_servers import advance_ttls, flush_all

pytestmark = pytest.mark.orthanc

STUDIES = search_pb2.SEARCH_LEVEL_STUDIES
SERIES = search_pb2.SEARCH_LEVEL_SERIES
TTL, MAX_STALE = 600.0, 300.0
STALE_REASON = "dicomcache-stale-reason"
Made = tuple[Backend, Callable[[float], None]]  # a backend, and the hand on its time


@dataclass
class Stage:
    """A server reading through the proxy, and the hand on its backend's time."""

    server: CacheServer
    stub: cache_service_pb2_grpc.CacheServiceStub
    proxy: CountingProxy
    advance: Callable[[float], None]

    def search(self, **fields: Any) -> tuple[search_pb2.SearchResponse, dict[str, str]]:
        fields.setdefault("upstream", "pacs")
        fields.setdefault("level", STUDIES)
        response, call = self.stub.Search.with_call(search_pb2.SearchRequest(**fields), timeout=30)
        return response, dict(call.trailing_metadata() or ())


def _memory() -> tuple[Backend, Callable[[float], None]]:
    clock = FakeClock()
    return MemoryBackend(ttl=TTL, negative_ttl=60, clock=clock), clock.advance


def _redis(
    url: str, clients: list[Any], sealed: bool = False
) -> tuple[Backend, Callable[[float], None]]:
    flush_all(clients)
    values = SealedValues.from_file(session_key_file()) if sealed else None
    extra = {"values": values} if values is not None else {}
    backend = RedisBackend.from_url(url, ttl=TTL, negative_ttl=60, socket_timeout=2.0, **extra)
    return backend, lambda seconds: advance_ttls(clients, seconds)


def _single(sealed: bool = False) -> tuple[Backend, Callable[[float], None]]:
    server = shared_server()
    return _redis(server.url, [server.client()], sealed)


def _cluster() -> tuple[Backend, Callable[[float], None]]:
    cluster = shared_cluster()
    return _redis(cluster.url, cluster.clients())


BACKENDS = [
    pytest.param(_memory, id="memory"),
    pytest.param(_single, id="redis", marks=pytest.mark.redis),
    pytest.param(_cluster, id="redis-cluster", marks=pytest.mark.redis),
    pytest.param(lambda: _single(sealed=True), id="redis-sealed", marks=pytest.mark.redis),
]


def _stage(
    orthanc: LoadedOrthanc,
    make: Callable[[], tuple[Backend, Callable[[float], None]]],
    **settings: Any,
) -> Iterator[Stage]:
    backend, advance = make()
    with counting_proxy(orthanc.dicomweb_url) as proxy:
        upstream = QidoRsUpstream("pacs", proxy.url)
        config = Settings(
            listen="127.0.0.1:0", metrics_listen="127.0.0.1:0", ttl=TTL, negative_ttl=60, **settings
        )
        server = CacheServer(config, backend=backend, upstreams={"pacs": upstream}).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        try:
            yield Stage(server, cache_service_pb2_grpc.CacheServiceStub(channel), proxy, advance)
        finally:
            channel.close()
            server.stop(grace=0)


@pytest.fixture(params=BACKENDS)
def stage(request: pytest.FixtureRequest, orthanc: LoadedOrthanc) -> Iterator[Stage]:
    """A server with max_stale 300 s on each backend."""
    yield from _stage(orthanc, request.param, max_stale=MAX_STALE)


@pytest.fixture
def stage_off(orthanc: LoadedOrthanc) -> Iterator[Stage]:
    """A server with stale-if-error off (the default), on the memory backend."""
    yield from _stage(orthanc, _memory)


def stale_serves(stage: Stage) -> float:
    """dicomcache_stale_serves_total, over its namespace labels."""
    metrics = stage.server.telemetry.metrics
    assert metrics is not None
    return sum(
        sample.value
        for family in metrics.registry.collect()
        for sample in family.samples
        if sample.name == "dicomcache_stale_serves_total"
    )


def _refused(stage: Stage, **fields: Any) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        stage.search(**fields)
    return raised.value


def test_the_age_of_a_hit_grows_with_the_backends_clock(stage: Stage) -> None:
    miss, _ = stage.search()
    stage.advance(100.0)
    hit, _ = stage.search()

    assert not miss.hit and miss.age_seconds == 0.0
    assert hit.hit and not hit.stale
    assert 99.0 <= hit.age_seconds <= 101.0
    assert json.loads(hit.dicom_json) == json.loads(miss.dicom_json)
    assert stage.proxy.requests == 1


def test_the_archive_stopped_an_expired_answer_is_served_stale_within_max_stale(
    stage: Stage,
) -> None:
    fresh, _ = stage.search(level=SERIES)
    stage.proxy.close()
    stage.advance(TTL + 100.0)  # expired 100 s ago

    stale, trailers = stage.search(level=SERIES)

    assert stale.stale and stale.hit
    assert json.loads(stale.dicom_json) == json.loads(fresh.dicom_json)
    assert stale.count == fresh.count
    assert TTL + 99.0 <= stale.age_seconds <= TTL + 101.0
    assert trailers[STALE_REASON] == "upstream pacs: unreachable"
    assert stale_serves(stage) == 1
    assert stage.proxy.requests == 1  # the one fetch; the port refused the next


def test_an_archive_failing_with_5xx_serves_the_stale_answer_with_its_status(
    stage: Stage,
) -> None:
    fresh, _ = stage.search()
    stage.proxy.status = 503
    stage.advance(TTL + 1.0)

    stale, trailers = stage.search()

    assert stale.stale and json.loads(stale.dicom_json) == json.loads(fresh.dicom_json)
    assert trailers[STALE_REASON] == "upstream pacs: failed (archive status 503)"


def test_an_archive_refusing_the_request_serves_nothing_stale(stage: Stage) -> None:
    stage.search()
    stage.proxy.status = 403  # e.g. the server's credentials were revoked
    stage.advance(TTL + 1.0)

    error = _refused(stage)

    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "403" in (error.details() or "")


def test_the_archive_stopped_an_answer_past_max_stale_is_refused(stage: Stage) -> None:
    stage.search()
    stage.proxy.close()
    stage.advance(TTL + MAX_STALE + 1.0)

    error = _refused(stage)

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "unreachable" in (error.details() or "")


def test_the_archive_stopped_nothing_stale_survives_an_invalidate(stage: Stage) -> None:
    fresh, _ = stage.search(level=SERIES)
    stage.proxy.close()
    a_study = json.loads(fresh.dicom_json)[0]["0020000D"]["Value"][0]
    reference = objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=a_study))
    stage.stub.Invalidate(pb.InvalidateRequest(namespace="pacs", reference=reference))

    at_once = _refused(stage, level=SERIES)
    stage.advance(TTL + 10.0)
    later = _refused(stage, level=SERIES)

    assert at_once.code() == later.code() == grpc.StatusCode.UNAVAILABLE


def test_the_archive_stopped_an_invalidated_namespace_serves_nothing_stale(stage: Stage) -> None:
    stage.search()
    stage.proxy.close()
    stage.stub.Invalidate(pb.InvalidateRequest(namespace="pacs"))

    assert _refused(stage).code() == grpc.StatusCode.UNAVAILABLE


def test_a_fresh_hit_needs_no_archive_and_is_not_stale(stage: Stage) -> None:
    stage.search()
    stage.proxy.close()

    hit, trailers = stage.search()

    assert hit.hit and not hit.stale and STALE_REASON not in trailers


def test_stale_if_error_is_off_by_default(stage_off: Stage) -> None:
    stage_off.search()
    stage_off.proxy.close()
    stage_off.advance(TTL + 1.0)

    error = _refused(stage_off)
    assert stale_serves(stage_off) == 0

    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "unreachable" in (error.details() or "")


@pytest.mark.redis
def test_a_stale_copy_at_rest_is_sealed_and_its_key_holds_no_phi(orthanc: LoadedOrthanc) -> None:
    for stage in _stage(orthanc, lambda: _single(sealed=True), max_stale=MAX_STALE):
        fresh, _ = stage.search()
        client = shared_server().client()
        keys = list(client.scan_iter(match="dc:1:*:s:*"))
        assert len(keys) == 1
        value = client.get(keys[0])
        mark, kept, sealed = value.split(b"|", 2)
        assert mark.isdigit() and kept.isdigit() and sealed.startswith(MAGIC)
        patient_id = json.loads(fresh.dicom_json)[0]["00100020"]["Value"][0]
        assert patient_id.encode() not in value
        assert not any(patient_id.encode() in key for key in client.scan_iter(match="*"))
