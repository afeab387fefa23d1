"""OpenTelemetry spans for the server: one per call, a child per backend operation.

The caller's trace continues here: the W3C ``traceparent`` (and ``tracestate``)
that ``CachedSearcher`` or any instrumented gRPC client sends in the call's
metadata is the parent of the call's span. The ``tracing`` extra installs
``opentelemetry-api`` and ``-sdk``; without it this module still imports, and a
server given no tracer provider makes no spans.

Span names are the method and the operation; attributes are the method, the
status code, the namespace (an archive's name) and byte counts: never request
content.
"""

from __future__ import annotations

import contextvars
import re
import sys
from collections.abc import Sequence
from typing import Any

SERVER_PREFIX = "dicomcache.v1.CacheService/"

# A W3C traceparent as OpenTelemetry's propagator takes it (``tracecontext.py``):
# version, trace id, parent id, flags, and for a later version more fields.
_TRACEPARENT = re.compile(
    r"[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)"
)
_W3C_FIELDS = frozenset({"traceparent", "tracestate", "baggage"})
_HEX = "0123456789abcdef"
# What a version-00 traceparent is written with: one set test reads all 55 characters
# (three ``str.strip`` calls took four times as long).
_TRACEPARENT_CHARS = frozenset(_HEX + "-")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_UNSAMPLED_DIGITS = "02468ace"  # a flags byte ending in one of these has no sampled bit
_LONGEST = 512  # characters of a traceparent or tracestate read at all (W3C's tracestate bound)

# The trace context of a call whose caller did not sample (its metadata, or its
# request's fields, and the propagator that reads them), when nothing was made of
# it yet: read only if the call goes on to the archive (``upstream_span``).
Metadata = Sequence[tuple[str, Any]]
UNSAMPLED_CALLER: contextvars.ContextVar[tuple[Metadata, Any] | None] = contextvars.ContextVar(
    "dicomcache_unsampled_caller", default=None
)


class Span:
    """One started span, current until it ends when it came with a context token.

    Not thread-safe: one call's thread. A Span of no span (``None``) records
    nothing: an unsampled call's, whose ``caller`` token restores the context.
    """

    __slots__ = ("_caller", "_span", "_token")

    def __init__(self, span: Any, token: Any = None, caller: Any = None) -> None:
        self._span = span
        self._token = token
        self._caller = caller

    def set(self, name: str, value: str | int) -> None:
        """Set one attribute (no PHI: counts, sizes, codes, namespace names)."""
        if self._span is not None:
            self._span.set_attribute(name, value)

    def fail(self, exc: BaseException, code: str | None = None) -> None:
        """Mark the span failed with the exception's type (not its message: it may quote data)."""
        if self._span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self._span.set_attribute("error.type", type(exc).__name__)
        if code is not None:
            self._span.set_attribute("rpc.grpc.status_code", code)
        self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))

    def end(self) -> None:
        """End the span and restore the context that was current before it."""
        if self._caller is not None:
            UNSAMPLED_CALLER.reset(self._caller)
        if self._span is None:
            return
        from opentelemetry import context

        if self._span.is_recording():
            self._span.end()
        if self._token is not None:
            context.detach(self._token)


_NO_SPAN = Span(None)


def _unsampled(header: str | None) -> bool:
    """Whether ``header`` is a valid W3C traceparent whose caller did not sample.

    The propagator's own rules (a valid parent, flags without the sampled bit), in
    one match: extracting costs a hit more than all else its tracing does.
    """
    if header is None or len(header) > _LONGEST:
        return False
    if len(header) == 55 and header[:3] == "00-" and header[35] == "-" and header[52] == "-":
        # The form every version-00 sender writes, read with string methods: on a
        # busy machine the regular expression engine's code is cold between calls.
        return unsampled_field(header)
    match = _TRACEPARENT.fullmatch(header)
    if match is None:
        return False
    version, trace_id, span_id, flags, rest = match.groups()
    return (
        version != "ff"
        and not (version == "00" and rest)
        and trace_id != "0" * 32
        and span_id != "0" * 16
        and not int(flags, 16) & 1
    )


def unsampled_field(traceparent: str) -> bool:
    """Whether ``traceparent`` (a request's field) is a valid W3C parent that did not
    sample, in the form every version-00 sender writes; False for any other form
    (then the propagator reads it: ``Tracer.carried_span``). ``_unsampled`` reads the
    same form of a metadata header with it.

    A call of an unsampled caller, nine in ten as production tracing is set, gets no
    span and no span object: the flags' last digit first, then the parent's checks,
    in one Python call with string methods (issue 14, rows 13a/13b). The SDK's
    unsampled spans have the flags 02 (a random trace id).
    """
    return (
        len(traceparent) == 55
        and traceparent[54] in _UNSAMPLED_DIGITS
        and traceparent[:3] == "00-"
        and traceparent[35] == "-"
        and traceparent[52] == "-"
        and traceparent.count("-") == 3  # so every other character is a hex digit:
        and _TRACEPARENT_CHARS.issuperset(traceparent)
        and traceparent[3:35] != _ZERO_TRACE
        and traceparent[36:52] != _ZERO_SPAN
    )


