"""Which RPC a CacheClient lookup takes: a study-level LookupStudy is one unary call (its
answer is one dataset), deeper lookups stream, and a study-level answer larger than one
message, which the server refuses as unary, comes streamed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from dicomtrolley.core import QueryLevels

from dicomcache.client import CacheClient
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings
from tests.grpc.conftest import start_server
from tests.support.messages import make_study, text_element


class Methods(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]  # grpc's interceptors are untyped
    """Records the method of every unary and server-streaming call."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.called.append(details.method.rsplit("/", 1)[-1])
        return continuation(details, request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: Any, request: Any
    ) -> Any:
        self.called.append(details.method.rsplit("/", 1)[-1])
        return continuation(details, request)


def _lookups(methods: Methods) -> list[str]:
    return [m for m in methods.called if "Lookup" in m]


def test_a_study_level_lookup_is_unary_and_a_deeper_one_streams():
    running = start_server()
    methods = Methods()
    channel = grpc.intercept_channel(grpc.insecure_channel(running.target), methods)
    try:
        client = CacheClient(running.target, channel=channel, timeout=5)
        study = study_from_proto(make_study(1, 2, 3))
        assert client.store_study("ns", study, QueryLevels.INSTANCE)
        shallow = client.lookup_study("ns", study.uid, QueryLevels.STUDY)
        deep = client.lookup_study("ns", study.uid, QueryLevels.INSTANCE)
        assert shallow is not None and shallow.uid == study.uid and not shallow.series
        assert deep is not None and len(deep.series) == 2
        assert _lookups(methods) == ["LookupStudy", "StreamLookupStudy"]
    finally:
        channel.close()
        running.server.stop(grace=0)


def test_a_study_level_answer_larger_than_a_message_comes_streamed():
    """A study stored through a server with the default limit, looked up through one with
    a smaller message limit on the same storage (as servers of mixed settings on one Redis)."""
    wide = start_server()
    narrow = CacheServer(
        Settings(listen="127.0.0.1:0", max_message_bytes="64KiB"), backend=wide.server.backend
    ).start()
    methods = Methods()
    channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{narrow.port}"), methods)
    try:
        big = make_study(1)
        for k in range(8):  # about 96 KiB of study attributes: more than one narrow message
            big.attributes.elements[0x00091000 + k].CopyFrom(text_element("LT", "x" * 12_000))
        study = study_from_proto(big)
        with CacheClient(wide.target, timeout=5) as writer:
            assert writer.store_study("ns", study, QueryLevels.STUDY)
        client = CacheClient(f"127.0.0.1:{narrow.port}", channel=channel, timeout=5)
        hit = client.lookup_study("ns", study.uid, QueryLevels.STUDY)
        assert hit is not None and hit.uid == study.uid
        assert _lookups(methods) == ["LookupStudy", "StreamLookupStudy"]
    finally:
        channel.close()
        narrow.stop(grace=0)
        wide.channel.close()
        wide.server.stop(grace=0)
