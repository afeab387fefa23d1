"""Search normalization: equal requests share a key, different ones never do, and a
Search reaches the archive as the Python client's query does (one entry for both)."""

from __future__ import annotations

from datetime import datetime

import pytest
from dicomtrolley.core import Query, QueryLevels

from dicomcache.client.convert.request import archive_request
from dicomcache.server.api.keys import canonical_request, request_key
from dicomcache.server.errors import InvalidArgument
from dicomcache.server.model import Level
from dicomcache.server.search.request import DICOM_QR, QIDO_RS, listing, normalize
from dicomcache.v1 import search_pb2

STUDIES = search_pb2.SEARCH_LEVEL_STUDIES
SERIES = search_pb2.SEARCH_LEVEL_SERIES
INSTANCES = search_pb2.SEARCH_LEVEL_INSTANCES
P = search_pb2.SearchParameter


def search(**fields: object) -> search_pb2.SearchRequest:
    fields.setdefault("upstream", "pacs")
    fields.setdefault("level", STUDIES)
    return search_pb2.SearchRequest(**fields)  # type: ignore[arg-type]  # test keywords


def key(request: search_pb2.SearchRequest, protocol: int = QIDO_RS) -> bytes:
    return request_key(normalize(request, protocol).request)


def violations(request: search_pb2.SearchRequest, protocol: int = QIDO_RS) -> list[tuple[str, str]]:
    with pytest.raises(InvalidArgument) as caught:
        normalize(request, protocol)
    return [(v.field, v.rule) for v in caught.value.violations]


@pytest.mark.parametrize("protocol", [QIDO_RS, DICOM_QR], ids=["qido-rs", "dicom-qr"])
@pytest.mark.parametrize(
    ("one", "other"),
    [
        # a tag in any of its three spellings is its keyword
        (
            search(match=[P(name="00100020", values=["P1"])]),
            search(match=[P(name="PatientID", values=["P1"])]),
        ),
        (
            search(match=[P(name="0010,0020", values=["P1"])]),
            search(match=[P(name="(0010,0020)", values=["P1"])]),
        ),
        (
            search(match=[P(name="(0010,0020)", values=["P1"])]),
            search(match=[P(name="00100020", values=["P1"])]),
        ),
        # parameters are a set of names
        (
            search(
                match=[P(name="PatientID", values=["P1"]), P(name="StudyDate", values=["20240102"])]
            ),
            search(
                match=[P(name="StudyDate", values=["20240102"]), P(name="PatientID", values=["P1"])]
            ),
        ),
        # trailing spaces go (DICOM pads values)
        (
            search(match=[P(name="PatientID", values=["P1  "])]),
            search(match=[P(name="PatientID", values=["P1"])]),
        ),
        # include fields: a set, tags as keywords, duplicates gone
        (
            search(include_fields=["00100010", "StudyDescription", "PatientName"]),
            search(include_fields=["StudyDescription", "PatientName"]),
        ),
        # a parameter named twice is one parameter with the values in order
        (
            search(match=[P(name="PatientID", values=["A"]), P(name="00100020", values=["B"])]),
            search(match=[P(name="PatientID", values=["A", "B"])]),
        ),
    ],
)
def test_equal_requests_share_one_key(
    one: search_pb2.SearchRequest, other: search_pb2.SearchRequest, protocol: int
) -> None:
    assert key(one, protocol) == key(other, protocol)


def test_all_absorbs_every_other_include_field() -> None:
    assert key(search(include_fields=["PatientName", "all", "00100020"])) == key(
        search(include_fields=["all"])
    )


def test_defaults_are_not_sent() -> None:
    assert key(search(fuzzy_matching=False, limit=0, offset=0)) == key(search())
    assert normalize(search(), QIDO_RS).request.parameters == []


DIFFERENT = [
    search(),
    search(level=SERIES),
    search(level=INSTANCES),
    search(level=SERIES, study_uid="1.2.3"),
    search(level=INSTANCES, study_uid="1.2.3"),
    search(level=INSTANCES, study_uid="1.2.3", series_uid="1.2.3.4"),
    search(match=[P(name="PatientID", values=["P1"])]),
    search(match=[P(name="PatientID", values=["P2"])]),
    search(match=[P(name="PatientID", values=["p1"])]),  # values are case-sensitive
    search(match=[P(name="PatientID", values=["P1", "P2"])]),
    search(match=[P(name="PatientID", values=["P2", "P1"])]),  # values keep their order
    search(match=[P(name="PatientID", values=["P1,P2"])]),
    search(match=[P(name="OtherPatientIDs", values=["P1"])]),
    search(match=[P(name="ReferencedSeriesSequence.SeriesInstanceUID", values=["1.2"])]),
    search(match=[P(name="00091001", values=["P1"])]),  # a private tag keeps its digits
    search(include_fields=["PatientName"]),
    search(include_fields=["all"]),
    search(fuzzy_matching=True),
    search(limit=5),
    search(offset=5),
    search(limit=5, offset=5),
]


