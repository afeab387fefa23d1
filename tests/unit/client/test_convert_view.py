"""Hits read through the views (``convert.view``) give exactly what the contract's messages give."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from dicomtrolley.core import Instance, Series, Study
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from dicomcache.client.convert import deferred, trolley, view
from dicomcache.client.convert.dicom_json import dataset_from_json
from dicomcache.client.convert.objects import (
    studies_from_proto,
    studies_from_view,
    study_from_proto,
    study_from_view,
)
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2
from tests.support.strategies import dicom_json_datasets

# None: no attributes on the wire (a path); {} an empty Dataset; else a DICOM JSON object.
_ATTRIBUTES = st.one_of(st.none(), st.just({}), dicom_json_datasets(pydicom_safe=True, max_size=4))


def _with(message: Any, attributes: dict[str, Any] | None) -> Any:
    if attributes is not None:
        message.attributes.CopyFrom(dataset_from_json(attributes))
    return message


@st.composite
def _studies(draw: st.DrawFn) -> objects_pb2.Study:
    n = draw(st.integers(1, 9))
    study = _with(objects_pb2.Study(uid=f"1.2.{n}"), draw(_ATTRIBUTES))
    for s in range(draw(st.integers(0, 3))):
        series = _with(study.series.add(uid=f"1.2.{n}.{s}"), draw(_ATTRIBUTES))
        for i in range(draw(st.integers(0, 3))):
            _with(series.instances.add(uid=f"1.2.{n}.{s}.{i}"), draw(_ATTRIBUTES))
    return study


def _pydantic_state(obj: Any) -> tuple[Any, ...]:
    return (
        type(obj),
        list(vars(obj)),
        obj.__pydantic_fields_set__,
        obj.__pydantic_extra__,
        obj.__pydantic_private__,
    )


def _objects(study: Study) -> list[Any]:
    return [study, *study.series, *(i for s in study.series for i in s.instances)]


def _assert_same(built: Study, reference: Study) -> None:
    """Same tree, links, types, pydantic state and datasets, before and after a read."""
    pairs = list(zip(_objects(built), _objects(reference), strict=True))
    for ours, theirs in pairs:
        assert _pydantic_state(ours) == _pydantic_state(theirs)
        assert ours.uid == theirs.uid
        assert type(ours.data) is type(theirs.data)
        assert list(vars(ours.data)) == list(vars(theirs.data))
    for ours, theirs in pairs:
        if isinstance(ours, Series):
            assert type(ours.instances) is tuple
            assert [i.parent for i in ours.instances] == [ours] * len(ours.instances)
        if isinstance(ours, Instance):
            assert ours.parent.uid == theirs.parent.uid
        assert ours.data == theirs.data  # builds both
        assert ours.data.to_json_dict() == theirs.data.to_json_dict()
        assert type(ours.data) is type(theirs.data) is Dataset
        assert list(vars(ours.data)) == list(vars(theirs.data))


@given(_studies(), st.integers(0, 2**40))
def test_a_study_hit_through_the_view_is_the_contracts(study: objects_pb2.Study, left: int) -> None:
    wire = pb.LookupStudyResponse(hit=True, study=study, fresh_for_ms=left).SerializeToString()
    seen = view.LookupStudyResponse.FromString(wire)
    assert (seen.hit, seen.lease, seen.fresh_for_ms) == (True, 0, left)
    reference = study_from_proto(pb.LookupStudyResponse.FromString(wire).study)
    _assert_same(study_from_view(seen.study), reference)


@given(st.lists(_studies(), max_size=3))
def test_a_query_hit_through_the_view_is_the_contracts(studies: list[objects_pb2.Study]) -> None:
    wire = pb.LookupQueryResponse(hit=True, studies=studies).SerializeToString()
    built = studies_from_view(view.LookupQueryResponse.FromString(wire).studies, pause_gc=True)
    reference = studies_from_proto(pb.LookupQueryResponse.FromString(wire).studies)
    assert len(built) == len(reference)
    for ours, theirs in zip(built, reference, strict=True):
        _assert_same(ours, theirs)


@given(_studies(), st.integers(0, 2**63))
def test_the_view_reads_and_writes_the_contracts_wire_form(
    study: objects_pb2.Study, lease: int
) -> None:
    message = pb.LookupStudyResponse(hit=True, study=study, lease=lease)
    seen = view.LookupStudyResponse.FromString(message.SerializeToString())
    assert pb.LookupStudyResponse.FromString(seen.SerializeToString()) == message


def test_an_empty_dataset_is_not_no_dataset() -> None:
    study = objects_pb2.Study(uid="1.2")
    study.attributes.SetInParent()  # present, with no elements: zero bytes on the wire
    seen = view.Study.FromString(study.SerializeToString())
    assert seen.HasField("attributes") and seen.attributes == b""
    assert type(study_from_view(seen).data) is deferred.DeferredDataset
    assert type(study_from_view(view.Study(uid="1.2")).data) is Dataset


def test_an_unread_dataset_holds_its_own_bytes_not_the_whole_answer() -> None:
    study = objects_pb2.Study(uid="1.2")
    study.series.add(uid="1.2.3").instances.add(uid="1.2.3.4").attributes.SetInParent()
    wire = pb.LookupStudyResponse(hit=True, study=study).SerializeToString()
    built = study_from_view(view.LookupStudyResponse.FromString(wire).study)
    data = built.series[0].instances[0].data
    assert vars(data)[deferred._WIRE] == b""  # its own (empty) Dataset, as bytes


def test_the_views_carry_every_field_of_the_contracts_messages() -> None:
    for name in ("Instance", "Series", "Study", "LookupStudyResponse", "LookupQueryResponse"):
        ours = getattr(view, name).DESCRIPTOR
        source = getattr(pb, name, None) or getattr(objects_pb2, name)
        theirs = source.DESCRIPTOR
        assert [(f.name, f.number) for f in ours.fields] == [
            (f.name, f.number) for f in theirs.fields
        ]


def test_the_shortcuts_are_in_use_under_these_versions() -> None:
    assert trolley.new_instance is trolley._instance_shortcut
    assert trolley.new_series is trolley._series_shortcut
    assert trolley.new_study is trolley._study_shortcut
    assert deferred._TEMPLATE is not None


def test_each_shortcut_has_fields_set_of_its_own() -> None:
    study = trolley.new_study("1.2", Dataset())
    series = trolley.new_series("1.2.3", Dataset(), study)
    one, two = (trolley.new_instance(uid, Dataset(), series) for uid in ("1.2.3.4", "1.2.3.5"))
    assert one.__pydantic_fields_set__ is not two.__pydantic_fields_set__
    assert one == Instance(uid="1.2.3.4", data=Dataset(), parent=series)


def test_a_shortcut_that_builds_otherwise_gives_way_to_the_constructor(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def wrong(uid: str, data: Dataset) -> Study:
        return Study(uid=uid + "9", data=data, series=())

    with caplog.at_level(logging.WARNING):
        chosen = trolley._checked(wrong, trolley._study_by_pydantic, "1.2", Dataset())
    assert chosen is trolley._study_by_pydantic
    assert "does not build what the validated constructor builds" in caplog.text
