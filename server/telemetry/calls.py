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
import mmap
import threading
import time
from collections import deque
from collections.abc import Callable
from functools import partial
from types import TracebackType

import grpc
from google.protobuf.message import Message

from dicomcache.server.api.status import code_of
from dicomcache.server.backends import Backend
from dicomcache.server.telemetry.instrumented import SERVING, InstrumentedBackend, LookupCounts
from dicomcache.server.telemetry.labels import NamespaceLabels
from dicomcache.server.telemetry.metrics import Metrics
from dicomcache.server.telemetry.tracing import Span, Tracer, unsampled_field

log = logging.getLogger("dicomcache.calls")

SETTLE_SECONDS = 1.0  # the longest a scrape waits for answered calls to be counted
# Calls held before one callback counts them all (``Telemetry.observed``): a few
# kilobytes of held observations, one callback in so many calls.
HELD_CALLS = 64


class Counted:
    """A call seen: its status code, counted for the summary when it ends. What a call
    gets when nothing else watches calls (no span, no metrics, no request log);
    ``Observation`` is the rest. Not thread-safe: it lives on the call's thread."""

    __slots__ = ("_telemetry", "code")

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self.code = grpc.StatusCode.OK

    def __enter__(self) -> Counted:
        return self

    def begin(self, request: Message | None = None) -> None:
        """Start the call's span: none here."""

    def answered(self, response: bytes | mmap.mmap | Message) -> None:
        """The call's response: nothing noted here."""

    def failed(self, exc: BaseException) -> None:
        """The call ends with the status that ``exc`` maps to."""
        # A stream closed under the server: the client cancelled or went away.
        self.code = grpc.StatusCode.CANCELLED if isinstance(exc, GeneratorExit) else code_of(exc)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self.code == grpc.StatusCode.OK:
            self.failed(exc)
        self.ended()

    def ended(self) -> None:
        """Account for the call, once its code is known."""
        self._telemetry.count(self.code)


