"""What a hit costs in Redis commands, seen by Redis itself (MONITOR) (issue 5).

MONITOR lists every command a client sent, and marks those run by a Lua script
as 'lua': the commands of a hit that came from the backend are its requests. On a
single Redis a hit is one EVALSHA, so one round trip. On a cluster a query hit is
a GET of the entry then one MGET per study, sent as one pipeline: two round trips;
a study hit is the study's script alone (issue 11: nothing in another slot).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.model import Level
from tests.support.builders import make_study
from tests.support.redis_servers import RedisCluster, RedisServer

pytestmark = pytest.mark.redis

_MARK = "dicomcache-monitor-end"


@contextmanager
def monitored_raw(clients: list[redis.Redis]) -> Iterator[list[list[str]]]:
    """Collect the client (not Lua) commands every node receives inside the block,
    each as its words (key names hold no blanks: ``names.escape``)."""
    seen: list[list[str]] = []
    threads = []
    ready = threading.Barrier(len(clients) + 1)

    def watch(client: redis.Redis) -> None:
        with client.monitor() as monitor:
            ready.wait()
            for command in monitor.listen():
                text = command["command"]
                if _MARK in text:
                    return
                if command.get("client_type") != "lua" and not text.startswith("ECHO"):
                    seen.append(text.split(" "))

    for client in clients:
        thread = threading.Thread(target=watch, args=(client,), daemon=True)
        thread.start()
        threads.append(thread)
    ready.wait()
    try:
        yield seen
    finally:
        for client in clients:
            client.echo("warm-up")  # let MONITOR start streaming before the marker
            client.echo(_MARK)
        for thread in threads:
            thread.join(timeout=10)


@contextmanager
def monitored(clients: list[redis.Redis]) -> Iterator[list[str]]:
    """The names of the client commands every node receives inside the block."""
    names: list[str] = []
    with monitored_raw(clients) as seen:
        yield names
    names.extend(command[0].upper() for command in seen)


def _commands(clients: list[redis.Redis], call: Callable[[], object]) -> list[str]:
    call()  # scripts loaded, connections open: measure a steady-state hit
    with monitored(clients) as seen:
        assert call() is not None
    return sorted(seen)


def test_a_hit_is_one_command_on_a_single_redis(
    single: tuple[RedisServer, RedisBackend],
) -> None:
    server, backend = single
    backend.store_query("ns", b"key", [make_study("1.2", 2, 3), make_study("1.3", 1, 1)], None)
    backend.store_study("ns", make_study("1.2", 2, 3), Level.INSTANCE, None)
    clients = [server.client()]

    assert _commands(clients, lambda: backend.lookup_query("ns", b"key")) == ["EVALSHA"]
    assert _commands(clients, lambda: backend.lookup_study("ns", "1.2", Level.SERIES)) == [
        "EVALSHA"
    ]


def test_a_hit_on_a_cluster_is_the_entry_then_one_read_per_study(
    cluster: tuple[RedisCluster, RedisBackend],
) -> None:
    nodes, backend = cluster
    studies = [make_study(f"1.{n}", 1, 2) for n in range(2, 6)]
    backend.store_query("ns", b"key", studies, None)
    backend.store_study("ns", studies[0], Level.INSTANCE, None)
    clients = nodes.clients()

    query = _commands(clients, lambda: backend.lookup_query("ns", b"key"))
    # The entry's GET and PTTL (its time left, issue 13) go in one pipeline to its node.
    assert query == sorted(["GET", "PTTL", *["MGET"] * len(studies)])
    study = _commands(clients, lambda: backend.lookup_study("ns", "1.2", Level.SERIES))
    assert study == ["EVALSHA"]
