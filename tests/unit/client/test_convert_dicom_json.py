"""proto Dataset <-> DICOM JSON: exact, value types included."""

from __future__ import annotations

import pytest
from hypothesis import given

from dicomcache.client.convert.dicom_json import dataset_from_json, dataset_to_json
from dicomcache.client.errors import DicomJsonError
from dicomcache.v1 import dataset_pb2
from tests.support.strategies import dicom_json_datasets


@given(dicom_json_datasets())
def test_json_round_trip_is_exact(json_dataset: dict) -> None:
    message = dataset_from_json(json_dataset)
    assert dataset_to_json(message) == json_dataset


@given(dicom_json_datasets())
def test_round_trip_survives_the_wire(json_dataset: dict) -> None:
    wire = dataset_from_json(json_dataset).SerializeToString()
    assert dataset_to_json(dataset_pb2.Dataset.FromString(wire)) == json_dataset


def test_value_types_are_kept() -> None:
    json_dataset = {
        "00091001": {"vr": "UV", "Value": [2**64 - 1, 0]},
        "00091002": {"vr": "SV", "Value": [-(2**63)]},
        "00200013": {"vr": "IS", "Value": ["007", 7]},
        "00280030": {"vr": "DS", "Value": ["0.50", 0.5, 5]},
    }
    message = dataset_from_json(json_dataset)
    uv = message.elements[0x00091001].values.items
    assert [v.WhichOneof("kind") for v in uv] == ["unsigned", "unsigned"]
    ds = message.elements[0x00280030].values.items
    assert [v.WhichOneof("kind") for v in ds] == ["text", "decimal", "integer"]
    back = dataset_to_json(message)
    assert back == json_dataset
    assert [type(v) for v in back["00280030"]["Value"]] == [str, float, int]


def test_person_name_groups_absent_and_empty_are_distinct() -> None:
    json_dataset = {
        "00100010": {
            "vr": "PN",
            "Value": [
                {
                    "Alphabetic": "Yamada^Tarou",
                    "Ideographic": "山田^太郎",
                    "Phonetic": "やまだ^たろう",
                },
                {"Ideographic": ""},
                {},
                None,
            ],
        }
    }
    message = dataset_from_json(json_dataset)
    names = message.elements[0x00100010].values.items
    assert names[1].person_name.HasField("ideographic")
    assert not names[1].person_name.HasField("alphabetic")
    assert names[2].HasField("person_name")
    assert names[3].WhichOneof("kind") is None
    assert dataset_to_json(message) == json_dataset


def test_empty_forms_are_distinct() -> None:
    json_dataset = {
        "00081110": {"vr": "SQ"},
        "00081115": {"vr": "SQ", "Value": []},
        "00081140": {"vr": "SQ", "Value": [{}, None]},
        "00080060": {"vr": "CS", "Value": ["CT", None, ""]},
        "00080090": {"vr": "PN"},
    }
    message = dataset_from_json(json_dataset)
    assert message.elements[0x00081110].WhichOneof("content") is None
    assert message.elements[0x00081115].WhichOneof("content") == "values"
    assert dataset_to_json(message) == json_dataset


def test_binary_content() -> None:
    json_dataset = {
        "7FE00010": {"vr": "OB", "BulkDataURI": "http://archive.test/frames/1"},
        "00091010": {"vr": "UN", "InlineBinary": "AAEC/w=="},
    }
    message = dataset_from_json(json_dataset)
    assert message.elements[0x00091010].inline_binary == b"\x00\x01\x02\xff"
    assert dataset_to_json(message) == json_dataset


def test_one_item_list_forms_of_binary_content_are_read() -> None:
    message = dataset_from_json({"7FE00010": {"vr": "OB", "BulkDataURI": ["http://a/b"]}})
    assert message.elements[0x7FE00010].bulk_data_uri == "http://a/b"


@pytest.mark.parametrize(
    ("json_dataset", "message"),
    [
        ({"0010": {"vr": "PN"}}, "eight hex digits"),
        ({"0010001G": {"vr": "PN"}}, "eight hex digits"),
        ({"00100010": {"Value": []}}, "'vr'"),
        ({"00100010": {"vr": "PN", "Value": ["x"], "BulkDataURI": "u"}}, "more than one"),
        ({"00100010": {"vr": "PN", "Value": "x"}}, "must be a list"),
        ({"00100010": {"vr": "PN", "Value": [{"Nickname": "x"}]}}, "group"),
        ({"00280010": {"vr": "US", "Value": [True]}}, "boolean"),
        ({"00280010": {"vr": "SV", "Value": [2**63]}}, "out of range"),
        ({"00280010": {"vr": "UV", "Value": [2**64]}}, "out of range"),
        ({"00280010": {"vr": "US", "Value": [[1]]}}, "unexpected list"),
        ({"00081115": {"vr": "SQ", "Value": ["x"]}}, "sequence item"),
        ({"7FE00010": {"vr": "OB", "InlineBinary": "***"}}, "base64"),
        ({"7FE00010": {"vr": "OB", "InlineBinary": 5}}, "must be a string"),
    ],
)
def test_malformed_json_is_refused(json_dataset: dict, message: str) -> None:
    with pytest.raises(DicomJsonError, match=message):
        dataset_from_json(json_dataset)
