"""Traces: a CachedSearcher call's spans, the server's and the backend's, linked in one trace.

The client and the server each have their own TracerProvider and in-memory
exporter, as two processes would: the only link between their spans is the W3C
trace context that travels in the request (or, from other clients, in the metadata).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from dicomtrolley.core import Query, QueryLevels
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagate import get_global_textmap, set_global_textmap
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dicomcache.client import CachedSearcher
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.pieces import study_pieces
from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, query_pb2
from tests.grpc.test_searcher import FakeArchive
from tests.support.messages import make_study
from tests.support.serve_process import started

PATIENT = "Tracedname^Secret"


def traced() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@pytest.fixture
def server() -> Iterator[tuple[CacheServer, InMemorySpanExporter]]:
    provider, exporter = traced()
    settings = Settings(listen="127.0.0.1:0")
    backend = MemoryBackend(ttl=600, negative_ttl=60, max_bytes=2**26)
    server = CacheServer(settings, backend=backend, tracer_provider=provider).start()
    yield server, exporter
    server.stop(grace=0)


def traced_searcher(
    archive: FakeArchive, server: CacheServer, provider: TracerProvider
) -> CachedSearcher:
    """A searcher of namespace pacs-a over QIDO-RS that traces with ``provider``."""
    return CachedSearcher(
        archive,
        f"127.0.0.1:{server.port}",
        "pacs-a",
        timeout=5,
        tracer_provider=provider,
        protocol="qido-rs",
    )


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


def test_a_miss_then_a_hit_make_linked_client_server_backend_and_upstream_spans(server):
    cache_server, server_spans = server
    provider, client_spans = traced()
    study = study_from_proto(make_study(3, 1, 2, patient=PATIENT))
    archive = FakeArchive([study])
    searcher = traced_searcher(archive, cache_server, provider)
    query = Query(StudyInstanceUID=study.uid, query_level=QueryLevels.STUDY)
    searcher.find_studies(query)  # a miss: lookup, upstream, store
    searcher.find_studies(query)  # a hit: lookup only
    assert archive.calls == 1

    mine = client_spans.get_finished_spans()
    theirs = server_spans.get_finished_spans()
    searches = by_name(mine, "CachedSearcher.find_studies")
    assert len(searches) == 2
    miss, hit = sorted(searches, key=lambda s: s.start_time)
    children = {
        search.context.span_id: sorted(
            s.name for s in mine if s.parent and s.parent.span_id == search.context.span_id
        )
        for search in searches
    }
    assert children[miss.context.span_id] == [
        "dicomcache lookup",
        "dicomcache store",
        "upstream find_studies",
    ]
    assert children[hit.context.span_id] == ["dicomcache lookup"]

    calls = [s for s in mine if s.kind == SpanKind.CLIENT]
    assert len(calls) == 3
    served = [s for s in theirs if s.kind == SpanKind.SERVER]
    assert len(served) == 3
    for call in calls:  # each cache call is the parent of exactly one server span
        (server_span,) = [
            s for s in served if s.parent is not None and s.parent.span_id == call.context.span_id
        ]
        assert server_span.context.trace_id == call.context.trace_id
        assert server_span.parent.is_remote
        backend = [
            s
            for s in theirs
            if s.parent is not None and s.parent.span_id == server_span.context.span_id
        ]
        assert backend and all(s.name.startswith("backend ") for s in backend)
    names = sorted(s.name for s in served)
    assert names == [
        "dicomcache.v1.CacheService/StoreQuery",
        "dicomcache.v1.CacheService/StreamLookupQuery",
        "dicomcache.v1.CacheService/StreamLookupQuery",
    ]
    for span in (*mine, *theirs):  # no PHI in names or attributes
        text = span.name + repr(dict(span.attributes or {}))
        assert PATIENT not in text and study.uid not in text


def test_a_failed_call_is_an_error_span_with_its_code(server):
    cache_server, server_spans = server
    with grpc.insecure_channel(f"127.0.0.1:{cache_server.port}") as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.RpcError):
            stub.LookupStudy(pb.LookupStudyRequest(namespace="", study_uid="x"))
    (span,) = server_spans.get_finished_spans()
    assert span.status.status_code == StatusCode.ERROR
    assert span.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert span.attributes["error.type"] == "InvalidArgument"


def test_no_tracer_provider_makes_no_spans_and_sends_no_trace_context():
    searcher = CachedSearcher(FakeArchive([]), "127.0.0.1:1", "pacs-a", protocol="qido-rs")
    assert searcher._tracer is None and not searcher.client.trace_context


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver: what `serve --tracing` exports arrives here."""

    def __init__(self) -> None:
        self.spans: list[tuple[bytes, bytes, str]] = []  # trace id, parent span id, name

    def Export(self, request, context):  # noqa: N802  # the OTLP service's method name
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                for span in scope.spans:
                    self.spans.append((span.trace_id, span.parent_span_id, span.name))
        return trace_service_pb2.ExportTraceServiceResponse()


