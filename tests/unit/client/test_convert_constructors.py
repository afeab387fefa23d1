"""The shortcuts that build pydicom objects build exactly what pydicom's constructors build."""

from __future__ import annotations

import copy
import importlib
import logging
import pickle
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import UID
from pydicom.valuerep import IS, PersonName

from dicomcache.client.convert import constructors
from dicomcache.client.convert.dataset import to_pydicom
from dicomcache.client.convert.dicom_json import dataset_from_json, dataset_to_json
from tests.support.strategies import dicom_json_datasets

_MODES = st.sampled_from([config.IGNORE, config.WARN, config.RAISE])


def _state(value: Any) -> Any:
    """A value's type and attributes, recursively: what == alone does not compare."""
    if isinstance(value, Dataset):
        attributes = {k: _state(v) for k, v in vars(value).items() if k != "_dict"}
        elements = [(tag, _state(element)) for tag, element in value._dict.items()]
        return (type(value), attributes, elements)
    if isinstance(value, DataElement):
        return (type(value), {k: _state(v) for k, v in vars(value).items()})
    if isinstance(value, MultiValue | Sequence | list):
        return (type(value), [_state(v) for v in value])
    return (type(value), value, getattr(value, "__dict__", None))


@given(st.text(st.sampled_from("^= \\Aä山")), _MODES)
def test_person_name(text: str, mode: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shortcut does not validate again, by design
        try:
            expected = PersonName(text, validation_mode=mode)
        except ValueError:
            return  # RAISE: pydicom refuses what it would never have read
    assert _state(constructors.person_name(text, mode)) == _state(expected)


@given(_MODES)
def test_empty_person_name_is_what_the_value_setter_makes(mode: int) -> None:
    expected = DataElement(0x00100010, "PN", PersonName(""), validation_mode=mode).value
    assert _state(constructors.empty_person_name(mode)) == _state(expected)


@given(st.text(st.sampled_from("1.2 \t0")))
def test_uid(text: str) -> None:
    assert _state(constructors.uid(text)) == _state(UID(text, config.IGNORE))


@given(st.integers(-(2**40), 2**40))
def test_integer_string(number: int) -> None:
    assert _state(constructors.integer_string(number)) == _state(IS(number, config.IGNORE))


@given(st.integers(0, 2**32 - 1), st.sampled_from(["LO", "UI", "PN", "US"]), _MODES)
def test_data_element(tag: int, vr: str, mode: int) -> None:
    built = constructors.data_element(BaseTag(tag), vr, "7", mode)
    expected = DataElement(BaseTag(tag), vr, "7", already_converted=True, validation_mode=mode)
    assert _state(built) == _state(expected)


def test_dataset_is_fresh_and_empty() -> None:
    first, second = constructors.dataset(), constructors.dataset()
    assert _state(first) == _state(Dataset())
    for name, value in vars(first).items():
        if isinstance(value, dict | list):
            assert value is not vars(second)[name]  # nothing mutable is shared


def test_a_shortcut_that_builds_something_else_is_not_used() -> None:
    def wrong(text: str) -> UID:
        return UID(text + "9")

    def right(text: str) -> UID:
        return UID(text)

    def failing(text: str) -> UID:
        raise AttributeError(text)

    assert constructors._checked(wrong, right, ("1.2",)) is right
    assert constructors._checked(failing, right, ("1.2",)) is right
    assert constructors._checked(right, UID, ("1.2",)) is right


@pytest.fixture
def reload_constructors(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[], None]]:
    """Re-runs the module's import-time checks; after the test, once more with pydicom restored."""
    yield lambda: importlib.reload(constructors)
    monkeypatch.undo()  # fixtures are torn down after their dependents: undo it now
    importlib.reload(constructors)
    assert constructors.person_name is constructors._person_name_shortcut, "not restored"


