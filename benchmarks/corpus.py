"""Synthetic studies shaped like an archive's query answers, for every benchmark row.

Each instance carries the 18 attributes that Orthanc's QIDO-RS instance-level
answer carries (study, series and instance identification, patient, dates and a
RetrieveURL), so byte sizes match what a real cache would hold. The datasets are
built with pydicom and converted with the client's own conversions, as a
CachedSearcher would send them. For the millions of instances of the scaling
row, ``BulkStudies`` stamps fresh uids into one converted template instead, which
gives the same bytes per instance at a fraction of the cost.

Deterministic: the same index gives the same study in every process. No clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from dicomtrolley.core import Instance, Series, Study
from pydicom.dataset import Dataset

from dicomcache.client.convert.dataset import from_pydicom
from dicomcache.client.convert.objects import study_to_proto
from dicomcache.v1 import dataset_pb2, objects_pb2

ROOT = "1.2.826.0.1.3680043.8.498."  # a UID root of realistic length
SOP_CLASS = "1.2.840.10008.5.1.4.1.1.4"  # MR Image Storage
BASE_URL = "http://127.0.0.1:8042/dicom-web"

_SOP_INSTANCE_UID = 0x00080018
_SERIES_INSTANCE_UID = 0x0020000E
_STUDY_INSTANCE_UID = 0x0020000D
_INSTANCE_NUMBER = 0x00200013
_RETRIEVE_URL = 0x00081190


@dataclass(frozen=True)
class Shape:
    """How many series a study has and how many instances each series has."""

    series: int = 4
    instances: int = 20

    @property
    def per_study(self) -> int:
        """Instances in one study."""
        return self.series * self.instances


STANDARD = Shape()  # 4 series of 20: the 80-instance study of the rows


def study_uid(index: int) -> str:
    """The StudyInstanceUID of study ``index`` (about 40 characters, like a real one)."""
    return f"{ROOT}{10**11 + index}"


def _patient(ds: Dataset, index: int) -> None:
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = f"Doe^Jane^{index % 997:03d}"
    ds.PatientID = f"PAT{index:08d}"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.StudyDate = "20240131"
    ds.StudyTime = "101500.000000"
    ds.AccessionNumber = f"ACC{index:09d}"
    ds.ReferringPhysicianName = "Smith^John"
    ds.StudyInstanceUID = study_uid(index)


def study_dataset(index: int, shape: Shape) -> Dataset:
    """The study's attributes, as in a QIDO-RS study-level answer."""
    ds = Dataset()
    _patient(ds, index)
    ds.StudyID = f"{index % 100000:05d}"
    ds.StudyDescription = "MR knee left"
    ds.ModalitiesInStudy = "MR"
    ds.InstanceAvailability = "ONLINE"
    ds.NumberOfStudyRelatedSeries = shape.series
    ds.NumberOfStudyRelatedInstances = shape.per_study
    ds.RetrieveURL = f"{BASE_URL}/studies/{ds.StudyInstanceUID}"
    return ds


def series_dataset(index: int, series: int, shape: Shape) -> Dataset:
    """A series' attributes, as in a QIDO-RS series-level answer."""
    ds = Dataset()
    _patient(ds, index)
    ds.SeriesInstanceUID = f"{study_uid(index)}.{series + 1}"
    ds.Modality = "MR"
    ds.SeriesNumber = series + 1
    ds.SeriesDescription = f"T{series % 2 + 1} sagittal"
    ds.NumberOfSeriesRelatedInstances = shape.instances
    ds.InstanceAvailability = "ONLINE"
    ds.RetrieveURL = f"{BASE_URL}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
    return ds


def instance_dataset(index: int, series: int, number: int) -> Dataset:
    """An instance's 18 attributes, as in Orthanc's QIDO-RS instance-level answer."""
    ds = Dataset()
    _patient(ds, index)  # 10 attributes
    ds.SeriesInstanceUID = f"{study_uid(index)}.{series + 1}"
    ds.SOPInstanceUID = f"{ds.SeriesInstanceUID}.{number + 1}.{10**8 + number}"
    ds.SOPClassUID = SOP_CLASS
    ds.Modality = "MR"
    ds.SeriesNumber = series + 1
    ds.InstanceNumber = number + 1
    ds.InstanceAvailability = "ONLINE"
    ds.RetrieveURL = (
        f"{BASE_URL}/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
        f"/instances/{ds.SOPInstanceUID}"
    )
    return ds


def trolley_study(index: int, shape: Shape) -> Study:
    """Study ``index`` as dicomtrolley objects with pydicom datasets and parent links."""
    study = Study(uid=study_uid(index), data=study_dataset(index, shape), series=())
    series_list = []
    for s in range(shape.series):
        data = series_dataset(index, s, shape)
        series = Series(uid=data.SeriesInstanceUID, data=data, parent=study, instances=())
        instances = []
        for n in range(shape.instances):
            ds = instance_dataset(index, s, n)
            instances.append(Instance(uid=ds.SOPInstanceUID, data=ds, parent=series))
        series.instances = tuple(instances)
        series_list.append(series)
    study.series = tuple(series_list)
    return study


def proto_study(index: int, shape: Shape) -> objects_pb2.Study:
    """Study ``index`` converted by the client, as a CachedSearcher would store it."""
    return study_to_proto(trolley_study(index, shape))


class BulkStudies:
    """Proto studies made by stamping uids into one converted study: same sizes, cheap.

    Not thread-safe (reuses its templates). No clock.
    """

    def __init__(self, shape: Shape) -> None:
        self.shape = shape
        template = trolley_study(0, shape)
        self._study = from_pydicom(template.data)
        self._series = from_pydicom(template.series[0].data)
        self._instance = from_pydicom(template.series[0].instances[0].data)

    def study(self, index: int) -> objects_pb2.Study:
        """Study ``index``: the template's attributes with this study's uids."""
        uid = study_uid(index)
        message = objects_pb2.Study(uid=uid, attributes=_stamped(self._study, uid, None, None))
        for s in range(self.shape.series):
            series_uid = f"{uid}.{s + 1}"
            series = message.series.add(
                uid=series_uid, attributes=_stamped(self._series, uid, series_uid, None)
            )
            for n in range(self.shape.instances):
                sop_uid = f"{series_uid}.{n + 1}.{10**8 + n}"
                series.instances.add(
                    uid=sop_uid, attributes=_stamped(self._instance, uid, series_uid, sop_uid)
                )
        return message

    def studies(self, start: int, count: int) -> Iterator[objects_pb2.Study]:
        """Studies ``start`` to ``start + count - 1``."""
        return (self.study(i) for i in range(start, start + count))


def _stamped(
    template: dataset_pb2.Dataset, study: str, series: str | None, sop: str | None
) -> dataset_pb2.Dataset:
    ds = dataset_pb2.Dataset()
    ds.CopyFrom(template)
    _set_text(ds, _STUDY_INSTANCE_UID, study)
    url = f"{BASE_URL}/studies/{study}"
    if series is not None:
        _set_text(ds, _SERIES_INSTANCE_UID, series)
        url += f"/series/{series}"
    if sop is not None:
        _set_text(ds, _SOP_INSTANCE_UID, sop)
        url += f"/instances/{sop}"
    _set_text(ds, _RETRIEVE_URL, url)
    return ds


def _set_text(ds: dataset_pb2.Dataset, tag: int, text: str) -> None:
    ds.elements[tag].values.items[0].text = text
