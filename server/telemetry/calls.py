"""One call's observation, and the telemetry of a server that makes them.

Each call of CacheService is observed once, in the gRPC layer: its status code
and duration go to the metrics, its span to the tracer, and at DEBUG one JSON
log line (method, code, milliseconds, response bytes). Everything is optional
but the counting of calls and errors for the periodic summary.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable
from types import TracebackType

import grpc
from google.protobuf.message import Message

from dicomcache.server.api.status import code_of
from dicomcache.server.backends import Backend
from dicomcache.server.telemetry.instrumented import InstrumentedBackend, LookupCounts
from dicomcache.server.telemetry.labels import NamespaceLabels
from dicomcache.server.telemetry.metrics import Metrics
from dicomcache.server.telemetry.tracing import Span, Tracer

log = logging.getLogger("dicomcache.calls")


class Observation:
    """One call being served. Not thread-safe: it lives on the call's thread.

    Clock: ``time.perf_counter``.
    """

    __slots__ = ("_span", "_start", "_telemetry", "code", "method", "response_bytes")

    def __init__(self, telemetry: Telemetry, method: str, context: grpc.ServicerContext) -> None:
        self._telemetry = telemetry
        self.method = method
        self.code = grpc.StatusCode.OK
        self.response_bytes = 0
        tracer = telemetry.tracer
        self._span: Span | None = (
            tracer.server_span(method, context.invocation_metadata()) if tracer else None
        )
        self._start = time.perf_counter()

    def __enter__(self) -> Observation:
        return self

    def answered(self, response: bytes | Message) -> None:
        """The call's response (ready-made bytes, or a message to be serialized)."""
        self.response_bytes = len(response) if isinstance(response, bytes) else response.ByteSize()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self.code == grpc.StatusCode.OK:
            self.failed(exc)
        self._telemetry.observed(self, time.perf_counter() - self._start)

    def failed(self, exc: BaseException) -> None:
        """The call ends with the status that ``exc`` maps to."""
        # A stream closed under the server: the client cancelled or went away.
        self.code = grpc.StatusCode.CANCELLED if isinstance(exc, GeneratorExit) else code_of(exc)
        if self._span is not None:
            self._span.fail(exc, self.code.name)

    def finish_span(self) -> None:
        """End the call's span with its code and sizes."""
        if self._span is not None:
            self._span.set("rpc.grpc.status_code", self.code.value[0])
            self._span.set("dicomcache.response_bytes", self.response_bytes)
            self._span.end()


class Telemetry:
    """Metrics, traces, request logs and the summary of one server. Thread-safe.

    Args:
        metrics: the server's metrics, or None for none.
        tracer: the server's tracer, or None for no spans.
        labels: the namespace labels (shared with ``metrics``).
        clock: the monotonic clock of the summary's rates.
    """

    def __init__(
        self,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        labels: NamespaceLabels | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.tracer = tracer
        self.labels = labels or (metrics.labels if metrics else NamespaceLabels())
        self.lookups = LookupCounts()
        self._calls = itertools.count()
        self._errors = itertools.count()
        self.calls = 0
        self.errors = 0
        self._clock = clock
        self._last = (clock(), 0, 0, 0, 0)  # when, calls, errors, hits, misses

    def backend(self, backend: Backend) -> InstrumentedBackend:
        """``backend`` as the service should see it: timed, counted, traced."""
        return InstrumentedBackend(backend, self.lookups, self.metrics, self.tracer)

    def call(self, method: str, context: grpc.ServicerContext) -> Observation:
        """Observe one call: use as ``with telemetry.call(...) as seen:``."""
        return Observation(self, method, context)

    def observed(self, seen: Observation, seconds: float) -> None:
        """Account for a call that ended."""
        self.calls = next(self._calls) + 1
        failed = seen.code not in _NOT_ERRORS
        if failed:
            self.errors = next(self._errors) + 1
        if self.metrics is not None:
            self.metrics.rpc(seen.method, seen.code.name, seconds)
        seen.finish_span()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                json.dumps(
                    {
                        "method": seen.method,
                        "code": seen.code.name,
                        "ms": round(seconds * 1000, 3),
                        "response_bytes": seen.response_bytes,
                    }
                )
            )

    def summary(self) -> str:
        """The calls since the last summary: rates, errors, hit ratio (and resets the window)."""
        now = self._clock()
        calls, errors, hits, misses = (
            self.calls,
            self.errors,
            self.lookups.hits,
            self.lookups.misses,
        )
        then, calls0, errors0, hits0, misses0 = self._last
        self._last = (now, calls, errors, hits, misses)
        seconds = max(now - then, 1e-9)
        looked = (hits - hits0) + (misses - misses0)
        ratio = f"{(hits - hits0) / looked:.3f}" if looked else "-"
        count = calls - calls0
        return (
            f"summary: {count} calls in {seconds:.0f}s ({count / seconds:.1f}/s), "
            f"{errors - errors0} errors, {looked} lookups, hit ratio {ratio}"
        )


# Outcomes that are the caller's, not the server's: not counted as errors in the summary.
_NOT_ERRORS = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.CANCELLED,
    }
)