def test_serve_with_tracing_exports_over_otlp_and_joins_the_callers_trace():
    collector = Collector()
    receiver = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, receiver)
    otlp_port = receiver.add_insecure_port("127.0.0.1:0")
    receiver.start()
    environment = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_port}",
        "OTEL_EXPORTER_OTLP_INSECURE": "true",
    }
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    parent = "00f067aa0ba902b7"
    try:
        with started("--listen", "127.0.0.1:0", "--tracing", env=environment) as run:
            with grpc.insecure_channel(f"127.0.0.1:{run.port}") as channel:
                stub = cache_service_pb2_grpc.CacheServiceStub(channel)
                metadata = (("traceparent", f"00-{trace_id}-{parent}-01"),)
                stub.GetStats(pb.GetStatsRequest(), timeout=10, metadata=metadata)
            run.process.send_signal(signal.SIGTERM)  # the provider flushes on the way out
            assert run.process.wait(timeout=30) == 0
    finally:
        receiver.stop(0)
    names = {name for tid, pid, name in collector.spans if tid.hex() == trace_id}
    assert "dicomcache.v1.CacheService/GetStats" in names
    (call,) = [s for s in collector.spans if s[2] == "dicomcache.v1.CacheService/GetStats"]
    assert call[1].hex() == parent


def test_an_unsampled_search_makes_no_spans_on_either_side(server):
    """The caller's "not sampled" travels to the server, which records nothing either."""
    cache_server, server_spans = server
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    study = study_from_proto(make_study(5, 1, 1))
    searcher = traced_searcher(FakeArchive([study]), cache_server, provider)
    query = Query(StudyInstanceUID=study.uid, query_level=QueryLevels.STUDY)
    searcher.find_studies(query)
    searcher.find_studies(query)
    assert exporter.get_finished_spans() == ()
    assert server_spans.get_finished_spans() == ()


