"""The real processes that the fault matrix breaks: a dicomcache server and a Redis Cluster.

``ServerProcess`` is ``dicomcache serve`` as deployed, on a fixed loopback port so
that a restart comes back where the clients look; its log goes to a file (a pipe
nobody reads would block the server once full). ``replicated_cluster`` is a Redis
Cluster of three masters, each with one replica, so a killed master fails over.

Not thread-safe: each object owns its processes. No clock of its own: readiness is
polled against deadlines on ``time.monotonic``.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.support.ports import free_port
from tests.support.redis_servers import REDIS_CLI, RedisServer, _free_cluster_port

START_DEADLINE = 30.0
# Seconds without a master's answer before the cluster fails it over: Redis's
# default is 15 s; 2 s keeps the matrix short and is still well above loopback jitter.
CLUSTER_NODE_TIMEOUT_MS = 2000


@dataclass
class ServerProcess:
    """``dicomcache serve`` on 127.0.0.1:port with ``args``; restartable on the same port."""

    args: tuple[str, ...]
    workdir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def target(self) -> str:
        """host:port for clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The running process's id."""
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """The log of the current (or last) start."""
        return self.workdir / f"server-{self.starts}.log"

    def start(self) -> None:
        """Start the server and wait for its startup line."""
        self.starts += 1
        command = [sys.executable, "-m", "dicomcache.server.cli", "serve"]
        command += ["--listen", self.target, *self.args]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_DEADLINE
        while not re.search(rf"serving on 127\.0\.0\.1:{self.port}\b", self.log()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"dicomcache serve did not start: {self.log()[-1500:]}")
            time.sleep(0.02)

    def log(self) -> str:
        """What the current start has logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def signal(self, signum: int) -> None:
        """Send one signal to the server."""
        assert self.process is not None
        self.process.send_signal(signum)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to end (SIGKILL after ``timeout``); its exit status."""
        assert self.process is not None
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def kill(self) -> None:
        """End the process now, if it runs (a stopped one is continued so it can die)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()


@contextlib.contextmanager
def server_process(*args: str) -> Iterator[ServerProcess]:
    """A started ``ServerProcess`` with its own log directory, killed on exit."""
    with tempfile.TemporaryDirectory(prefix="dicomcache-rel-server-") as workdir:
        server = ServerProcess(args=args, workdir=Path(workdir))
        server.start()
        try:
            yield server
        finally:
            server.kill()


@dataclass
class ReplicatedCluster:
    """A Redis Cluster whose every master has a replica."""

    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        """The redis+cluster:// URL, seeded with every node (any may be down later)."""
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def live(self) -> list[RedisServer]:
        """The nodes whose process runs."""
        return [n for n in self.nodes if n.process is not None and n.process.poll() is None]

    def _ask(self, command: str, *args: str | int) -> object:
        """One command to the first live node that answers."""
        for node in self.live():
            client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1.0)
            try:
                return client.execute_command(command, *args)
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError("no cluster node answers")

    def master_of(self, key: str) -> RedisServer:
        """The node serving ``key``'s slot as master now."""
        slot = int(str(self._ask("CLUSTER", "KEYSLOT", key)))
        port = self.slot_owner(slot)
        return next(n for n in self.nodes if n.port == port)

    def slot_owner(self, slot: int) -> int:
        """The port of the master serving ``slot``, as a live node sees it."""
        slots = self._ask("CLUSTER", "SLOTS")
        assert isinstance(slots, list)
        for start, end, master, *_ in slots:
            if int(start) <= slot <= int(end):
                return int(master[1])
        raise RuntimeError(f"slot {slot} has no master")

    def wait_healthy(self, deadline_s: float = 60.0, avoid_port: int = 0) -> None:
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
                info = client.execute_command("CLUSTER INFO")
                if info.get("cluster_state") != "ok":
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

    def wait_replicas_synced(self, deadline_s: float = 60.0) -> None:
        """Wait until every live replica's link to its master is up."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            if all(_synced(node) for node in self.live()):
                return
            time.sleep(0.05)
        raise RuntimeError("cluster replicas did not sync")


def _synced(node: RedisServer) -> bool:
    client = redis.Redis(host="127.0.0.1", port=node.port, socket_timeout=1.0)
    try:
        info = client.info("replication")
        return bool(info.get("role") == "master" or info.get("master_link_status") == "up")
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextlib.contextmanager
def replicated_cluster(masters: int = 3) -> Iterator[ReplicatedCluster]:
    """A running Redis Cluster of ``masters`` masters with one replica each, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="dicomcache-rel-cluster-") as workdir:
        nodes: list[RedisServer] = []
        try:
            for index in range(2 * masters):
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
                        str(CLUSTER_NODE_TIMEOUT_MS),
                        # Serve the slots whose master lives while another's fails over:
                        # with full coverage required (the default) every node refuses
                        # every key then, and no hit path could stay off a dead master.
                        "--cluster-require-full-coverage",
                        "no",
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
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=60,
            )
            cluster = ReplicatedCluster(nodes)
            cluster.wait_healthy()
            cluster.wait_replicas_synced()
            yield cluster
        finally:
            for node in nodes:
                if node.process is not None and node.process.poll() is None:
                    node.process.send_signal(signal.SIGCONT)
                node.stop()
