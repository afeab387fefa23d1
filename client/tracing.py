"""OpenTelemetry spans of CachedSearcher, and the trace context sent to the server.

A search is one span; its cache calls (CLIENT spans, whose context travels to the
server as W3C ``traceparent`` metadata) and its upstream call are its children, so
one trace shows the app, the cache server, its backend and the archive request.
The archive request itself is a child of the upstream span: an app whose HTTP
client is instrumented (``opentelemetry-instrumentation-requests`` for
dicomtrolley's session) gets it linked with no more work. Needs the ``tracing``
extra; imported only when a tracer provider is given. Attributes: namespace,
level, result; never query values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


class SearchTracer:
    """Spans from a ``TracerProvider``. Thread-safe. No clock of its own."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import context, trace

        self._trace = trace
        self._context = context
        self._tracer = provider.get_tracer("dicomcache.client")

    @contextlib.contextmanager
    def span(self, name: str, client: bool = False, **attributes: str) -> Iterator[Any]:
        """A child of the current span, current while the block runs.

        Started and attached by hand: ``start_as_current_span`` costs half again
        as much. An exception marks the span failed with its type only (its
        message might quote request data) and goes on.
        """
        trace = self._trace
        current = trace.get_current_span()
        if current.get_span_context().is_valid and not current.is_recording():
            # Inside a search that was not sampled: a child would not be either, and
            # the search's context already carries "not sampled" to the server.
            yield current
            return
        kind = trace.SpanKind.CLIENT if client else trace.SpanKind.INTERNAL
        span = self._tracer.start_span(name, kind=kind, attributes=attributes)
        token = self._context.attach(trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            self._context.detach(token)
            span.end()


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata (empty when there is none)."""
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return tuple(carrier.items())
