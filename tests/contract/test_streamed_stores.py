"""Contract over gRPC: the streamed stores are the unary stores, on every backend.

A real server on port 0 over each backend of the suite (memory, Redis, Redis
Cluster, sealed or not) takes the same store unary and in pieces, into two
namespaces; the lookups of both give the same answers, and a lease revoked by an
invalidation refuses both alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from dicomcache.client.pieces import query_pieces, study_pieces
from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, query_pb2
from tests.contract.backends import CacheUnderTest
from tests.support.messages import make_study

SERVICE = "/dicomcache.v1.CacheService"
PIECE_BYTES = 400  # a few objects a piece: every kind of cut comes up


class Running:
    """A server over the backend, a stub, and the streamed stores taking wire bytes."""

    def __init__(self, cache: CacheUnderTest) -> None:
        self.server = CacheServer(Settings(listen="127.0.0.1:0"), backend=cache.backend).start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.server.port}")
        self.stub = cache_service_pb2_grpc.CacheServiceStub(self.channel)  # type: ignore[no-untyped-call]  # generated, unannotated
        self.store_study = self.channel.stream_unary(
            f"{SERVICE}/StreamStoreStudy", None, pb.StreamStoreStudyResponse.FromString
        )
        self.store_query = self.channel.stream_unary(
            f"{SERVICE}/StreamStoreQuery", None, pb.StreamStoreQueryResponse.FromString
        )


@pytest.fixture
def running(cache: CacheUnderTest) -> Iterator[Running]:
    server = Running(cache)
    yield server
    server.channel.close()
    server.server.stop(grace=0)


def _same(response: Any) -> bytes:
    """A lookup's response without its time left (the clocks of the stores differ)."""
    response.ClearField("fresh_for_ms")
    return bytes(response.SerializeToString())


def answer() -> list[Any]:
    return [make_study(1, 2, 3), make_study(2), make_study(3, 1, 4)]


def test_a_streamed_store_study_is_the_unary_store(running: Running):
    study = make_study(1, 3, 4)
    for namespace in ("unary", "streamed"):
        store = pb.StoreStudyRequest(namespace=namespace, study=study, query_level=3)
        if namespace == "unary":
            assert running.stub.StoreStudy(store, timeout=10).stored
        else:
            assert running.store_study(study_pieces(store, PIECE_BYTES), timeout=10).stored
    hits = [
        running.stub.LookupStudy(
            pb.LookupStudyRequest(namespace=namespace, study_uid=study.uid, query_level=level)
        )
        for level in (1, 3)
        for namespace in ("unary", "streamed")
    ]
    assert all(hit.hit for hit in hits)
    assert _same(hits[0]) == _same(hits[1]) and _same(hits[2]) == _same(hits[3])


def test_a_streamed_store_query_is_the_unary_store(running: Running):
    query = query_pb2.Query(patient_id="PAT*", query_level=query_pb2.QUERY_LEVEL_INSTANCE)
    for namespace in ("unary", "streamed"):
        store = pb.StoreQueryRequest(namespace=namespace, query=query, studies=answer())
        if namespace == "unary":
            assert running.stub.StoreQuery(store, timeout=10).stored
        else:
            assert running.store_query(query_pieces(store, PIECE_BYTES), timeout=10).stored
    unary, streamed = (
        running.stub.LookupQuery(pb.LookupQueryRequest(namespace=namespace, query=query))
        for namespace in ("unary", "streamed")
    )
    assert unary.hit and [s.uid for s in unary.studies] == [s.uid for s in answer()]
    assert _same(unary) == _same(streamed)


def test_a_streamed_by_id_answer_also_stores_the_listing(running: Running):
    study = make_study(4, 2, 3)
    query = query_pb2.Query(study_instance_uid=study.uid, query_level=3)
    store = pb.StoreQueryRequest(namespace="ns", query=query, studies=[study])
    assert running.store_query(query_pieces(store, PIECE_BYTES), timeout=10).stored
    listing = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    assert running.stub.LookupStudy(listing).study.series[1].instances[2].uid == (
        study.series[1].instances[2].uid
    )


def test_a_streamed_store_under_a_revoked_lease_is_refused_as_the_unary_one(running: Running):
    study = make_study(1, 2, 3)
    running.stub.StoreStudy(pb.StoreStudyRequest(namespace="ns", study=make_study(9)))
    miss = running.stub.LookupStudy(pb.LookupStudyRequest(namespace="ns", study_uid=study.uid))
    assert not miss.hit and miss.lease
    running.stub.Invalidate(pb.InvalidateRequest(namespace="ns"))
    store = pb.StoreStudyRequest(namespace="ns", study=study, query_level=3, lease=miss.lease)
    assert not running.store_study(study_pieces(store, PIECE_BYTES), timeout=10).stored
    assert not running.stub.StoreStudy(store, timeout=10).stored
    fresh = running.stub.LookupStudy(pb.LookupStudyRequest(namespace="ns", study_uid=study.uid))
    store.lease = fresh.lease  # taken after the invalidation: stores
    assert running.store_study(study_pieces(store, PIECE_BYTES), timeout=10).stored
