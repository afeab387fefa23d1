"""`dicomcache serve` as a real child process, on a free port read from its startup line."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from dicomcache.v1 import cache_service_pb2_grpc


@dataclass
class ServeProcess:
    """A running server process and a stub to it."""

    process: subprocess.Popen[str]
    port: int
    channel: grpc.Channel

    @property
    def stub(self) -> cache_service_pb2_grpc.CacheServiceStub:
        return cache_service_pb2_grpc.CacheServiceStub(self.channel)


@dataclass
class Started:
    """A `dicomcache serve` process past its startup line, and what that line said."""

    process: subprocess.Popen[str]
    line: str

    @property
    def port(self) -> int:
        """The gRPC port from the startup line."""
        match = re.search(r"serving on [^ ]*:(\d+) ", self.line)
        assert match, f"no port in the startup line: {self.line!r}"
        return int(match.group(1))


@contextlib.contextmanager
def started(*args: str, env: dict[str, str] | None = None) -> Iterator[Started]:
    """Run `dicomcache serve ARGS...` until its startup line; kill it on exit.

    Unlike ``serve_process`` the caller chooses every flag (``--listen`` too) and gets
    no channel: for tests of the process itself (signals, refusals, what it logs).
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "dicomcache.server.cli", "serve", *args],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        yield Started(process, process.stderr.readline())
    finally:
        process.kill()
        process.wait()


@contextlib.contextmanager
def serve_process(*args: str) -> Iterator[ServeProcess]:
    """Start `dicomcache serve --listen 127.0.0.1:0 ARGS...`; kill it on exit."""
    process = subprocess.Popen(
        [sys.executable, "-m", "dicomcache.server.cli", "serve", "--listen", "127.0.0.1:0", *args],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
        assert match, f"no startup line from dicomcache serve: {line!r}"
        with grpc.insecure_channel(f"127.0.0.1:{match.group(1)}") as channel:
            yield ServeProcess(process, int(match.group(1)), channel)
    finally:
        process.kill()
        process.wait()
