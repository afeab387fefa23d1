"""What a real Orthanc answers survives dicomtrolley -> proto -> dicomtrolley unchanged.

Every QIDO-RS answer (study, series and instance level, hierarchical and
relational) and DICOM-QR C-FIND answer for the synthetic studies goes through
the wire form and back: same tree, same parent links, equal ``to_json_dict()``
for every object.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
import requests
from dicomtrolley.core import Query, QueryLevels, Study
from dicomtrolley.dicom_qr import DICOMQR, DICOMQuery
from dicomtrolley.qido_rs import HierarchicalQuery, QidoRS, RelationalQuery

from dicomcache.client.convert.objects import studies_from_proto, study_to_proto
from dicomcache.server.api.validation import Checker
from dicomcache.v1 import objects_pb2
from tests.e2e.conftest import LoadedOrthanc
from tests.support.trees import tree_summary

pytestmark = pytest.mark.orthanc


@pytest.fixture(scope="module")
def qido(orthanc: LoadedOrthanc) -> Iterator[QidoRS]:
    with requests.Session() as session:
        yield QidoRS(session=session, url=orthanc.dicomweb_url)


@pytest.fixture(scope="module")
def dicom_qr(orthanc: LoadedOrthanc) -> DICOMQR:
    return DICOMQR(host=orthanc.host, port=orthanc.dicom_port, aet="DICOMCACHE", aec=orthanc.aet)


def round_trip(studies: Sequence[Study]) -> list[Study]:
    """Through the wire form: proto messages serialized and parsed again.

    On the way, the server's rules accept every message: no tag below group 0008
    (no file meta information), every object's own UID attribute its uid.
    """
    messages = [study_to_proto(study) for study in studies]
    check = Checker()
    check.studies(messages, "studies")
    check.done()
    wire = [message.SerializeToString() for message in messages]
    return studies_from_proto(objects_pb2.Study.FromString(data) for data in wire)


def assert_round_trips(studies: Sequence[Study]) -> None:
    back = round_trip(studies)
    assert [tree_summary(study) for study in back] == [tree_summary(study) for study in studies]


def test_study_level_answers(orthanc: LoadedOrthanc, qido: QidoRS) -> None:
    studies = qido.find_studies(HierarchicalQuery(query_level=QueryLevels.STUDY))
    assert {s.uid for s in studies} >= {s.uid for s in orthanc.studies}
    assert_round_trips(studies)


def test_study_level_answers_with_include_fields(orthanc: LoadedOrthanc, qido: QidoRS) -> None:
    query = HierarchicalQuery(
        query_level=QueryLevels.STUDY,
        include_fields=["PatientBirthDate", "PatientSex", "StudyDescription", "InstitutionName"],
    )
    studies = qido.find_studies(query)
    assert len(studies) >= len(orthanc.studies)
    assert_round_trips(studies)


def test_non_ascii_person_name_keeps_its_three_groups(orthanc: LoadedOrthanc, qido: QidoRS) -> None:
    study = qido.find_study(HierarchicalQuery(PatientID=orthanc.study(2).patient.patient_id))
    message = study_to_proto(study)
    name = message.attributes.elements[0x00100010].values.items[0].person_name
    assert (name.alphabetic, name.ideographic, name.phonetic) == (
        "Yamada^Tarou",
        "山田^太郎",
        "やまだ^たろう",
    )
    (back,) = round_trip([study])
    assert str(back.data.PatientName) == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    assert tree_summary(back) == tree_summary(study)


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_series_level_answers(orthanc: LoadedOrthanc, qido: QidoRS, number: int) -> None:
    expected = orthanc.study(number)
    studies = qido.find_studies(
        HierarchicalQuery(StudyInstanceUID=expected.uid, query_level=QueryLevels.SERIES)
    )
    assert sorted(s.uid for s in studies[0].series) == sorted(expected.series_uids)
    assert_round_trips(studies)


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_instance_level_answers_per_series(
    orthanc: LoadedOrthanc, qido: QidoRS, number: int
) -> None:
    expected = orthanc.study(number)
    for series_uid in expected.series_uids:
        studies = qido.find_studies(
            HierarchicalQuery(
                StudyInstanceUID=expected.uid,
                SeriesInstanceUID=series_uid,
                query_level=QueryLevels.INSTANCE,
            )
        )
        instances = studies[0].series[0].instances
        assert sorted(i.uid for i in instances) == sorted(expected.instance_uids[series_uid])
        assert_round_trips(studies)


def test_whole_study_at_instance_level(orthanc: LoadedOrthanc, qido: QidoRS) -> None:
    expected = orthanc.study(1)
    studies = qido.find_studies(
        RelationalQuery(StudyInstanceUID=expected.uid, query_level=QueryLevels.INSTANCE)
    )
    assert len(studies[0].all_instances()) == expected.instance_count == 80
    assert len(studies[0].series) == 2
    assert_round_trips(studies)


def test_find_study_by_id(orthanc: LoadedOrthanc, qido: QidoRS) -> None:
    expected = orthanc.study(3)
    study = qido.find_study_by_id(expected.uid, query_level=QueryLevels.INSTANCE)
    assert len(study.all_instances()) == expected.instance_count
    assert_round_trips([study])


@pytest.mark.parametrize("level", list(QueryLevels))
def test_dicom_qr_answers(orthanc: LoadedOrthanc, dicom_qr: DICOMQR, level: QueryLevels) -> None:
    for expected in orthanc.studies:
        query = DICOMQuery(
            StudyInstanceUID=expected.uid,
            query_level=level,
            include_fields=["PatientName", "PatientID", "Modality", "StudyDate"],
        )
        studies = dicom_qr.find_studies(query)
        assert [s.uid for s in studies] == [expected.uid]
        if level != QueryLevels.STUDY:
            assert {s.uid for s in studies[0].series} == set(expected.series_uids)
        assert_round_trips(studies)


def test_dicom_qr_keeps_the_non_ascii_name(orthanc: LoadedOrthanc, dicom_qr: DICOMQR) -> None:
    expected = orthanc.study(2)
    studies = dicom_qr.find_studies(
        Query(PatientID=expected.patient.patient_id, include_fields=["PatientName"])
    )
    (back,) = round_trip(studies)
    assert str(back.data.PatientName) == expected.patient.name