class CountingPropagator(CompositePropagator):
    """The default W3C propagator (trace context and baggage), counting its extractions."""

    def __init__(self) -> None:
        super().__init__([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
        self.extracted = 0

    def extract(self, *args, **kwargs):
        self.extracted += 1
        return super().extract(*args, **kwargs)


@pytest.fixture
def counting_server() -> Iterator[tuple[CacheServer, InMemorySpanExporter, CountingPropagator]]:
    propagator = CountingPropagator()
    previous = get_global_textmap()
    set_global_textmap(propagator)  # the server's tracer reads it once, at its start
    try:
        provider, exporter = traced()
        settings = Settings(listen="127.0.0.1:0")
        backend = MemoryBackend(ttl=600, negative_ttl=60, max_bytes=2**26)
        server = CacheServer(settings, backend=backend, tracer_provider=provider).start()
    finally:
        set_global_textmap(previous)
    yield server, exporter, propagator
    server.stop(grace=0)


def test_an_unsampled_callers_hit_extracts_no_trace_context(counting_server):
    """A caller that did not sample costs the server no extraction (the context is read
    only if the call goes on to the archive); a sampled caller's is, once."""
    server, exporter, propagator = counting_server
    study = make_study(7, 1, 2)
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        stored = pb.StoreStudyRequest(
            namespace="pacs-a", study=study, query_level=query_pb2.QUERY_LEVEL_INSTANCE
        )
        stub.StoreStudy(stored, timeout=10)
        propagator.extracted = 0
        lookup = pb.LookupStudyRequest(
            namespace="pacs-a", study_uid=study.uid, query_level=query_pb2.QUERY_LEVEL_INSTANCE
        )
        unsampled = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-00"),)
        for _ in range(3):
            assert stub.LookupStudy(lookup, timeout=10, metadata=unsampled).hit
        assert propagator.extracted == 0
        assert not [
            s for s in exporter.get_finished_spans() if s.context.trace_id == int(trace_id, 16)
        ]
        sampled = (("traceparent", f"00-{trace_id}-00f067aa0ba902b7-01"),)
        assert stub.LookupStudy(lookup, timeout=10, metadata=sampled).hit
    assert propagator.extracted == 1
    (span,) = [
        s
        for s in exporter.get_finished_spans()
        if s.kind == SpanKind.SERVER and s.context.trace_id == int(trace_id, 16)
    ]
    assert span.parent is not None and span.parent.span_id == 0x00F067AA0BA902B7


class MetadataRecorder(grpc.ServerInterceptor):
    """Records each call's method and metadata keys, at the server's door."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, set[str]]] = []

    def intercept_service(self, continuation, handler_call_details):
        keys = {key for key, _ in handler_call_details.invocation_metadata or ()}
        self.calls.append((handler_call_details.method.rsplit("/", 1)[-1], keys))
        return continuation(handler_call_details)


def test_a_searchers_lookups_and_stores_carry_the_trace_context_in_the_request(monkeypatch):
    """Not as metadata (its per-call cost was ~5% of a study-level hit), and the server's
    spans still join the client's: each cache call is the parent of one server span."""
    recorder = MetadataRecorder()
    plain_server = grpc.server
    monkeypatch.setattr(
        grpc, "server", lambda *a, **k: plain_server(*a, interceptors=[recorder], **k)
    )
    server_provider, server_spans = traced()
    backend = MemoryBackend(ttl=600, negative_ttl=60, max_bytes=2**26)
    cache_server = CacheServer(
        Settings(listen="127.0.0.1:0"), backend=backend, tracer_provider=server_provider
    ).start()
    monkeypatch.undo()
    try:
        provider, client_spans = traced()
        study = study_from_proto(make_study(9, 2, 3))
        searcher = traced_searcher(FakeArchive([study]), cache_server, provider)
        for level in (QueryLevels.STUDY, QueryLevels.INSTANCE):
            searcher.find_study_by_id(study.uid, level)  # a miss and its store
            searcher.find_study_by_id(study.uid, level)  # a hit
        query = Query(PatientID=study.data.PatientID, query_level=QueryLevels.STUDY)
        searcher.find_studies(query)  # a miss and its StoreQuery
        searcher.find_studies(query)
    finally:
        cache_server.stop(grace=0)
    methods = {method for method, _ in recorder.calls}
    assert {"LookupStudy", "StreamLookupStudy", "StoreStudy", "StoreQuery"} <= methods
    assert all("traceparent" not in keys for _, keys in recorder.calls)
    calls = [s for s in client_spans.get_finished_spans() if s.kind == SpanKind.CLIENT]
    served = [s for s in server_spans.get_finished_spans() if s.kind == SpanKind.SERVER]
    assert len(calls) == len(served) == len(recorder.calls)
    for call in calls:
        (server_span,) = [s for s in served if s.parent.span_id == call.context.span_id]
        assert server_span.context.trace_id == call.context.trace_id


def stored_lookup(stub, study) -> pb.LookupStudyRequest:
    store = pb.StoreStudyRequest(
        namespace="pacs-a", study=study, query_level=query_pb2.QUERY_LEVEL_INSTANCE
    )
    assert stub.StoreStudy(store, timeout=10).stored
    return pb.LookupStudyRequest(
        namespace="pacs-a", study_uid=study.uid, query_level=query_pb2.QUERY_LEVEL_INSTANCE
    )


def test_the_requests_trace_context_wins_over_the_metadatas(server):
    cache_server, server_spans = server
    with grpc.insecure_channel(f"127.0.0.1:{cache_server.port}") as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        lookup = stored_lookup(stub, make_study(11, 1, 2))
        lookup.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        lookup.tracestate = "vendor=x1"
        other = (("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),)
        assert stub.LookupStudy(lookup, timeout=10, metadata=other).hit
    (span,) = by_name(server_spans.get_finished_spans(), "dicomcache.v1.CacheService/LookupStudy")
    assert span.context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert span.parent.span_id == 0x00F067AA0BA902B7 and span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "x1"


@pytest.mark.parametrize("flags", ["00", "02"])  # 02: the SDK's unsampled span (random id)
def test_an_unsampled_context_in_the_request_makes_no_span_and_extracts_nothing(
    counting_server, flags
):
    server, exporter, propagator = counting_server
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        lookup = stored_lookup(stub, make_study(12, 1, 2))
        exporter.clear()
        propagator.extracted = 0
        lookup.traceparent = f"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-{flags}"
        for _ in range(3):
            assert stub.LookupStudy(lookup, timeout=10).hit
    assert propagator.extracted == 0
    assert exporter.get_finished_spans() == ()


@pytest.mark.parametrize(
    "traceparent",
    ["not a traceparent", "00-" + "f" * 100_000, "00-4bf92f3577b34da6a3ce929d0e0e4736-00-01"],
)
def test_a_bad_trace_context_in_the_request_starts_a_new_trace(server, traceparent):
    """As the W3C rules have it for a header: never an error, the call's span is a root."""
    cache_server, server_spans = server
    with grpc.insecure_channel(f"127.0.0.1:{cache_server.port}") as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        lookup = stored_lookup(stub, make_study(13, 1, 2))
        lookup.traceparent = traceparent
        lookup.tracestate = "x" * 100_000
        assert stub.LookupStudy(lookup, timeout=10).hit
    (span,) = by_name(server_spans.get_finished_spans(), "dicomcache.v1.CacheService/LookupStudy")
    assert span.parent is None


def test_a_streamed_store_takes_the_trace_context_of_its_first_piece(server):
    cache_server, server_spans = server
    study = make_study(14, 2, 3)
    store = pb.StoreStudyRequest(
        namespace="pacs-a", study=study, query_level=query_pb2.QUERY_LEVEL_INSTANCE
    )
    store.traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    pieces = list(study_pieces(store, piece_bytes=200))
    assert len(pieces) > 2
    with grpc.insecure_channel(f"127.0.0.1:{cache_server.port}") as channel:
        call = channel.stream_unary("/dicomcache.v1.CacheService/StreamStoreStudy")
        assert pb.StreamStoreStudyResponse.FromString(call(iter(pieces), timeout=10)).stored
    (span,) = by_name(
        server_spans.get_finished_spans(), "dicomcache.v1.CacheService/StreamStoreStudy"
    )
    assert span.parent.span_id == 0x00F067AA0BA902B7


@pytest.mark.parametrize("level", [QueryLevels.STUDY, QueryLevels.INSTANCE])
def test_an_unsampled_search_after_sampled_ones_makes_no_spans_on_their_thread(level):
    """Nothing of a sampled call stays current: the server's one worker thread, which
    served the sampled calls, and the client's thread make no span for the next
    unsampled search (issue 14: a context left attached would make every later call
    record, and cost it a sampled call's spans)."""
    provider, server_spans = traced()
    settings = Settings(listen="127.0.0.1:0", workers=1)
    backend = MemoryBackend(ttl=600, negative_ttl=60, max_bytes=2**26)
    cache_server = CacheServer(settings, backend=backend, tracer_provider=provider).start()
    try:
        client_provider, client_spans = traced()  # parent-based: follows the app's span
        study = study_from_proto(make_study(6, 2, 2))
        searcher = traced_searcher(FakeArchive([study]), cache_server, client_provider)
        sampled = TracerProvider().get_tracer("app")
        unsampled = TracerProvider(sampler=ALWAYS_OFF).get_tracer("app")
        for tracer in (sampled, sampled, sampled):  # a miss and its store, then hits
            with tracer.start_as_current_span("app request"):
                searcher.find_study_by_id(study.uid, level)
        made = (len(client_spans.get_finished_spans()), len(server_spans.get_finished_spans()))
        assert made[0] > 0 and made[1] > 0
        for _ in range(3):
            with unsampled.start_as_current_span("app request"):
                searcher.find_study_by_id(study.uid, level)
        after = (len(client_spans.get_finished_spans()), len(server_spans.get_finished_spans()))
        assert after == made
    finally:
        cache_server.stop(grace=0)