def test_different_requests_never_share_a_key() -> None:
    keys = [key(r) for r in DIFFERENT]
    assert len(set(keys)) == len(keys)


def test_the_request_is_what_the_archive_receives() -> None:
    got = normalize(
        search(
            level=INSTANCES,
            study_uid="1.2.3",
            series_uid="1.2.3.4",
            match=[P(name="00200013", values=["1"])],
            include_fields=["00100010"],
            fuzzy_matching=True,
            limit=10,
            offset=20,
        ),
        QIDO_RS,
    ).request
    assert got.path == "/studies/1.2.3/series/1.2.3.4/instances"
    assert [(p.name, list(p.values)) for p in got.parameters] == [
        ("InstanceNumber", ["1"]),
        ("fuzzymatching", ["true"]),
        ("includefield", ["PatientName"]),
        ("limit", ["10"]),
        ("offset", ["20"]),
    ]
    assert canonical_request(got) == got


# Queries the Python client sends, and the Search that reaches the archive as the same request.
SHARED = [
    (Query(), search()),
    (Query(PatientID="P1"), search(match=[P(name="00100020", values=["P1"])])),
    (
        Query(PatientName="Doe*", ModalitiesInStudy="CT"),
        search(
            match=[
                P(name="ModalitiesInStudy", values=["CT"]),
                P(name="PatientName", values=["Doe*"]),
            ]
        ),
    ),
    (
        Query(min_study_date=datetime(2024, 1, 1), max_study_date=datetime(2024, 12, 31)),
        search(match=[P(name="StudyDate", values=["20240101-20241231"])]),
    ),
    (
        Query(StudyInstanceUID="1.2.3", query_level=QueryLevels.SERIES),
        search(level=SERIES, study_uid="1.2.3"),
    ),
    (
        Query(PatientID="P1", query_level=QueryLevels.SERIES),
        search(level=SERIES, match=[P(name="PatientID", values=["P1"])]),
    ),
    (
        Query(
            StudyInstanceUID="1.2.3", SeriesInstanceUID="1.2.3.4", query_level=QueryLevels.INSTANCE
        ),
        search(level=INSTANCES, study_uid="1.2.3", series_uid="1.2.3.4"),
    ),
    (
        Query(query_level=QueryLevels.INSTANCE, include_fields=["PatientName", "PatientID"]),
        search(level=INSTANCES, include_fields=["00100020", "PatientName"]),
    ),
    (Query(AccessionNumber="ACC1"), search(match=[P(name="AccessionNumber", values=["ACC1"])])),
]


@pytest.mark.parametrize("protocol", ["qido-rs", "dicom-qr"])
@pytest.mark.parametrize(
    ("query", "request_"), SHARED, ids=[q.to_short_string() for q, _ in SHARED]
)
def test_a_search_and_the_clients_query_for_one_archive_request_share_a_key(
    query: Query, request_: search_pb2.SearchRequest, protocol: str
) -> None:
    client = archive_request(protocol, query)
    assert client is not None
    number = QIDO_RS if protocol == "qido-rs" else DICOM_QR
    assert key(request_, number) == request_key(client)


@pytest.mark.parametrize("protocol", ["qido-rs", "dicom-qr"])
@pytest.mark.parametrize("level", [QueryLevels.STUDY, QueryLevels.SERIES, QueryLevels.INSTANCE])
def test_the_request_of_find_study_by_id_is_a_listing(protocol: str, level: QueryLevels) -> None:
    """The searches the client's ``find_study_by_id`` sends are known as the study's listing."""
    client = archive_request(protocol, Query(StudyInstanceUID="1.2.3", query_level=level))
    assert client is not None
    number = QIDO_RS if protocol == "qido-rs" else DICOM_QR
    searches = {
        QueryLevels.STUDY: [search(match=[P(name="StudyInstanceUID", values=["1.2.3"])])],
        QueryLevels.SERIES: [search(level=SERIES, study_uid="1.2.3")],
        QueryLevels.INSTANCE: [
            search(
                level=INSTANCES,
                study_uid="1.2.3",
                match=[P(name="StudyInstanceUID", values=["1.2.3"])],
            ),
            search(level=INSTANCES, study_uid="1.2.3"),
        ],
    }[level]
    shared = [
        s for s in searches if _normalizes(s, number) and key(s, number) == request_key(client)
    ]
    assert shared, "no Search reaches the archive as find_study_by_id does"
    for one in shared:
        assert listing(normalize(one, number), number) == ("1.2.3", Level(_level(level)))


def _level(level: QueryLevels) -> int:
    return {QueryLevels.STUDY: 1, QueryLevels.SERIES: 2, QueryLevels.INSTANCE: 3}[level]


