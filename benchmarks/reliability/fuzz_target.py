"""An atheris harness: the server's request handling, in-process, from raw bytes to reply.

The first byte picks one of the ten RPCs; the rest are that RPC's request bytes.
They go through the real gRPC method handler (``server.api.handler``: the parse,
the validation, the service, the memory backend, the encoding of the reply) with
a stand-in servicer context. A status of UNKNOWN or INTERNAL, or any exception
that escapes the handler, is a crash: a client would have seen an error the
server did not mean. Every other status is an answer.

Run by ``hostile.fuzz`` as ``python -m benchmarks.reliability.fuzz_target
[libFuzzer flags] CORPUS``; dicomcache's modules are instrumented for coverage.
"""

from __future__ import annotations

import sys
from typing import Any

import atheris
import grpc

with atheris.instrument_imports(include=["dicomcache"]):
    from dicomcache.server.api.handler import InFlight, handler
    from dicomcache.server.api.service import CacheService
    from dicomcache.server.backends.memory.backend import MemoryBackend

METHODS = (
    "LookupQuery",
    "StoreQuery",
    "LookupStudy",
    "StoreStudy",
    "AddObjects",
    "GetObjects",
    "Invalidate",
    "GetStats",
    "StreamLookupQuery",
    "StreamLookupStudy",
    "StreamStoreQuery",
    "StreamStoreStudy",
)
BAD = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})


class Aborted(Exception):
    """The handler ended the call with a status."""

    def __init__(self, code: grpc.StatusCode) -> None:
        super().__init__(code.name)
        self.code = code


class Context:
    """The part of ``grpc.ServicerContext`` the handlers use: ending a call with a status."""

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code)

    def abort_with_status(self, status: Any) -> None:
        raise Aborted(status.code)


class Details:
    """``grpc.HandlerCallDetails`` of one method."""

    def __init__(self, method: str) -> None:
        self.method = f"/dicomcache.v1.CacheService/{method}"
        self.invocation_metadata: tuple[()] = ()


SERVICE = handler(
    CacheService(
        MemoryBackend(ttl=600.0, negative_ttl=60.0, max_bytes=16 * 1024**2),
        max_ttl=600.0,
        max_message_bytes=4 * 1024**2,
    ),
    InFlight(),
)
HANDLERS = {m: SERVICE.service(Details(m)) for m in METHODS}


def test_one_input(data: bytes) -> None:
    """One request: any answer but UNKNOWN or INTERNAL passes."""
    if not data:
        return
    method = METHODS[data[0] % len(METHODS)]
    rpc = HANDLERS[method]
    assert rpc is not None
    # The handlers take raw bytes and parse them on the call's thread (no deserializer).
    parse = rpc.request_deserializer
    request = data[1:] if parse is None else parse(data[1:])
    try:
        if rpc.unary_stream is not None:
            for _ in rpc.unary_stream(request, Context()):
                pass
        elif rpc.stream_unary is not None:  # a streamed store: the input as its one piece
            _serialized(rpc, rpc.stream_unary(iter([request]), Context()))
        else:
            _serialized(rpc, rpc.unary_unary(request, Context()))
    except Aborted as aborted:
        if aborted.code in BAD:
            raise RuntimeError(f"{method} answered {aborted.code.name}") from None


def _serialized(rpc: Any, response: Any) -> bytes:
    """The response as grpcio sends it: through the method's serializer, or as the
    ready-made bytes of a method that has none (the hits answer bytes)."""
    serialize = rpc.response_serializer
    return response if serialize is None else serialize(response)


def main() -> None:
    """libFuzzer's command line."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
