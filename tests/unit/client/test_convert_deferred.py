"""A hit's datasets are built on first read, into exactly what an eager build gives."""

from __future__ import annotations

import copy
import gc
import pickle
import threading
import warnings
from typing import Any

import pytest
from hypothesis import given
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dicomcache.client.convert import deferred
from dicomcache.client.convert.dataset import from_pydicom, to_pydicom
from dicomcache.client.convert.deferred import DeferredDataset, deferred_dataset
from dicomcache.client.convert.objects import study_from_proto, study_to_proto
from dicomcache.v1 import dataset_pb2, objects_pb2
from tests.support.strategies import dicom_json_datasets


def _message() -> dataset_pb2.Dataset:
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P1"
    ds.SOPInstanceUID = "1.2.3.4"
    ds.InstanceNumber = 7
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    item = Dataset()
    item.CodeValue = "T-1"
    ds.ProcedureCodeSequence = [item]
    return from_pydicom(ds)


def _pair() -> tuple[Dataset, Dataset]:
    """A deferred dataset and the eager build of the same message."""
    message = _message()
    return deferred_dataset(message.SerializeToString()), to_pydicom(message)


def _elements_alive() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is DataElement)


def test_a_hit_builds_no_element_until_one_is_read() -> None:
    study = objects_pb2.Study(uid="1.2.3", attributes=_message())
    series = study.series.add(uid="1.2.3.1", attributes=_message())
    for i in range(50):
        series.instances.add(uid=f"1.2.3.1.{i}", attributes=_message())
    before = _elements_alive()
    built = study_from_proto(objects_pb2.Study.FromString(study.SerializeToString()))
    assert _elements_alive() == before
    instance = built.series[0].instances[3]
    assert instance.data.PatientID == "P1"
    assert type(instance.data) is Dataset  # now plain, and only this one was built
    assert type(built.series[0].instances[4].data) is DeferredDataset
    assert _elements_alive() == before + len(instance.data) + 1  # + the sequence item's


@given(dicom_json_datasets(pydicom_safe=True))
def test_the_first_read_builds_what_the_eager_build_gives(json_dataset: dict[str, Any]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = from_pydicom(Dataset.from_json(json_dataset))
        eager = to_pydicom(message)
        lazy = deferred_dataset(message.SerializeToString())
        assert lazy.to_json_dict() == eager.to_json_dict()
    assert type(lazy) is Dataset
    assert lazy == eager
    assert vars(lazy).keys() == vars(eager).keys()
    for a, b in zip(lazy, eager, strict=True):
        assert vars(a) == vars(b) and type(a.value) is type(b.value)


@pytest.mark.parametrize(
    "read",
    [
        lambda ds: ds.PatientName,
        lambda ds: ds[0x00100020].value,
        lambda ds: "PatientID" in ds,
        lambda ds: len(ds),
        lambda ds: list(ds),
        lambda ds: ds.get("InstanceNumber"),
        lambda ds: str(ds),
        lambda ds: ds.to_json_dict(),
        lambda ds: [name for name in dir(ds) if name[0].isupper()],  # the keywords
        lambda ds: ds == Dataset(),
        lambda ds: Dataset() == ds,
        lambda ds: ds.keys(),
    ],
)
def test_every_route_into_the_elements_builds_them(read: Any) -> None:
    lazy, eager = _pair()
    assert read(lazy) == read(eager)
    assert type(lazy) is Dataset and lazy == eager


def test_writes_before_any_read_land_on_the_built_elements() -> None:
    lazy, eager = _pair()
    lazy.PatientID = "P2"  # Dataset.__setattr__ looks the element up first
    lazy.StudyID = "S9"
    lazy.note = "a Python attribute, not an element"
    del lazy.InstanceNumber
    eager.PatientID, eager.StudyID = "P2", "S9"
    del eager.InstanceNumber
    assert lazy == eager
    assert lazy.note == "a Python attribute, not an element"


def test_a_python_attribute_set_before_the_build_survives_it() -> None:
    lazy, _ = _pair()
    lazy.is_decompressed = True
    assert lazy.PatientID == "P1"
    assert lazy.is_decompressed is True


@pytest.mark.parametrize(
    "duplicate", [copy.copy, copy.deepcopy, lambda ds: pickle.loads(pickle.dumps(ds))]
)
def test_copies_and_pickles_are_plain_built_datasets(duplicate: Any) -> None:
    lazy, eager = _pair()
    twin = duplicate(lazy)
    assert type(twin) is Dataset and type(lazy) is Dataset
    assert twin == eager


def test_a_shallow_copy_shares_the_elements_as_pydicoms_does() -> None:
    lazy, eager = _pair()
    lazy_copy, eager_copy = copy.copy(lazy), copy.copy(eager)
    lazy_copy.StudyID = eager_copy.StudyID = "S1"
    assert ("StudyID" in lazy) is ("StudyID" in eager) is True


def test_threads_reading_at_once_all_see_one_set_of_elements() -> None:
    for _ in range(20):
        lazy, _ = _pair()
        seen: list[Any] = []
        start = threading.Barrier(8)

        def read(
            lazy: Dataset = lazy, seen: list[Any] = seen, start: threading.Barrier = start
        ) -> None:
            start.wait()
            seen.append(lazy._dict)

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({id(elements) for elements in seen}) == 1
        assert seen[0] is lazy._dict


def test_an_attribute_error_in_the_build_is_not_an_empty_dataset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Dataset.__getattr__ answers a failed ``_dict`` lookup with {}: that must not happen.
    def broken(message: dataset_pb2.Dataset) -> Dataset:
        raise AttributeError("a bug in the build")

    monkeypatch.setattr(deferred, "to_pydicom", broken)
    lazy, _ = _pair()
    with pytest.raises(ValueError, match="could not be built"):
        len(lazy)


def test_an_unread_dataset_holds_its_own_bytes_not_the_whole_answer() -> None:
    study = objects_pb2.Study(uid="1.2.3")
    series = study.series.add(uid="1.2.3.1")
    for i in range(200):
        series.instances.add(uid=f"1.2.3.1.{i}", attributes=_message())
    built = study_from_proto(study)
    one = built.series[0].instances[0].data
    del built, study, series
    wire = vars(one)[deferred._WIRE]
    assert type(wire) is bytes and len(wire) == _message().ByteSize()
    assert one.PatientID == "P1"


def test_objects_round_trip_through_the_deferred_datasets() -> None:
    study = study_from_proto(objects_pb2.Study(uid="1.2.3", attributes=_message()))
    again = study_from_proto(study_to_proto(study))
    assert again.data == study.data == to_pydicom(_message())
