"""proto Study/Series/Instance <-> dicomtrolley objects: same tree, same links, same data."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from dicomtrolley.core import Instance, Series, Study
from dicomtrolley.parsing import DICOMParseTree
from hypothesis import given
from hypothesis import strategies as st
from pydicom.dataset import Dataset

from dicomcache.client.convert import collector
from dicomcache.client.convert.objects import (
    instance_from_proto,
    rooted_tree_to_proto,
    series_from_proto,
    studies_from_proto,
    study_from_proto,
    study_to_proto,
)
from dicomcache.v1 import objects_pb2
from tests.support.messages import make_study
from tests.support.strategies import dicom_json_datasets
from tests.support.trees import tree_summary


def _instance_json(study: int, series: int, instance: int, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        **extra,
        "00080018": {"vr": "UI", "Value": [f"1.2.3.{study}.{series}.{instance}"]},
        "0020000D": {"vr": "UI", "Value": [f"1.2.3.{study}"]},
        "0020000E": {"vr": "UI", "Value": [f"1.2.3.{study}.{series}"]},
    }


def _parsed(answer: list[dict[str, Any]]) -> list[Study]:
    """Studies as dicomtrolley's QIDO-RS searcher builds them from an answer."""
    tree = DICOMParseTree()
    for item in answer:
        tree.insert_dataset(Dataset.from_json(item))
    return tree.as_studies()


@given(
    st.lists(
        st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 4)),
        min_size=1,
        max_size=12,
        unique=True,
    ),
    dicom_json_datasets(pydicom_safe=True, max_size=3),
)
def test_instance_answers_round_trip(paths: list[tuple[int, int, int]], extra: dict) -> None:
    studies = _parsed([_instance_json(*path, extra) for path in paths])
    messages = [
        objects_pb2.Study.FromString(study_to_proto(s).SerializeToString()) for s in studies
    ]
    back = studies_from_proto(messages)
    assert [tree_summary(s) for s in back] == [tree_summary(s) for s in studies]
    assert all(type(s.series) is tuple for s in back)
    assert all(type(x.instances) is tuple for s in back for x in s.series)


def test_placeholder_parents_travel_without_attributes() -> None:
    (study,) = _parsed([_instance_json(1, 1, 1, {})])
    message = study_to_proto(study)
    assert not message.HasField("attributes")
    assert not message.series[0].HasField("attributes")
    assert message.series[0].instances[0].HasField("attributes")
    back = study_from_proto(message)
    assert len(back.data) == 0
    assert back.series[0].instances[0].data.SOPInstanceUID == "1.2.3.1.1.1"


def test_study_level_answer_has_no_series() -> None:
    (study,) = _parsed(
        [{"0020000D": {"vr": "UI", "Value": ["1.2.3"]}, "00100020": {"vr": "LO", "Value": ["P"]}}]
    )
    back = study_from_proto(study_to_proto(study))
    assert back.series == ()
    assert back.data.PatientID == "P"


def test_series_and_instance_under_a_given_parent() -> None:
    study = Study(uid="1.2", data=Dataset(), series=())
    series = series_from_proto(
        objects_pb2.Series(uid="1.2.3", instances=[objects_pb2.Instance(uid="1.2.3.4")]), study
    )
    assert series.parent is study
    assert series.instances[0].parent is series
    instance = instance_from_proto(objects_pb2.Instance(uid="1.2.3.5"), series)
    assert instance.parent is series
    assert isinstance(instance, Instance)
    assert study.series == ()  # the caller decides whether to attach them


def test_rooted_tree_of_each_level() -> None:
    (study,) = _parsed([_instance_json(1, 1, 1, {"00100020": {"vr": "LO", "Value": ["P"]}})])
    series = study.series[0]
    instance = series.instances[0]

    assert rooted_tree_to_proto(study) == study_to_proto(study)
    by_series = rooted_tree_to_proto(series)
    assert (by_series.uid, by_series.series[0].uid) == (study.uid, series.uid)
    assert not by_series.HasField("attributes")
    by_instance = rooted_tree_to_proto(instance)
    path = by_instance.series[0].instances[0]
    assert (by_instance.uid, by_instance.series[0].uid, path.uid) == (
        study.uid,
        series.uid,
        instance.uid,
    )
    assert path.attributes.elements[0x00100020].values.items[0].text == "P"
    with pytest.raises(TypeError, match="not a dicomtrolley"):
        rooted_tree_to_proto(Dataset())  # type: ignore[arg-type]


def test_types_are_dicomtrolleys() -> None:
    (study,) = _parsed([_instance_json(1, 1, 1, {})])
    back = study_from_proto(study_to_proto(study))
    assert type(back) is Study
    assert type(back.series[0]) is Series
    assert type(back.series[0].instances[0]) is Instance


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Counts collector pauses: one entry per pause, whether the collector was on inside."""
    entered: list[bool] = []
    real = collector.paused

    @contextmanager
    def counted() -> Iterator[None]:
        with real():
            entered.append(gc.isenabled())
            yield

    monkeypatch.setattr(collector, "paused", counted)
    return entered


def test_the_collector_is_paused_only_when_asked(pauses: list[bool]) -> None:
    messages = [make_study(n, 2, 3) for n in (1, 2, 3)]
    plain = studies_from_proto(messages)
    assert pauses == []
    assert study_from_proto(messages[0]).uid == messages[0].uid
    assert pauses == []
    paused = studies_from_proto(messages, pause_gc=True)
    assert [tree_summary(s) for s in paused] == [tree_summary(s) for s in plain]


def test_a_paused_answer_pauses_once_not_once_per_study(pauses: list[bool]) -> None:
    was = gc.isenabled()
    gc.enable()
    try:
        studies_from_proto([make_study(n, 2, 3) for n in (1, 2, 3)], pause_gc=True)
        assert pauses == [False]  # once for the three studies, the collector off inside
        study_from_proto(make_study(4, 1, 1), pause_gc=True)
        assert pauses == [False, False]
        assert gc.isenabled()
    finally:
        if not was:
            gc.disable()
