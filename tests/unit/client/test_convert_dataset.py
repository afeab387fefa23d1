"""proto Dataset <-> pydicom Dataset: the fast route agrees with pydicom's JSON reader."""

from __future__ import annotations

import io
import warnings
from typing import Any

import pytest
from hypothesis import given
from pydicom import dcmread, dcmwrite
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from dicomcache.client.convert.dataset import from_pydicom, to_pydicom
from dicomcache.client.convert.dicom_json import dataset_from_json, dataset_to_json
from dicomcache.v1 import dataset_pb2
from tests.support.strategies import dicom_json_datasets


def _from_json_quietly(json_dataset: dict[str, Any], **kwargs: Any) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns about bulk data and odd values
        return Dataset.from_json(json_dataset, **kwargs)


def _shape(dataset: Dataset) -> list[Any]:
    """Each element's tag, VR and the Python types of its value, recursively."""
    shape: list[Any] = []
    for element in dataset:
        value = element.value
        if isinstance(value, Sequence):
            shape.append((element.tag, element.VR, [_shape(item) for item in value]))
        elif isinstance(value, MultiValue):
            shape.append((element.tag, element.VR, "multi", [type(v) for v in value]))
        else:
            shape.append((element.tag, element.VR, type(value)))
    return shape


@given(dicom_json_datasets(pydicom_safe=True))
def test_pydicom_round_trip_keeps_to_json_dict(json_dataset: dict[str, Any]) -> None:
    original = _from_json_quietly(json_dataset)
    message = from_pydicom(original)
    back = to_pydicom(dataset_pb2.Dataset.FromString(message.SerializeToString()))
    assert back.to_json_dict() == original.to_json_dict()
    assert back == original
    assert _shape(back) == _shape(original)


@given(dicom_json_datasets(pydicom_safe=True))
def test_from_pydicom_reads_like_to_json_dict(json_dataset: dict[str, Any]) -> None:
    original = _from_json_quietly(json_dataset)
    assert from_pydicom(original) == dataset_from_json(original.to_json_dict())


@given(dicom_json_datasets())
def test_to_pydicom_builds_what_from_json_builds(json_dataset: dict[str, Any]) -> None:
    message = dataset_from_json(json_dataset)
    try:
        expected = _from_json_quietly(dataset_to_json(message))
    except (ValueError, TypeError) as exc:
        with pytest.raises(type(exc)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            to_pydicom(message)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built = to_pydicom(message)
    assert built == expected
    assert _shape(built) == _shape(expected)


def test_raw_elements_from_a_file_are_decoded() -> None:
    source = Dataset()
    source.SpecificCharacterSet = "ISO_IR 192"
    source.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    source.PatientID = "ÄÖÜ-1"
    source.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    source.PixelSpacing = [0.5, "0.25"]
    source.InstanceNumber = 3
    source.Rows = 512
    source.ReferencedImageSequence = [Dataset()]
    source.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
    source.file_meta = FileMetaDataset()
    source.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    dcmwrite(buffer, source, enforce_file_format=False)
    read = dcmread(io.BytesIO(buffer.getvalue()), force=True)
    assert any(not isinstance(e, DataElement) for e in read.elements())  # still raw

    message = from_pydicom(read)

    name = message.elements[0x00100010].values.items[0].person_name
    assert (name.alphabetic, name.ideographic, name.phonetic) == (
        "Yamada^Tarou",
        "山田^太郎",
        "やまだ^たろう",
    )
    assert to_pydicom(message).to_json_dict() == read.to_json_dict()


def test_bulk_data_uri_handler_is_used() -> None:
    message = dataset_from_json({"7FE00010": {"vr": "OB", "BulkDataURI": "http://a/b"}})
    seen = []

    def handler(tag: str, vr: str, uri: str) -> bytes:
        seen.append((tag, vr, uri))
        return b"\x01\x02"

    built = to_pydicom(message, bulk_data_uri_handler=handler)
    assert built[0x7FE00010].value == b"\x01\x02"
    assert seen == [("7FE00010", "OB", "http://a/b")]


def test_bulk_data_uri_without_handler_is_empty_as_in_pydicom() -> None:
    message = dataset_from_json({"7FE00010": {"vr": "OB", "BulkDataURI": "http://a/b"}})
    with pytest.warns(UserWarning, match="bulk data"):
        built = to_pydicom(message)
    assert built[0x7FE00010].is_empty


def test_private_elements_know_their_creator() -> None:
    message = dataset_from_json(
        {
            "00090010": {"vr": "LO", "Value": ["ACME 1.0"]},
            "00091001": {"vr": "UV", "Value": [2**64 - 1]},
        }
    )
    built = to_pydicom(message)
    assert built[0x00091001].private_creator == "ACME 1.0"
    assert built[0x00091001].value == 2**64 - 1
    assert from_pydicom(built) == message


def test_empty_sequence_and_empty_values() -> None:
    original = _from_json_quietly(
        {
            "00080090": {"vr": "PN"},
            "00081115": {"vr": "SQ", "Value": []},
            "00200013": {"vr": "IS"},
            "00280030": {"vr": "DS", "Value": [0.5, None]},
        }
    )
    message = from_pydicom(original)
    assert message.elements[0x00080090].WhichOneof("content") is None
    assert message.elements[0x00081115].WhichOneof("content") == "values"
    assert message.elements[0x00280030].values.items[1].WhichOneof("kind") is None
    assert to_pydicom(message).to_json_dict() == original.to_json_dict()


def test_an_integer_beyond_64_bits_is_refused() -> None:
    dataset = Dataset()
    dataset.add_new(0x00091001, "SV", 2**63)
    with pytest.raises(ValueError, match="out of range"):
        from_pydicom(dataset)
