"""Coalescing across servers that share Redis: one archive request per answer, whoever asks.

The archive is a real Orthanc behind a counting proxy (``tests/support/counting_proxy``):
the count is taken at the wire, so it covers every server. The proxy holds the first
request until every search is waiting: 49 behind each server's own single-flight
leader, and one of the two leaders behind the other's flight in Redis. A holder
that crashes (a ``dicomcache serve`` process, killed while its fetch is held) keeps
its flight only until it runs out; then another server leads.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import redis

from dicomcache.server.api.keys import partition, request_key
from dicomcache.server.app import CacheServer
from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.config import Settings
from dicomcache.server.search.engine import SearchEngine
from dicomcache.server.search.flights import Flights
from dicomcache.server.search.request import normalize
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import cache_service_pb2_grpc, query_pb2, search_pb2
from tests.e2e.conftest import LoadedOrthanc
from tests.support.counting_proxy import CountingProxy, counting_proxy
from tests.support.redis_fixtures import shared_cluster, shared_server
from tests.support.redis_servers import flush_all
from tests.support.serve_process import serve_process

pytestmark = [pytest.mark.orthanc, pytest.mark.redis]

SERIES = search_pb2.SEARCH_LEVEL_SERIES
REQUEST = search_pb2.SearchRequest(upstream="pacs", level=SERIES)


@dataclass
class Server:
    """One of the servers sharing Redis, in this process, on port 0."""

    server: CacheServer
    stub: cache_service_pb2_grpc.CacheServiceStub
    channel: grpc.Channel

    @property
    def engine(self) -> SearchEngine:
        assert self.server.search_engine is not None
        return self.server.search_engine

    def search(self) -> search_pb2.SearchResponse:
        response: search_pb2.SearchResponse = self.stub.Search(REQUEST, timeout=30)
        return response


def _server(url: str, proxy: CountingProxy) -> Server:
    backend = RedisBackend.from_url(url, ttl=600, negative_ttl=60, socket_timeout=2.0)
    upstreams: dict[str, Any] = {"pacs": QidoRsUpstream("pacs", proxy.url)}
    config = Settings(listen="127.0.0.1:0", workers=128)
    server = CacheServer(config, backend=backend, upstreams=upstreams).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return Server(server, cache_service_pb2_grpc.CacheServiceStub(channel), channel)


@dataclass
class Shared:
    """Two servers on one Redis (or Redis Cluster), reading through one counted archive."""

    servers: tuple[Server, Server]
    proxy: CountingProxy
    clients: list[redis.Redis]


def _redis_single() -> tuple[str, list[redis.Redis]]:
    server = shared_server()
    return server.url, [server.client()]


def _redis_cluster() -> tuple[str, list[redis.Redis]]:
    cluster = shared_cluster()
    return cluster.url, cluster.clients()


@pytest.fixture(params=[_redis_single, _redis_cluster], ids=["redis", "redis-cluster"])
def shared(request: pytest.FixtureRequest, orthanc: LoadedOrthanc) -> Iterator[Shared]:
    url, clients = request.param()
    flush_all(clients)
    with counting_proxy(orthanc.dicomweb_url) as proxy:
        servers = (_server(url, proxy), _server(url, proxy))
        try:
            yield Shared(servers, proxy, clients)
        finally:
            for one in servers:
                one.channel.close()
                one.server.stop(grace=0)


def _key() -> tuple[str, bytes]:
    request = normalize(REQUEST, query_pb2.PROTOCOL_QIDO_RS).request
    return partition("pacs", query_pb2.PROTOCOL_QIDO_RS), request_key(request)


def _until(condition: Any, what: str) -> None:
    """Wait (bounded, polling) until ``condition()`` holds."""
    pause = threading.Event()
    for _ in range(30_000):
        if condition():
            return
        pause.wait(0.001)
    raise AssertionError(f"never: {what}")


def test_100_concurrent_identical_misses_on_two_servers_ask_the_archive_once(
    shared: Shared,
) -> None:
    first, second = shared.servers
    key = _key()
    flights = [one.engine.flights for one in shared.servers]
    assert all(isinstance(f, Flights) for f in flights)
    shared.proxy.hold()

    with ThreadPoolExecutor(100) as pool:
        futures = [pool.submit((first if n % 2 else second).search) for n in range(100)]
        _until(
            lambda: (
                shared.proxy.requests == 1
                and all(f.waiting(key) == 49 for f in flights if isinstance(f, Flights))
            ),
            "one request at the archive, 49 waiting on each server",
        )
        shared.proxy.release()
        answers = [future.result() for future in futures]

    assert shared.proxy.requests == 1
    assert len({json.dumps(json.loads(a.dicom_json), sort_keys=True) for a in answers}) == 1
    assert sum(not a.hit for a in answers) >= 50  # the leading server's 50 fetched


def test_a_crashed_holder_blocks_the_others_only_until_its_flight_runs_out(
    orthanc: LoadedOrthanc,
) -> None:
    node = shared_server()
    client = node.client()
    flush_all([client])
    with counting_proxy(orthanc.dicomweb_url) as proxy:
        proxy.hold()
        args = ["--backend", node.url, "--upstream", f"pacs={proxy.url}", "--upstream-timeout", "3"]
        with serve_process(*args) as holder:
            stub = holder.stub
            pending = stub.Search.future(REQUEST, timeout=30)
            _until(lambda: proxy.requests == 1, "the holder's fetch at the archive")
            flight = list(client.scan_iter(match="dc:1:*:f:*"))
            assert len(flight) == 1
            holder.process.kill()  # the holder crashes with its fetch in flight
            holder.process.wait()
            with pytest.raises(grpc.RpcError):
                pending.result()
        assert client.pttl(flight[0]) > 0  # its flight outlives it
        proxy.release()

        other = _server(node.url, proxy)
        try:
            answer = other.search()
        finally:
            other.channel.close()
            other.server.stop(grace=0)

    assert json.loads(answer.dicom_json) and not answer.hit
    assert proxy.requests == 2  # the crashed holder's, then the other's once the flight ran out
