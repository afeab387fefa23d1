"""OpenTelemetry spans of CachedSearcher, and the trace context sent to the server.

A search is one span; its cache calls (CLIENT spans, whose context travels to the
server as the W3C ``traceparent``: in the request's own field where the contract
has one, else as metadata) and its upstream call are its children, so
one trace shows the app, the cache server, its backend and the archive request.
The archive request itself is a child of the upstream span: an app whose HTTP
client is instrumented (``opentelemetry-instrumentation-requests`` for
dicomtrolley's session) gets it linked with no more work. Needs the ``tracing``
extra; imported only when a tracer provider is given. Attributes: namespace,
level, result; never query values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

# What a block inside an unsampled search gets instead of a span: nothing to
# start, attach or end (stateless, so one serves every thread). A search that gets
# it asks no span for its cache calls: they would not be sampled either.
UNSAMPLED = contextlib.nullcontext()


class _Reader:
    """The current span and baggage, read as OpenTelemetry's API reads them, in fewer steps.

    An unsampled search (nine in ten, as production tracing is set) asks three times
    whether the app's current span is a valid one that does not record, and sends
    its context. Through the API each question is a chain of five to eight Python
    calls (``get_current_span``, ``get_value``, ``get_current``, the runtime's
    ``get_current``, ``get_span_context``, the span context's properties), and on
    a busy machine, where that code is not in the CPU's caches between calls, the
    chains cost a study-level hit about 5% (issue 14, rows 13a/13b). With the
    default runtime context (a ``ContextVar``) and a ``NonRecordingSpan``, the
    answer is a read of the variable, a dict look-up, a type test, an attribute
    and tuple indexing. Anything else (another runtime context, another span type, a span
    context laid out otherwise than checked here) goes through the API.
    Thread-safe: it holds only what it read at its start.
    """

    def __init__(self) -> None:
        from opentelemetry import baggage, context, trace
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace import propagation
        from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

        runtime = getattr(context, "_RUNTIME_CONTEXT", None)
        variable = getattr(runtime, "_current_context", None)
        self.current: Any = context.get_current
        if type(runtime) is ContextVarsRuntimeContext and variable is not None:
            self.current = variable.get  # what ``context.get_current`` returns, in one call
        # The keys the API stores the span and the baggage under in a context.
        self.span_key = getattr(propagation, "_SPAN_KEY", None)
        self.baggage_key = getattr(baggage, "_BAGGAGE_KEY", None)
        self.no_state = DEFAULT_TRACE_STATE
        # A SpanContext is a tuple: trace id, span id, remote, flags, state, valid
        # (read as ``found[5]`` for ``is_valid``, and so on).
        probe = trace.SpanContext(1, 2, True, trace.TraceFlags(1), TraceState([("k", "v")]))
        laid_out = tuple(probe) == (
            probe.trace_id,
            probe.span_id,
            probe.is_remote,
            probe.trace_flags,
            probe.trace_state,
            probe.is_valid,
        )
        # A NonRecordingSpan keeps its span context as ``_context`` (read without
        # ``get_span_context``, a Python call: each one costs a hit a few
        # microseconds on a busy machine, its code cold between calls).
        kept = getattr(trace.NonRecordingSpan(probe), "_context", None) is probe
        # The fast reading needs the layouts and both keys; else every span is read
        # through the API (no span is of type None).
        known = laid_out and kept and self.span_key is not None and self.baggage_key is not None
        self.fast_type: Any = trace.NonRecordingSpan if known else None


class SearchTracer:
    """Spans from a ``TracerProvider``. Thread-safe. No clock of its own."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import context, trace

        self._trace = trace
        self._context = context
        self._tracer = provider.get_tracer("dicomcache.client")
        self._reader = _propagation().reader

    def span(self, name: str, client: bool = False, **attributes: str) -> Any:
        """A context manager: a child of the current span, current while the block runs.

        Inside a search that was not sampled (the app's span is not recording), no
        span: a child would not be sampled either, and the search's context already
        carries "not sampled" to the server. An exception marks the span failed
        with its type only (its message might quote request data) and goes on.
        """
        reader = self._reader
        stored = reader.current().get(reader.span_key)
        if type(stored) is reader.fast_type:  # not recording: no span if it is valid
            if stored._context[5]:
                return UNSAMPLED
            return self._started(name, client, attributes)
        current = self._trace.get_current_span()
        if current.get_span_context().is_valid and not current.is_recording():
            return UNSAMPLED
        return self._started(name, client, attributes)

    @contextlib.contextmanager
    def _started(self, name: str, client: bool, attributes: dict[str, str]) -> Iterator[Any]:
        """Started and attached by hand: ``start_as_current_span`` costs half again as much."""
        trace = self._trace
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


class _W3C:
    """The W3C trace context of the current span, without a propagator when that is
    the default one (``tracecontext,baggage``) and there is no baggage to send.

    The propagator's ``inject`` takes a hit more than the rest of its tracing when
    the search is not sampled (about 50 us on a busy machine, where its code is
    not in the CPU's caches between calls); the same two headers come out of this
    one. Thread-safe: it holds the modules it reads and the textmap last checked.
    """

    def __init__(self) -> None:
        from opentelemetry import baggage, context, propagate, trace
        from opentelemetry.baggage.propagation import W3CBaggagePropagator
        from opentelemetry.propagators.composite import CompositePropagator
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._baggage = baggage
        self._context = context
        self._propagate = propagate
        self._trace = trace
        self._default_types = (TraceContextTextMapPropagator, W3CBaggagePropagator)
        self._composite = CompositePropagator
        self._checked: tuple[Any, bool] = (None, False)  # a textmap, and whether it is the default
        # The global textmap as ``get_global_textmap`` returns it, read from the module's
        # globals (a dict look-up, not a Python call) when the two functions keep it
        # under the name checked here; else every call asks the function.
        name = "_HTTP_TEXT_FORMAT"
        codes = [
            getattr(getattr(propagate, function, None), "__code__", None)
            for function in ("get_global_textmap", "set_global_textmap")
        ]
        kept = hasattr(propagate, name) and all(
            code is not None and name in code.co_names for code in codes
        )
        self._globals: dict[str, Any] = vars(propagate) if kept else {}
        self._textmap_name = name
        # The textmap last found to be the default one (``_default``): a call that finds
        # it still global writes the context itself. Nothing at first.
        self._default_map: Any = object()
        self.reader = _Reader()

    def _default(self, textmap: Any) -> bool:
        checked, default = self._checked
        if checked is not textmap:
            inner = getattr(textmap, "_propagators", None)
            default = (
                type(textmap) is self._composite
                and tuple(type(each) for each in inner or ()) == self._default_types
            )
            self._checked = (textmap, default)
            if default:
                self._default_map = textmap
        return default

    def metadata(self) -> tuple[tuple[str, str], ...]:
        textmap = self._propagate.get_global_textmap()
        current = self._context.get_current()  # read once: each reading is a chain of calls
        if not self._default(textmap) or self._baggage.get_all(current):
            return self._injected(textmap, current)
        return self._headers(current)

    def carry(self, request: Any) -> tuple[tuple[str, str], ...]:
        """Write the W3C context into ``request``'s ``traceparent`` and ``tracestate``;
        returns the metadata still to send: none, unless the propagator is not the
        default or there is baggage (then all of it goes as metadata, as before).

        The app's span not sampled (a ``NonRecordingSpan``), with the default
        propagator and no baggage, the traceparent is written from the span
        context's numbers in this one Python call: its parent and flags are what let
        the server follow the caller's decision, and record nothing either. On a
        busy machine each further Python call (``get_global_textmap``,
        ``get_span_context``) cost an unsampled study-level hit a few microseconds,
        its code cold between calls (issue 14, row 13b)."""
        reader = self.reader
        current = reader.current()
        stored = current.get(reader.span_key)
        if (
            type(stored) is reader.fast_type
            and self._globals.get(self._textmap_name) is self._default_map
            and not current.get(reader.baggage_key)
        ):
            found = stored._context
            flags = _FLAGS.get(found[3])
            if found[5] and flags is not None:  # valid: so its ids fit their bytes
                # As ``_traceparent`` writes it, with bytes' hex: a format spec's code
                # path cost about a third more than this one, cold (issue 14, row 13b).
                request.traceparent = "-".join(
                    (
                        "00",
                        found[0].to_bytes(16, "big").hex(),
                        found[1].to_bytes(8, "big").hex(),
                        flags,
                    )
                )
                state = found[4]
                if state is not reader.no_state and state:
                    request.tracestate = state.to_header()
                return ()
            if not found[5]:
                return ()
        textmap = self._propagate.get_global_textmap()
        if not self._default(textmap) or self._baggage.get_all(current):
            return self._injected(textmap, current)
        found = self._trace.get_current_span(current).get_span_context()
        if found.is_valid:
            request.traceparent = _traceparent(found)
            if found.trace_state:
                request.tracestate = found.trace_state.to_header()
        return ()

    @staticmethod
    def _injected(textmap: Any, current: Any) -> tuple[tuple[str, str], ...]:
        carrier: dict[str, str] = {}
        textmap.inject(carrier, current)
        return tuple(carrier.items())

    def _headers(self, current: Any) -> tuple[tuple[str, str], ...]:
        found = self._trace.get_current_span(current).get_span_context()
        if not found.is_valid:
            return ()
        traceparent = _traceparent(found)
        if found.trace_state:
            return (("traceparent", traceparent), ("tracestate", found.trace_state.to_header()))
        return (("traceparent", traceparent),)


# The W3C flags byte in hex, by value (a span context's ``TraceFlags`` is an int).
_FLAGS = {value: f"{value:02x}" for value in range(256)}


def _traceparent(found: Any) -> str:
    """A valid span context as a W3C traceparent (version 00), as the propagator writes it."""
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"


_w3c: _W3C | None = None


def _propagation() -> _W3C:
    global _w3c
    if _w3c is None:
        _w3c = _W3C()
    return _w3c


def trace_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata (empty when there is none), as the
    global propagator would inject it."""
    return _propagation().metadata()


def carrier() -> Callable[[Any], tuple[tuple[str, str], ...]]:
    """What writes the current trace context into a request (one with the contract's
    ``traceparent`` and ``tracestate`` fields) and returns what must still go as
    metadata: one bound method, for a client that calls it for every request.

    With the default propagator and no baggage the context goes in the request and
    nothing is left for the metadata: per-call metadata cost a study-level hit about
    5% here, the fields nothing measurable. Otherwise the request is left alone and
    the propagator's headers come back, to be sent as metadata.
    """
    return _propagation().carry
