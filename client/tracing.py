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
        from opentelemetry import trace
        from opentelemetry.propagate import get_global_textmap

        self._trace = trace
        self._tracer = provider.get_tracer("dicomcache.client")
        self._propagator = get_global_textmap()

    @contextlib.contextmanager
    def span(self, name: str, client: bool = False, **attributes: str) -> Iterator[Any]:
        """A child of the current span, current while the block runs."""
        kind = self._trace.SpanKind.CLIENT if client else self._trace.SpanKind.INTERNAL
        with self._tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
            yield span


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata (empty when there is none)."""
    from opentelemetry.propagate import inject

    carrier: dict[str, str] = {}
    inject(carrier)
    return tuple(carrier.items())
