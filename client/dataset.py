"""Conversion between ``dicomcache.v1.Dataset`` and pydicom's ``Dataset``, fast.

This sits on every cache hit: an 80-instance answer is 80 datasets to build. Going
through pydicom's JSON reader costs about 0.3 ms per instance, mostly spent
re-validating values that pydicom already validated when the answer first came
from the archive. So for the common VRs the values are built here already in
pydicom's types (``UID``, ``PersonName``, ``IS``, ``DS``, ``MultiValue``, ...)
and handed over as converted; anything unusual (AT, UN, bulk data URIs, text in
a numeric VR, pydicom's optional date conversion) takes the reference route,
pydicom's own ``DataElement.from_json``.

The contract, tested with Hypothesis: ``to_pydicom(m)`` equals
``Dataset.from_json(dataset_to_json(m))`` element for element, and
``from_pydicom(ds)`` equals ``dataset_from_json(ds.to_json_dict())``. So
``to_json_dict()`` survives pydicom -> proto -> pydicom unchanged. What pydicom
itself cannot hold is lost as it would be by ``from_json``: a BulkDataURI without
a handler becomes an empty value, and IS/DS text becomes a number.

Multi-valued elements built here keep each item's type but take later appends
as they are, without pydicom's per-item conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydicom import config
from pydicom.dataelem import DataElement, RawDataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import DS, IS, PersonName

from dicomcache.client.dicom_json import element_to_json
from dicomcache.v1 import dataset_pb2

BulkDataHandler = Callable[[str, str, str], Any] | Callable[[str], Any]

# Values are built from data that pydicom validated when it first read them.
_IGNORE = config.IGNORE

# Text VRs that pydicom keeps as plain str (DA/DT/TM only while
# config.datetime_conversion is off; checked per call).
_TEXT_VRS = frozenset({"AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UR", "UT"})
_DATETIME_VRS = frozenset({"DA", "DT", "TM"})
# VRs whose text pydicom does not split at backslashes.
_BACKSLASH_VRS = frozenset({"LT", "ST", "UT"})
_INT_VRS = frozenset({"SL", "SS", "SV", "UL", "US", "UV", "US or SS"})
_FLOAT_VRS = frozenset({"FL", "FD"})
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW"})
# What to_json_dict writes as InlineBinary.
_JSON_BINARY_VRS = _BINARY_VRS | {"UN", "OB or OW", "US or OW", "US or SS or OW"}

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


class _SlowPathError(Exception):
    """Raised inside the fast path for a value it does not handle: use from_json."""


def to_pydicom(
    message: dataset_pb2.Dataset, bulk_data_uri_handler: BulkDataHandler | None = None
) -> Dataset:
    """Build the pydicom Dataset that ``Dataset.from_json`` would build for this message.

    Args:
        message: the proto Dataset.
        bulk_data_uri_handler: passed to pydicom for BulkDataURI elements, as in
            ``Dataset.from_json``; without one those elements are empty.

    Returns:
        A new pydicom Dataset.

    Raises:
        ValueError: for values pydicom cannot hold (as ``Dataset.from_json`` would).
    """
    dataset = Dataset()
    # Dataset.__setitem__ costs as much as building the element, and only does
    # work for private tags (their creator), sequences and pixel data. Other
    # elements go straight into the dataset's dict (private to pydicom, but the
    # same since pydicom 1; the Hypothesis tests compare with from_json), in
    # ascending order as from_json adds them.
    store = dataset._dict
    for tag, element in sorted(message.elements.items()):
        data_element = _to_element(tag, element, bulk_data_uri_handler)
        if tag & 0x10000 or tag >= 0x7F000000 or data_element.VR == "SQ":
            dataset[data_element.tag] = data_element
        else:
            store[data_element.tag] = data_element
    return dataset


def from_pydicom(dataset: Dataset) -> dataset_pb2.Dataset:
    """Convert a pydicom Dataset to a proto Dataset, as its ``to_json_dict()`` reads.

    Args:
        dataset: the pydicom Dataset; raw (not yet decoded) elements are decoded.

    Returns:
        A new proto Dataset.

    Raises:
        ValueError: for a value the wire contract cannot carry, such as an
            integer beyond 64 bits.
    """
    message = dataset_pb2.Dataset()
    _fill(message, dataset)
    return message


# -- proto -> pydicom --------------------------------------------------------


def _to_element(tag: int, element: dataset_pb2.Element, handler: BulkDataHandler | None) -> Any:
    vr = element.vr
    content = element.WhichOneof("content")
    items = element.values.items
    if content == "values" and items:
        builder = _BUILDERS.get(vr)
        if builder is not None:
            try:
                value = builder(vr, items, handler)
            except _SlowPathError:
                return _from_json(tag, element, handler)
            return DataElement(BaseTag(tag), vr, value, already_converted=True)
    elif (content is None or content == "values") and vr != "UN":
        # Empty: cheap to validate, and pydicom's setter gives the empty value its type.
        return DataElement(BaseTag(tag), vr, empty_value_for_VR(vr))
    elif content == "inline_binary" and vr in _BINARY_VRS:
        return DataElement(BaseTag(tag), vr, element.inline_binary, already_converted=True)
    return _from_json(tag, element, handler)


def _from_json(
    tag: int, element: dataset_pb2.Element, handler: BulkDataHandler | None
) -> DataElement:
    """The reference route: pydicom's JSON reader, for one element."""
    json_element = element_to_json(element)
    key = next((k for k in ("Value", "BulkDataURI", "InlineBinary") if k in json_element), None)
    value = json_element[key] if key is not None else [""]
    return DataElement.from_json(Dataset, f"{tag:08X}", element.vr, value, key, handler)


