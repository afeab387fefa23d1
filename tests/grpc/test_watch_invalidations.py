"""WatchInvalidations over a real server: numbering, keys, heartbeats, its end; fresh_for_ms."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import invalidations_pb2, objects_pb2, query_pb2
from tests.grpc.conftest import RunningServer, start_server
from tests.support.messages import make_study, text_element

STUDY = make_study(1, 1, 2)
QIDO = query_pb2.PROTOCOL_QIDO_RS
TIMEOUT = 10  # generous: nothing here waits on timing, only for messages


def watch(running: RunningServer, namespace: str = "ns") -> Any:
    request = invalidations_pb2.WatchInvalidationsRequest(namespace=namespace)
    return running.stub.WatchInvalidations(request, timeout=60)


def invalidations(stream: Any, count: int) -> list[invalidations_pb2.WatchInvalidationsResponse]:
    """The next ``count`` Invalidation messages; each heartbeat between repeats the last number."""
    found: list[invalidations_pb2.WatchInvalidationsResponse] = []
    last = None
    for message in stream:
        if message.WhichOneof("kind") == "heartbeat":
            if last is not None:
                assert message.sequence == last
            continue
        found.append(message)
        last = message.sequence
        if len(found) == count:
            return found
    raise AssertionError("the stream ended")


@pytest.fixture
def running() -> Iterator[RunningServer]:
    running = start_server()
    yield running
    running.channel.close()
    running.server.stop(grace=0)


def test_the_first_message_is_a_heartbeat_numbered_0_with_its_deadline(running):
    stream = watch(running)
    first = next(stream)
    assert first.sequence == 0 and first.WhichOneof("kind") == "heartbeat"
    assert first.heartbeat.heartbeat_interval_ms == 50
    assert first.heartbeat.heartbeat_deadline_ms == 250
    second = next(stream)  # nothing happened: another heartbeat, still 0
    assert second.sequence == 0 and second.WhichOneof("kind") == "heartbeat"
    stream.cancel()


def test_an_object_invalidation_names_its_study_under_every_protocol(running):
    stream = watch(running)
    next(stream)
    reference = objects_pb2.ObjectReference(
        series=objects_pb2.SeriesReference(study_uid=STUDY.uid, series_uid=STUDY.series[0].uid)
    )
    running.stub.Invalidate(pb.InvalidateRequest(namespace="ns", reference=reference))
    found = invalidations(stream, 4)
    assert [m.sequence for m in found] == [1, 2, 3, 4]
    assert {m.invalidation.study_uid for m in found} == {STUDY.uid}
    assert sorted(m.invalidation.protocol for m in found) == [0, 1, 2, 3]
    stream.cancel()


def test_a_namespace_invalidation_has_no_study(running):
    stream = watch(running)
    next(stream)
    running.stub.Invalidate(pb.InvalidateRequest(namespace="ns"))
    found = invalidations(stream, 4)
    assert {m.invalidation.study_uid for m in found} == {""}
    stream.cancel()


def test_every_write_names_its_studies_in_its_protocol(running):
    stream = watch(running)
    next(stream)
    running.stub.StoreStudy(
        pb.StoreStudyRequest(namespace="ns", study=STUDY, query_level=3, protocol=QIDO)
    )
    other = make_study(2)
    running.stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[other]))
    query = query_pb2.Query(patient_id="PAT1")
    running.stub.StoreQuery(
        pb.StoreQueryRequest(namespace="ns", query=query, studies=[STUDY], protocol=QIDO)
    )
    found = invalidations(stream, 3)
    keys = [(m.invalidation.protocol, m.invalidation.study_uid) for m in found]
    assert keys == [(QIDO, STUDY.uid), (0, other.uid), (QIDO, STUDY.uid)]
    stream.cancel()


def test_a_watcher_hears_only_its_namespace(running):
    stream = watch(running, "ns-a")
    next(stream)
    running.stub.Invalidate(pb.InvalidateRequest(namespace="ns-b"))
    running.stub.AddObjects(pb.AddObjectsRequest(namespace="ns-a", studies=[STUDY]))
    (only,) = invalidations(stream, 1)
    assert only.sequence == 1 and only.invalidation.study_uid == STUDY.uid
    stream.cancel()


def test_a_bad_namespace_is_invalid():
    running = start_server()
    try:
        with pytest.raises(grpc.RpcError) as caught:
            next(watch(running, "no spaces"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    finally:
        running.server.stop(grace=0)


def test_a_stopping_server_ends_its_streams_unavailable():
    running = start_server()
    stream = watch(running)
    next(stream)
    running.server.stop(grace=0)
    with pytest.raises(grpc.RpcError) as caught:
        for _ in stream:
            pass
    assert caught.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


def test_streams_beyond_half_the_workers_are_refused():
    running = start_server(workers=2)  # one stream at most
    try:
        first = watch(running)
        next(first)
        with pytest.raises(grpc.RpcError) as caught:
            next(watch(running))
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        first.cancel()
    finally:
        running.server.stop(grace=0)


def test_hits_say_the_time_left_before_their_expiry_on_the_servers_clock(running):
    query = query_pb2.Query(patient_id="PAT1")
    running.stub.StoreQuery(
        pb.StoreQueryRequest(namespace="ns", query=query, studies=[STUDY], ttl_seconds=100)
    )
    running.stub.StoreStudy(
        pb.StoreStudyRequest(namespace="ns", study=STUDY, query_level=3, ttl_seconds=50)
    )
    running.clock.advance(30)
    found = running.stub.LookupQuery(pb.LookupQueryRequest(namespace="ns", query=query))
    assert found.hit and found.fresh_for_ms == 70_000
    study = running.stub.LookupStudy(
        pb.LookupStudyRequest(namespace="ns", study_uid=STUDY.uid, query_level=3)
    )
    assert study.hit and study.fresh_for_ms == 20_000
    miss = running.stub.LookupStudy(
        pb.LookupStudyRequest(namespace="ns", study_uid=make_study(9).uid, query_level=3)
    )
    assert not miss.hit and miss.fresh_for_ms == 0


def test_a_rewrite_with_other_attributes_is_announced(running):
    stream = watch(running)
    next(stream)
    changed = objects_pb2.Study()
    changed.CopyFrom(STUDY)
    changed.attributes.elements[0x00081030].CopyFrom(text_element("LO", "other"))
    running.stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[changed]))
    (message,) = invalidations(stream, 1)
    assert message.invalidation.study_uid == STUDY.uid
    stream.cancel()
