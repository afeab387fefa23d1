"""Fixtures of the Redis-specific tests: the session's servers, flushed for each test.

The backends wait up to ``TIMEOUT`` for Redis, not the production 0.25 s: a timeout
is not retried (issue 11), and on a loaded test machine a big study's script may
take longer than 0.25 s. Tests of timeouts build their own backends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dicomcache.server.backends.redis.backend import RedisBackend
from tests.support.redis_fixtures import shared_cluster, shared_server
from tests.support.redis_servers import RedisCluster, RedisServer, flush_all

TIMEOUT = 2.0


@pytest.fixture
def single() -> Iterator[tuple[RedisServer, RedisBackend]]:
    """The session's redis-server, flushed, with a backend on it."""
    server = shared_server()
    flush_all([server.client()])
    backend = RedisBackend.from_url(server.url, ttl=600, negative_ttl=60, socket_timeout=TIMEOUT)
    yield server, backend
    backend.close()


@pytest.fixture
def cluster() -> Iterator[tuple[RedisCluster, RedisBackend]]:
    """The session's Redis Cluster, every node flushed, with a backend on it."""
    nodes = shared_cluster()
    flush_all(nodes.clients())
    backend = RedisBackend.from_url(nodes.url, ttl=600, negative_ttl=60, socket_timeout=TIMEOUT)
    yield nodes, backend
    backend.close()
