"""pydicom's objects built the way their constructors build them, without the constructors' cost.

On a cache hit every value was validated by pydicom when the archive's answer
was first read, yet pydicom's constructors validate again and set attributes one
by one through Python code (``Dataset.__setattr__`` alone makes an empty
``Dataset()`` cost as much as five elements). Here each object is made with
``__new__`` and its instance dictionary filled in one step, with exactly the
attributes that pydicom's constructor sets.

Exact by construction and checked: at import each shortcut is compared with
pydicom's own constructor (type and every attribute); where they differ, as they
may in another pydicom version, pydicom's constructor is used instead and a
warning says so, once per shortcut (hits still work, only slower). So the
objects are always those pydicom would build, only cheaper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydicom
from pydicom import config
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import IS, PersonName

log = logging.getLogger(__name__)

_new = object.__new__
_new_str = str.__new__
_new_int = int.__new__
_set_dict = object.__setattr__  # Dataset overrides __setattr__; go around it


# The attributes DataElement.__init__ sets, in its order; the first four are filled per element.
_ELEMENT_ATTRIBUTES: dict[str, Any] = {
    "tag": None,
    "VR": None,
    "validation_mode": None,
    "_value": None,
    "file_tell": None,
    "is_undefined_length": False,
    "private_creator": None,
}


def _element_shortcut(tag: BaseTag, vr: str, value: Any, mode: int) -> DataElement:
    attributes = _ELEMENT_ATTRIBUTES.copy()
    attributes["tag"] = tag
    attributes["VR"] = vr
    attributes["validation_mode"] = mode
    attributes["_value"] = value
    element: DataElement = _new(DataElement)
    element.__dict__ = attributes
    return element


def _element_by_pydicom(tag: BaseTag, vr: str, value: Any, mode: int) -> DataElement:
    return DataElement(tag, vr, value, already_converted=True, validation_mode=mode)


def _dataset_template() -> tuple[dict[str, Any], tuple[str, ...]] | None:
    """An empty Dataset's attributes and which of them must be fresh copies, if plain data."""
    template = dict(vars(Dataset()))
    fresh = tuple(name for name, value in template.items() if type(value) in (dict, list))
    plain = (type(None), bool, int, str, dict, list)
    if any(type(value) not in plain for value in template.values()):
        return None
    if any(type(v) in (dict, list) for name in fresh for v in template[name].values()):
        return None  # nested containers: a shallow copy would share them
    return template, fresh


_DATASET_TEMPLATE = _dataset_template()


def _dataset_shortcut() -> Dataset:
    assert _DATASET_TEMPLATE is not None
    template, fresh = _DATASET_TEMPLATE
    state = template.copy()
    for name in fresh:
        state[name] = state[name].copy()
    dataset: Dataset = _new(Dataset)
    _set_dict(dataset, "__dict__", state)
    return dataset


def _person_name_shortcut(text: str, mode: int) -> PersonName:
    if "=" in text:
        groups = text.split("=")
        while groups and not groups[-1]:
            groups.pop()
        components = tuple(groups)
    else:
        components = (text,) if text else ()
    name: PersonName = _new(PersonName)
    name.__dict__ = {
        "_components": components,
        "validation_mode": mode,
        "original_string": None,
        "encodings": None,
    }
    return name


def _person_name_by_pydicom(text: str, mode: int) -> PersonName:
    return PersonName(text, validation_mode=mode)


def _empty_person_name_shortcut(mode: int) -> PersonName:
    # What DataElement's value setter makes of empty_value_for_VR("PN"): a copy
    # of PersonName(""), which keeps one empty component.
    name: PersonName = _new(PersonName)
    name.__dict__ = {
        "_components": ("",),
        "validation_mode": mode,
        "original_string": None,
        "encodings": None,
    }
    return name


def _empty_person_name_by_pydicom(mode: int) -> PersonName:
    empty = empty_value_for_VR("PN")
    value: PersonName = DataElement(0x00100010, "PN", empty, validation_mode=mode).value
    return value


def _uid_shortcut(text: str) -> UID:
    return _new_str(UID, text.strip())


