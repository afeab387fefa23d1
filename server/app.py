"""Building, starting and stopping the gRPC server around a backend."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from typing import TYPE_CHECKING, Any

import grpc
import prometheus_client
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from dicomcache.server import reflection
from dicomcache.server.api.handler import InFlight, handler
from dicomcache.server.api.service import SERVICE_NAME, CacheService
from dicomcache.server.auth.authorizer import Authorizer
from dicomcache.server.backends import Backend
from dicomcache.server.clock import Clock, monotonic
from dicomcache.server.config import Settings
from dicomcache.server.feed.handler import watch_handler
from dicomcache.server.feed.hub import Feed
from dicomcache.server.feed.notifying import NotifyingBackend
from dicomcache.server.http.listener import HttpListener, http_listener
from dicomcache.server.search.engine import SearchEngine
from dicomcache.server.search.shared_flight import SharedFlight
from dicomcache.server.telemetry import Telemetry
from dicomcache.server.telemetry.labels import NamespaceLabels
from dicomcache.server.telemetry.metrics import Metrics
from dicomcache.server.telemetry.tracing import Tracer
from dicomcache.server.tls import ReloadingCredentials, TLSFiles
from dicomcache.server.upstreams import Upstream
from dicomcache.server.upstreams.config import build_upstreams

if TYPE_CHECKING:
    from dicomcache.server.backends.memory.resident import ResidentGuard
    from dicomcache.server.feed.relay import RedisRelay

log = logging.getLogger(__name__)
summary_log = logging.getLogger("dicomcache.summary")

SWEEP_INTERVAL = 1.0  # seconds between sweeps of expired entries
SWEEP_CHUNK = 32  # entries reaped at a time: the backend's lock is held for about 0.1 ms
# A pause between chunks. Without it the sweeper takes the lock back at once and
# starves the serving threads (Python's lock is not fair): a mass expiry of 100k
# objects once stalled hits for 400 ms. Reads never see expired entries anyway;
# only their memory is freed a little later.
SWEEP_PAUSE = 0.001


def _resident_guard(
    backend: Backend, resident: Callable[[], int | None] | None
) -> ResidentGuard | None:
    """A ``ResidentGuard`` of a memory backend with a bound, given a reader; else None."""
    from dicomcache.server.backends.memory.backend import MemoryBackend

    if resident is None or not isinstance(backend, MemoryBackend) or backend.max_bytes is None:
        return None
    from dicomcache.server.backends.memory.resident import ResidentGuard

    return ResidentGuard(backend, resident)


def build_backend(settings: Settings, clock: Clock = monotonic) -> Backend:
    """The backend that ``settings.backend`` names."""
    if settings.backend == "memory":
        from dicomcache.server.backends.memory.backend import MemoryBackend

        return MemoryBackend(
            ttl=settings.ttl,
            negative_ttl=settings.negative_ttl,
            max_bytes=settings.max_memory_bytes(),
            clock=clock,
        )
    from dicomcache.server.backends.redis.backend import RedisBackend
    from dicomcache.server.backends.redis.sealing import PLAIN, SealedValues

    key_file = settings.redis_encryption_key_file  # a bad file fails here, at start
    return RedisBackend.from_url(
        settings.backend,
        ttl=settings.ttl,
        negative_ttl=settings.negative_ttl,
        socket_timeout=settings.backend_timeout,
        values=PLAIN if key_file is None else SealedValues.from_file(key_file),
        password=settings.redis_password.get_secret_value() if settings.redis_password else None,
        ssl_ca_certs=settings.redis_ca_file,
        ssl_certfile=settings.redis_cert_file,
        ssl_keyfile=settings.redis_key_file,
    )


def _credentials(settings: Settings) -> ReloadingCredentials | None:
    """The TLS credentials that the settings ask for, or None for plaintext."""
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    files = TLSFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    return ReloadingCredentials(files)


def _health_server(
    servicer: health.HealthServicer, listen: str | None
) -> tuple[grpc.Server | None, int]:
    """A plaintext server of health checks alone, sharing the main server's statuses."""
    if listen is None:
        return None, 0
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="health"),
        maximum_concurrent_rpcs=16,
        options=[("grpc.so_reuseport", 0), ("grpc.max_receive_message_length", 4096)],
    )
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port(listen)
    if port == 0:
        raise OSError(f"cannot listen on {listen} (health)")
    return server, port