def _carrier(metadata: Sequence[tuple[str, Any]]) -> dict[str, str]:
    """A call's text metadata as the propagator reads it."""
    return {key: value for key, value in metadata if isinstance(value, str)}


class Tracer:
    """Makes the server's spans from a ``TracerProvider``. Thread-safe. No clock of its own.

    Args:
        provider: an OpenTelemetry TracerProvider (the SDK's, with its exporters).
    """

    def __init__(self, provider: Any) -> None:
        from opentelemetry.propagate import get_global_textmap
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = provider.get_tracer("dicomcache.server")
        self._propagator = get_global_textmap()
        self._w3c_propagator = TraceContextTextMapPropagator()
        # Only the W3C headers carry a trace: a traceparent says it all.
        self._w3c = set(self._propagator.fields) <= _W3C_FIELDS

    def server_span(self, method: str, metadata: Sequence[tuple[str, Any]]) -> Span:
        """The span of one call, child of the caller's trace when its metadata carries one.

        A caller that did not sample gets no span, and nothing of OpenTelemetry runs
        for its call unless the call asks the archive: then ``upstream_span``
        continues the caller's context, as it came.
        """
        return self._span_of(method, metadata, self._propagator, self._w3c)

    def _span_of(
        self, method: str, metadata: Sequence[tuple[str, Any]], propagator: Any, w3c: bool
    ) -> Span:
        if w3c:
            header = None
            for key, value in metadata:
                if key == "traceparent" and isinstance(value, str):
                    header = value  # the last, as in the carrier
            if _unsampled(header):
                return Span(None, caller=UNSAMPLED_CALLER.set((metadata, propagator)))
        from opentelemetry import context, trace

        parent = propagator.extract(_carrier(metadata))
        caller = trace.get_current_span(parent).get_span_context()
        if caller.is_valid and not caller.trace_flags.sampled:
            # The caller decided not to sample: so would the sampler (parent-based),
            # after the cost of a span. The caller's context goes on as it came.
            return Span(trace.get_current_span(parent), context.attach(parent))
        span = self._tracer.start_span(
            SERVER_PREFIX + method,
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"rpc.system": "grpc", "rpc.method": method},  # the name has the service
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        return Span(span, token)

    def carried_span(self, method: str, traceparent: str, tracestate: str = "") -> Span:
        """The span of one call whose request carries the caller's W3C trace context in
        its own fields (``traceparent``, ``tracestate``), as ``server_span`` makes it
        from metadata. Read as W3C whatever the global propagator is: the fields are
        W3C's headers by the contract."""
        if len(traceparent) > _LONGEST:  # no valid one is this long: a new trace
            traceparent = ""
        carrier: tuple[tuple[str, str], ...] = (("traceparent", traceparent),)
        if tracestate and len(tracestate) <= _LONGEST:  # longer: dropped, as W3C allows
            carrier += (("tracestate", tracestate),)
        return self._span_of(method, carrier, self._w3c_propagator, True)

    def backend_span(self, operation: str) -> Span:
        """A child of the current span for one backend operation.

        Not made current: nothing of ours runs below it, and attaching a context
        costs as much as a third of the span.
        """
        if UNSAMPLED_CALLER.get() is not None:
            return _NO_SPAN  # an unsampled call: its children would not be sampled either
        from opentelemetry import trace

        current = trace.get_current_span()
        if not current.is_recording():
            return _NO_SPAN
        # The operation is in the name: each attribute costs the SDK as much as a
        # tenth of a span.
        span = self._tracer.start_span(f"backend {operation}", kind=trace.SpanKind.INTERNAL)
        return Span(span)

    def upstream_span(self, upstream: str) -> Span:
        """A child of the current span for one fetch from an upstream archive (CLIENT:
        the server calls out), current during the fetch: a QIDO-RS upstream sends its
        context to the archive (``trace_headers``), so the archive's spans join the trace."""
        from opentelemetry import context, trace

        caller = UNSAMPLED_CALLER.get()
        parent = None
        if caller is not None:
            metadata, propagator = caller
            parent = propagator.extract(_carrier(metadata))
        span = self._tracer.start_span(
            "upstream fetch",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes={"dicomcache.upstream": upstream},
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        return Span(span, token)


def trace_headers() -> dict[str, str]:
    """The current trace context as HTTP headers (W3C ``traceparent``), or none.

    Costs nothing when OpenTelemetry was never imported (no tracer provider was
    given, so there is no trace to continue).
    """
    propagate = sys.modules.get("opentelemetry.propagate")
    if propagate is None:
        return {}
    from opentelemetry import trace

    if not trace.get_current_span().get_span_context().is_valid:
        return {}
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
