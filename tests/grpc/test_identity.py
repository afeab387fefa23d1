"""What an entry is: its protocol, the request the archive receives, and by-id sharing
(issue 10: two protocols, one namespace; key by what the archive receives)."""

from __future__ import annotations

from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2
from tests.support.messages import make_study

NS = "pacs-a"
QIDO, QR = query_pb2.PROTOCOL_QIDO_RS, query_pb2.PROTOCOL_DICOM_QR


def request(path: str, **parameters: list[str]) -> query_pb2.ArchiveRequest:
    return query_pb2.ArchiveRequest(
        path=path,
        parameters=[query_pb2.Parameter(name=k, values=v) for k, v in parameters.items()],
    )


def store(stub, query, studies, protocol=0, archive_request=None, lease=0):
    message = pb.StoreQueryRequest(
        namespace=NS, query=query, studies=studies, protocol=protocol, lease=lease
    )
    if archive_request is not None:
        message.archive_request.CopyFrom(archive_request)
    return stub.StoreQuery(message)


def lookup(stub, query, protocol=0, archive_request=None):
    message = pb.LookupQueryRequest(namespace=NS, query=query, protocol=protocol)
    if archive_request is not None:
        message.archive_request.CopyFrom(archive_request)
    return stub.LookupQuery(message)


def test_each_protocol_gets_its_own_answers_in_one_namespace(stub):
    query = query_pb2.Query(patient_id="P1")
    store(stub, query, [make_study(1, patient="Qido^Answer")], protocol=QIDO)

    assert not lookup(stub, query, protocol=QR).hit
    assert not lookup(stub, query).hit
    store(stub, query, [make_study(1, patient="Cfind^Answer")], protocol=QR)
    assert list(lookup(stub, query, protocol=QIDO).studies) == [
        make_study(1, patient="Qido^Answer")
    ]
    assert list(lookup(stub, query, protocol=QR).studies) == [make_study(1, patient="Cfind^Answer")]


def test_invalidate_drops_the_object_under_every_protocol(stub):
    query = query_pb2.Query(patient_id="P1")
    for protocol in (0, QIDO, QR):
        store(stub, query, [make_study(1, 1, 1)], protocol=protocol)
    reference = pb.InvalidateRequest(namespace=NS)
    reference.reference.study.study_uid = make_study(1).uid

    assert stub.Invalidate(reference).objects_removed == 3 * 3
    for protocol in (0, QIDO, QR):
        assert not lookup(stub, query, protocol=protocol).hit


def test_stats_of_a_namespace_cover_all_its_protocols(stub):
    store(stub, query_pb2.Query(patient_id="P1"), [make_study(1)], protocol=QIDO)
    store(stub, query_pb2.Query(patient_id="P2"), [make_study(2)], protocol=QR)
    lookup(stub, query_pb2.Query(patient_id="P1"), protocol=QIDO)
    for request in (pb.GetStatsRequest(namespace=NS), pb.GetStatsRequest()):
        (entry,) = stub.GetStats(request).namespaces
        assert (entry.namespace, entry.studies, entry.queries, entry.hits) == (NS, 2, 2, 1)


def test_queries_that_reach_the_archive_as_one_request_share_an_entry(stub):
    same = request("/studies", PatientID=["P1"], includefield=["StudyDate", "Modality"])
    store(stub, query_pb2.Query(patient_id="P1"), [make_study(1)], QIDO, same)

    other_query = query_pb2.Query(
        kind="dicomtrolley.qido_rs.HierarchicalQuery", patient_id="P1 "
    )  # another query, the same request with its parameters in another order
    reordered = request("/studies", includefield=["Modality", "StudyDate"], PatientID=["P1 "])
    assert lookup(stub, other_query, QIDO, reordered).hit
    assert not lookup(stub, other_query, QIDO, request("/studies", PatientID=["P2"])).hit
    assert not lookup(stub, other_query, QIDO).hit  # no request: keyed by its own content


def test_an_unfiltered_query_for_a_study_is_its_listing_and_back(stub):
    study = make_study(1, 2, 2)
    by_id = query_pb2.Query(
        study_instance_uid=study.uid, query_level=query_pb2.QUERY_LEVEL_INSTANCE
    )
    store(stub, by_id, [study], QIDO)

    for level in (query_pb2.QUERY_LEVEL_SERIES, query_pb2.QUERY_LEVEL_INSTANCE):
        hit = stub.LookupStudy(
            pb.LookupStudyRequest(
                namespace=NS, study_uid=study.uid, query_level=level, protocol=QIDO
            )
        )
        assert hit.hit, level

    other = make_study(2, 1, 1)
    stub.StoreStudy(
        pb.StoreStudyRequest(
            namespace=NS, study=other, query_level=query_pb2.QUERY_LEVEL_SERIES, protocol=QIDO
        )
    )
    as_query = query_pb2.Query(
        study_instance_uid=other.uid, query_level=query_pb2.QUERY_LEVEL_SERIES
    )
    response = lookup(stub, as_query, QIDO)
    assert response.hit
    assert [s.uid for s in response.studies] == [other.uid]


def test_a_filtered_query_for_a_study_is_not_a_listing(stub):
    study = make_study(1, 2, 2)
    filtered = query_pb2.Query(
        study_instance_uid=study.uid,
        modality="CT",
        query_level=query_pb2.QUERY_LEVEL_INSTANCE,
    )
    store(stub, filtered, [study], QIDO)

    miss = stub.LookupStudy(
        pb.LookupStudyRequest(
            namespace=NS,
            study_uid=study.uid,
            query_level=query_pb2.QUERY_LEVEL_INSTANCE,
            protocol=QIDO,
        )
    )
    assert not miss.hit
