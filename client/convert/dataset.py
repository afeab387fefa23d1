"""Conversion between ``dicomcache.v1.Dataset`` and pydicom's ``Dataset``, fast.

This sits on every cache hit: an 80-instance answer is 80 datasets to build.
Going through pydicom's JSON reader costs about 0.25 ms per instance, mostly
spent re-validating values that pydicom already validated when the answer first
came from the archive. So the values are built here already in pydicom's types
(``UID``, ``PersonName``, ``IS``, ``DS``, ``MultiValue``, ...) and the elements
and datasets with ``constructors`` (pydicom's objects without the constructors'
checks). The common element, one value of a public tag, is read inline in one
loop; anything else takes the general path, and anything unusual (AT, UN, bulk
data URIs, text in a numeric VR, pydicom's optional date conversion) pydicom's
own ``DataElement.from_json``.

The contract, tested with Hypothesis: ``to_pydicom(m)`` equals
``Dataset.from_json(dataset_to_json(m))`` element for element, with the same
value types and the same attributes on elements and values (validation modes
included), and ``from_pydicom(ds)`` equals
``dataset_from_json(ds.to_json_dict())``. So ``to_json_dict()`` survives
pydicom -> proto -> pydicom unchanged. What pydicom itself cannot hold is lost as
it would be by ``from_json``: a BulkDataURI without a handler becomes an empty
value, and IS/DS text becomes a number. Values are not validated again, so
pydicom's warnings about odd values (already given when they were first read)
are not repeated.

Multi-valued elements built here keep each item's type but take later appends
as they are, without pydicom's per-item conversion.

Thread-safe: no shared state but a cache of tags, whose updates are atomic. No clock.
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
from pydicom.valuerep import DS, PersonName

from dicomcache.client.convert.constructors import ELEMENT_ATTRIBUTES
from dicomcache.client.convert.constructors import data_element as new_element
from dicomcache.client.convert.constructors import dataset as new_dataset
from dicomcache.client.convert.constructors import empty_person_name as new_empty_person_name
from dicomcache.client.convert.constructors import integer_string as new_integer_string
from dicomcache.client.convert.constructors import person_name as new_person_name
from dicomcache.client.convert.constructors import uid as new_uid
from dicomcache.client.convert.dicom_json import element_to_json
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
    mode = config.settings.reading_validation_mode
    kinds = _KINDS_NO_DATES if config.datetime_conversion else _KINDS
    template = ELEMENT_ATTRIBUTES
    if template is None:
        kinds = {}  # every element on the general path, built by pydicom's constructor
    dataset = new_dataset()
    store = dataset._dict
    tags = _PUBLIC_TAGS
    elements = message.elements
    # The common case inline (a one-value element of a public tag): this loop
    # runs 1,500 times per 80-instance hit and a function call costs as much as
    # reading a value. Sorting the keys and looking each up is 3x faster than items().
    for tag in sorted(elements):
        element = elements[tag]
        items = element.values.items
        base = tags.get(tag)
        if base is not None and len(items) == 1:
            vr = element.vr
            kind = kinds.get(vr)
            value = _NO
            # A oneof field reads as its default when another kind is set, so a
            # non-empty text or a non-zero number proves its kind without asking.
            if kind == _TEXT:
                text = items[0].text
                if text and "\\" not in text:  # else split, as pydicom's setter does
                    value = text
            elif kind == _UID:
                text = items[0].text
                if text and "\\" not in text:
                    value = new_uid(text)
            elif kind == _PN:
                value = _one_person_name(items[0], mode)
            elif kind == _IS:
                number = items[0].integer
                if number:
                    value = new_integer_string(number)
            elif kind == _INT:
                number = items[0].integer
                if number:
                    value = number
            elif kind == _FLOAT:
                decimal = items[0].decimal
                if decimal:
                    value = decimal
            if value is not _NO:
                attributes = template.copy()  # type: ignore[union-attr]  # not None: kinds is {} then
                attributes["tag"] = base
                attributes["VR"] = vr
                attributes["validation_mode"] = mode
                attributes["_value"] = value
                data_element = _new(DataElement)
                data_element.__dict__ = attributes
                store[base] = data_element
                continue
        _add(dataset, tag, element, bulk_data_uri_handler, mode)
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

# How a one-value element of each VR is read on the common path.
_OTHER, _TEXT, _UID, _PN, _INT, _IS, _FLOAT, _DS = range(8)
_KINDS_NO_DATES: dict[str, int] = {
    **dict.fromkeys(_TEXT_VRS, _TEXT),
    "UI": _UID,
    "PN": _PN,
    **dict.fromkeys(_INT_VRS, _INT),
    "IS": _IS,
    **dict.fromkeys(_FLOAT_VRS, _FLOAT),
    "DS": _DS,
}
# DA/DT/TM are plain text unless pydicom is told to convert them to datetimes.
_KINDS = {**_KINDS_NO_DATES, **dict.fromkeys(_DATETIME_VRS, _TEXT)}
_EMPTY_IS_NONE = frozenset({_INT, _IS, _FLOAT, _DS})


class _No:
    """The type of _NO: no value on the common path, take the general one."""


_NO: Any = _No()


# BaseTag of each public tag below the pixel data group seen so far: the tags
# that go straight into a dataset's dict. Shared by all datasets (a BaseTag is an
# int), bounded against a stream of odd tags.
_PUBLIC_TAGS: dict[int, BaseTag] = {}
_PUBLIC_TAGS_MAX = 10_000

_new = object.__new__


def _one_person_name(item: dataset_pb2.Value, mode: int) -> Any:
    if not item.HasField("person_name"):
        return _NO
    name = item.person_name
    if name.HasField("ideographic") or name.HasField("phonetic"):
        joined = _joined_groups(name)
    else:
        joined = name.alphabetic
    if "\\" in joined:
        return _NO
    return new_person_name(joined, mode)


def _add(
    dataset: Dataset,
    tag: int,
    element: dataset_pb2.Element,
    handler: BulkDataHandler | None,
    mode: int,
) -> None:
    """Add an element on the general path: any content, any multiplicity, any tag."""
    data_element = _to_element(tag, element.vr, element, handler, mode)
    if tag & 0x10000 or tag >= 0x7F000000 or data_element.VR == "SQ":
        # Dataset.__setitem__ costs as much as building the element, and only
        # does work for private tags (their creator), sequences and pixel data.
        dataset[tag] = data_element
        return
    # Other elements go straight into the dataset's dict (private to pydicom,
    # but the same since pydicom 1; the Hypothesis tests compare with
    # from_json), in ascending order as from_json adds them.
    dataset._dict[data_element.tag] = data_element
    if len(_PUBLIC_TAGS) < _PUBLIC_TAGS_MAX:
        _PUBLIC_TAGS[tag] = data_element.tag


def _to_element(
    tag: int, vr: str, element: dataset_pb2.Element, handler: BulkDataHandler | None, mode: int
) -> Any:
    """The element for any content, with pydicom's reader for the odd ones."""
    content = element.WhichOneof("content")
    items = element.values.items
    if content == "values" and items:
        builder = _BUILDERS.get(vr)
        if builder is not None:
            try:
                value = builder(vr, items, handler, mode)
            except _SlowPathError:
                return _from_json(tag, element, handler)
            return new_element(BaseTag(tag), vr, value, mode)
    elif (content is None or content == "values") and vr != "UN":
        return new_element(BaseTag(tag), vr, _empty_value(vr, mode), mode)
    elif content == "inline_binary" and vr in _BINARY_VRS:
        return new_element(BaseTag(tag), vr, element.inline_binary, mode)
    return _from_json(tag, element, handler)


