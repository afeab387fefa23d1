"""Requests to the plain model: the write path's messages become ``StudyData``.

Responses go the other way in ``encode``.
"""

from __future__ import annotations

from dicomcache.server.model import InstanceData, SeriesData, StudyData
from dicomcache.v1 import objects_pb2


def attributes_of(
    obj: objects_pb2.Study | objects_pb2.Series | objects_pb2.Instance,
) -> bytes | None:
    """An object's serialized attributes; None when absent (a path only)."""
    return obj.attributes.SerializeToString() if obj.HasField("attributes") else None


def study_from_proto(study: objects_pb2.Study) -> StudyData:
    """The model of a Study message; absent attributes stay None (a path only)."""
    return StudyData(
        uid=study.uid,
        attributes=attributes_of(study),
        series=tuple(
            SeriesData(
                uid=s.uid,
                attributes=attributes_of(s),
                instances=tuple(InstanceData(i.uid, attributes_of(i)) for i in s.instances),
            )
            for s in study.series
        ),
    )