def _normalizes(request: search_pb2.SearchRequest, protocol: int) -> bool:
    try:
        normalize(request, protocol)
    except InvalidArgument:
        return False
    return True


@pytest.mark.parametrize(
    "request_",
    [
        search(match=[P(name="PatientID", values=["P1"])]),
        search(level=SERIES),
        search(
            level=INSTANCES, study_uid="1.2.3", match=[P(name="StudyInstanceUID", values=["1.2.4"])]
        ),
        search(
            match=[P(name="StudyInstanceUID", values=["1.2.3"]), P(name="PatientID", values=["P1"])]
        ),
        search(match=[P(name="StudyInstanceUID", values=["1.2.3"])], limit=1),
    ],
)
def test_other_requests_are_no_listing(request_: search_pb2.SearchRequest) -> None:
    assert listing(normalize(request_, QIDO_RS), QIDO_RS) is None


def test_the_c_find_identifier() -> None:
    got = normalize(
        search(
            level=SERIES,
            study_uid="1.2.3",
            match=[P(name="Modality", values=["CT"])],
            include_fields=["00080021"],
        ),
        DICOM_QR,
    ).request
    assert got.path == "SERIES"
    assert [(p.name, list(p.values)) for p in got.parameters] == [
        ("Modality", ["CT"]),
        ("SeriesDate", [""]),
        ("SeriesInstanceUID", [""]),
        ("StudyInstanceUID", ["1.2.3"]),
    ]


@pytest.mark.parametrize(
    ("request_", "protocol", "field", "rule"),
    [
        (search(level=0), QIDO_RS, "level", "must be SEARCH_LEVEL_STUDIES"),
        (search(level=7), QIDO_RS, "level", "must be SEARCH_LEVEL_STUDIES"),
        (
            search(study_uid="1.2.3"),
            QIDO_RS,
            "study_uid",
            "must be empty at level SEARCH_LEVEL_STUDIES",
        ),
        (search(level=SERIES, study_uid="1.2/../x"), QIDO_RS, "study_uid", "must be a UID"),
        (
            search(level=SERIES, study_uid="1.2", series_uid="1.2.3"),
            QIDO_RS,
            "series_uid",
            "needs study_uid",
        ),
        (search(level=INSTANCES, series_uid="1.2.3"), QIDO_RS, "series_uid", "needs study_uid"),
        (
            search(match=[P(name="patientid", values=["x"])]),
            QIDO_RS,
            "match[0].name",
            "must be a DICOM keyword",
        ),
        (
            search(match=[P(name="", values=["x"])]),
            QIDO_RS,
            "match[0].name",
            "must be a DICOM keyword",
        ),
        (
            search(match=[P(name="(00100020", values=["x"])]),
            QIDO_RS,
            "match[0].name",
            "must be a DICOM keyword",
        ),
        (
            search(match=[P(name="limit", values=["1"])]),
            QIDO_RS,
            "match[0].name",
            "use the field limit",
        ),
        (
            search(match=[P(name="includefield", values=["all"])]),
            QIDO_RS,
            "match[0].name",
            "use the field include_fields",
        ),
        (search(match=[P(name="PatientID")]), QIDO_RS, "match[0].values", "at least one value"),
        (
            search(match=[P(name="PatientID", values=["x" * 1025])]),
            QIDO_RS,
            "match[0].values",
            "at most 1024",
        ),
        (
            search(include_fields=["NoSuchKeyword"]),
            QIDO_RS,
            "include_fields[0]",
            "must be a DICOM keyword",
        ),
        (search(limit=1), DICOM_QR, "limit", "has no C-FIND form"),
        (search(offset=1), DICOM_QR, "offset", "has no C-FIND form"),
        (search(fuzzy_matching=True), DICOM_QR, "fuzzy_matching", "has no C-FIND form"),
        (search(include_fields=["all"]), DICOM_QR, "include_fields[0]", "no C-FIND form"),
        (
            search(match=[P(name="ReferencedSeriesSequence.SeriesInstanceUID", values=["1"])]),
            DICOM_QR,
            "match[0].name",
            "takes no paths",
        ),
        (
            search(
                level=SERIES, study_uid="1.2", match=[P(name="StudyInstanceUID", values=["1.3"])]
            ),
            DICOM_QR,
            "match",
            "study_uid gives it",
        ),
    ],
)
def test_bad_requests_name_the_field_and_rule(
    request_: search_pb2.SearchRequest, protocol: int, field: str, rule: str
) -> None:
    found = violations(request_, protocol)
    assert any(f == field and rule in r for f, r in found), found


def test_every_violation_is_reported() -> None:
    found = violations(search(level=0, study_uid="x", match=[P(name="nope", values=["1"])]))
    assert {f for f, _ in found} == {"level", "study_uid", "match[0].name"}
