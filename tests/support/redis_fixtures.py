"""Redis servers shared by a test session, and contract-suite factories on them.

Starting a cluster takes seconds, so one redis-server and one 3-node cluster are
started on first use and kept for the session (stopped at exit); each test gets
them flushed (FLUSHALL on every node). Time moves with ``advance_ttls``: TTLs are
rewritten, nothing sleeps. The ``*_sealed`` factories encrypt values at rest with a
key file made once for the session (``session_key_file``). Not thread-safe: pytest
runs tests one at a time.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.sealing import PLAIN, SealedValues, Values
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
_key_file: str | None = None


def key_line(key_id: str, secret: bytes | None = None) -> str:
    """A key file's line: ``key_id`` and a fresh random key (or ``secret``)."""
    return f"{key_id} {base64.b64encode(secret or os.urandom(32)).decode()}\n"


def session_key_file() -> str:
    """A key file with one random key, made on first use and deleted at exit."""
    global _key_file
    if _key_file is None:
        folder = _exits.enter_context(tempfile.TemporaryDirectory())
        _key_file = os.path.join(folder, "keys")
        with open(_key_file, "w", encoding="utf-8") as file:
            file.write(key_line("session"))
    return _key_file


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
    url: str,
    clients: list[redis.Redis],
    ttl: float,
    negative_ttl: float,
    max_bytes: int | None,
    values: Values = PLAIN,
) -> Iterator[Any]:
    from tests.contract.backends import CacheUnderTest  # here: backends.py imports this module

    if max_bytes is not None:
        pytest.skip("Redis bounds memory with its own maxmemory, not max_bytes")
    flush_all(clients)
    backend = RedisBackend.from_url(url, ttl=ttl, negative_ttl=negative_ttl, values=values)
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


@contextlib.contextmanager
def redis_single_sealed(*, ttl: float, negative_ttl: float, max_bytes: int | None) -> Iterator[Any]:
    """A RedisBackend on the session's redis-server, flushed, its values encrypted."""
    server, values = shared_server(), SealedValues.from_file(session_key_file())
    with _cache_on(server.url, [server.client()], ttl, negative_ttl, max_bytes, values) as cache:
        yield cache


@contextlib.contextmanager
def redis_on_cluster_sealed(
    *, ttl: float, negative_ttl: float, max_bytes: int | None
) -> Iterator[Any]:
    """A RedisBackend on the session's Redis Cluster, every node flushed, values encrypted."""
    cluster, values = shared_cluster(), SealedValues.from_file(session_key_file())
    with _cache_on(cluster.url, cluster.clients(), ttl, negative_ttl, max_bytes, values) as cache:
        yield cache


@pytest.fixture(scope="session")
def redis_node() -> RedisServer:
    """The session's redis-server (flush it yourself, or use ``redis_clean``)."""
    return shared_server()


@pytest.fixture(scope="session")
def redis_cluster_nodes() -> RedisCluster:
    """The session's Redis Cluster."""
    return shared_cluster()
