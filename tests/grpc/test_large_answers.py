"""Large answers: streamed lookups, their deadlines, and the limits client and server agree on.

No timings are asserted: a hit is shown by the upstream's call count, a fallback
by that count and the breaker's state.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence

import grpc
import pytest
from dicomtrolley.core import Query, QueryLevels, Searcher, Study

from dicomcache.client import CacheClient, CachedSearcher
from dicomcache.client.breaker import State
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.errors import CacheUnavailable
from dicomcache.contract import MAX_ANSWER_BYTES, MAX_MESSAGE_BYTES
from dicomcache.server.api import encode
from dicomcache.server.api.decode import study_from_proto as model_of
from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2
from tests.grpc.conftest import RunningServer, start_server
from tests.support.messages import make_study, text_element

KIB = 1024


class CountingArchive(Searcher):  # type: ignore[misc]  # dicomtrolley ships no type information
    """An upstream holding one study; counts its calls."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.calls = 0

    def find_studies(self, query: Query) -> Sequence[Study]:
        self.calls += 1
        return [self.study] if query.StudyInstanceUID == self.study.uid else []


def big_study(n: int, n_series: int, n_instances: int) -> objects_pb2.Study:
    """A study whose instances carry about 20 attributes each, as an archive's do."""
    study = make_study(n, n_series, n_instances)
    for series in study.series:
        for instance in series.instances:
            for k in range(19):
                instance.attributes.elements[0x00091000 + k].CopyFrom(
                    text_element("LO", f"value {k} of {instance.uid}")
                )
    return study


@pytest.fixture
def server() -> Iterator[RunningServer]:
    running = start_server(max_memory="1GiB")
    yield running
    running.channel.close()
    running.server.stop(grace=0)


def _stop(running: RunningServer) -> None:
    running.channel.close()
    running.server.stop(grace=0)


def test_a_study_of_thousands_of_instances_is_a_hit_with_the_default_settings(server):
    study = study_from_proto(big_study(1, 4, 1000))
    upstream = CountingArchive(study)
    searcher = CachedSearcher(upstream, target=server.target, namespace="big")
    query = Query(StudyInstanceUID=study.uid, query_level="INSTANCE")
    try:
        searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE)  # a miss, then stored
        assert upstream.calls == 1
        hit = searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE)
        assert upstream.calls == 1
        searcher.find_studies(query)  # a miss, then stored (or shared with the listing)
        calls = upstream.calls
        query_hit = searcher.find_studies(query)
        assert upstream.calls == calls
        assert sum(len(s.instances) for s in hit.series) == 4000
        assert [i.uid for i in hit.series[3].instances] == [
            i.uid for i in study.series[3].instances
        ]
        assert [s.uid for s in query_hit] == [study.uid]
        assert searcher.breaker.state is State.CLOSED
    finally:
        searcher.client.close()


def test_the_pieces_of_a_streamed_lookup_make_up_the_unary_response():
    running = start_server()
    try:
        study = big_study(1, 2, 1000)  # about 2.5 MB: pieces of at most 1 MiB
        assert running.stub.StoreStudy(
            pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
        ).stored
        lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
        pieces = list(running.stub.StreamLookupStudy(pb.StreamLookupStudyRequest(request=lookup)))
        whole = b"".join(p.chunk for p in pieces)
        assert len(pieces) == 3
        assert pieces[0].total_bytes == len(whole)
        assert pieces[0].max_message_bytes == MAX_MESSAGE_BYTES
        assert pieces[0].max_answer_bytes == MAX_ANSWER_BYTES
        assert all(not p.total_bytes for p in pieces[1:])
        assert pb.LookupStudyResponse.FromString(whole) == running.stub.LookupStudy(lookup)
        fresh_for = pb.LookupStudyResponse(
            fresh_for_ms=pb.LookupStudyResponse.FromString(whole).fresh_for_ms
        )
        assert len(whole) == encode.study_hit_size(model_of(study)) + fresh_for.ByteSize()
    finally:
        _stop(running)


def test_a_response_is_cut_into_pieces_that_make_it_up_again():
    response = bytes(range(256)) * 10
    pieces = [pb.StreamLookupQueryResponse.FromString(p) for p in encode.stream(response, 1000, 7)]
    assert [len(p.chunk) for p in pieces] == [1000, 1000, 560]
    assert [(p.total_bytes, p.max_message_bytes) for p in pieces] == [(2560, 7), (0, 0), (0, 0)]
    assert b"".join(p.chunk for p in pieces) == response