def _texts(vr: str, items: Any) -> list[Any]:
    """The values of a text VR as pydicom's JSON reader hands them to its setter."""
    if len(items) == 1 and items[0].HasField("text"):
        text: str = items[0].text
        if "\\" in text and vr not in _BACKSLASH_VRS:
            return text.split("\\")  # what pydicom's value setter does with one string
        return [text]
    texts: list[Any] = []
    for item in items:
        kind = item.WhichOneof("kind")
        if kind == "text":
            texts.append(item.text)
        elif kind is None:
            texts.append(empty_value_for_VR(vr))
        else:
            raise _SlowPathError
    return texts


def _text_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Any:
    if vr in _DATETIME_VRS and config.datetime_conversion:
        raise _SlowPathError
    return _single_or_multi(_texts(vr, items), vr)


def _uid_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Any:
    uids = [UID(text, _IGNORE) if text is not None else None for text in _texts(vr, items)]
    return _single_or_multi(uids, vr)


def _person_name_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Any:
    names: list[Any] = []
    for item in items:
        kind = item.WhichOneof("kind")
        if kind == "person_name":
            names.append(_joined_groups(item.person_name))
        elif kind is None:
            names.append(empty_value_for_VR(vr))
        elif kind == "text":
            names.append(item.text)  # malformed, but pydicom passes it through
        else:
            raise _SlowPathError
    if len(names) == 1 and isinstance(names[0], str) and "\\" in names[0]:
        names = names[0].split("\\")
    return _single_or_multi(
        [n if n is None else PersonName(n, validation_mode=_IGNORE) for n in names], vr
    )


def _joined_groups(name: dataset_pb2.PersonName) -> str:
    """The PN string of pydicom's JSON reader: groups joined by '=', trailing ones dropped."""
    if name.HasField("phonetic"):
        return f"{name.alphabetic}={name.ideographic}={name.phonetic}"
    if name.HasField("ideographic"):
        return f"{name.alphabetic}={name.ideographic}"
    return name.alphabetic


def _numbers(vr: str, items: Any, number: type) -> list[Any]:
    values: list[Any] = []
    for item in items:
        kind = item.WhichOneof("kind")
        if kind == "integer" or kind == "decimal" or kind == "unsigned":
            values.append(number(getattr(item, kind)))
        elif kind is None:
            values.append(empty_value_for_VR(vr))
        else:
            raise _SlowPathError  # text in a numeric VR: let pydicom accept or refuse it
    return values