def _empty_value(vr: str, mode: int) -> Any:
    """What DataElement's value setter makes of ``empty_value_for_VR(vr)``."""
    kind = (_KINDS_NO_DATES if config.datetime_conversion else _KINDS).get(vr)
    if kind in _EMPTY_IS_NONE:
        return None
    if kind == _TEXT:
        return empty_value_for_VR(vr)  # "" (or None), which the setter keeps as it is
    if kind == _PN and not config.use_none_as_empty_text_VR_value:
        return new_empty_person_name(mode)
    # The setter gives the empty value its type (UID, Sequence, ...).
    return DataElement(BaseTag(0), vr, empty_value_for_VR(vr), validation_mode=mode).value


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


def _text_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Any:
    if vr in _DATETIME_VRS and config.datetime_conversion:
        raise _SlowPathError
    return _single_or_multi(_texts(vr, items))


def _uid_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Any:
    uids = [new_uid(text) if text is not None else None for text in _texts(vr, items)]
    return _single_or_multi(uids)


def _person_name_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Any:
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
    return _single_or_multi([_person_name(name, mode) for name in names])


def _person_name(name: Any, mode: int) -> Any:
    if name is None:
        return None
    if isinstance(name, PersonName):  # empty_value_for_VR's PersonName(""), as the setter copies it
        return new_empty_person_name(mode)
    return new_person_name(name, mode)


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


def _int_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Any:
    return _single_or_multi(_numbers(vr, items, int))


def _float_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Any:
    return _single_or_multi(_numbers(vr, items, float))


def _is_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Any:
    numbers = _numbers(vr, items, int)
    return _single_or_multi([n if n is None else new_integer_string(n) for n in numbers])


def _ds_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Any:
    numbers = _numbers(vr, items, float)
    return _single_or_multi([n if n is None else DS(n, False, _IGNORE) for n in numbers])


def _sequence_value(vr: str, items: Any, handler: BulkDataHandler | None, mode: int) -> Sequence:
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


def _single_or_multi(values: list[Any]) -> Any:
    if len(values) == 1:
        return values[0]
    return MultiValue(_keep, values)


_Builder = Callable[[str, Any, "BulkDataHandler | None", int], Any]
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
