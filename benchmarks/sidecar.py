"""A cache server in its own process, as deployed, with a benchmark-only admin service.

The server is the real ``CacheServer`` with real settings; the admin service is
added through ``extra_handlers`` on the same gRPC server, so it shares the
server's threads, options and event loop. It offers:

* ``Echo``: returns the bytes last given to ``SetEcho``, the floor a hit is compared
  to (gRPC's own cost of one call carrying the same response);
* ``Shift``: moves the backend's clock forward, so a benchmark can make objects
  expire at once without waiting;
* ``Collect``: runs the garbage collector and returns the process's RSS.

Run as ``python -m benchmarks.sidecar --backend memory``; it prints ``PORT <n>`` once
serving. ``Sidecar`` starts and stops one from the benchmark.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import psutil

from dicomcache.client.credentials import ClientTLS
from dicomcache.server.app import CacheServer, build_backend
from dicomcache.server.cli import SWITCH_INTERVAL
from dicomcache.server.config import Settings

ADMIN_SERVICE = "dicomcache.bench.Admin"
REPO = Path(__file__).resolve().parent.parent


class ShiftedClock:
    """Monotonic seconds plus an offset that only grows.

    Thread-safe for its use here: the offset is one float, replaced atomically.
    Clock: ``time.monotonic``.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def shift(self, seconds: float) -> None:
        """Jump ``seconds`` into the future."""
        self.offset += seconds


class Admin:
    """The admin RPCs. Thread-safe: each call replaces or reads one reference."""

    def __init__(self, clock: ShiftedClock) -> None:
        self.clock = clock
        self.echo_payload = b""
        self.server: CacheServer | None = None  # set once built
        self._observers: tuple[Any, Any] | None = None  # the server's metrics and tracer

    def observe(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Turn the server's metrics and tracing off (b"0") or back on (b"1").

        Lets a benchmark compare a call observed and not on one process, one
        connection, call by call: across two processes, identical servers differ
        by up to 10% here, more than the cost being measured.
        """
        assert self.server is not None
        telemetry, seen = self.server.telemetry, self.server.instrumented
        if self._observers is None:
            self._observers = (telemetry.metrics, telemetry.tracer)
        metrics, tracer = self._observers if request == b"1" else (None, None)
        telemetry.metrics = seen.metrics = metrics
        telemetry.tracer = seen.tracer = tracer
        return b""

    def echo(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """The payload set last, whatever the request."""
        return self.echo_payload

    def set_echo(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Remember the bytes Echo returns."""
        self.echo_payload = request
        return b""

    def shift(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Move the backend clock forward by the seconds written in the request."""
        self.clock.shift(float(request.decode()))
        return b""

    def collect(self, request: bytes, context: grpc.ServicerContext) -> bytes:
        """Collect garbage, then report this process's resident memory in bytes."""
        gc.collect()
        return str(psutil.Process().memory_info().rss).encode()

    def handler(self) -> grpc.GenericRpcHandler:
        """The generic handler serving these methods on raw bytes."""
        methods = {
            "Echo": self.echo,
            "SetEcho": self.set_echo,
            "Shift": self.shift,
            "Collect": self.collect,
            "Observe": self.observe,
        }
        return grpc.method_handlers_generic_handler(
            ADMIN_SERVICE,
            {name: grpc.unary_unary_rpc_method_handler(call) for name, call in methods.items()},
        )


def serve(backend: str, overrides: dict[str, str] | None = None, tracing: bool = False) -> None:
    """Serve until SIGTERM; print the port once listening.

    A process of its own, set up as ``dicomcache serve`` sets up its process.
    ``overrides`` are further settings by name (TLS files, a policy file);
    ``tracing`` gives the server an OpenTelemetry SDK provider whose spans are
    batched and then dropped (the cost of making them, not of shipping them).
    """
    logging.basicConfig(level=logging.WARNING)
    sys.setswitchinterval(SWITCH_INTERVAL)
    settings = Settings(
        listen="127.0.0.1:0",
        backend=backend,
        ttl=86400.0,
        negative_ttl=60.0,
        max_memory=64 * 1024**3,  # the benchmarks size the cache; eviction is not measured
        max_message_bytes=512 * 1024**2,
        backend_timeout=5.0,
        **(overrides or {}),
    )
    clock = ShiftedClock()
    admin = Admin(clock)
    server = CacheServer(
        settings,
        backend=build_backend(settings, clock),
        extra_handlers=[admin.handler()],
        tracer_provider=discarding_tracer_provider() if tracing else None,
    ).start()
    admin.server = server
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"PORT {server.port}", flush=True)
    stop.wait()
    server.stop(0)


def discarding_tracer_provider(ratio: float = 1.0) -> Any:
    """An SDK TracerProvider that batches spans as in production, then drops them.

    ``ratio``: the share of new traces sampled (a span with a parent follows its
    parent's decision), as a production deployment sets OTEL_TRACES_SAMPLER.
    """
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    class Discard(SpanExporter):  # type: ignore[misc]  # the SDK's base class
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(ratio)))
    provider.add_span_processor(BatchSpanProcessor(Discard()))
    return provider


