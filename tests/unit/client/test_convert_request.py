"""Queries that reach the archive as the same request get the same ArchiveRequest,
and only those (issue 10: key by what the archive receives)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from dicomtrolley.core import Query, QueryLevels
from dicomtrolley.dicom_qr import DICOMQR
from dicomtrolley.qido_rs import HierarchicalQuery, QidoRS, RelationalQuery

from dicomcache.client.convert.query import query_to_proto
from dicomcache.client.convert.request import (
    Requests,
    archive_request,
    protocol_of,
    protocol_value,
)
from dicomcache.server.api.keys import request_key

UID = "1.2.840.1"


def key(protocol: str, query: Query) -> bytes:
    request = archive_request(protocol, query)
    assert request is not None
    return request_key(request)


SAME = [
    (
        "include_fields [] and None",
        Query(PatientID="P"),
        Query.model_construct(PatientID="P", include_fields=None),  # as a caller may build it
    ),
    (
        "two times on one date",
        Query(min_study_date=datetime(2024, 1, 1, 8), max_study_date=datetime(2024, 1, 2, 9)),
        Query(min_study_date=datetime(2024, 1, 1, 17), max_study_date=datetime(2024, 1, 2, 23)),
    ),
    (
        "naive and UTC",
        Query(min_study_date=datetime(2024, 1, 1), max_study_date=datetime(2024, 2, 1)),
        Query(
            min_study_date=datetime(2024, 1, 1, tzinfo=UTC),
            max_study_date=datetime(2024, 2, 1, tzinfo=UTC),
        ),
    ),
    (
        "Query and the HierarchicalQuery it becomes",
        Query(StudyInstanceUID=UID, query_level=QueryLevels.SERIES),
        HierarchicalQuery(StudyInstanceUID=UID, query_level=QueryLevels.SERIES),
    ),
    ("trailing spaces", Query(PatientID="P"), Query(PatientID="P  ")),
    (
        "include fields in another order",
        Query(PatientID="P", include_fields=["StudyDate", "Modality"]),
        Query(PatientID="P", include_fields=["Modality", "StudyDate"]),
    ),
]


@pytest.mark.parametrize("protocol", ["qido-rs", "dicom-qr"])
@pytest.mark.parametrize(("name", "first", "second"), SAME, ids=[s[0] for s in SAME])
def test_queries_sent_as_one_request_share_a_key(protocol, name, first, second):
    if protocol == "dicom-qr" and isinstance(second, HierarchicalQuery):
        second = Query(**first.model_dump())  # C-FIND knows no hierarchical kind
    if protocol == "dicom-qr" and second.include_fields is None:
        pytest.skip("dicomtrolley's DICOMQuery cannot take include_fields=None at all")
    assert key(protocol, first) == key(protocol, second)


DIFFERENT = [
    ("another value", Query(PatientID="P"), Query(PatientID="Q")),
    ("another level", Query(PatientID="P"), Query(PatientID="P", query_level=QueryLevels.SERIES)),
    ("more attributes", Query(PatientID="P"), Query(PatientID="P", include_fields=["StudyDate"])),
    (
        "another date",
        Query(min_study_date=datetime(2024, 1, 1), max_study_date=datetime(2024, 2, 1)),
        Query(min_study_date=datetime(2024, 1, 2), max_study_date=datetime(2024, 2, 1)),
    ),
]


@pytest.mark.parametrize("protocol", ["qido-rs", "dicom-qr"])
@pytest.mark.parametrize(("name", "first", "second"), DIFFERENT, ids=[d[0] for d in DIFFERENT])
def test_queries_sent_as_other_requests_do_not(protocol, name, first, second):
    assert key(protocol, first) != key(protocol, second)


def test_a_relational_query_is_another_request_than_a_hierarchical_one():
    hierarchical = HierarchicalQuery(StudyInstanceUID=UID, query_level=QueryLevels.SERIES)
    relational = RelationalQuery(StudyInstanceUID=UID, query_level=QueryLevels.SERIES)
    assert key("qido-rs", hierarchical) != key("qido-rs", relational)


def test_no_request_for_unknown_protocols_or_refused_queries():
    assert archive_request(None, Query(PatientID="P")) is None
    assert archive_request("mint", Query(PatientID="P")) is None
    # dicomtrolley's QIDO-RS searcher refuses a date range with one end only.
    assert archive_request("qido-rs", Query(min_study_date=datetime(2024, 1, 1))) is None


def test_the_protocol_comes_from_the_upstream_class():
    assert protocol_of(QidoRS(session=None, url="http://pacs/dicom-web")) == "qido-rs"
    assert protocol_of(DICOMQR(host="pacs", port=104, aet="ME", aec="PACS")) == "dicom-qr"
    assert protocol_of(object()) is None
    with pytest.raises(ValueError, match="protocol"):
        protocol_value("wado")


@pytest.mark.parametrize("protocol", ["qido-rs", "dicom-qr", "mint", None])
def test_requests_keeps_what_archive_request_builds(protocol):
    requests = Requests(protocol, size=2)
    queries = [Query(PatientID=p, query_level=QueryLevels.SERIES) for p in ("A", "B", "C", "A")]
    for query in queries:
        assert requests.get(query, query_to_proto(query)) == archive_request(protocol, query)
    assert len(requests._known) <= 2