def _int_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Any:
    return _single_or_multi(_numbers(vr, items, int), vr)


def _float_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Any:
    return _single_or_multi(_numbers(vr, items, float), vr)


def _is_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Any:
    numbers = _numbers(vr, items, int)
    return _single_or_multi([n if n is None else IS(n, _IGNORE) for n in numbers], vr)


def _ds_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Any:
    numbers = _numbers(vr, items, float)
    return _single_or_multi([n if n is None else DS(n, False, _IGNORE) for n in numbers], vr)


def _sequence_value(vr: str, items: Any, handler: BulkDataHandler | None) -> Sequence:
    datasets = []
    for item in items:
        kind = item.WhichOneof("kind")
        if kind == "item":
            datasets.append(to_pydicom(item.item, handler))
        elif kind is None:
            datasets.append(Dataset())
        else:
            raise _SlowPathError
    return Sequence(datasets)


def _keep(value: Any) -> Any:
    return value


def _single_or_multi(values: list[Any], vr: str) -> Any:
    if len(values) == 1:
        return values[0]
    return MultiValue(_keep, values)


_Builder = Callable[[str, Any, "BulkDataHandler | None"], Any]
_BUILDERS: dict[str, _Builder] = {
    **dict.fromkeys(_TEXT_VRS | _DATETIME_VRS, _text_value),
    "UI": _uid_value,
    "PN": _person_name_value,
    "IS": _is_value,
    "DS": _ds_value,
    **dict.fromkeys(_INT_VRS, _int_value),
    **dict.fromkeys(_FLOAT_VRS, _float_value),
    "SQ": _sequence_value,
}


# -- pydicom -> proto --------------------------------------------------------


def _fill(message: dataset_pb2.Dataset, dataset: Dataset) -> None:
    elements = message.elements
    for element in dataset.elements():
        if isinstance(element, RawDataElement):
            element = dataset[element.tag]  # decodes, with the dataset's character set
        _fill_element(elements[element.tag], element)


def _fill_element(out: dataset_pb2.Element, element: DataElement) -> None:
    vr = element.VR
    out.vr = vr
    value = element.value
    if vr == "SQ":
        out.values.SetInParent()  # to_json_dict writes "Value": [] for an empty sequence
        items = out.values.items
        for item in value:
            nested = items.add().item
            nested.SetInParent()  # an empty item is an item, not a null
            _fill(nested, item)
        return
    if vr in _JSON_BINARY_VRS:
        if value:
            out.inline_binary = bytes(value)
        return
    if value is None or (isinstance(value, str | bytes | PersonName) and not value):
        return  # empty: a VR and no value
    values = value if isinstance(value, MultiValue | list | tuple) else (value,)
    if not values:
        return
    items = out.values.items
    if vr == "PN":
        for name in values:
            _add_person_name(items.add(), name)
    elif vr == "AT":
        for tag in values:
            if tag is None:
                items.add()
            else:
                items.add().text = format(tag, "08X")
    elif vr in _INT_VRS or vr == "IS":
        for number in values:
            _add_integer(items.add(), vr, number)
    elif vr in _FLOAT_VRS or vr == "DS":
        for number in values:
            if number is None or number == "":
                items.add()
            else:
                items.add().decimal = float(number)
    else:
        for text in values:
            if text is None:
                items.add()
            else:
                items.add().text = text if type(text) is str else str(text)


def _add_integer(out: dataset_pb2.Value, vr: str, number: Any) -> None:
    if number is None or number == "":
        return
    number = int(number)
    if vr == "UV" and number >= 0:
        out.unsigned = number
    elif _INT64_MIN <= number <= _INT64_MAX:
        out.integer = number
    else:
        raise ValueError(f"integer value out of range for VR {vr}")


def _add_person_name(out: dataset_pb2.Value, name: Any) -> None:
    if name is None:
        return
    groups = name.components
    person_name = out.person_name
    person_name.alphabetic = groups[0] if groups else ""
    if len(groups) > 1:
        person_name.ideographic = groups[1]
    if len(groups) > 2:
        person_name.phonetic = groups[2]
