"""A caller's trace goes through the server to the archive's request (W3C traceparent).

The archive is the real Orthanc behind a counting proxy that records each
request's ``traceparent`` header, so the test sees what reached the archive.
"""

from __future__ import annotations

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import cache_service_pb2_grpc, search_pb2
from tests.e2e.conftest import LoadedOrthanc
from tests.support.counting_proxy import counting_proxy

pytestmark = pytest.mark.orthanc

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"


def _searched(
    orthanc: LoadedOrthanc, level: int, flags: str, then_untraced: bool = False
) -> tuple[InMemorySpanExporter, list[str | None]]:
    """Search once with the caller's traceparent (``flags``: 01 sampled, 00 not), a miss
    that asks the archive, and once more untraced if asked (a hit); returns the server's
    spans and the traceparents that reached the archive."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with counting_proxy(orthanc.dicomweb_url) as proxy:
        upstream = QidoRsUpstream("pacs", proxy.url)
        server = CacheServer(
            Settings(listen="127.0.0.1:0"), upstreams={"pacs": upstream}, tracer_provider=provider
        ).start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = cache_service_pb2_grpc.CacheServiceStub(channel)
                request = search_pb2.SearchRequest(upstream="pacs", level=level)
                metadata = (("traceparent", f"00-{TRACE_ID}-{CALLER_SPAN}-{flags}"),)
                stub.Search(request, timeout=30, metadata=metadata)  # a miss: the archive asked
                if then_untraced:
                    stub.Search(request, timeout=30)  # a hit, and no trace: nothing sent
        finally:
            server.stop(grace=0)
        return exporter, list(proxy.traceparents)


def test_the_archive_request_carries_the_callers_trace(orthanc: LoadedOrthanc) -> None:
    exporter, sent = _searched(orthanc, search_pb2.SEARCH_LEVEL_STUDIES, "01", then_untraced=True)
    (fetch,) = [s for s in exporter.get_finished_spans() if s.name == "upstream fetch"]
    assert fetch.context.trace_id == int(TRACE_ID, 16)
    assert sent == [f"00-{TRACE_ID}-{fetch.context.span_id:016x}-01"]


def test_an_unsampled_callers_trace_reaches_the_archive_unsampled(orthanc: LoadedOrthanc) -> None:
    """The server makes nothing of a caller that did not sample until the call asks the
    archive: then the caller's trace goes on, still not sampled, and no span is recorded."""
    exporter, (sent,) = _searched(orthanc, search_pb2.SEARCH_LEVEL_SERIES, "00")
    assert sent is not None
    version, trace_id, _, flags = sent.split("-")
    assert (version, trace_id, flags) == ("00", TRACE_ID, "00")
    assert exporter.get_finished_spans() == ()
