"""Conversion between proto ``Study``/``Series``/``Instance`` and dicomtrolley's objects.

dicomtrolley links every object to its parent (``Series.parent`` is the Study,
``Instance.parent`` the Series) and its children (``Study.series``,
``Series.instances``, as tuples). The objects are built here the way
dicomtrolley's own parser builds them (``DICOMParseTree.as_study``): parent
first with empty children, children with the parent link, then the children
tuple assigned. Pydantic's validated constructor is used because it is faster
than ``model_construct`` (0.9 against 1.9 us per Instance with its parent link).
Each object's attributes come back as a ``DeferredDataset``: the wire bytes of
its Dataset, built into pydicom elements the first time any is read (see
``deferred``), so a hit of 10,000 instances costs what its uids and links cost.
Asked to (``pause_gc``), the garbage collector is paused while a hit is built,
once for the whole answer (see ``collector``). A hit read through the views
(``view``, ``studies_from_view``) gives the same objects without parsing its
Datasets at all: each deferred dataset takes the bytes its Dataset came in, and
the objects are made by ``trolley``'s shortcuts instead of the validated
constructors (the same state, checked at import).

An object whose pydicom Dataset is empty goes on the wire without attributes,
which the contract reads as "only a path to its children": dicomtrolley's
parser gives a study or series an empty Dataset when the answer held only its
descendants, and such a placeholder must never overwrite cached attributes.
Coming back, an object without attributes gets an empty Dataset, as in
dicomtrolley. MINT's subclasses (``MintStudy`` with its ``mint_uuid``) come back
as plain dicomtrolley objects.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from dicomtrolley.core import DICOMObject, Instance, Series, Study
from pydicom.dataset import Dataset

from dicomcache.client.convert import collector
from dicomcache.client.convert.dataset import from_pydicom
from dicomcache.client.convert.deferred import deferred_dataset
from dicomcache.client.convert.trolley import new_instance, new_series, new_study
from dicomcache.v1 import objects_pb2


def study_to_proto(study: Study) -> objects_pb2.Study:
    """Convert a dicomtrolley Study, with its series and instances, to a proto Study."""
    message = objects_pb2.Study(uid=study.uid)
    if len(study.data):
        message.attributes.CopyFrom(from_pydicom(study.data))
    message.series.extend(series_to_proto(series) for series in study.series)
    return message


def series_to_proto(series: Series) -> objects_pb2.Series:
    """Convert a dicomtrolley Series, with its instances, to a proto Series."""
    message = objects_pb2.Series(uid=series.uid)
    if len(series.data):
        message.attributes.CopyFrom(from_pydicom(series.data))
    message.instances.extend(instance_to_proto(instance) for instance in series.instances)
    return message


def instance_to_proto(instance: Instance) -> objects_pb2.Instance:
    """Convert a dicomtrolley Instance to a proto Instance."""
    message = objects_pb2.Instance(uid=instance.uid)
    if len(instance.data):
        message.attributes.CopyFrom(from_pydicom(instance.data))
    return message


def rooted_tree_to_proto(obj: DICOMObject) -> objects_pb2.Study:
    """The proto Study tree that carries obj, its ancestors as paths without attributes.

    Args:
        obj: a dicomtrolley Study, Series or Instance (with its parent links).

    Returns:
        A proto Study: obj itself when it is a Study, else a path down to obj.

    Raises:
        TypeError: for an object that is none of the three.
    """
    if isinstance(obj, Study):
        return study_to_proto(obj)
    if isinstance(obj, Series):
        return objects_pb2.Study(uid=obj.parent.uid, series=[series_to_proto(obj)])
    if isinstance(obj, Instance):
        series = objects_pb2.Series(uid=obj.parent.uid, instances=[instance_to_proto(obj)])
        return objects_pb2.Study(uid=obj.parent.parent.uid, series=[series])
    raise TypeError(f"not a dicomtrolley Study, Series or Instance: {type(obj).__name__}")


def studies_from_proto(
    messages: Iterable[objects_pb2.Study], *, pause_gc: bool = False
) -> list[Study]:
    """Convert proto Studies to dicomtrolley Studies, in order.

    Args:
        messages: the proto Studies.
        pause_gc: pause the garbage collector while the objects are built, once
            for all of them (see ``collector``).
    """
    with _build(pause_gc):
        return [_study(message) for message in messages]


def study_from_proto(message: objects_pb2.Study, *, pause_gc: bool = False) -> Study:
    """Convert a proto Study to a dicomtrolley Study with linked series and instances.

    Args:
        message: the proto Study.
        pause_gc: pause the garbage collector while the objects are built (see ``collector``).
    """
    with _build(pause_gc):
        return _study(message)


def _build(pause_gc: bool) -> AbstractContextManager[None]:
    return collector.paused() if pause_gc else nullcontext()


def _study(message: objects_pb2.Study) -> Study:
    study = Study(uid=message.uid, data=_dataset(message), series=())
    study.series = tuple(series_from_proto(series, study) for series in message.series)
    return study


def series_from_proto(message: objects_pb2.Series, parent: Study) -> Series:
    """Convert a proto Series to a dicomtrolley Series of parent, with linked instances.

    The series is not added to ``parent.series``; that is the caller's choice.
    """
    series = Series(uid=message.uid, data=_dataset(message), parent=parent, instances=())
    series.instances = tuple(
        Instance(uid=instance.uid, data=_dataset(instance), parent=series)
        for instance in message.instances
    )
    return series


def instance_from_proto(message: objects_pb2.Instance, parent: Series) -> Instance:
    """Convert a proto Instance to a dicomtrolley Instance of parent (not added to it)."""
    return Instance(uid=message.uid, data=_dataset(message), parent=parent)


def _dataset(message: objects_pb2.Study | objects_pb2.Series | objects_pb2.Instance) -> Dataset:
    if message.HasField("attributes"):
        return deferred_dataset(message.attributes.SerializeToString())
    return Dataset()


# -- hits read through the views (``view``): attributes as the bytes that came --------


def studies_from_view(messages: Iterable[Any], *, pause_gc: bool = False) -> list[Study]:
    """``studies_from_proto`` of view Studies (``view.Study``): the same objects, cheaper.

    Each object's dataset is deferred on the very bytes its Dataset came in,
    where ``studies_from_proto`` serializes each parsed Dataset again; the objects
    are made by ``trolley``'s shortcuts. ``pause_gc`` as for ``studies_from_proto``.
    """
    with _build(pause_gc):
        return [_view_study(message) for message in messages]


def study_from_view(message: Any, *, pause_gc: bool = False) -> Study:
    """``study_from_proto`` of a view Study (see ``studies_from_view``)."""
    with _build(pause_gc):
        return _view_study(message)


def _view_study(message: Any) -> Study:
    study = new_study(message.uid, _view_dataset(message))
    children = []
    for series_message in message.series:
        series = new_series(series_message.uid, _view_dataset(series_message), study)
        instances = []
        for instance in series_message.instances:
            # _view_dataset inline: this line runs once per instance of a hit.
            data = (
                deferred_dataset(instance.attributes)
                if instance.HasField("attributes")
                else Dataset()
            )
            instances.append(new_instance(instance.uid, data, series))
        series.instances = tuple(instances)
        children.append(series)
    study.series = tuple(children)
    return study


def _view_dataset(message: Any) -> Dataset:
    if message.HasField("attributes"):
        return deferred_dataset(message.attributes)
    return Dataset()