def test_a_failing_self_check_falls_back_with_one_warning_per_shortcut(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    reload_constructors: Callable[[], None],
) -> None:
    """As if a pydicom release gave PersonName another attribute."""
    original = PersonName.__init__

    def init(self: PersonName, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.added_by_a_new_pydicom = True

    monkeypatch.setattr(PersonName, "__init__", init)
    with caplog.at_level(logging.WARNING, logger=constructors.__name__):
        reload_constructors()
    records = [r for r in caplog.records if r.name == constructors.__name__]
    assert [r.levelno for r in records] == [logging.WARNING] * 2
    assert sorted(r.getMessage().split()[1] for r in records) == [
        "empty_person_name",
        "person_name",
    ]
    for record in records:
        message = record.getMessage()
        assert "pydicom's constructor" in message
        assert "Yamada" not in message and "Doe" not in message  # no sample value, no PHI
    assert constructors.person_name is constructors._person_name_by_pydicom
    assert constructors.empty_person_name is constructors._empty_person_name_by_pydicom
    assert constructors.uid is constructors._uid_shortcut  # the others still pass
    assert constructors.person_name("Doe^Jane", config.WARN).added_by_a_new_pydicom


def test_passing_self_checks_log_nothing(
    caplog: pytest.LogCaptureFixture, reload_constructors: Callable[[], None]
) -> None:
    with caplog.at_level(logging.DEBUG, logger=constructors.__name__):
        reload_constructors()
    assert [r for r in caplog.records if r.name == constructors.__name__] == []
    assert constructors.person_name is constructors._person_name_shortcut


@contextmanager
def _config(name: str, value: Any) -> Iterator[None]:
    holder = config.settings if name == "reading_validation_mode" else config
    saved = getattr(holder, name)
    setattr(holder, name, value)
    try:
        yield
    finally:
        setattr(holder, name, saved)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("datetime_conversion", True),
        ("use_none_as_empty_text_VR_value", True),
        ("reading_validation_mode", config.IGNORE),
        ("reading_validation_mode", config.WARN),
    ],
)
@given(json_dataset=dicom_json_datasets(pydicom_safe=True))
def test_to_pydicom_follows_pydicom_settings(
    name: str, value: Any, json_dataset: dict[str, Any]
) -> None:
    message = dataset_from_json(json_dataset)
    with _config(name, value), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = Dataset.from_json(dataset_to_json(message))
        except (ValueError, TypeError) as exc:  # e.g. a time that is no datetime.time
            with pytest.raises(type(exc)):
                to_pydicom(message)
            return
        built = to_pydicom(message)
    assert built == expected
    assert [(e.tag, e.VR, type(e.value)) for e in built] == [
        (e.tag, e.VR, type(e.value)) for e in expected
    ]


@given(dicom_json_datasets(pydicom_safe=True))
def test_common_values_carry_what_from_json_gives_them(json_dataset: dict[str, Any]) -> None:
    """Element and value attributes (validation modes included) as from_json sets them."""
    message = dataset_from_json(json_dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = Dataset.from_json(dataset_to_json(message))
        built = to_pydicom(message)
    for tag, element in built._dict.items():
        reference = expected._dict[tag]
        if element.VR in ("SQ", "DS", "FL", "FD", "OB", "OD", "OF", "OL", "OV", "OW", "UN", "AT"):
            continue  # compared by value in test_convert_dataset; not built here
        assert _state(element) == _state(reference), (hex(tag), element.VR)


def test_built_datasets_behave_like_pydicoms() -> None:
    source = Dataset()
    source.PatientName = "Doe^Jane"
    source.SOPInstanceUID = "1.2.3.4"
    source.InstanceNumber = 7
    source.Modality = "MR"
    source.Rows = 512
    source.ReferringPhysicianName = ""
    message = dataset_from_json(source.to_json_dict())
    built = to_pydicom(message)

    assert list(built.keys()) == sorted(built.keys())  # the order from_json adds them in
    assert isinstance(built.PatientName, PersonName)
    assert built.PatientName.family_name == "Doe"
    assert isinstance(built.SOPInstanceUID, UID) and built.SOPInstanceUID.name == "1.2.3.4"
    assert isinstance(built.InstanceNumber, IS) and built.InstanceNumber == 7
    assert built.ReferringPhysicianName == ""
    for clone in (pickle.loads(pickle.dumps(built)), copy.deepcopy(built)):
        assert clone == built and clone.to_json_dict() == built.to_json_dict()
    built.Modality = "CT"
    built.PatientID = "P1"
    del built.Rows
    assert (built.Modality, built.PatientID, "Rows" in built) == ("CT", "P1", False)
    assert to_pydicom(message).Modality == "MR"  # nothing shared between datasets
