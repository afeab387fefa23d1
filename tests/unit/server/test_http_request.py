"""The QIDO-RS endpoint's URL parsing and replies: paths, query keys, errors naming the
parameter as the URL spells it, and the cache headers."""

from __future__ import annotations

import json

import pytest

from dicomcache.server.errors import InvalidArgument, UpstreamFailed, Violation
from dicomcache.server.http import reply
from dicomcache.server.http.endpoint import acceptable
from dicomcache.server.http.request import NotFound, parse
from dicomcache.server.http.tls import names
from dicomcache.server.search.request import QIDO_RS, normalize
from dicomcache.v1 import search_pb2

STUDIES = search_pb2.SEARCH_LEVEL_STUDIES
SERIES = search_pb2.SEARCH_LEVEL_SERIES
INSTANCES = search_pb2.SEARCH_LEVEL_INSTANCES


@pytest.mark.parametrize(
    ("path", "level", "study", "series"),
    [
        ("/dicom-web/pacs/studies", STUDIES, "", ""),
        ("/dicom-web/pacs/series", SERIES, "", ""),
        ("/dicom-web/pacs/instances", INSTANCES, "", ""),
        ("/dicom-web/pacs/studies/1.2.3/series", SERIES, "1.2.3", ""),
        ("/dicom-web/pacs/studies/1.2.3/instances", INSTANCES, "1.2.3", ""),
        ("/dicom-web/pacs/studies/1.2.3/series/4.5/instances", INSTANCES, "1.2.3", "4.5"),
    ],
)
def test_each_search_path_is_a_level_and_uids(path, level, study, series):
    request = parse(path, "").request
    assert (request.upstream, request.level, request.study_uid, request.series_uid) == (
        "pacs",
        level,
        study,
        series,
    )


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/dicom-web/",
        "/dicom-web/pacs",
        "/dicom-web/pacs/",
        "/dicom-web/pacs/studies/",
        "/dicom-web/pacs/patients",
        "/dicom-web/pacs/studies/1.2.3",  # a retrieve, not a search
        "/dicom-web/pacs/studies/1.2.3/metadata",
        "/dicom-web/pacs/studies//series",
        "/dicom-web/pacs/studies/1.2/series/3.4",
        "/dicom-web/pacs/studies/1.2/series/3.4/instances/5.6",
        "/dicom-web//studies",
        "/wado/pacs/studies",
    ],
)
def test_other_paths_are_not_found(path):
    with pytest.raises(NotFound, match="searches are at"):
        parse(path, "")


def test_query_keys_are_match_parameters_with_repeated_values_in_order():
    search = parse(
        "/dicom-web/pacs/studies",
        "PatientID=B&00080061=MR&PatientID=A&StudyDate=20240101-20241231&PatientName=Doe%5EJ%2A",
    )
    match = [(p.name, list(p.values)) for p in search.request.match]
    assert match == [
        ("PatientID", ["B", "A"]),
        ("00080061", ["MR"]),
        ("StudyDate", ["20240101-20241231"]),
        ("PatientName", ["Doe^J*"]),
    ]


def test_includefield_repeated_or_comma_separated_and_the_reserved_keys():
    request = parse(
        "/dicom-web/pacs/series",
        "includefield=00081030,StudyDescription&includefield=all"
        "&fuzzymatching=true&limit=10&offset=20",
    ).request
    assert list(request.include_fields) == ["00081030", "StudyDescription", "all"]
    assert (request.fuzzy_matching, request.limit, request.offset) == (True, 10, 20)


def test_spaces_and_plus_are_decoded_as_a_form_does():
    request = parse("/dicom-web/pacs/studies", "StudyDescription=CT+head%20neck").request
    assert list(request.match[0].values) == ["CT head neck"]


def test_an_empty_value_is_kept():
    request = parse("/dicom-web/pacs/studies", "PatientName=").request
    assert [(p.name, list(p.values)) for p in request.match] == [("PatientName", [""])]


@pytest.mark.parametrize(
    ("query", "parameter", "rule"),
    [
        ("limit=-1", "limit", "whole number"),
        ("limit=ten", "limit", "whole number"),
        ("limit=4294967296", "limit", "whole number"),
        ("offset=1.5", "offset", "whole number"),
        ("limit=1&limit=2", "limit", "once"),
        ("fuzzymatching=yes", "fuzzymatching", "true or false"),
        ("fuzzymatching=TRUE", "fuzzymatching", "true or false"),
        ("=x", "query string", "must have a name"),
        ("PatientID=%FF", "query string", "UTF-8"),
    ],
)
def test_bad_query_values_name_the_parameter_and_rule(query, parameter, rule):
    with pytest.raises(InvalidArgument) as caught:
        parse("/dicom-web/pacs/studies", query)
    assert any(v.field == parameter and rule in v.rule for v in caught.value.violations)


def test_too_many_parameters_are_refused():
    with pytest.raises(InvalidArgument, match="at most 1024"):
        parse("/dicom-web/pacs/studies", "&".join(f"PatientID={i}" for i in range(1100)))


