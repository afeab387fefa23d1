"""Real redis-server processes for tests: one server, or a 3-master cluster.

Tests run the backend against the real thing (no mocks): each helper starts
``redis-server`` on a free loopback port in a temporary directory, without
persistence, and stops it on exit. Not thread-safe; each manager owns its
processes. No clock: readiness is polled with a deadline.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.ports import claim_port, free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
_START_DEADLINE = 20.0


def _free_cluster_port() -> int:
    """A port whose cluster bus port (port + 10000) is free too."""
    while True:
        port = free_port()
        if port + 10000 <= 65535 and claim_port(port + 10000):
            return port


@dataclass
class RedisServer:
    """One redis-server process on 127.0.0.1:port, restartable on the same port."""

    port: int
    workdir: Path
    extra_args: tuple[str, ...] = ()
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """The redis:// URL of this server, database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the process and wait until it answers PING."""
        args = [
            REDIS_SERVER,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.workdir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--logfile",
            str(self.workdir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_DEADLINE
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1.0)
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    log = (self.workdir / "redis.log").read_text(errors="replace")
                    raise RuntimeError(f"redis-server on {self.port} exited:\n{log[-2000:]}")
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server on {self.port} did not start")
                time.sleep(0.02)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the process (SIGTERM; no save) and wait for it to exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def client(self) -> redis.Redis:
        """A plain client of this server, for test assertions."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5.0)


@contextlib.contextmanager
def redis_server(*extra_args: str) -> Iterator[RedisServer]:
    """A running redis-server on a free loopback port, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="dicomcache-redis-") as workdir:
        server = RedisServer(port=free_port(), workdir=Path(workdir), extra_args=extra_args)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@dataclass
class RedisCluster:
    """A Redis Cluster of masters only, each a RedisServer."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """The redis+cluster:// URL naming the first node as the seed."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def clients(self) -> list[redis.Redis]:
        """A plain client of every node, for test assertions."""
        return [node.client() for node in self.nodes]


def _wait_cluster_ok(nodes: list[RedisServer]) -> None:
    deadline = time.monotonic() + _START_DEADLINE
    for node in nodes:
        client = node.client()
        try:
            while client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {node.port} never reached cluster_state:ok")
                time.sleep(0.05)
        finally:
            client.close()


@contextlib.contextmanager
def redis_cluster(masters: int = 3) -> Iterator[RedisCluster]:
    """A running Redis Cluster of ``masters`` nodes with no replicas, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="dicomcache-rcluster-") as workdir:
        nodes: list[RedisServer] = []
        try:
            for index in range(masters):
                node_dir = Path(workdir) / f"node{index}"
                node_dir.mkdir()
                node = RedisServer(
                    port=_free_cluster_port(),
                    workdir=node_dir,
                    extra_args=(
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node_dir / "nodes.conf"),
                        "--cluster-node-timeout",
                        "5000",
                    ),
                )
                node.start()
                nodes.append(node)
            subprocess.run(
                [
                    REDIS_CLI,
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{node.port}" for node in nodes),
                    "--cluster-replicas",
                    "0",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            _wait_cluster_ok(nodes)
            yield RedisCluster(nodes)
        finally:
            for node in nodes:
                node.stop()


def flush_all(clients: list[redis.Redis]) -> None:
    """Empty every node (FLUSHALL), so tests do not see each other's keys."""
    for client in clients:
        client.flushall()


def advance_ttls(clients: list[redis.Redis], seconds: float) -> None:
    """Move every key ``seconds`` closer to its expiry, without sleeping (test-only).

    A time machine for the contract suite: each key with a TTL gets
    ``PEXPIRE key (pttl - delta)``, or is deleted when that is not positive, and
    every sorted set (the backend scores its sorted sets by absolute expiry in
    Redis milliseconds) has its scores moved down by the same delta. The Redis
    clock itself does not move, so the result equals waiting ``seconds``.
    """
    delta = round(seconds * 1000)
    for client in clients:
        for key in client.scan_iter(count=1000):
            pttl = client.pttl(key)
            if pttl == -2:
                continue
            if pttl >= 0:
                if pttl - delta <= 0:
                    client.delete(key)
                    continue
                client.pexpire(key, pttl - delta)
            if client.type(key) == b"zset":
                _shift_scores(client, key, delta)


_SHIFT = """
local items = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #items, 2 do
  redis.call('ZADD', KEYS[1], tonumber(items[i + 1]) - tonumber(ARGV[1]), items[i])
end
return #items / 2
"""


def _shift_scores(client: redis.Redis, key: bytes, delta: int) -> None:
    client.eval(_SHIFT, 1, key, delta)
