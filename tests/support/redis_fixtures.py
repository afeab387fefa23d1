"""Redis servers shared by a test session, and contract-suite factories on them.

Starting a cluster takes seconds, so one redis-server and one 3-node cluster are
started on first use and kept for the session (stopped at exit); each test gets
them flushed (FLUSHALL on every node). Time moves with ``advance_ttls``: TTLs are
rewritten, nothing sleeps. Not thread-safe: pytest runs tests one at a time.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dicomcache.server.backends.redis.backend import RedisBackend
from tests.support.redis_servers import (
    RedisCluster,
    RedisServer,
    advance_ttls,
    flush_all,
    redis_cluster,
    redis_server,
)

_exits = contextlib.ExitStack()
atexit.register(_exits.close)
_single: RedisServer | None = None
_cluster: RedisCluster | None = None


def shared_server() -> RedisServer:
    """The session's redis-server, started on first use."""
    global _single
    if _single is None:
        _single = _exits.enter_context(redis_server())
    return _single


def shared_cluster() -> RedisCluster:
    """The session's 3-master Redis Cluster, started on first use."""
    global _cluster
    if _cluster is None:
        _cluster = _exits.enter_context(redis_cluster())
    return _cluster


@contextlib.contextmanager
def _cache_on(
    url: str, clients: list[redis.Redis], ttl: float, negative_ttl: float, max_bytes: int | None
) -> Iterator[Any]:
    from tests.contract.backends import CacheUnderTest  # here: backends.py imports this module

    if max_bytes is not None:
        pytest.skip("Redis bounds memory with its own maxmemory, not max_bytes")
    flush_all(clients)
    backend = RedisBackend.from_url(url, ttl=ttl, negative_ttl=negative_ttl)
    try:
        yield CacheUnderTest(backend, lambda seconds: advance_ttls(clients, seconds))
    finally:
        backend.close()
        for client in clients:
            client.close()


@contextlib.contextmanager
def redis_single(*, ttl: float, negative_ttl: float, max_bytes: int | None) -> Iterator[Any]:
    """A RedisBackend on the session's redis-server, flushed."""
    server = shared_server()
    with _cache_on(server.url, [server.client()], ttl, negative_ttl, max_bytes) as cache:
        yield cache


@contextlib.contextmanager
def redis_on_cluster(*, ttl: float, negative_ttl: float, max_bytes: int | None) -> Iterator[Any]:
    """A RedisBackend on the session's Redis Cluster, every node flushed."""
    cluster = shared_cluster()
    with _cache_on(cluster.url, cluster.clients(), ttl, negative_ttl, max_bytes) as cache:
        yield cache


@pytest.fixture(scope="session")
def redis_node() -> RedisServer:
    """The session's redis-server (flush it yourself, or use ``redis_clean``)."""
    return shared_server()


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> RedisCluster:
    """The session's Redis Cluster."""
    return shared_cluster()