def test_the_engine_fields_are_named_as_the_url_spells_them():
    search = parse(
        "/dicom-web/pacs/studies", "PatientID=1&NoSuchKeyword=2&includefield=Nope&limit=3"
    )
    with pytest.raises(InvalidArgument) as caught:
        normalize(search.request, QIDO_RS)
    said = {search.parameter(v.field) for v in caught.value.violations}
    assert said == {"NoSuchKeyword", "includefield=Nope"}
    assert search.parameter("study_uid") == "path: the study uid"
    assert search.parameter("fuzzy_matching") == "fuzzymatching"


def test_a_url_and_a_search_request_normalize_to_one_archive_request():
    url = parse("/dicom-web/pacs/studies/1.2.3/series", "00080060=CT&includefield=0008103E")
    direct = search_pb2.SearchRequest(
        upstream="pacs",
        level=SERIES,
        study_uid="1.2.3",
        match=[search_pb2.SearchParameter(name="Modality", values=["CT"])],
        include_fields=["SeriesDescription"],
    )
    assert normalize(url.request, QIDO_RS).request == normalize(direct, QIDO_RS).request


def test_invalid_argument_is_400_naming_parameters():
    search = parse("/dicom-web/pacs/studies", "Bad=1")
    error = InvalidArgument([Violation("match[0].name", "must be a DICOM keyword")])
    answer = reply.failure(error, search)
    body = json.loads(answer.body)
    assert answer.status == 400
    assert body["violations"] == [{"parameter": "Bad", "rule": "must be a DICOM keyword"}]
    assert body["message"] == "Bad: must be a DICOM keyword"


def test_an_unknown_upstream_is_404():
    search = parse("/dicom-web/elsewhere/studies", "")
    error = InvalidArgument.single("upstream", "must name an upstream configured on the server")
    answer = reply.failure(error, search)
    assert answer.status == 404
    assert "elsewhere" in json.loads(answer.body)["message"]


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        (UpstreamFailed.UNREACHABLE, 503),
        (UpstreamFailed.TIMEOUT, 504),
        (UpstreamFailed.FAILED, 502),
        (UpstreamFailed.REFUSED, 502),
    ],
)
def test_archive_failures_are_gateway_statuses_with_the_archive_status(reason, status):
    answer = reply.failure(UpstreamFailed("pacs", reason, 500), None)
    body = json.loads(answer.body)
    assert answer.status == status
    assert (body["upstream"], body["reason"], body["archive_status"]) == ("pacs", reason, 500)


def test_anything_else_is_500_with_a_request_id_and_no_message(caplog):
    answer = reply.failure(RuntimeError("PatientName=Doe^John"), None)
    body = json.loads(answer.body)
    assert answer.status == 500 and body["request_id"]
    assert "Doe" not in answer.body.decode() and "Doe" not in caplog.text


def test_cache_headers_of_a_hit_a_miss_and_a_stale_answer():
    hit = dict(reply.answer("[]", hit=True, age_seconds=12.7, stale=False).headers)
    miss = dict(reply.answer("[]", hit=False, age_seconds=0.0, stale=False).headers)
    stale = dict(reply.answer("[]", True, 700.2, True, 'upstream pacs: unreachable "x"\\').headers)
    assert (hit["Cache-Status"], hit["X-Cache"], hit["Age"]) == ("dicomcache; hit", "HIT", "12")
    assert (miss["Cache-Status"], miss["X-Cache"], miss["Age"]) == (
        "dicomcache; fwd=miss",
        "MISS",
        "0",
    )
    assert stale["Cache-Status"] == (
        'dicomcache; fwd=stale; detail="stale-if-error: upstream pacs: unreachable x"'
    )
    assert (stale["Warning"], stale["Age"]) == ('110 dicomcache "Response is Stale"', "700")
    assert "Warning" not in hit and "Warning" not in miss
    assert hit["Content-Type"] == "application/dicom+json"


@pytest.mark.parametrize(
    ("accept", "ok"),
    [
        (None, True),
        ("", True),
        ("application/dicom+json", True),
        ("application/dicom+json, application/json", True),
        ("*/*", True),
        ("application/json;q=0.9", True),
        ("application/dicom+xml", False),
        ("multipart/related; type=application/dicom", False),
        ("application/dicom+json;q=0", False),
    ],
)
def test_accept(accept, ok):
    assert acceptable(accept) is ok


def test_certificate_names_have_the_grpc_kinds():
    certificate = {
        "subject": ((("organizationName", "x"),), (("commonName", "reader"),)),
        "subjectAltName": (("DNS", "a.example"), ("URI", "spiffe://t/r"), ("IP Address", "::1")),
    }
    assert names(certificate) == {
        ("cn", "reader"),
        ("dns", "a.example"),
        ("uri", "spiffe://t/r"),
    }
    assert names(None) == frozenset()