def _shared_flight(backend: Backend, seen: Backend) -> SharedFlight | None:
    """Flights across servers, for a backend that servers share (not the memory one)."""
    from dicomcache.server.backends.memory.backend import MemoryBackend

    return None if isinstance(backend, MemoryBackend) else SharedFlight(seen)


def _relay(backend: Backend, feed: Feed) -> RedisRelay | None:
    """The relay of changes between servers, for a backend that servers share (Redis)."""
    from dicomcache.server.backends.redis.backend import RedisBackend
    from dicomcache.server.feed.relay import RedisRelay

    return RedisRelay(backend.connect_again, feed) if isinstance(backend, RedisBackend) else None


class CacheServer:
    """A running gRPC server: CacheService, health checking and reflection (v1 and v1alpha).

    ``resident`` reads the process's resident bytes, for a server that is its
    process's alone (``dicomcache serve``): the memory backend's bound then holds for
    the resident set's growth since ``start`` (``ResidentGuard``, checked by the
    sweeper), not only for the bytes the backend counts.

    Thread-safe. Uses no clock of its own beyond the sweeper's interval.
    """

    def __init__(
        self,
        settings: Settings,
        backend: Backend | None = None,
        extra_handlers: Iterable[grpc.GenericRpcHandler] = (),
        tracer_provider: Any = None,
        upstreams: Mapping[str, Upstream] | None = None,
        resident: Callable[[], int | None] | None = None,
    ) -> None:
        self.settings = settings
        self.authorizer = Authorizer.from_settings(settings)  # a bad policy fails here, first
        # A bad upstream configuration fails here too, before anything listens or connects.
        self.upstreams: dict[str, Upstream] = (
            dict(upstreams) if upstreams is not None else build_upstreams(settings)
        )
        self.backend = backend if backend is not None else build_backend(settings)
        # The memory backend's bound held for the resident set, in a process that is
        # the server's alone (``resident``: ``dicomcache serve``'s reader of it).
        self.guard = _resident_guard(self.backend, resident)
        labels = NamespaceLabels()
        metrics = Metrics(self.backend, 0, labels) if settings.metrics_listen else None
        tracer = Tracer(tracer_provider) if tracer_provider is not None else None
        self.telemetry = Telemetry(metrics, tracer, labels)
        self.in_flight = InFlight()
        limit = int(settings.max_message_bytes)
        self.instrumented = self.telemetry.backend(self.backend)  # timed, counted, traced
        # The invalidation feed (issue 15, server/feed): every change is announced to
        # the near caches watching, on Redis through every server sharing it.
        self.feed = Feed()
        self.relay = _relay(self.backend, self.feed)
        seen = NotifyingBackend(self.instrumented, self.feed)  # the backend the service sees
        # Search reads through the upstreams; without any it answers FAILED_PRECONDITION.
        self.search_engine = (
            SearchEngine(
                seen,
                self.upstreams,
                # The QIDO-RS endpoint sends any answer; Search, one message (service.search).
                max_message_bytes=int(settings.max_answer_bytes),
                metrics=metrics,
                tracer=tracer,
                ttl=settings.ttl,
                negative_ttl=settings.negative_ttl,
                max_stale=settings.max_stale,
                shared=_shared_flight(self.backend, seen),
                upstream_timeout=settings.upstream_timeout,
            )
            if self.upstreams
            else None
        )
        self.grpc_server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
            handlers=[
                handler(
                    CacheService(
                        seen,
                        max_ttl=settings.ttl,
                        max_message_bytes=limit,
                        max_answer_bytes=int(settings.max_answer_bytes),
                        search_engine=self.search_engine,
                    ),
                    self.in_flight,
                    self.authorizer,
                    self.telemetry,
                ),
                # Half the workers at most: each stream holds one while it lasts.
                watch_handler(
                    self.feed, self.authorizer, max_watchers=max(1, settings.workers // 2)
                ),
                *extra_handlers,
            ],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),
            ],
        )
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.grpc_server)
        reflection.enable([SERVICE_NAME, health.SERVICE_NAME], self.grpc_server)
        self.tls = _credentials(settings)
        if self.tls is None:
            self.port = self.grpc_server.add_insecure_port(settings.listen)
        else:
            self.port = self.grpc_server.add_secure_port(settings.listen, self.tls.credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {settings.listen}")
        self.health_server, self.health_port = _health_server(self.health, settings.health_listen)
        # The QIDO-RS endpoint (--http-listen), bound here so that a taken port fails at start.
        self.http: HttpListener | None = http_listener(
            settings, self.search_engine, self.authorizer, self.telemetry.metrics
        )
        self.http_port = self.http.port if self.http is not None else 0
        self.metrics_http: Any = None  # prometheus_client's WSGI server, once started
        self.metrics_port = 0
        self._stopping = threading.Event()
        self._sweeper = threading.Thread(target=self._sweep, name="sweeper", daemon=True)
        self._summary = threading.Thread(target=self._summarize, name="summary", daemon=True)

    def start(self) -> CacheServer:
        """Start serving; returns self. Changes nothing process-wide (see ``cli.serve``)."""
        if self.relay is not None:
            self.relay.start()
        self.grpc_server.start()
        if self.health_server is not None:
            self.health_server.start()
        if self.http is not None:
            self.http.start()
        if self.telemetry.metrics is not None and self.settings.metrics_listen:
            host, _, port = self.settings.metrics_listen.rpartition(":")
            registry = self.telemetry.metrics.registry
            self.metrics_http, _ = prometheus_client.start_http_server(
                int(port), host.strip("[]") or "0.0.0.0", registry=registry
            )
            self.metrics_port = self.metrics_http.server_port
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        if self.guard is not None:
            self.guard.start()  # the resident set before the cache holds anything
        self._sweeper.start()
        if self.settings.log_summary_interval:
            self._summary.start()
        return self

    def announce_stop(self) -> None:
        """Report NOT_SERVING to health checks while still serving every call.

        The first step of a shutdown with a delay: whoever routes calls here (a
        Kubernetes Service, a load balancer) sees it and stops sending them, and the
        calls that still arrive meanwhile are served, not refused.
        """
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)

    def stop(self, grace: float | None = None) -> None:
        """Report NOT_SERVING at once, let in-flight calls finish within grace, release the backend.

        New calls are refused from the start. Streams (health Watch) never finish
        by themselves, so the server waits for its unary calls only, then cancels
        what is left.
        """
        grace = self.settings.grace if grace is None else grace
        self.health.enter_graceful_shutdown()
        self._stopping.set()
        self.feed.close()  # watch streams never finish by themselves: their clients flush
        self.grpc_server.stop(grace)
        if self.http is not None:
            self.http.stop()  # refuses new requests, lets those in flight finish within grace
        self.in_flight.wait_idle(grace)
        self.grpc_server.stop(0).wait()
        if self.health_server is not None:
            self.health_server.stop(0).wait()
        if self._sweeper.is_alive():
            self._sweeper.join()
        if self._summary.is_alive():
            self._summary.join()
        if self.metrics_http is not None:
            self.metrics_http.shutdown()
            self.metrics_http.server_close()
        if self.relay is not None:
            self.relay.close()  # after the last call that could announce a change
        self.backend.close()
        for upstream in self.upstreams.values():
            upstream.close()

    def _summarize(self) -> None:
        """Log the summary line every ``log_summary_interval`` seconds."""
        while not self._stopping.wait(self.settings.log_summary_interval):
            summary_log.info("%s", self.telemetry.summary())

    def _sweep(self) -> None:
        """Reap expired entries a chunk at a time, so no request ever pays for a full sweep."""
        while not self._stopping.wait(SWEEP_INTERVAL):
            try:
                while self.backend.expire(SWEEP_CHUNK) == SWEEP_CHUNK:
                    if self._stopping.wait(SWEEP_PAUSE):
                        return
                if self.guard is not None:
                    self.guard.check()
            except Exception as exc:
                log.warning("sweep failed: %s", type(exc).__name__)