class Observation(Counted):
    """One call being served. Not thread-safe: it lives on the call's thread.

    Clock: ``time.perf_counter``.
    """

    __slots__ = (
        "_begun",
        "_context",
        "_outer",
        "_span",
        "_start",
        "backend_calls",
        "debug",
        "lookups",
        "method",
        "response_bytes",
        "traced",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        method: str,
        context: grpc.ServicerContext,
        debug: bool = False,
    ) -> None:
        self._telemetry = telemetry  # as ``Counted``, without the call to its __init__
        self.code = grpc.StatusCode.OK
        self.method = method
        self.response_bytes = 0
        self.debug = debug  # its request log line is written (at DEBUG)
        self._context: grpc.ServicerContext | None = context
        self._span: Span | None = None
        self.traced = True  # False once its caller is known not to sample: no spans
        self._begun = False
        # What the backend did for this call (``InstrumentedBackend`` appends), counted
        # with it: (operation, seconds, error type or None), (namespace, "hit" or "miss").
        self.backend_calls: list[tuple[str, float, str | None]] = []
        self.lookups: list[tuple[str, str]] = []
        self._outer = SERVING.set(self)
        self._start = time.perf_counter()

    def begin(self, request: Message | None = None) -> None:
        """Start the call's span (once), a child of the caller's trace context: the one
        ``request`` carries in its ``traceparent`` and ``tracestate`` fields when set,
        else the call metadata's. A call that fails before its request is read gets
        its span from the metadata. A caller that did not sample gets no span."""
        if self._begun:
            return
        self._begun = True
        tracer = self._telemetry.tracer
        if tracer is None:
            return
        traceparent = getattr(request, "traceparent", None)
        if traceparent:
            # The requests with trace fields are answered from the cache alone: an
            # unsampled caller's context is needed for nothing but this decision (no
            # archive request follows), so none is set (``tracing.unsampled_field``).
            if unsampled_field(traceparent):
                self.traced = False
                return
            tracestate = request.tracestate  # type: ignore[union-attr]  # has traceparent
            self._span = tracer.carried_span(self.method, traceparent, tracestate)
        else:
            context = self._context
            metadata = context.invocation_metadata() if context is not None else ()
            self._span = tracer.server_span(self.method, metadata)

    def answered(self, response: bytes | mmap.mmap | Message) -> None:
        """The call's response (ready-made bytes or a mapping of them, or a message)."""
        self.response_bytes = (
            len(response) if isinstance(response, (bytes, mmap.mmap)) else response.ByteSize()
        )

    def ended(self) -> None:
        """End the call's span, and have its metrics and log line taken."""
        seconds = time.perf_counter() - self._start
        try:  # noqa: SIM105  # contextlib.suppress: two more Python calls a call
            SERVING.reset(self._outer)
        except ValueError:  # ended on another thread (a stream closed by the collector)
            pass
        if not self._begun:
            self.begin()
        if self._span is not None:
            self.finish_span()
        context, self._context = self._context, None  # not kept while the call is held
        self._telemetry.observed(self, seconds, context)

    def failed(self, exc: BaseException) -> None:
        """The call ends with the status that ``exc`` maps to, its span failed too."""
        super().failed(exc)
        self.begin()
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
        # Calls whose counting waits for their response to go, and those counted since.
        self._pending = threading.Lock()
        self._deferred = 0
        self._counted = 0
        # Calls answered and not yet counted, without a request log line (``observed``).
        self._held: deque[tuple[Observation, float]] = deque()
        self._draining = threading.Lock()
        self._drain_asked = False
        if metrics is not None:
            metrics.settle = self.settle
        self.calls = 0
        self.errors = 0
        self._clock = clock
        self._last = (clock(), 0, 0, 0, 0)  # when, calls, errors, hits, misses

    def backend(self, backend: Backend) -> InstrumentedBackend:
        """``backend`` as the service should see it: timed, counted, traced."""
        return InstrumentedBackend(backend, self.lookups, self.metrics, self.tracer)

    def call(self, method: str, context: grpc.ServicerContext) -> Counted:
        """Observe one call: use as ``with telemetry.call(...) as seen:``. With no
        metrics, no tracer and no request log, only its code is counted (``Counted``:
        a hit's fixed cost, row 17c)."""
        debug = log.isEnabledFor(logging.DEBUG)
        if not debug and self.metrics is None and self.tracer is None:
            return Counted(self)
        return Observation(self, method, context, debug)

    def count(self, code: grpc.StatusCode) -> None:
        """Count one call that ended with ``code``, for the summary."""
        self.calls = next(self._calls) + 1
        # OK first by identity: a status code's hash is a Python call (an Enum's).
        if code is not grpc.StatusCode.OK and code not in _NOT_ERRORS:
            self.errors = next(self._errors) + 1

    def observed(
        self, seen: Observation, seconds: float, context: grpc.ServicerContext | None = None
    ) -> None:
        """Account for a call that ended, after its response has gone, so the caller
        does not wait for it. Its span has ended already.

        Counting a hit's call, its lookup and its backend operation took about 30 us of
        it on a busy 2-core machine, whose caches the telemetry code is not in between
        calls (issue 14, rows 13a/13b), against a few us in a warm loop; a callback
        registered per call (gRPC's ``add_callback``, and a lock) still cost about 10
        us. So a call is held (one append), and every ``HELD_CALLS`` calls one callback
        of ``context`` (on gRPC's polling thread) counts the calls held; a scrape and
        the summary count them first (``settle``), so a call's counts are in every
        scrape made after its response arrived. A call with its request log line
        (DEBUG) has its own callback, so the line is written as it ends.
        """
        if not seen.debug:
            held = self._held
            held.append((seen, seconds))
            if len(held) >= HELD_CALLS and not self._drain_asked:
                self._drain_asked = True
                if context is None or not context.add_callback(self._drain):
                    self._drain()
            return
        if context is not None:
            with self._pending:
                if context.add_callback(partial(self._late, seen, seconds)):
                    self._deferred += 1
                    return
        self._observe(seen, seconds)

    def _drain(self) -> None:
        """Count the calls held (``observed``)."""
        with self._draining:
            self._drain_asked = False
            held = self._held
            while held:
                try:
                    seen, seconds = held.popleft()
                except IndexError:  # another thread took the last one
                    break
                self._observe(seen, seconds)

    def settle(self, timeout: float = SETTLE_SECONDS) -> bool:
        """Count the calls held, and wait until every call answered so far is counted;
        False if ``timeout`` passed.

        A scrape calls it first, so that a call's counts are in every scrape made
        after its response arrived. Clock: ``time.monotonic``.
        """
        self._drain()
        deadline = time.monotonic() + timeout
        while self._counted < self._deferred:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.001)
        return True

    def _late(self, seen: Observation, seconds: float) -> None:
        """``_observe``, as a call's callback once its response has gone."""
        try:
            self._observe(seen, seconds)
        finally:
            with self._pending:
                self._counted += 1

    def _observe(self, seen: Observation, seconds: float) -> None:
        self.count(seen.code)
        metrics = self.metrics
        if metrics is not None:
            metrics.rpc(seen.method, seen.code.name, seconds)
            for operation, took, error in seen.backend_calls:
                metrics.backend_call(operation, took, error)
            for namespace, result in seen.lookups:
                metrics.lookup(namespace, result)
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
        self._drain()
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
