"""A Redis Cluster with one replica per master, for failure tests: kill a master, watch the rest.

Built from ``tests.support.redis_servers``' RedisServer, each node in its own
directory on a free port. ``cluster-require-full-coverage no``: as we recommend
in production, a master that is down makes only its own slots unavailable, not
the whole cluster, while its replica takes over. Not thread-safe; the manager
owns its processes and stops them on exit. No clock: readiness is polled with a
deadline.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import redis

from tests.support.redis_servers import REDIS_CLI, RedisServer, _free_cluster_port

_DEADLINE = 60.0


@dataclass
class ReplicatedCluster:
    """Masters and replicas, all RedisServer; which is which changes on failover."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """The redis+cluster:// URL naming every node but the first as a seed too."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def clients(self) -> list[redis.Redis]:
        """A plain client of every live node."""
        return [node.client() for node in self.nodes if node.process is not None]

    def master_of(self, key: str) -> RedisServer:
        """The live node that serves ``key``'s slot now."""
        for node in self.nodes:
            if node.process is None:
                continue
            client = node.client()
            try:
                slot = client.execute_command("CLUSTER KEYSLOT", key)
                for start, end, master, *_ in client.execute_command("CLUSTER SLOTS"):
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
            except redis.ConnectionError:
                continue
            finally:
                client.close()
        raise LookupError(key)

    def live(self) -> list[RedisServer]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def wait_healthy(self, deadline_s: float = _DEADLINE, avoid_port: int = 0) -> None:
        """Wait until every live node says cluster_state:ok and no slot is on ``avoid_port``."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if self._healthy(avoid_port):
                return
            time.sleep(0.05)
        raise RuntimeError("the cluster did not become healthy")

    def _healthy(self, avoid_port: int) -> bool:
        for node in self.live():
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1.0)
            try:
                if client.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                    return False
                if avoid_port:
                    for _, _, master, *_ in client.execute_command("CLUSTER SLOTS"):
                        if int(master[1]) == avoid_port:
                            return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def wait_replicas_synced(self, deadline_s: float = _DEADLINE) -> None:
        """Wait until every live replica's link to its master is up."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if all(_synced(node) for node in self.live()):
                return
            time.sleep(0.05)
        raise RuntimeError("cluster replicas did not sync")

    def kill(self, node: RedisServer) -> None:
        """SIGKILL one node (no goodbye to the cluster) and wait for it to exit."""
        assert node.process is not None
        node.process.kill()
        node.process.wait()
        node.process = None

    def wait_served(self, key: str) -> RedisServer:
        """Wait until a live master serves ``key``'s slot again (after a failover)."""
        deadline = time.monotonic() + _DEADLINE
        while True:
            with contextlib.suppress(LookupError, redis.RedisError, StopIteration):
                master = self.master_of(key)
                if master.process is not None:
                    client = master.client()
                    try:
                        client.execute_command("EXISTS", key)
                        return master
                    finally:
                        client.close()
            if time.monotonic() > deadline:
                raise RuntimeError(f"no master serves {key!r}")
            time.sleep(0.1)


def _ready(client: redis.Redis, nodes: int) -> bool:
    """Cluster state ok, every node known, and a replica in sync with its master
    (a replica that never synced does not take over)."""
    info = client.execute_command("CLUSTER INFO")
    if info.get("cluster_state") != "ok" or int(info["cluster_known_nodes"]) != nodes:
        return False
    return _in_sync(client.info("replication"))


def _in_sync(replication: dict[str, object]) -> bool:
    return replication["role"] == "master" or replication.get("master_link_status") == "up"


def _synced(node: RedisServer) -> bool:
    client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1.0)
    try:
        return _in_sync(client.info("replication"))
    except redis.RedisError:
        return False
    finally:
        client.close()


def _wait_ok(nodes: list[RedisServer]) -> None:
    deadline = time.monotonic() + _DEADLINE
    for node in nodes:
        client = node.client()
        try:
            while True:
                if _ready(client, len(nodes)):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"cluster node {node.port} never became ok")
                time.sleep(0.05)
        finally:
            client.close()


@contextlib.contextmanager
def replicated_cluster(
    masters: int = 3,
    replicas: int = 1,
    node_timeout_ms: int = 2000,
    extra_args: tuple[str, ...] = (),
) -> Iterator[ReplicatedCluster]:
    """A running Redis Cluster of ``masters`` masters with ``replicas`` replicas each."""
    with tempfile.TemporaryDirectory(prefix="dicomcache-rrepl-") as workdir:
        nodes: list[RedisServer] = []
        try:
            for index in range(masters * (1 + replicas)):
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
                        str(node_timeout_ms),
                        "--cluster-require-full-coverage",
                        "no",
                        "--repl-diskless-sync-delay",
                        "0",
                        *extra_args,
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
                    str(replicas),
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            _wait_ok(nodes)
            yield ReplicatedCluster(nodes)
        finally:
            for node in nodes:
                if node.process is not None and node.process.poll() is None:
                    node.process.send_signal(signal.SIGCONT)  # a fault may have stopped it
                node.stop()
