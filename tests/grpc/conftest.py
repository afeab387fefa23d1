"""A real CacheServer on a free loopback port, with real generated stubs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.v1 import cache_service_pb2_grpc
from tests.support.clock import FakeClock


@dataclass
class RunningServer:
    """A started server, a channel to it, and the fake clock its backend reads."""

    server: CacheServer
    channel: grpc.Channel
    stub: cache_service_pb2_grpc.CacheServiceStub
    clock: FakeClock

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


def start_server(clock: FakeClock | None = None, **settings: object) -> RunningServer:
    """Start a memory-backed server on port 0 with the given settings."""
    clock = clock or FakeClock()
    config = Settings(listen="127.0.0.1:0", **settings)  # type: ignore[arg-type]  # settings as keywords
    backend = MemoryBackend(
        ttl=config.ttl,
        negative_ttl=config.negative_ttl,
        max_bytes=int(config.max_memory),
        clock=clock,
    )
    server = CacheServer(config, backend=backend).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return RunningServer(server, channel, cache_service_pb2_grpc.CacheServiceStub(channel), clock)


@pytest.fixture
def running() -> Iterator[RunningServer]:
    running = start_server()
    yield running
    running.channel.close()
    running.server.stop(grace=0)


@pytest.fixture
def stub(running: RunningServer) -> cache_service_pb2_grpc.CacheServiceStub:
    return running.stub
