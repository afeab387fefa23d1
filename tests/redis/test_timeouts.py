"""A stalled Redis fails a call within one ``--backend-timeout``, not two or more (issue 11).

A stalled Redis (SIGSTOP, ``DEBUG SLEEP``, ``CLIENT PAUSE``) failed calls in 503 ms
at a 0.25 s timeout: redis-py retried the timed-out command once on a new
connection (single Redis), and on a cluster it retried again for each command of a
pipeline and after refreshing the slot map (up to 1.8 s). Tests do not time calls:
they count what a call sent to the stalled server, seen by that server once it
runs again (each new connection is one more attempt, each one more timeout), and
check the timeouts given to redis-py. The measured figures are in the report of
``benchmarks/redis_stall.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis
import redis.cluster

from dicomcache.server.app import build_backend
from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.names import Names
from dicomcache.server.config import Settings
from dicomcache.server.errors import BackendUnavailable
from dicomcache.server.model import Level
from tests.support.builders import make_study
from tests.support.redis_servers import RedisCluster, RedisServer

pytestmark = pytest.mark.redis

UIDS = ["1.2", "1.3", "1.4", "1.5", "1.6", "1.7"]


def _calls(backend: RedisBackend) -> dict[str, Callable[[], object]]:
    answer = [make_study(uid, 1, 2) for uid in UIDS]
    return {
        "lookup_query": lambda: backend.lookup_query("ns", b"key"),
        "lookup_study": lambda: backend.lookup_study("ns", "1.2", Level.INSTANCE),
        "get_object": lambda: backend.get_object("ns", ("1.2",)),
        "store_query": lambda: backend.store_query("ns", b"key", answer, None),
        "store_study": lambda: backend.store_study("ns", answer[0], Level.INSTANCE, None),
        "lease": lambda: backend.lease("ns"),
        "invalidate": lambda: backend.invalidate("ns", ("1.2",)),
    }


def _connections(server: RedisServer) -> int:
    client = server.client()
    try:
        return int(client.info("stats")["total_connections_received"])
    finally:
        client.close()


@contextmanager
def _stopped(server: RedisServer) -> Iterator[None]:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


def _attempts(server: RedisServer, url: str, name: str) -> int:
    """New connections one call opened to ``server`` while it was stopped."""
    backend = RedisBackend.from_url(url, ttl=600, negative_ttl=60, socket_timeout=0.25)
    try:
        call = _calls(backend)[name]
        for warm in _calls(backend).values():
            warm()  # every connection the calls need is open and idle, scripts loaded
        before = _connections(server)
        with _stopped(server), pytest.raises(BackendUnavailable):
            call()
        return _connections(server) - before - 1  # one is _connections' own
    finally:
        backend.close()


SINGLE_CALLS = ["lookup_query", "lookup_study", "get_object", "store_query", "store_study"]


@pytest.mark.parametrize("name", [*SINGLE_CALLS, "lease", "invalidate"])
def test_a_stalled_redis_gets_one_attempt_per_call(
    single: tuple[RedisServer, RedisBackend], name: str
) -> None:
    server, _ = single

    assert _attempts(server, server.url, name) == 0


def _holder(nodes: RedisCluster, key: str) -> RedisServer:
    for node in nodes.nodes:
        client = node.client()
        try:
            client.exists(key)
            return node
        except redis.ResponseError:  # MOVED
            continue
        finally:
            client.close()
    raise LookupError(key)


@pytest.mark.parametrize("name", SINGLE_CALLS)
def test_a_stalled_cluster_node_gets_one_attempt_per_call(
    cluster: tuple[RedisCluster, RedisBackend], name: str
) -> None:
    nodes, _ = cluster
    server = _holder(nodes, Names("ns").study("1.2"))

    assert _attempts(server, nodes.url, name) == 0


@pytest.mark.parametrize("where", ["single", "cluster"])
def test_the_backend_timeout_is_the_socket_and_connect_timeout(
    request: pytest.FixtureRequest, where: str
) -> None:
    servers, _ = request.getfixturevalue(where)
    url = servers.url
    backend = build_backend(Settings(backend=url, backend_timeout=0.125))
    try:
        backend.lookup_query("ns", b"key")
        client = backend._redis()  # the redis-py client, to read what it was given
        if isinstance(client, redis.cluster.RedisCluster):
            options = client.nodes_manager.connection_kwargs
        else:
            options = client.get_connection_kwargs()
    finally:
        backend.close()

    assert options["socket_timeout"] == options["socket_connect_timeout"] == 0.125
