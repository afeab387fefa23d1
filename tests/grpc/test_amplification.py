"""A small request cannot make the server build much more than its response may hold.

Shown by accounting, not timings: a backend wrapper counts every object the
service fetches and the encoded bytes of each.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from dicomcache.server.api import encode
from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.server.model import Address, CachedObject
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, objects_pb2
from tests.support.clock import FakeClock
from tests.support.messages import make_study, text_element

MIB = 1024 * 1024
LIMIT = 4 * MIB


class CountingBackend:
    """A MemoryBackend that counts what ``get_object`` hands the service."""

    def __init__(self, inner: MemoryBackend) -> None:
        self.inner = inner
        self.fetches = 0
        self.fetched_bytes = 0

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        found = self.inner.get_object(namespace, address)
        self.fetches += 1
        self.fetched_bytes += len(encode.objects_result([found]))
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def counted() -> Iterator[tuple[CountingBackend, cache_service_pb2_grpc.CacheServiceStub]]:
    config = Settings(listen="127.0.0.1:0", max_message_bytes=LIMIT, max_memory=256 * MIB)  # type: ignore[arg-type]  # pydantic parses the sizes
    backend = CountingBackend(
        MemoryBackend(ttl=3600, negative_ttl=60, max_bytes=256 * MIB, clock=FakeClock())
    )
    server = CacheServer(config, backend=backend).start()  # type: ignore[arg-type]  # a Backend by delegation
    channel = grpc.insecure_channel(
        f"127.0.0.1:{server.port}", options=[("grpc.max_receive_message_length", 2 * LIMIT)]
    )
    yield backend, cache_service_pb2_grpc.CacheServiceStub(channel)
    channel.close()
    server.stop(grace=0)


def _big_study(n: int, n_series: int, text_bytes: int) -> objects_pb2.Study:
    """A study whose series each carry about ``10 * text_bytes`` of attributes."""
    study = make_study(n, n_series=n_series, n_instances=10)
    for series in study.series:
        for instance in series.instances:
            instance.attributes.elements[0x00081030].CopyFrom(text_element("LO", "x" * text_bytes))
    return study


def _study_ref(uid: str) -> objects_pb2.ObjectReference:
    return objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=uid))


def test_many_references_to_one_study_fetch_it_once_and_are_refused(counted):
    backend, stub = counted
    study = _big_study(1, n_series=5, text_bytes=11_000)  # about 0.55 MB, as in the issue
    stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[study]))
    one = study.ByteSize()
    assert 0.5 * MIB < one < 0.6 * MIB
    request = pb.GetObjectsRequest(namespace="ns", references=[_study_ref(study.uid)] * 1000)
    assert request.ByteSize() < 100_000
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetObjects(request)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert backend.fetches == 1
    assert backend.fetched_bytes < one + 1000


def test_distinct_references_stop_at_the_limit(counted):
    backend, stub = counted
    studies = [_big_study(n, n_series=1, text_bytes=40_000) for n in range(1, 41)]  # 0.4 MB each
    for study in studies:
        stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[study]))
    largest = max(s.ByteSize() for s in studies)
    refs = [_study_ref(s.uid) for s in studies]  # 16 MB in all, four times the limit
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetObjects(pb.GetObjectsRequest(namespace="ns", references=refs))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert backend.fetched_bytes <= LIMIT + largest + 1000
    assert backend.fetches < len(refs) // 2


def test_repeated_references_get_one_result_each(counted):
    backend, stub = counted
    study = make_study(1, n_series=2, n_instances=2)
    stub.AddObjects(pb.AddObjectsRequest(namespace="ns", studies=[study]))
    missing = _study_ref("1.2.3.999")
    refs = [_study_ref(study.uid), missing, _study_ref(study.uid), missing]
    response = stub.GetObjects(pb.GetObjectsRequest(namespace="ns", references=refs))
    assert [r.found for r in response.results] == [True, False, True, False]
    assert response.results[0] == response.results[2]
    assert response.results[0].study == study
    assert backend.fetches == 2
