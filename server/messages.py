"""Translation between wire messages and the plain model, on the write path.

Reads go the other way through ``wire`` (hand-encoded from stored bytes).
"""

from __future__ import annotations

from dicomcache.server.model import InstanceData, NamespaceStats, SeriesData, Stats, StudyData
from dicomcache.v1 import cache_service_pb2, objects_pb2


def _attributes(obj: objects_pb2.Study | objects_pb2.Series | objects_pb2.Instance) -> bytes | None:
    return obj.attributes.SerializeToString() if obj.HasField("attributes") else None


def study_from_proto(study: objects_pb2.Study) -> StudyData:
    """The model of a Study message; absent attributes stay None (a path only)."""
    return StudyData(
        uid=study.uid,
        attributes=_attributes(study),
        series=tuple(
            SeriesData(
                uid=s.uid,
                attributes=_attributes(s),
                instances=tuple(InstanceData(i.uid, _attributes(i)) for i in s.instances),
            )
            for s in study.series
        ),
    )


def _namespace_stats(stats: NamespaceStats) -> cache_service_pb2.NamespaceStats:
    return cache_service_pb2.NamespaceStats(
        namespace=stats.namespace,
        studies=stats.studies,
        series=stats.series,
        instances=stats.instances,
        queries=stats.queries,
        bytes=stats.bytes,
        hits=stats.hits,
        misses=stats.misses,
        evictions=stats.evictions,
        expirations=stats.expirations,
    )


def stats_to_proto(stats: Stats) -> cache_service_pb2.GetStatsResponse:
    """The GetStats response for the backend's figures."""
    return cache_service_pb2.GetStatsResponse(
        namespaces=[_namespace_stats(s) for s in stats.namespaces],
        total_bytes=stats.total_bytes,
        max_bytes=stats.max_bytes,
    )
