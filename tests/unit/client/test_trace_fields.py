"""The request's trace fields as the unsampled path writes them (bytes' hex, the global
textmap read from its module): the propagator's own headers, for any ids and flags."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import context, propagate, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dicomcache.client.tracing import _W3C, carrier
from dicomcache.v1 import cache_service_pb2 as pb


def injected() -> dict[str, str]:
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers


def fields(request: pb.LookupStudyRequest) -> dict[str, str]:
    found = {"traceparent": request.traceparent, "tracestate": request.tracestate}
    return {name: value for name, value in found.items() if value}


@given(
    st.integers(1, 2**128 - 1),
    st.integers(1, 2**64 - 1),
    st.integers(0, 255) | st.integers(256, 4096),
)
def test_any_unsampled_context_is_written_as_the_propagator_writes_it(trace_id, span_id, flags):
    span = trace.NonRecordingSpan(
        trace.SpanContext(trace_id, span_id, is_remote=False, trace_flags=trace.TraceFlags(flags))
    )
    token = context.attach(trace.set_span_in_context(span))
    try:
        request = pb.LookupStudyRequest(namespace="pacs-a", study_uid="1.2.3")
        assert carrier()(request) == ()
        assert fields(request) == injected()
    finally:
        context.detach(token)


def test_a_textmap_kept_under_another_name_is_asked_for_on_every_call():
    """Where the module keeps its global textmap otherwise than checked, each call asks
    ``get_global_textmap``: a propagator set later is still followed."""
    reads = _W3C()
    reads._globals = {}  # as when the name is not found
    span = trace.NonRecordingSpan(
        trace.SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False)
    )
    token = context.attach(trace.set_span_in_context(span))
    try:
        request = pb.LookupStudyRequest()
        assert reads.carry(request) == () and fields(request) == injected()
        previous = propagate.get_global_textmap()
        propagate.set_global_textmap(TraceContextTextMapPropagator())
        try:
            request = pb.LookupStudyRequest()
            for carry in (reads.carry, carrier()):  # neither writes the fields itself now
                assert carry(request) == tuple(injected().items()) and fields(request) == {}
        finally:
            propagate.set_global_textmap(previous)
    finally:
        context.detach(token)
