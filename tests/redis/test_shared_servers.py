"""Several `dicomcache serve` processes on one Redis share one cache; Redis down is UNAVAILABLE."""

from __future__ import annotations

import grpc
import pytest

from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2
from tests.support.messages import make_study
from tests.support.redis_fixtures import shared_cluster
from tests.support.redis_servers import flush_all, redis_server
from tests.support.serve_process import serve_process

QUERY = query_pb2.Query(patient_id="PAT1", query_level=query_pb2.QUERY_LEVEL_INSTANCE)


def store_then_lookup(writer, reader) -> pb.LookupQueryResponse:
    study = make_study(1, 2, 3)
    writer.stub.StoreQuery(
        pb.StoreQueryRequest(namespace="shared", query=QUERY, studies=[study]), timeout=10
    )
    response = reader.stub.LookupQuery(
        pb.LookupQueryRequest(namespace="shared", query=QUERY), timeout=10
    )
    assert response.hit
    assert list(response.studies) == [study]
    return response


def test_two_servers_on_one_redis_share_entries_and_survive_a_redis_restart():
    with (
        redis_server() as redis,
        serve_process("--backend", redis.url) as a,
        serve_process("--backend", redis.url) as b,
    ):
        assert not a.stub.LookupQuery(
            pb.LookupQueryRequest(namespace="shared", query=QUERY), timeout=10
        ).hit
        store_then_lookup(a, b)
        b.stub.Invalidate(pb.InvalidateRequest(namespace="shared"), timeout=10)
        assert not a.stub.LookupQuery(
            pb.LookupQueryRequest(namespace="shared", query=QUERY), timeout=10
        ).hit

        redis.stop()
        for server in (a, b):
            with pytest.raises(grpc.RpcError) as caught:
                server.stub.LookupQuery(
                    pb.LookupQueryRequest(namespace="shared", query=QUERY), timeout=10
                )
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE

        redis.start()
        store_then_lookup(b, a)


def test_two_servers_on_one_redis_cluster_share_entries():
    cluster = shared_cluster()
    flush_all(cluster.clients())
    with serve_process("--backend", cluster.url) as a, serve_process("--backend", cluster.url) as b:
        store_then_lookup(a, b)
        store_then_lookup(b, a)
