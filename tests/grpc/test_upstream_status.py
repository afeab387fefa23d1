"""UpstreamFailed as a gRPC status: the code by reason, ErrorInfo with the archive's status.

A real server on port 0 whose one method ends with ``status.abort``, read by a real
channel: what a Search caller sees when the archive fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from dicomcache.server.api import status
from dicomcache.server.errors import UpstreamFailed

METHOD = "/test.Upstream/Fail"


@pytest.fixture
def fail() -> Iterator[grpc.UnaryUnaryMultiCallable]:
    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        upstream, reason, code = request.decode().split(" ")
        status.abort(context, UpstreamFailed(upstream, reason, int(code) if code else None), "Fail")

    handlers = grpc.method_handlers_generic_handler(
        "test.Upstream", {"Fail": grpc.unary_unary_rpc_method_handler(handle)}
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=[handlers])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield channel.unary_unary(METHOD)
    server.stop(0)


@pytest.mark.parametrize(
    ("reason", "archive_status", "code"),
    [
        ("unreachable", None, grpc.StatusCode.UNAVAILABLE),
        ("failed", 503, grpc.StatusCode.UNAVAILABLE),
        ("failed", 0xC000, grpc.StatusCode.UNAVAILABLE),
        ("timeout", None, grpc.StatusCode.DEADLINE_EXCEEDED),
        ("refused", 403, grpc.StatusCode.FAILED_PRECONDITION),
    ],
)
def test_the_code_and_error_info_of_each_reason(
    fail: grpc.UnaryUnaryMultiCallable,
    reason: str,
    archive_status: int | None,
    code: grpc.StatusCode,
) -> None:
    shown = "" if archive_status is None else str(archive_status)
    with pytest.raises(grpc.RpcError) as caught:
        fail(f"pacs {reason} {shown}".encode())
    error = caught.value
    assert error.code() == code
    assert status.code_of(UpstreamFailed("pacs", reason, archive_status)) == code
    assert error.details().startswith(f"upstream pacs: {reason}")
    found = rpc_status.from_call(error)
    assert found is not None
    (detail,) = found.details
    info = error_details_pb2.ErrorInfo()
    assert detail.Unpack(info)
    assert info.reason == f"UPSTREAM_{reason.upper()}"
    assert info.domain == "dicomcache"
    expected = (
        {"upstream": "pacs"}
        if archive_status is None
        else {
            "upstream": "pacs",
            "status": str(archive_status),
        }
    )
    assert dict(info.metadata) == expected
