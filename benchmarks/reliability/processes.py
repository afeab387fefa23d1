"""The real processes that the fault matrix breaks: a dicomcache server and a Redis Cluster.

``ServerProcess`` is ``dicomcache serve`` as deployed, on a fixed loopback port so
that a restart comes back where the clients look; its log goes to a file (a pipe
nobody reads would block the server once full). The Redis Cluster with replicas is
``tests.support.replicated``'s.

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

from tests.support.ports import free_port

START_DEADLINE = 30.0


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
