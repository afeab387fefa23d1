"""The requests the server rows send: stored once through the client, then replayed as bytes.

``HotStudy`` is the study every hit asks for: written with StoreStudy as a complete
listing down to instances (as a CachedSearcher stores ``find_study_by_id``), so both
a study-level and an 80-instance lookup are hits. ``load_bulk`` fills a server with
many other studies through AddObjects in large batches. No clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, objects_pb2, query_pb2

from .corpus import STANDARD, BulkStudies, Shape, proto_study, study_uid
from .load import Call

NAMESPACE = "bench"
SERVICE = "/dicomcache.v1.CacheService"
LOOKUP_STUDY = f"{SERVICE}/LookupStudy"

LEVELS = {"study": query_pb2.QUERY_LEVEL_STUDY, "instance": query_pb2.QUERY_LEVEL_INSTANCE}


@dataclass(frozen=True)
class HotStudy:
    """The study that hits ask for: study ``index`` of ``shape``, in ``namespace``.

    Stored as a listing complete down to instances unless told otherwise, as a
    CachedSearcher stores ``find_study_by_id(uid, INSTANCE)``.
    """

    index: int = 0
    shape: Shape = STANDARD
    namespace: str = NAMESPACE

    def store(
        self, channel: grpc.Channel, ttl_seconds: int = 0, level: str = "instance"
    ) -> objects_pb2.Study:
        """Store the study as a listing complete down to ``level``; returns what was sent."""
        study = proto_study(self.index, self.shape)
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        stub.StoreStudy(
            pb.StoreStudyRequest(
                namespace=self.namespace,
                study=study,
                query_level=LEVELS[level],
                ttl_seconds=ttl_seconds,
            ),
            timeout=60,
        )
        return study

    def lookup(self, target: str, level: str, label: str) -> Call:
        """The LookupStudy call for this study down to ``level`` ("study" or "instance")."""
        request = pb.LookupStudyRequest(
            namespace=self.namespace, study_uid=self.uid, query_level=LEVELS[level]
        )
        return Call(label, target, LOOKUP_STUDY, request.SerializeToString())

    @property
    def uid(self) -> str:
        """The StudyInstanceUID."""
        return study_uid(self.index)


def check_hit(channel: grpc.Channel, call: Call) -> bytes:
    """Send ``call`` once and return the response bytes; raise unless it is a hit."""
    raw: Callable[..., bytes] = channel.unary_unary(call.method)
    response = raw(call.payload, timeout=60)
    if not pb.LookupStudyResponse.FromString(response).hit:
        raise RuntimeError(f"{call.label}: expected a hit, got a miss")
    return response


def load_bulk(
    channel: grpc.Channel,
    instances: int,
    *,
    shape: Shape = STANDARD,
    first: int = 1,
    batch_instances: int = 4000,
    ttl_seconds: int = 0,
    namespace: str = NAMESPACE,
) -> int:
    """AddObjects enough studies of ``shape`` for ``instances`` instances; returns the count.

    Studies are numbered from ``first``, so they never collide with the hot study (0).
    """
    bulk = BulkStudies(shape)
    stub = cache_service_pb2_grpc.CacheServiceStub(channel)
    studies = max(1, round(instances / shape.per_study))
    per_batch = max(1, batch_instances // shape.per_study)
    for start in range(first, first + studies, per_batch):
        count = min(per_batch, first + studies - start)
        request = pb.AddObjectsRequest(
            namespace=namespace, studies=list(bulk.studies(start, count)), ttl_seconds=ttl_seconds
        )
        stub.AddObjects(request, timeout=600)
    return studies * shape.per_study


def stats(channel: grpc.Channel, namespace: str = NAMESPACE) -> pb.NamespaceStats:
    """The server's counters of ``namespace``."""
    stub = cache_service_pb2_grpc.CacheServiceStub(channel)
    response = stub.GetStats(pb.GetStatsRequest(namespace=namespace), timeout=60)
    return response.namespaces[0] if response.namespaces else pb.NamespaceStats()
