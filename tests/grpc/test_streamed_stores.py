"""Streamed stores and the bound on single messages, over a real server on port 0.

No message is larger than the server's largest (4 MiB by default): a larger unary
request is refused before it is read, a larger unary hit names its streamed lookup,
and large stores go in pieces; a stream that breaks off stores nothing. No timings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from dicomtrolley.core import Query, QueryLevels

from dicomcache.client import CacheClient
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.pieces import PIECE_BYTES, study_pieces
from dicomcache.contract import MAX_MESSAGE_BYTES
from dicomcache.v1 import cache_service_pb2 as pb
from tests.grpc.conftest import RunningServer, start_server
from tests.grpc.test_large_answers import big_study

SERVICE = "/dicomcache.v1.CacheService"


@pytest.fixture
def server() -> Iterator[RunningServer]:
    running = start_server(max_memory="1GiB")
    yield running
    running.channel.close()
    running.server.stop(grace=0)


def raw_store(running: RunningServer) -> Any:
    """StreamStoreStudy taking pieces as wire bytes."""
    return running.channel.stream_unary(
        f"{SERVICE}/StreamStoreStudy", None, pb.StreamStoreStudyResponse.FromString
    )


def lookup(study_uid: str, namespace: str = "ns") -> pb.LookupStudyRequest:
    return pb.LookupStudyRequest(namespace=namespace, study_uid=study_uid, query_level=3)


def streamed_hit(running: RunningServer, request: pb.LookupStudyRequest) -> pb.LookupStudyResponse:
    pieces = running.stub.StreamLookupStudy(pb.StreamLookupStudyRequest(request=request))
    hit = pb.LookupStudyResponse.FromString(b"".join(p.chunk for p in pieces))
    hit.ClearField("fresh_for_ms")
    return hit


def stored_studies(running: RunningServer, namespace: str = "ns") -> int:
    (stats,) = running.stub.GetStats(pb.GetStatsRequest(namespace=namespace)).namespaces
    return stats.studies


def test_a_unary_request_larger_than_the_largest_message_is_refused_and_the_server_serves_on(
    server: RunningServer,
):
    study = big_study(1, 4, 1500)  # about 7.7 MB
    store = pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    assert store.ByteSize() > MAX_MESSAGE_BYTES
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.StoreStudy(store, timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert stored_studies(server) == 0
    assert server.stub.StreamStoreStudy(
        (pb.StreamStoreStudyRequest.FromString(p) for p in study_pieces(store)), timeout=30
    ).stored
    small = big_study(2, 1, 2)
    assert server.stub.StoreStudy(
        pb.StoreStudyRequest(namespace="ns", study=small, query_level=3)
    ).stored
    assert server.stub.LookupStudy(lookup(small.uid)).hit  # serving on


def test_a_unary_hit_larger_than_the_largest_message_names_its_streamed_lookup(
    server: RunningServer,
):
    study = big_study(1, 4, 1500)
    store = pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    assert raw_store(server)(study_pieces(store), timeout=30).stored
    with pytest.raises(grpc.RpcError) as caught:
        server.stub.LookupStudy(lookup(study.uid), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "StreamLookupStudy" in (caught.value.details() or "")
    hit = streamed_hit(server, lookup(study.uid))
    assert hit.hit and hit.study == pb.StoreStudyRequest.FromString(store.SerializeToString()).study


def test_a_streamed_store_is_the_unary_store(server: RunningServer):
    study = big_study(1, 3, 300)  # about 0.7 MB: within a unary message too
    for namespace, piece_bytes in (("unary", 0), ("streamed", 20_000)):
        store = pb.StoreStudyRequest(namespace=namespace, study=study, query_level=3)
        if piece_bytes:
            assert raw_store(server)(study_pieces(store, piece_bytes), timeout=30).stored
        else:
            assert server.stub.StoreStudy(store).stored
    assert streamed_hit(server, lookup(study.uid, "streamed")) == streamed_hit(
        server, lookup(study.uid, "unary")
    )


def pieces_then(pieces: Iterator[bytes], fault: Exception) -> Iterator[bytes]:
    """The pieces, then a fault in the sender: gRPC cancels the call."""
    yield from pieces
    raise fault


@pytest.mark.parametrize("sent", ["some", "all"], ids=["cut-short", "after-the-last-piece"])
def test_a_stream_that_breaks_off_stores_nothing(server: RunningServer, sent: str):
    study = big_study(1, 2, 200)
    store = pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    pieces = list(study_pieces(store, 10_000))
    assert len(pieces) > 4
    sending = pieces if sent == "all" else pieces[:3]
    with pytest.raises(grpc.RpcError) as caught:
        raw_store(server)(pieces_then(iter(sending), RuntimeError("the sender failed")), timeout=30)
    assert caught.value.code() in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.CANCELLED)
    assert not streamed_hit(server, lookup(study.uid)).hit
    assert stored_studies(server) == 0
    assert raw_store(server)(iter(pieces), timeout=30).stored  # and the server serves on
    assert streamed_hit(server, lookup(study.uid)).hit


def test_pieces_larger_together_than_the_largest_answer_are_refused():
    running = start_server(max_message_bytes=64 * 1024, max_answer_bytes=64 * 1024)
    try:
        study = big_study(1, 2, 200)  # about 250 KB: more than an answer and a message
        store = pb.StoreStudyRequest(namespace="ns", study=study)
        with pytest.raises(grpc.RpcError) as caught:
            raw_store(running)(study_pieces(store, 16 * 1024), timeout=30)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "largest answer" in (caught.value.details() or "")
        smaller = pb.StoreStudyRequest(namespace="ns", study=big_study(2, 1, 80))  # ~100 KB
        assert not raw_store(running)(study_pieces(smaller, 16 * 1024), timeout=30).stored
        assert stored_studies(running) == 0  # a hit it could never return: as unary
    finally:
        running.channel.close()
        running.server.stop(grace=0)


class Methods(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor):  # type: ignore[misc]  # grpc ships no type information
    """Records the method of every call made through the channel it intercepts."""

    def __init__(self) -> None:
        self.called: list[str] = []

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]  # grpc's interface
        self.called.append(details.method.rsplit("/", 1)[-1])
        return continuation(details, request)

    def intercept_stream_unary(self, continuation, details, requests):  # type: ignore[no-untyped-def]  # as above
        self.called.append(details.method.rsplit("/", 1)[-1])
        return continuation(details, requests)


def test_the_client_streams_a_store_larger_than_a_piece(server: RunningServer):
    methods = Methods()
    channel = grpc.intercept_channel(grpc.insecure_channel(server.target), methods)
    small, large = big_study(1, 1, 20), big_study(2, 2, 1000)  # about 25 KB and 2.5 MB
    assert small.ByteSize() < PIECE_BYTES < large.ByteSize() < MAX_MESSAGE_BYTES
    client = CacheClient(channel=channel, timeout=30)
    for study in (small, large):
        assert client.store_study("ns", study_from_proto(study), QueryLevels.INSTANCE)
        query = Query(StudyInstanceUID=study.uid, query_level="INSTANCE")
        assert client.store_query("q", query, [study_from_proto(study)])
    assert methods.called == ["StoreStudy", "StoreQuery", "StreamStoreStudy", "StreamStoreQuery"]
    found = client.lookup_study("ns", large.uid, QueryLevels.INSTANCE)
    assert found is not None
    assert [i.uid for i in found.series[1].instances] == [i.uid for i in large.series[1].instances]
    channel.close()


def test_the_client_adds_objects_larger_than_a_message_in_calls_of_a_piece(server: RunningServer):
    methods = Methods()
    channel = grpc.intercept_channel(grpc.insecure_channel(server.target), methods)
    studies = [big_study(n, 1, 500) for n in range(1, 11)]  # about 0.6 MB each, 6 MB in all
    assert sum(s.ByteSize() for s in studies) > MAX_MESSAGE_BYTES
    with CacheClient(channel=channel, timeout=30) as client:
        written = client.add_objects("ns", [study_from_proto(s) for s in studies])
    assert written == 10 * (1 + 1 + 500)
    assert set(methods.called) == {"AddObjects"}
    assert len(methods.called) >= 6  # of at most a piece each: 6 MB in 1 MiB calls
    assert stored_studies(server) == 10
    channel.close()
