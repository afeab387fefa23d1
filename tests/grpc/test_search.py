"""The Search RPC over a real server: its status codes and details, metrics, spans, and
reflection under v1 and v1alpha. The archive's answers are tested in tests/e2e/test_search.py;
here the upstream is a real QIDO-RS upstream at a port where nothing listens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_reflection.v1alpha import reflection_pb2
from grpc_status import rpc_status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import cache_service_pb2_grpc, search_pb2
from tests.support.ports import free_port

STUDIES = search_pb2.SEARCH_LEVEL_STUDIES
P = search_pb2.SearchParameter


def serve(*, upstreams: bool = True, **options: Any) -> CacheServer:
    down = {"down": QidoRsUpstream("down", f"http://127.0.0.1:{free_port()}/dicom-web")}
    settings = Settings(listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    return CacheServer(
        settings,
        backend=MemoryBackend(ttl=600, negative_ttl=60),
        upstreams=down if upstreams else {},
        **options,
    ).start()


@pytest.fixture
def server() -> Iterator[CacheServer]:
    server = serve()
    yield server
    server.stop(grace=0)


def stub_of(server: CacheServer) -> cache_service_pb2_grpc.CacheServiceStub:
    return cache_service_pb2_grpc.CacheServiceStub(
        grpc.insecure_channel(f"127.0.0.1:{server.port}")
    )


def failure(server: CacheServer, **fields: Any) -> grpc.RpcError:
    fields.setdefault("upstream", "down")
    fields.setdefault("level", STUDIES)
    with pytest.raises(grpc.RpcError) as caught:
        stub_of(server).Search(search_pb2.SearchRequest(**fields), timeout=10)
    return caught.value


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # a call's error is a Call
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    return [(v.field, v.description) for v in bad.field_violations]


def test_no_upstreams_configured_is_a_failed_precondition() -> None:
    server = serve(upstreams=False)
    try:
        error = failure(server)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "no upstreams configured" in (error.details() or "")
    finally:
        server.stop(grace=0)


@pytest.mark.parametrize(
    ("fields", "field", "rule"),
    [
        ({"upstream": ""}, "upstream", "must be set"),
        ({"upstream": "elsewhere"}, "upstream", "must name an upstream configured"),
        ({"level": 0}, "level", "must be SEARCH_LEVEL_STUDIES"),
        ({"study_uid": "1.2"}, "study_uid", "must be empty at level SEARCH_LEVEL_STUDIES"),
        ({"match": [P(name="PatientId", values=["x"])]}, "match[0].name", "DICOM keyword"),
        ({"match": [P(name="PatientID")]}, "match[0].values", "at least one value"),
        ({"include_fields": ["offset"]}, "include_fields[0]", "use the field offset"),
    ],
)
def test_a_bad_request_is_invalid_argument_naming_field_and_rule(
    server: CacheServer, fields: dict[str, Any], field: str, rule: str
) -> None:
    error = failure(server, **fields)
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert any(f == field and rule in r for f, r in violations(error)), violations(error)


def sample(server: CacheServer, name: str, labels: dict[str, str]) -> float | None:
    assert server.telemetry.metrics is not None
    value: float | None = server.telemetry.metrics.registry.get_sample_value(name, labels)
    return value


def test_an_unreachable_archive_is_unavailable_with_its_reason_counted(server: CacheServer) -> None:
    error = failure(server, match=[P(name="PatientID", values=["SECRET-ID"])])

    assert error.code() is grpc.StatusCode.UNAVAILABLE
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # a call's error is a Call
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.metadata["upstream"]) == ("UPSTREAM_UNREACHABLE", "down")
    assert "SECRET-ID" not in (error.details() or "") + str(info)
    labels = {"upstream": "down", "reason": "unreachable"}
    assert sample(server, "dicomcache_upstream_errors_total", labels) == 1
    assert sample(server, "dicomcache_upstream_duration_seconds_count", {"upstream": "down"}) == 1


def test_each_fetch_is_an_upstream_span_under_the_calls_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    server = serve(tracer_provider=provider)
    try:
        failure(server)
    finally:
        server.stop(grace=0)
    spans = {span.name: span for span in exporter.get_finished_spans()}
    fetch, call = spans["upstream fetch"], spans["dicomcache.v1.CacheService/Search"]
    assert fetch.parent is not None and fetch.parent.span_id == call.context.span_id
    assert fetch.attributes is not None and fetch.attributes["dicomcache.upstream"] == "down"
    assert fetch.attributes["error.type"] == "UpstreamFailed"


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
def test_reflection_answers_under_v1_and_v1alpha(server: CacheServer, version: str) -> None:
    """grpcurl asks v1 first. The two protos' messages are the same on the wire, so the
    v1alpha classes read and write v1's bytes."""
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    info = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    asked = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="dicomcache.v1.CacheService"),
    ]
    listed, described = list(info(iter(asked), timeout=10))
    names = {s.name for s in listed.list_services_response.service}
    assert {"dicomcache.v1.CacheService", f"grpc.reflection.{version}.ServerReflection"} <= names
    assert described.file_descriptor_response.file_descriptor_proto
