"""The client's bearer token reaches the server on every kind of call, unary and streamed."""

from __future__ import annotations

import contextlib
from concurrent import futures

import grpc
from dicomtrolley.core import Query, QueryLevels

from dicomcache.client import CacheClient, CacheError, Token
from dicomcache.v1 import cache_service_pb2 as pb


def test_the_token_goes_with_unary_and_streamed_calls(tmp_path):
    seen: list[tuple[str, str | None]] = []

    def record(method: str, response: bytes):
        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            metadata = dict(context.invocation_metadata())
            seen.append((method, metadata.get("authorization")))
            return response

        return handle

    stats = pb.GetStatsResponse().SerializeToString()
    miss = pb.StreamLookupQueryResponse(total_bytes=0).SerializeToString()
    methods = {
        "GetStats": grpc.unary_unary_rpc_method_handler(record("GetStats", stats)),
        "StreamLookupQuery": grpc.unary_stream_rpc_method_handler(
            lambda request, context: iter([record("StreamLookupQuery", miss)(request, context)])
        ),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("dicomcache.v1.CacheService", methods)]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    token_file = tmp_path / "token"
    token_file.write_text("t0ken-value\n")
    try:
        with CacheClient(f"127.0.0.1:{port}", timeout=5, token=Token(file=str(token_file))) as c:
            c.stats()
            # The fake answer is no real lookup: only its metadata matters here.
            with contextlib.suppress(CacheError):
                c.lookup_query("ns", Query(PatientID="x", query_level=QueryLevels.STUDY))
    finally:
        server.stop(0)
    assert seen == [
        ("GetStats", "Bearer t0ken-value"),
        ("StreamLookupQuery", "Bearer t0ken-value"),
    ]
