"""dicomtrolley's Study, Series and Instance built as their constructors build them, cheaper.

They are pydantic models: the validated constructor checks that a uid is a str,
the data a Dataset and the parent a Series or Study, about 1.7 us an Instance,
as much as the rest of its share of a hit. On a hit every value comes from this
client's own conversion (uids from the wire, datasets made here), so each object
is made with ``__new__`` and given, in one step each, exactly the state the
validated constructor gives it: its fields in the model's order, the set of
fields given, no extra and no private values.

Exact by construction and checked: at import each shortcut is compared with the
validated constructor (type, fields in order, fields set, extra, private);
where they differ, as they may under another pydantic or dicomtrolley, the
constructor is used instead and a warning says so, once per class (hits still
work, only slower).

Thread-safe: no shared state. No clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pydantic
from dicomtrolley.core import Instance, Series, Study
from pydicom.dataset import Dataset

log = logging.getLogger(__name__)

_new = object.__new__
_set = object.__setattr__  # pydantic's __setattr__ would validate and record each field


def _instance_shortcut(uid: str, data: Dataset, parent: Series) -> Instance:
    instance: Instance = _new(Instance)
    _set(instance, "__dict__", {"uid": uid, "data": data, "parent": parent})
    _set(instance, "__pydantic_fields_set__", {"uid", "data", "parent"})
    _set(instance, "__pydantic_extra__", None)
    _set(instance, "__pydantic_private__", None)
    return instance


def _instance_by_pydantic(uid: str, data: Dataset, parent: Series) -> Instance:
    return Instance(uid=uid, data=data, parent=parent)


def _series_shortcut(uid: str, data: Dataset, parent: Study) -> Series:
    series: Series = _new(Series)
    _set(series, "__dict__", {"uid": uid, "data": data, "instances": (), "parent": parent})
    _set(series, "__pydantic_fields_set__", {"uid", "data", "instances", "parent"})
    _set(series, "__pydantic_extra__", None)
    _set(series, "__pydantic_private__", None)
    return series


def _series_by_pydantic(uid: str, data: Dataset, parent: Study) -> Series:
    return Series(uid=uid, data=data, parent=parent, instances=())


def _study_shortcut(uid: str, data: Dataset) -> Study:
    study: Study = _new(Study)
    _set(study, "__dict__", {"uid": uid, "data": data, "series": ()})
    _set(study, "__pydantic_fields_set__", {"uid", "data", "series"})
    _set(study, "__pydantic_extra__", None)
    _set(study, "__pydantic_private__", None)
    return study


def _study_by_pydantic(uid: str, data: Dataset) -> Study:
    return Study(uid=uid, data=data, series=())


def _state(obj: Any) -> tuple[Any, ...]:
    return (
        type(obj),
        list(vars(obj).items()),
        obj.__pydantic_fields_set__,
        obj.__pydantic_extra__,
        obj.__pydantic_private__,
    )


def _checked(shortcut: Callable[..., Any], reference: Callable[..., Any], *args: Any) -> Any:
    """The shortcut when it builds what the validated constructor builds, else the constructor.

    The warning names the class and the library versions, never a value.
    """
    try:
        if _state(shortcut(*args)) == _state(reference(*args)):
            return shortcut
        why = "does not build what the validated constructor builds"
    except Exception as exc:
        why = f"raised {type(exc).__name__}"
    log.warning(
        "the dicomtrolley %s shortcut %s under pydantic %s; using the constructor instead "
        "(cache hits are slower)",
        shortcut.__name__.removeprefix("_").removesuffix("_shortcut"),
        why,
        pydantic.VERSION,
    )
    return reference


_SAMPLE_STUDY = Study(uid="1.2", data=Dataset(), series=())
_SAMPLE_SERIES = Series(uid="1.2.3", data=Dataset(), parent=_SAMPLE_STUDY, instances=())

new_instance: Callable[[str, Dataset, Series], Instance] = _checked(
    _instance_shortcut, _instance_by_pydantic, "1.2.3.4", Dataset(), _SAMPLE_SERIES
)
"""``Instance(uid=uid, data=data, parent=parent)``."""

new_series: Callable[[str, Dataset, Study], Series] = _checked(
    _series_shortcut, _series_by_pydantic, "1.2.3", Dataset(), _SAMPLE_STUDY
)
"""``Series(uid=uid, data=data, parent=parent, instances=())``."""

new_study: Callable[[str, Dataset], Study] = _checked(
    _study_shortcut, _study_by_pydantic, "1.2", Dataset()
)
"""``Study(uid=uid, data=data, series=())``."""

del _SAMPLE_STUDY, _SAMPLE_SERIES