def _uid_by_pydicom(text: str) -> UID:
    return UID(text, config.IGNORE)


def _integer_string_shortcut(number: int) -> IS:
    return _new_int(IS, number)


def _integer_string_by_pydicom(number: int) -> IS:
    value: IS = IS(number, config.IGNORE)
    return value


def _same(built: object, reference: object) -> bool:
    """Same type, same value and same attributes."""
    if type(built) is not type(reference) or built != reference:
        return False
    return getattr(built, "__dict__", None) == getattr(reference, "__dict__", None)


def _checked(shortcut: Callable[..., Any], reference: Callable[..., Any], *samples: Any) -> Any:
    """The shortcut when it builds what pydicom builds for each sample's arguments.

    Otherwise pydicom's constructor, with a warning; each shortcut is checked
    once, at import. The warning names the shortcut and pydicom's version, never
    a value (the samples are made up, but built objects are not logged either).
    """
    try:
        if all(_same(shortcut(*args), reference(*args)) for args in samples):
            return shortcut
        why = "does not build what pydicom's constructor builds"
    except Exception as exc:
        why = f"raised {type(exc).__name__}"
    log.warning(
        "the %s shortcut %s under pydicom %s; using pydicom's constructor instead "
        "(cache hits are slower)",
        shortcut.__name__.removeprefix("_").removesuffix("_shortcut"),
        why,
        pydicom.__version__,
    )
    return reference


_MODES = (config.IGNORE, config.WARN, config.RAISE)

data_element: Callable[[BaseTag, str, Any, int], DataElement] = _checked(
    _element_shortcut,
    _element_by_pydicom,
    *[(BaseTag(0x00100020), "LO", "P1", mode) for mode in _MODES],
    (BaseTag(0x00200013), "IS", None, config.WARN),
)
"""A DataElement holding an already converted value, as ``DataElement(...,
already_converted=True, validation_mode=mode)`` builds it."""

ELEMENT_ATTRIBUTES: dict[str, Any] | None = (
    _ELEMENT_ATTRIBUTES if data_element is _element_shortcut else None
)
"""For loops that inline ``data_element``: a copy of this with tag, VR,
validation_mode and _value set is a DataElement's ``__dict__``; None when that
does not build what pydicom builds."""

dataset: Callable[[], Dataset] = (
    _checked(_dataset_shortcut, Dataset, ()) if _DATASET_TEMPLATE is not None else Dataset
)
"""A new empty Dataset, as ``Dataset()`` builds it."""

DATASET_ATTRIBUTES: tuple[dict[str, Any], tuple[str, ...]] | None = (
    _DATASET_TEMPLATE if dataset is _dataset_shortcut else None
)
"""For code that makes Datasets itself: an empty Dataset's ``__dict__`` and the names
in it whose values must be fresh (shallow) copies; None when that does not build
what ``Dataset()`` builds."""

person_name: Callable[[str, int], PersonName] = _checked(
    _person_name_shortcut,
    _person_name_by_pydicom,
    ("Yamada^Tarou=山田^太郎=やまだ^たろう", config.WARN),
    ("Doe^Jane==", config.IGNORE),
    ("", config.WARN),
    ("=", config.WARN),
    ("Doe^Jane", config.WARN),
    ("=Yamada", config.WARN),
)
"""``PersonName(text, validation_mode=mode)``: a name as pydicom's JSON reader builds it."""

empty_person_name: Callable[[int], PersonName] = _checked(
    _empty_person_name_shortcut, _empty_person_name_by_pydicom, (config.WARN,)
)
"""The value of an empty PN element, as DataElement's value setter builds it."""

uid: Callable[[str], UID] = _checked(
    _uid_shortcut, _uid_by_pydicom, ("1.2.840.10008.1.2",), (" 1.2.3 ",), ("",)
)
"""``UID(text, config.IGNORE)``."""

integer_string: Callable[[int], IS] = _checked(
    _integer_string_shortcut, _integer_string_by_pydicom, (7,), (0,), (-(2**31),), (2**40,)
)
"""``IS(number, config.IGNORE)`` for an int."""
