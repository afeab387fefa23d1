"""An archive's DICOM JSON answer as the study trees the backends keep, and back.

The backends keep an answer as study trees (``StudyData``), shared with the typed
RPCs: a series-level answer is each study as a path (no attributes) holding its
series with their attributes, an instance-level one each study and series as
paths holding the instances. A tree lists each study once, so it cannot say that
the archive listed study A's first series, then B's, then A's second: the memory
backend keeps a study listed twice as given, the Redis backend merges it into its
first place (both behaviours are allowed by the Backend contract). So the tree is
built grouped (studies in the order of their first object, each study's series
likewise, instances in order), which both backends keep exactly, and when the
archive's order may differ from the tree's (``Normalized.ordered``), the order is
kept beside it as an order record: one study-level object of its own, whose
attributes list the answer's addresses in the archive's order. Its uid starts with
"order.", never a UID (UIDs are digits and dots), so it names no study.

A hit is rebuilt from the objects' attributes (the archive's JSON converted to the
typed Dataset and back: exact, ``client/convert/dicom_json.py``) in the recorded
order. Pure functions: thread-safe, no clock.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dicomcache.client.convert.dicom_json import dataset_from_json, dataset_to_json
from dicomcache.client.errors import DicomJsonError
from dicomcache.server.model import Address, InstanceData, Level, SeriesData, StudyData
from dicomcache.v1 import dataset_pb2

RECORD_PREFIX = "order."
_UID_TAGS = {Level.STUDY: "0020000D", Level.SERIES: "0020000E", Level.INSTANCE: "00080018"}


@dataclass(frozen=True)
class Tree:
    """An answer as study trees, and its objects' addresses in the archive's order."""

    studies: list[StudyData]
    order: list[Address]


def to_tree(
    objects: Sequence[dict[str, Any]], level: Level, study_uid: str = "", series_uid: str = ""
) -> Tree | None:
    """The answer's objects as study trees, grouped, and the archive's order.

    Args:
        objects: the archive's DICOM JSON objects, each at ``level``.
        level: the level searched.
        study_uid, series_uid: the path's uids, for objects that leave them out.
    Returns:
        None when the answer cannot be kept: an object without its uids, one listed
        twice, or one that is not DICOM JSON. It is then served, not stored.
    """
    studies: dict[str, dict[str, dict[str, bytes | None]]] = {}
    study_data: dict[str, bytes | None] = {}
    series_data: dict[tuple[str, str], bytes | None] = {}
    order: list[Address] = []
    try:
        for obj in objects:
            address = _address(obj, level, study_uid, series_uid)
            if address is None:
                return None
            data = dataset_from_json(obj).SerializeToString(deterministic=True)
            series = studies.setdefault(address[0], {})
            if level == Level.STUDY:
                if address[0] in study_data:
                    return None
                study_data[address[0]] = data
            elif level == Level.SERIES:
                if address in series_data:
                    return None
                series.setdefault(address[1], {})
                series_data[(address[0], address[1])] = data
            else:
                instances = series.setdefault(address[1], {})
                if address[2] in instances:
                    return None
                instances[address[2]] = data
            order.append(address)
    except DicomJsonError:
        return None
    trees = [
        StudyData(
            uid,
            study_data.get(uid),
            tuple(
                SeriesData(
                    series_uid_,
                    series_data.get((uid, series_uid_)),
                    tuple(InstanceData(i, d) for i, d in instances.items()),
                )
                for series_uid_, instances in series.items()
            ),
        )
        for uid, series in studies.items()
    ]
    return Tree(trees, order)


def _address(obj: Any, level: Level, study_uid: str, series_uid: str) -> Address | None:
    if not isinstance(obj, dict):
        return None
    study = _uid(obj, Level.STUDY) or study_uid
    if level == Level.STUDY:
        return (study,) if study else None
    series = _uid(obj, Level.SERIES) or series_uid
    if level == Level.SERIES:
        return (study, series) if study and series else None
    instance = _uid(obj, Level.INSTANCE)
    return (study, series, instance) if study and series and instance else None


def _uid(obj: dict[str, Any], level: Level) -> str:
    element = obj.get(_UID_TAGS[level])
    if not isinstance(element, dict):
        return ""
    value = element.get("Value")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]
    return ""


def leaves(studies: Sequence[StudyData], level: Level) -> list[tuple[Address, bytes | None]]:
    """The objects at ``level`` of the trees, in tree order, with their attributes."""
    if level == Level.STUDY:
        return [((study.uid,), study.attributes) for study in studies]
    if level == Level.SERIES:
        return [
            ((study.uid, series.uid), series.attributes)
            for study in studies
            for series in study.series
        ]
    return [
        ((study.uid, series.uid, instance.uid), instance.attributes)
        for study in studies
        for series in study.series
        for instance in series.instances
    ]


def dicom_json(
    studies: Sequence[StudyData], level: Level, order: Sequence[Address] | None = None
) -> list[dict[str, Any]] | None:
    """The DICOM JSON objects of a stored answer, in ``order`` (else in tree order).

    None when the answer cannot be rebuilt: an object at ``level`` without
    attributes (a path that another writer stored), or an order that does not list
    exactly the answer's objects (a record of another answer).
    """
    found = _ordered(leaves(studies, level), order)
    if found is None:
        return None
    objects = []
    for _, data in found:
        if data is None:
            return None
        objects.append(dataset_to_json(dataset_pb2.Dataset.FromString(data)))
    return objects


def stored_text(
    studies: Sequence[StudyData],
    level: Level,
    order: Sequence[Address] | None,
    render: Callable[[bytes], str],
) -> tuple[str, int] | None:
    """A stored answer as its JSON array text and count: ``text(dicom_json(...))``, with
    each object's text from ``render`` (``rendered.Rendered.text``); None as ``dicom_json``."""
    found = _ordered(leaves(studies, level), order)
    if found is None or any(data is None for _, data in found):
        return None
    return "[" + ",".join(render(data) for _, data in found if data is not None) + "]", len(found)


def _ordered(
    found: list[tuple[Address, bytes | None]], order: Sequence[Address] | None
) -> list[tuple[Address, bytes | None]] | None:
    """The objects in ``order`` (None: as they are); None unless it lists exactly them."""
    if order is None:
        return found
    by_address = dict(found)
    if len(by_address) != len(found) or len(order) != len(found) or len(set(order)) != len(order):
        return None
    try:
        return [(address, by_address[address]) for address in order]
    except KeyError:
        return None


def text(objects: Sequence[dict[str, Any]]) -> str:
    """The PS3.18 JSON array as sent: UTF-8 characters as they are, no spaces."""
    return json.dumps(objects, ensure_ascii=False, separators=(",", ":"))


def record_uid(key: bytes) -> str:
    """The uid of the order record of request ``key`` (not a UID: it names no study)."""
    return RECORD_PREFIX + key.hex()


def record(key: bytes, order: Sequence[Address]) -> StudyData:
    """The order record of request ``key``: a study-level object listing the addresses."""
    data = json.dumps([list(address) for address in order], separators=(",", ":")).encode()
    return StudyData(record_uid(key), data)


def order_of(found: object) -> list[Address] | None:
    """The addresses an order record lists, or None when ``found`` is not one."""
    if not isinstance(found, StudyData) or found.attributes is None:
        return None
    try:
        listed = json.loads(found.attributes)
    except ValueError:
        return None
    if not isinstance(listed, list) or not all(
        isinstance(a, list) and all(isinstance(u, str) for u in a) for a in listed
    ):
        return None
    return [tuple(address) for address in listed]
