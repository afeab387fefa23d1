"""The trace context a CachedSearcher sends: the same headers as the global propagator's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import baggage, context, propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import TraceState

from dicomcache.client.tracing import SearchTracer, carrier, trace_metadata
from dicomcache.v1 import cache_service_pb2 as pb


def injected() -> tuple[tuple[str, str], ...]:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


@pytest.fixture
def remote_parent() -> Iterator[None]:
    """A caller's unsampled context with a tracestate, current for the test."""
    parent = trace.SpanContext(
        0x4BF92F3577B34DA6A3CE929D0E0E4736,
        0x00F067AA0BA902B7,
        is_remote=True,
        trace_flags=trace.TraceFlags(0),
        trace_state=TraceState([("vendor", "x1"), ("other", "y")]),
    )
    token = context.attach(trace.set_span_in_context(trace.NonRecordingSpan(parent)))
    yield
    context.detach(token)


def test_no_current_span_sends_nothing():
    assert trace_metadata() == injected() == ()


@pytest.mark.parametrize("sampler", [None, ALWAYS_OFF])
def test_a_span_of_ours_is_sent_as_the_propagator_sends_it(sampler):
    provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    with provider.get_tracer("test").start_as_current_span("app request"):
        assert trace_metadata() == injected()
        assert [name for name, _ in trace_metadata()] == ["traceparent"]


def test_a_tracestate_and_baggage_go_as_the_propagator_sends_them(remote_parent):
    assert trace_metadata() == injected()
    assert dict(trace_metadata())["tracestate"] == "vendor=x1,other=y"
    token = context.attach(baggage.set_baggage("team", "radiology a"))
    try:
        assert trace_metadata() == injected()
        assert dict(trace_metadata())["baggage"] == "team=radiology+a"
    finally:
        context.detach(token)


def test_another_propagator_is_used_as_configured(remote_parent):
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(CompositePropagator([]))  # OTEL_PROPAGATORS=none
    try:
        assert trace_metadata() == injected() == ()
        propagate.set_global_textmap(TraceContextTextMapPropagator())  # not in a composite
        assert trace_metadata() == injected()
    finally:
        propagate.set_global_textmap(previous)


def test_inside_an_unsampled_span_a_search_makes_no_span():
    provider = TracerProvider(sampler=ALWAYS_OFF)
    tracer = SearchTracer(TracerProvider())  # its own sampler would record
    app = provider.get_tracer("app")
    with (
        app.start_as_current_span("app request") as request,
        tracer.span("CachedSearcher.find_studies", namespace="pacs-a") as span,  # inside it
    ):
        assert span is None and trace.get_current_span() is request
    with tracer.span("CachedSearcher.find_studies", namespace="pacs-a") as span:
        assert span.is_recording()  # no caller: a search of its own, sampled


def carried() -> tuple[pb.LookupStudyRequest, tuple[tuple[str, str], ...]]:
    request = pb.LookupStudyRequest(namespace="pacs-a", study_uid="1.2.3")
    return request, carrier()(request)


def fields(request: pb.LookupStudyRequest) -> dict[str, str]:
    found = {"traceparent": request.traceparent, "tracestate": request.tracestate}
    return {name: value for name, value in found.items() if value}


def test_with_the_default_propagator_the_request_carries_the_same_headers(remote_parent):
    request, metadata = carried()
    assert metadata == ()
    assert fields(request) == dict(injected())
    assert request.traceparent.endswith("-00")
    with TracerProvider().get_tracer("test").start_as_current_span("app request"):
        request, metadata = carried()
        assert metadata == () and fields(request) == dict(injected())


def test_no_current_span_carries_nothing():
    request, metadata = carried()
    assert metadata == () and fields(request) == {}


def test_baggage_or_another_propagator_goes_as_metadata_and_the_request_stays_bare(
    remote_parent,
):
    token = context.attach(baggage.set_baggage("team", "radiology a"))
    try:
        request, metadata = carried()
        assert metadata == injected() and fields(request) == {}
    finally:
        context.detach(token)
    previous = propagate.get_global_textmap()
    propagate.set_global_textmap(TraceContextTextMapPropagator())  # not in a composite
    try:
        request, metadata = carried()
        assert metadata == injected() and fields(request) == {}
    finally:
        propagate.set_global_textmap(previous)


@pytest.mark.parametrize("sampler", [ALWAYS_OFF, ParentBased(TraceIdRatioBased(0.0))])
def test_an_unsampled_app_span_sends_its_context_in_the_request_and_makes_no_span(sampler):
    """What lets the server follow the app's decision: the app span's own parent and
    flags, in the request, nothing as metadata; and no span of the search's."""
    app = TracerProvider(sampler=sampler).get_tracer("app")
    tracer = SearchTracer(TracerProvider())
    with app.start_as_current_span("app request") as request:
        assert not request.is_recording()
        with tracer.span("CachedSearcher.find_study_by_id", namespace="pacs-a") as span:
            assert span is None
            with tracer.span("dicomcache lookup", client=True) as call:
                assert call is None
                sent, metadata = carried()
        assert metadata == () and fields(sent) == dict(injected())
        found = request.get_span_context()
        assert sent.traceparent == f"00-{found.trace_id:032x}-{found.span_id:016x}-" + (
            f"{found.trace_flags:02x}"
        )
        assert not found.trace_flags.sampled


@pytest.mark.parametrize(
    "current",
    [
        trace.INVALID_SPAN,
        trace.NonRecordingSpan(trace.SpanContext(0, 0x00F067AA0BA902B7, is_remote=True)),
        trace.NonRecordingSpan(
            trace.SpanContext(
                0x4BF92F3577B34DA6A3CE929D0E0E4736,
                0x00F067AA0BA902B7,
                is_remote=True,
                trace_flags=trace.TraceFlags(1),  # a sampled caller's, not recorded here
            )
        ),
    ],
)
def test_a_span_that_does_not_record_is_read_as_the_api_reads_it(current):
    token = context.attach(trace.set_span_in_context(current))
    valid = current.get_span_context().is_valid
    try:
        request, metadata = carried()
        # An invalid context is not sent (the propagator writes one unless it is
        # exactly INVALID_SPAN_CONTEXT; the server would read it as no parent).
        assert metadata == () and fields(request) == (dict(injected()) if valid else {})
        recorded = SearchTracer(TracerProvider()).span("CachedSearcher.find_studies")
        with recorded as span:  # a span of its own only when there was no valid one
            assert (span is None) == valid
    finally:
        context.detach(token)
