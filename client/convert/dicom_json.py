"""Conversion between ``dicomcache.v1.Dataset`` and the DICOM JSON model (PS3.18 Annex F).

The proto mirrors the JSON model one to one, so this conversion is exact: a JSON
object converted to a Dataset and back is equal to the original, value types
included (a DS written as text stays text, an integer stays an integer). It is
the reference that the faster pydicom conversion in ``dataset.py`` is tested
against, and the route for callers that hold DICOM JSON rather than pydicom
objects.
"""

from __future__ import annotations

import base64
from typing import Any, TypeAlias

from dicomcache.client.errors import DicomJsonError
from dicomcache.v1 import dataset_pb2

JsonDataset: TypeAlias = dict[str, Any]

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


def dataset_from_json(json_dataset: JsonDataset) -> dataset_pb2.Dataset:
    """Convert a DICOM JSON object to a proto Dataset.

    Args:
        json_dataset: a DICOM JSON object: eight-hex-digit tags mapped to
            ``{"vr": ..., "Value" | "BulkDataURI" | "InlineBinary": ...}``.

    Returns:
        The equivalent Dataset.

    Raises:
        DicomJsonError: on a malformed tag, a missing VR, more than one kind of
            content, or a value of a type the JSON model does not allow.
    """
    message = dataset_pb2.Dataset()
    _fill_dataset(message, json_dataset)
    return message


def dataset_to_json(message: dataset_pb2.Dataset) -> JsonDataset:
    """Convert a proto Dataset to a DICOM JSON object, tags in ascending order.

    Args:
        message: the Dataset.

    Returns:
        The DICOM JSON object, ready for ``json.dumps`` or pydicom's ``Dataset.from_json``.
    """
    elements = message.elements
    return {f"{tag:08X}": element_to_json(elements[tag]) for tag in sorted(elements)}


def _fill_dataset(message: dataset_pb2.Dataset, json_dataset: JsonDataset) -> None:
    elements = message.elements
    for key, mapping in json_dataset.items():
        tag = _parse_tag(key)
        if not isinstance(mapping, dict) or not isinstance(mapping.get("vr"), str):
            raise DicomJsonError(f"element {key}: expected an object with a string 'vr'")
        element = elements[tag]
        element.vr = mapping["vr"]
        _fill_content(element, key, mapping)


def _parse_tag(key: str) -> int:
    if len(key) != 8:
        raise DicomJsonError(f"tag {key!r} is not eight hex digits")
    try:
        return int(key, 16)
    except ValueError:
        raise DicomJsonError(f"tag {key!r} is not eight hex digits") from None


def _fill_content(element: dataset_pb2.Element, key: str, mapping: dict[str, Any]) -> None:
    present = [name for name in ("Value", "BulkDataURI", "InlineBinary") if name in mapping]
    if not present:
        return
    if len(present) > 1:
        raise DicomJsonError(f"element {key}: more than one of {present}")
    name = present[0]
    content = mapping[name]
    if name == "Value":
        if not isinstance(content, list):
            raise DicomJsonError(f"element {key}: 'Value' must be a list")
        _fill_values(element.values.items, key, element.vr, content)
        # Touch the submessage so that an empty list is kept as "Value": [].
        element.values.SetInParent()
        return
    # PS3.18 F.4 shows these inside a one-item list; pydicom accepts both forms.
    if isinstance(content, list) and len(content) == 1:
        content = content[0]
    if not isinstance(content, str):
        raise DicomJsonError(f"element {key}: '{name}' must be a string")
    if name == "BulkDataURI":
        element.bulk_data_uri = content
    else:
        try:
            element.inline_binary = base64.b64decode(content, validate=True)
        except ValueError:
            raise DicomJsonError(f"element {key}: 'InlineBinary' is not base64") from None


def _fill_values(items: Any, key: str, vr: str, values: list[Any]) -> None:
    for value in values:
        item = items.add()
        if value is None:
            continue
        if vr == "SQ":
            if not isinstance(value, dict):
                raise DicomJsonError(f"element {key}: a sequence item must be an object")
            item.item.SetInParent()
            _fill_dataset(item.item, value)
        elif vr == "PN":
            _fill_person_name(item.person_name, key, value)
        elif isinstance(value, str):
            item.text = value
        elif isinstance(value, bool):
            raise DicomJsonError(f"element {key}: booleans are not DICOM values")
        elif isinstance(value, int):
            _fill_integer(item, key, vr, value)
        elif isinstance(value, float):
            item.decimal = value
        else:
            raise DicomJsonError(f"element {key}: unexpected {type(value).__name__} value")


def _fill_integer(item: dataset_pb2.Value, key: str, vr: str, value: int) -> None:
    if vr == "UV" and 0 <= value <= _UINT64_MAX:
        item.unsigned = value
    elif _INT64_MIN <= value <= _INT64_MAX:
        item.integer = value
    else:
        raise DicomJsonError(f"element {key}: integer out of range for VR {vr}")


def _fill_person_name(name: dataset_pb2.PersonName, key: str, value: Any) -> None:
    if not isinstance(value, dict):
        raise DicomJsonError(f"element {key}: a person name must be an object")
    name.SetInParent()
    for group, text in value.items():
        if not isinstance(text, str):
            raise DicomJsonError(f"element {key}: person name group {group!r} is not text")
        if group == "Alphabetic":
            name.alphabetic = text
        elif group == "Ideographic":
            name.ideographic = text
        elif group == "Phonetic":
            name.phonetic = text
        else:
            raise DicomJsonError(f"element {key}: unknown person name group {group!r}")


def element_to_json(element: dataset_pb2.Element) -> dict[str, Any]:
    """Convert one proto Element to its DICOM JSON attribute object."""
    result: dict[str, Any] = {"vr": element.vr}
    content = element.WhichOneof("content")
    if content == "values":
        result["Value"] = [_value_to_json(value) for value in element.values.items]
    elif content == "bulk_data_uri":
        result["BulkDataURI"] = element.bulk_data_uri
    elif content == "inline_binary":
        result["InlineBinary"] = base64.b64encode(element.inline_binary).decode("ascii")
    return result


def _value_to_json(value: dataset_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind is None:
        return None
    if kind == "person_name":
        return _person_name_to_json(value.person_name)
    if kind == "item":
        return dataset_to_json(value.item)
    return getattr(value, kind)


def _person_name_to_json(name: dataset_pb2.PersonName) -> dict[str, str]:
    result = {}
    if name.HasField("alphabetic"):
        result["Alphabetic"] = name.alphabetic
    if name.HasField("ideographic"):
        result["Ideographic"] = name.ideographic
    if name.HasField("phonetic"):
        result["Phonetic"] = name.phonetic
    return result
