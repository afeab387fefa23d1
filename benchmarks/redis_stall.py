"""How long a stalled Redis takes to fail a RedisBackend call: ``python -m benchmarks.redis_stall``.

Real redis-server processes (one, and a 3-master cluster), stalled three ways:
SIGSTOP, ``DEBUG SLEEP`` and ``CLIENT PAUSE ALL``. For each, every backend call is
made once against the stalled server (on the cluster: the master holding the
study's slot) and timed; the table shows the slowest call and the calls' median
in ms, with the timeout the backend was given (``--backend-timeout``, 0.25 s by
default). Timings live here, not in tests (see ``tests/redis/test_timeouts.py``).
Takes about 20 s.

Measured on this session's machine (loopback, redis-server 7.0.15, redis-py 7.4):
before issue 11, single 502-503 ms for every fault and call, cluster SIGSTOP 511-1782 ms;
after, 251-265 ms median and slowest on a quiet host, single and cluster (a 2-CPU
host at load 9, other suites running: medians 251-319 ms, slowest 419 ms).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import redis

from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.names import Names
from dicomcache.server.errors import BackendUnavailable
from dicomcache.server.model import Level
from tests.support.builders import make_study
from tests.support.redis_servers import RedisServer, redis_server
from tests.support.replicated import replicated_cluster

UIDS = ["1.2", "1.3", "1.4", "1.5"]


def _calls(backend: RedisBackend) -> dict[str, Callable[[], object]]:
    answer = [make_study(uid, 1, 2) for uid in UIDS]
    return {
        "lookup_query": lambda: backend.lookup_query("ns", b"key"),
        "lookup_study": lambda: backend.lookup_study("ns", UIDS[0], Level.INSTANCE),
        "get_object": lambda: backend.get_object("ns", (UIDS[0],)),
        "store_query": lambda: backend.store_query("ns", b"key", answer, None),
        "store_study": lambda: backend.store_study("ns", answer[0], Level.INSTANCE, None),
        "invalidate": lambda: backend.invalidate("ns", (UIDS[0],)),
    }


def _timed(backend: RedisBackend) -> list[float]:
    """Each call once, in ms; each must fail (the stall is on its path)."""
    out = []
    for name, call in _calls(backend).items():
        start = time.perf_counter()
        try:
            call()
        except BackendUnavailable:
            pass
        else:
            raise AssertionError(f"{name} did not fail on a stalled Redis")
        out.append((time.perf_counter() - start) * 1000)
    return out


def _warm(backend: RedisBackend) -> None:
    for call in _calls(backend).values():
        for _ in range(2):  # scripts loaded, connections idle in the pools
            call()


@contextmanager
def _sigstop(server: RedisServer) -> Iterator[None]:
    assert server.process is not None
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.process.pid, signal.SIGCONT)


@contextmanager
def _debug_sleep(server: RedisServer) -> Iterator[None]:
    client = redis.Redis(port=server.port, socket_timeout=30)  # it sleeps for 4 s
    thread = threading.Thread(target=client.execute_command, args=("DEBUG", "SLEEP", "4"))
    thread.start()
    time.sleep(0.2)  # let the sleep begin
    try:
        yield
    finally:
        thread.join()
        client.close()


@contextmanager
def _client_pause(server: RedisServer) -> Iterator[None]:
    client = server.client()
    client.execute_command("CLIENT", "PAUSE", "20000", "ALL")
    try:
        yield
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
        client.close()


FAULTS = {"SIGSTOP": _sigstop, "DEBUG SLEEP": _debug_sleep, "CLIENT PAUSE": _client_pause}


def _holder(servers: list[RedisServer], key: str) -> RedisServer:
    for server in servers:
        client = server.client()
        try:
            client.exists(key)
            return server
        except redis.ResponseError:  # MOVED: not this node's slot
            continue
        finally:
            client.close()
    raise LookupError(key)


def _run(url: str, servers: list[RedisServer], timeout: float) -> dict[str, list[float]]:
    backend = RedisBackend.from_url(url, ttl=600, negative_ttl=60, socket_timeout=timeout)
    victim = _holder(servers, Names("ns").study(UIDS[0]))
    rows = {}
    try:
        for fault, apply in FAULTS.items():
            _warm(backend)
            with apply(victim):
                rows[fault] = _timed(backend)
    finally:
        backend.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--timeout", type=float, default=0.25, help="--backend-timeout, s")
    args = parser.parse_args()
    debug = ("--enable-debug-command", "local")
    results = {}
    with redis_server(*debug) as server:
        results["single"] = _run(server.url, [server], args.timeout)
    with replicated_cluster(replicas=0, node_timeout_ms=15_000, extra_args=debug) as cluster:
        results["cluster"] = _run(cluster.url, cluster.nodes, args.timeout)
    print(f"Redis stalled: a call fails after (ms; timeout {args.timeout * 1000:.0f} ms)")
    print(f"{'topology':10} {'fault':14} {'slowest':>8} {'median':>8}")
    for topology, rows in results.items():
        for fault, times in rows.items():
            slowest, median = max(times), statistics.median(times)
            print(f"{topology:10} {fault:14} {slowest:8.0f} {median:8.0f}")


if __name__ == "__main__":
    main()