def test_hit_sizes_are_those_of_the_encoded_hits():
    studies = [model_of(make_study(n, 2, 3)) for n in (1, 2)] + [model_of(big_study(3, 1, 200))]
    assert encode.query_hit_size(studies) == len(encode.query_hit(studies))
    assert encode.study_hit_size(studies[2]) == len(encode.study_hit(studies[2]))


def test_a_streamed_miss_is_one_piece_with_the_lease():
    running = start_server()
    try:
        lookup = pb.LookupStudyRequest(namespace="ns", study_uid="1.2.3", query_level=3)
        (piece,) = running.stub.StreamLookupStudy(pb.StreamLookupStudyRequest(request=lookup))
        miss = pb.LookupStudyResponse.FromString(piece.chunk)
        assert not miss.hit and miss.lease
        assert piece.max_message_bytes == MAX_MESSAGE_BYTES
    finally:
        _stop(running)


def test_a_streamed_lookup_without_its_request_is_invalid(stub):
    with pytest.raises(grpc.RpcError) as caught:
        list(stub.StreamLookupQuery(pb.StreamLookupQueryRequest()))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT


class HungBackend(MemoryBackend):
    """A backend whose lookups wait for a gate: a hung cache."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def lookup_answer(self, namespace, key):  # type: ignore[no-untyped-def]  # an override; the base is typed
        self.gate.wait(30)
        return super().lookup_answer(namespace, key)

    def study_answer(self, namespace, study_uid, level):  # type: ignore[no-untyped-def]  # as above
        self.gate.wait(30)
        return super().study_answer(namespace, study_uid, level)


def test_a_hung_cache_is_a_counted_fallback_within_the_default_deadline():
    backend = HungBackend()
    server = CacheServer(Settings(listen="127.0.0.1:0"), backend=backend).start()
    study = study_from_proto(make_study(1, 1, 2))
    upstream = CountingArchive(study)
    searcher = CachedSearcher(
        upstream, target=f"127.0.0.1:{server.port}", namespace="ns", failure_threshold=2
    )
    try:
        found = searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE)
        assert found.uid == study.uid and upstream.calls == 1
        assert searcher.breaker.state is State.CLOSED  # one fault: below the threshold
        searcher.find_studies(Query(StudyInstanceUID=study.uid))
        assert upstream.calls == 2
        assert searcher.breaker.state is State.OPEN  # two faults in a row, both counted
    finally:
        backend.gate.set()
        searcher.client.close()
        server.stop(grace=0)


def test_a_server_with_a_small_limit_is_never_sent_a_store_it_could_not_return():
    running = start_server(max_message_bytes=64 * KIB, max_answer_bytes=64 * KIB)
    study = study_from_proto(big_study(1, 1, 200))  # about 150 KB
    upstream = CountingArchive(study)
    searcher = CachedSearcher(upstream, target=running.target, namespace="ns")
    try:
        for _ in range(2):
            searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE)
        assert upstream.calls == 2  # both misses: nothing was stored
        assert searcher.client.server_max_answer_bytes == 64 * KIB  # learnt at the miss
        assert searcher.breaker.state is State.CLOSED  # and no store failed
        (stats,) = running.stub.GetStats(pb.GetStatsRequest(namespace="ns")).namespaces
        assert stats.studies == 0 and stats.hits == 0
    finally:
        searcher.client.close()
        _stop(running)


def test_an_answer_larger_than_the_clients_limit_is_a_fault_never_a_hit(server):
    study = study_from_proto(big_study(1, 1, 200))
    with CacheClient(server.target, timeout=5) as writer:
        assert writer.store_study("ns", study, QueryLevels.INSTANCE)
    small = CacheClient(server.target, max_answer_bytes=64 * KIB)
    upstream = CountingArchive(study)
    searcher = CachedSearcher(upstream, namespace="ns", client=small, failure_threshold=1)
    try:
        with pytest.raises(CacheUnavailable) as caught:
            small.lookup_study("ns", study.uid, QueryLevels.INSTANCE)
        assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE)
        assert upstream.calls == 1
        assert searcher.breaker.state is State.OPEN
    finally:
        small.close()
