"""Requests to the plain model: the write path's messages become ``StudyData``.

Responses go the other way in ``encode``.
"""

from __future__ import annotations

from dicomcache.server.model import InstanceData, SeriesData, StudyData
from dicomcache.v1 import objects_pb2


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