class _Metadata(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]  # grpc is untyped
    """Adds fixed metadata (a bearer token) to the admin and set-up calls."""

    def __init__(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.metadata = metadata

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        details = details._replace(metadata=(*(details.metadata or ()), *self.metadata))
        return continuation(details, request)


class Sidecar:
    """A running ``benchmarks.sidecar`` process and a channel to it. Not thread-safe. No clock."""

    def __init__(
        self,
        backend: str = "memory",
        settings: dict[str, str] | None = None,
        tls: ClientTLS | None = None,
        metadata: tuple[tuple[str, str], ...] | None = None,
        tracing: bool = False,
    ) -> None:
        self.backend = backend
        self.tracing = tracing
        self.settings = settings or {}
        self.tls = tls  # how this process and the load reach the server
        self.metadata = metadata
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.channel: grpc.Channel | None = None

    @property
    def target(self) -> str:
        """host:port of the server."""
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.process is not None
        return self.process.pid

    def __enter__(self) -> Sidecar:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "benchmarks.sidecar",
                "--backend",
                self.backend,
                *(f"--set={name}={value}" for name, value in self.settings.items()),
                *(["--tracing"] if self.tracing else []),
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        self.port = int(line.split()[1])
        options = [
            ("grpc.max_send_message_length", 512 * 1024**2),
            ("grpc.max_receive_message_length", 512 * 1024**2),
        ]
        if self.tls is None:
            self.channel = grpc.insecure_channel(self.target, options=options)
        else:
            options += self.tls.channel_options()
            credentials = self.tls.channel_credentials()
            self.channel = grpc.secure_channel(self.target, credentials, options=options)
        if self.metadata:
            self.channel = grpc.intercept_channel(self.channel, _Metadata(self.metadata))
        grpc.channel_ready_future(self.channel).result(timeout=20)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            if self.process.stdout is not None:
                self.process.stdout.close()

    def admin(self, method: str, payload: bytes = b"") -> bytes:
        """Call one admin method with raw bytes."""
        assert self.channel is not None
        call = self.channel.unary_unary(f"/{ADMIN_SERVICE}/{method}")
        result: bytes = call(payload, timeout=600)
        return result

    def rss(self) -> int:
        """The server's resident memory after a garbage collection, in bytes."""
        return int(self.admin("Collect").decode())


def main() -> None:
    """Entry point of ``python -m benchmarks.sidecar``."""
    parser = argparse.ArgumentParser(description="a dicomcache server for benchmarks")
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--set", action="append", default=[], help="NAME=VALUE, a setting")
    parser.add_argument("--tracing", action="store_true", help="make spans, then drop them")
    args = parser.parse_args()
    serve(args.backend, dict(item.split("=", 1) for item in args.set), args.tracing)


if __name__ == "__main__":
    main()
