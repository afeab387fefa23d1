"""DICOM JSON answers as study trees and back: the archive's objects and order exactly."""

from __future__ import annotations

import json
from typing import Any

from dicomcache.client.convert.dicom_json import dataset_from_json
from dicomcache.server.model import Level
from dicomcache.server.search import answer
from dicomcache.server.search.rendered import Rendered


def obj(
    study: str, series: str | None = None, instance: str | None = None, **more: Any
) -> dict[str, Any]:
    found: dict[str, Any] = {"0020000D": {"vr": "UI", "Value": [study]}}
    if series is not None:
        found["0020000E"] = {"vr": "UI", "Value": [series]}
    if instance is not None:
        found["00080018"] = {"vr": "UI", "Value": [instance]}
    found["00100010"] = {"vr": "PN", "Value": [{"Alphabetic": "Doe^J", "Ideographic": "山田"}]}
    found["00201208"] = {"vr": "IS", "Value": [3]}
    found["00280030"] = {"vr": "DS", "Value": [0.5, 0.5]}
    found["00080090"] = {"vr": "PN"}
    found.update(more)
    return found


def round_trip(
    objects: list[dict[str, Any]], level: Level, *path: str
) -> list[dict[str, Any]] | None:
    tree = answer.to_tree(objects, level, *path)
    assert tree is not None
    return answer.dicom_json(tree.studies, level, tree.order)


def test_series_of_studies_interleaved_come_back_in_the_archives_order() -> None:
    objects = [
        obj("1.1", "1.1.1"),
        obj("1.2", "1.2.1"),
        obj("1.1", "1.1.2"),
        obj("1.3", "1.3.2"),
        obj("1.3", "1.3.1"),
    ]
    tree = answer.to_tree(objects, Level.SERIES)
    assert tree is not None
    assert [s.uid for s in tree.studies] == ["1.1", "1.2", "1.3"]  # each study once
    assert [[se.uid for se in s.series] for s in tree.studies] == [
        ["1.1.1", "1.1.2"],
        ["1.2.1"],
        ["1.3.2", "1.3.1"],
    ]
    assert all(s.attributes is None for s in tree.studies)  # paths: the series hold the data
    assert answer.dicom_json(tree.studies, Level.SERIES, tree.order) == objects
    assert answer.dicom_json(tree.studies, Level.SERIES) != objects  # tree order alone loses it


def test_instances_of_several_series_interleaved() -> None:
    objects = [
        obj("1.1", "1.1.2", "1.1.2.1"),
        obj("1.1", "1.1.1", "1.1.1.9"),
        obj("1.1", "1.1.2", "1.1.2.2"),
    ]
    assert round_trip(objects, Level.INSTANCE) == objects


def test_studies_and_values_exactly() -> None:
    objects = [obj("1.9", **{"00081030": {"vr": "LO", "Value": ["x"]}}), obj("1.2")]
    objects[0]["00081190"] = {"vr": "UR", "Value": ["http://archive/studies/1.9"]}
    assert round_trip(objects, Level.STUDY) == objects


def test_uids_left_out_come_from_the_path() -> None:
    objects = [{"0020000E": {"vr": "UI", "Value": ["1.1.1"]}}]
    tree = answer.to_tree(objects, Level.SERIES, "1.1")
    assert tree is not None and tree.order == [("1.1", "1.1.1")]


def test_answers_that_cannot_be_kept() -> None:
    assert answer.to_tree([{"00100010": {"vr": "PN"}}], Level.STUDY) is None  # no uid
    assert answer.to_tree([obj("1.1"), obj("1.1")], Level.STUDY) is None  # listed twice
    assert answer.to_tree([obj("1.1", **{"0010": {"vr": "LO"}})], Level.STUDY) is None  # bad tag
    assert answer.to_tree([], Level.SERIES) == answer.Tree([], [])


def test_an_order_of_other_objects_is_refused() -> None:
    objects = [obj("1.1", "1.1.1"), obj("1.2", "1.2.1")]
    tree = answer.to_tree(objects, Level.SERIES)
    assert tree is not None
    assert answer.dicom_json(tree.studies, Level.SERIES, [("1.1", "1.1.1")]) is None
    assert (
        answer.dicom_json(tree.studies, Level.SERIES, [("1.1", "1.1.1"), ("1.1", "1.1.1")]) is None
    )
    assert (
        answer.dicom_json(tree.studies, Level.SERIES, [("1.1", "1.1.1"), ("1.3", "1.3.1")]) is None
    )


def test_the_order_record_round_trips_and_names_no_study() -> None:
    order = [("1.2", "1.2.1"), ("1.1", "1.1.1")]
    kept = answer.record(b"\x01\x02", order)
    assert kept.uid == "order.0102" and not kept.uid.replace(".", "").isdigit()
    assert answer.order_of(kept) == order
    assert answer.order_of(None) is None


def test_a_stored_answers_text_is_the_json_of_its_objects_whoever_renders_it() -> None:
    objects = [obj("1.1", "1.1.2"), obj("1.2", "1.2.1"), obj("1.1", "1.1.1")]
    tree = answer.to_tree(objects, Level.SERIES)
    assert tree is not None
    memo = Rendered(max_bytes=10_000)
    for _ in range(2):  # rendered, then from the memo
        stored = answer.stored_text(tree.studies, Level.SERIES, tree.order, memo.text)
        assert stored is not None
        assert json.loads(stored[0]) == objects and stored[1] == 3
        assert stored[0] == answer.text(
            answer.dicom_json(tree.studies, Level.SERIES, tree.order) or []
        )
    assert len(memo) == 3
    assert answer.stored_text(tree.studies, Level.SERIES, [("1.1", "1.1.2")], memo.text) is None


def test_the_memo_keeps_at_most_its_bytes() -> None:
    memo = Rendered(max_bytes=3_000)
    datas = [
        dataset_from_json(obj(f"1.{i}")).SerializeToString(deterministic=True) for i in range(20)
    ]
    for data in datas:
        assert json.loads(memo.text(data))["0020000D"]["Value"]
    assert 0 < len(memo) < 20 and memo.size <= 3_000
