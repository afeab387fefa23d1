"""Synthetic DICOM studies for the end-to-end tests and benchmarks (no real people's data).

Everything is deterministic: the same call gives the same UIDs and values, so a
study uploaded twice is the same study, and tests can name what they expect.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import requests
from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian

UID_ROOT = "1.2.826.0.1.3680043.8.498.77"  # pydicom's root, plus a branch of our own
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
_SOP_CLASSES = {"CT": CT_IMAGE_STORAGE, "MR": MR_IMAGE_STORAGE}


@dataclass(frozen=True)
class SeriesSpec:
    """What one synthetic series holds."""

    modality: str
    instances: int
    description: str = ""


@dataclass(frozen=True)
class PatientSpec:
    """The synthetic patient of a study. ``name`` may hold all three PN groups."""

    patient_id: str
    name: str
    birth_date: str = "19700101"
    sex: str = "O"
    other_ids: tuple[str, ...] = ()


@dataclass
class SyntheticStudy:
    """A generated study: its UIDs, its metadata, and the datasets to upload."""

    uid: str
    patient: PatientSpec
    accession_number: str
    study_date: str
    description: str
    series_uids: list[str] = field(default_factory=list)
    instance_uids: dict[str, list[str]] = field(default_factory=dict)
    modalities: list[str] = field(default_factory=list)
    datasets: list[Dataset] = field(default_factory=list, repr=False)

    @property
    def instance_count(self) -> int:
        """How many instances the study holds."""
        return sum(len(uids) for uids in self.instance_uids.values())


def make_study(
    number: int,
    patient: PatientSpec,
    series: Sequence[SeriesSpec],
    study_date: str = "20240102",
    description: str = "",
    character_set: str = "ISO_IR 192",
) -> SyntheticStudy:
    """Generate study number ``number`` with the given series, as pydicom datasets.

    Args:
        number: distinguishes studies; UIDs derive from it.
        patient: the patient's identity.
        series: one spec per series.
        study_date: StudyDate (YYYYMMDD).
        description: StudyDescription (may be non-ASCII).
        character_set: SpecificCharacterSet; UTF-8 by default for non-ASCII names.

    Returns:
        The study with one dataset per instance, ready for ``upload``.
    """
    study_uid = f"{UID_ROOT}.{number}"
    study = SyntheticStudy(
        uid=study_uid,
        patient=patient,
        accession_number=f"ACC{number:05d}",
        study_date=study_date,
        description=description or f"Synthetic study {number}",
    )
    for series_number, spec in enumerate(series, start=1):
        series_uid = f"{study_uid}.{series_number}"
        study.series_uids.append(series_uid)
        study.modalities.append(spec.modality)
        study.instance_uids[series_uid] = []
        for instance_number in range(1, spec.instances + 1):
            instance_uid = f"{series_uid}.{instance_number}"
            study.instance_uids[series_uid].append(instance_uid)
            study.datasets.append(
                _instance(study, spec, series_number, instance_number, character_set)
            )
    return study


def _instance(
    study: SyntheticStudy,
    spec: SeriesSpec,
    series_number: int,
    instance_number: int,
    character_set: str,
) -> Dataset:
    series_uid = f"{study.uid}.{series_number}"
    sop_class = _SOP_CLASSES.get(spec.modality, SECONDARY_CAPTURE)
    ds = Dataset()
    ds.SpecificCharacterSet = character_set
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = f"{series_uid}.{instance_number}"
    ds.StudyDate = study.study_date
    ds.SeriesDate = study.study_date
    ds.StudyTime = "101500"
    ds.AccessionNumber = study.accession_number
    ds.Modality = spec.modality
    ds.ReferringPhysicianName = ""
    ds.InstitutionName = "Synthetic Hospital"
    ds.StudyDescription = study.description
    ds.SeriesDescription = spec.description or f"{spec.modality} series {series_number}"
    ds.PatientName = study.patient.name
    ds.PatientID = study.patient.patient_id
    ds.PatientBirthDate = study.patient.birth_date
    ds.PatientSex = study.patient.sex
    if study.patient.other_ids:
        ds.OtherPatientIDs = list(study.patient.other_ids)
    ds.StudyInstanceUID = study.uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = f"S{study.uid.rsplit('.', 1)[-1]}"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [0.0, 0.0, float(instance_number)]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [0.5, 0.5]
    ds.SliceThickness = "1.25"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 2
    ds.Columns = 2
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    ds.PixelData = bytes([0, 64, 128, 255])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return ds


def standard_studies() -> list[SyntheticStudy]:
    """The studies the end-to-end tests load: sizes, patients and names chosen to cover.

    * A: 2 series, 80 instances (60 CT + 20 CT), the benchmark-sized study.
    * B: a Japanese patient name with Alphabetic, Ideographic and Phonetic groups (MR).
    * C: two modalities in one study (US and SR) and multi-valued OtherPatientIDs.
    * D: a Latin-1 name (Müller) and a third patient, DX.
    """
    return [
        make_study(
            1,
            PatientSpec("SYN-0001", "Doe^Jane"),
            [SeriesSpec("CT", 60, "Thorax"), SeriesSpec("CT", 20, "Abdomen")],
            description="CT chest and abdomen",
        ),
        make_study(
            2,
            PatientSpec("SYN-0002", "Yamada^Tarou=山田^太郎=やまだ^たろう", "19651231", "M"),
            [SeriesSpec("MR", 3, "頭部")],
            study_date="20231115",
            description="MR 頭部",
        ),
        make_study(
            3,
            PatientSpec("SYN-0003", "Roe^Richard^J^Dr", "19801010", "M", ("ALT-1", "ALT-2")),
            [SeriesSpec("US", 2), SeriesSpec("SR", 1)],
            study_date="20240303",
        ),
        make_study(
            4,
            PatientSpec("SYN-0004", "Müller^Jürgen", "19550505", "M"),
            [SeriesSpec("DX", 1)],
            study_date="20220707",
            description="Thorax p.a.",
        ),
    ]


def upload(url: str, datasets: Iterable[Dataset], session: requests.Session | None = None) -> int:
    """Store datasets in an Orthanc through its REST API (POST /instances).

    Args:
        url: Orthanc's HTTP base, e.g. "http://127.0.0.1:8042".
        datasets: datasets with file meta information.
        session: a session to reuse; a new one when None.

    Returns:
        How many instances were sent.

    Raises:
        requests.HTTPError: if Orthanc refuses an instance.
    """
    own = session or requests.Session()
    count = 0
    try:
        for dataset in datasets:
            buffer = io.BytesIO()
            dcmwrite(buffer, dataset, enforce_file_format=True)
            response = own.post(
                f"{url.rstrip('/')}/instances",
                data=buffer.getvalue(),
                headers={"Content-Type": "application/dicom"},
                timeout=30,
            )
            response.raise_for_status()
            count += 1
    finally:
        if session is None:
            own.close()
    return count
