"""Requests to the plain model: the write path's messages become ``StudyData``.

Each object is a step of the call's work (``server.pacing``): an object's
attributes are serialized anew here, about 5 us each, so an AddObjects of 1.4 MB
(1,700 objects) converted in one go held the interpreter lock 8 ms between two
steps, and a unary StoreStudy at the 4 MiB default limit (some 4,000 instances)
about 20 (issue 11).

Responses go the other way in ``encode``.
"""

from __future__ import annotations

from dicomcache.server.model import InstanceData, SeriesData, StudyData
from dicomcache.server.pacing import step
from dicomcache.v1 import objects_pb2


def attributes_of(
    obj: objects_pb2.Study | objects_pb2.Series | objects_pb2.Instance,
) -> bytes | None:
    """An object's serialized attributes; None when absent (a path only)."""
    return obj.attributes.SerializeToString() if obj.HasField("attributes") else None


def study_from_proto(study: objects_pb2.Study) -> StudyData:
    """The model of a Study message; absent attributes stay None (a path only)."""
    series = []
    for one in study.series:
        instances = []
        for instance in one.instances:
            instances.append(InstanceData(instance.uid, attributes_of(instance)))
            step()
        series.append(SeriesData(one.uid, attributes_of(one), tuple(instances)))
        step()
    return StudyData(uid=study.uid, attributes=attributes_of(study), series=tuple(series))
