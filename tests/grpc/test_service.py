"""Each CacheService RPC through a real server and real stubs."""

from __future__ import annotations

from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2, query_pb2
from tests.grpc.conftest import RunningServer
from tests.support.messages import make_study

NS = "pacs-a"


def instance_query(**fields: object) -> query_pb2.Query:
    return query_pb2.Query(query_level=query_pb2.QUERY_LEVEL_INSTANCE, **fields)  # type: ignore[arg-type]  # keyword fields of the Query message


def test_lookup_before_store_is_a_miss_not_an_error(stub):
    response = stub.LookupQuery(
        pb.LookupQueryRequest(namespace=NS, query=instance_query(patient_id="X"))
    )
    assert response.hit is False
    assert list(response.studies) == []


def test_stored_answer_comes_back_equal(stub):
    studies = [make_study(1, n_series=2, n_instances=3), make_study(2, n_series=1, n_instances=1)]
    query = instance_query(patient_name="Doe^Jane")
    stub.StoreQuery(pb.StoreQueryRequest(namespace=NS, query=query, studies=studies))
    response = stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query))
    assert response.hit is True
    assert list(response.studies) == studies


def test_same_query_in_another_field_order_and_include_order_hits(stub):
    first = query_pb2.Query(include_fields=["StudyDate", "Modality"], patient_id="P1")
    second = query_pb2.Query(
        patient_id="P1",
        kind="dicomtrolley.core.Query",
        query_level=query_pb2.QUERY_LEVEL_STUDY,
        include_fields=["Modality", "StudyDate", "Modality"],
    )
    stub.StoreQuery(pb.StoreQueryRequest(namespace=NS, query=first, studies=[make_study(1)]))
    assert stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=second)).hit


def test_query_kind_and_namespace_separate_entries(stub):
    query = query_pb2.Query(patient_id="P1")
    stub.StoreQuery(pb.StoreQueryRequest(namespace=NS, query=query, studies=[make_study(1)]))
    other_kind = query_pb2.Query(patient_id="P1", kind="dicomtrolley.dicom_qr.DICOMQuery")
    assert not stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=other_kind)).hit
    assert not stub.LookupQuery(pb.LookupQueryRequest(namespace="pacs-b", query=query)).hit


def test_empty_answer_is_a_hit_until_the_negative_ttl(running: RunningServer):
    query = query_pb2.Query(patient_id="nobody")
    running.stub.StoreQuery(pb.StoreQueryRequest(namespace=NS, query=query))
    hit = running.stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query))
    assert hit.hit and list(hit.studies) == []
    running.clock.advance(61)
    assert not running.stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query)).hit


def test_ttl_longer_than_the_servers_is_cut_to_it(running: RunningServer):
    query = query_pb2.Query(patient_id="P1")
    running.stub.StoreQuery(
        pb.StoreQueryRequest(namespace=NS, query=query, studies=[make_study(1)], ttl_seconds=10**6)
    )
    running.clock.advance(601)
    assert not running.stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query)).hit


def test_shorter_ttl_is_honoured(running: RunningServer):
    query = query_pb2.Query(patient_id="P1")
    running.stub.StoreQuery(
        pb.StoreQueryRequest(namespace=NS, query=query, studies=[make_study(1)], ttl_seconds=5)
    )
    running.clock.advance(4)
    assert running.stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query)).hit
    running.clock.advance(2)
    assert not running.stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query)).hit


def test_study_by_id_hits_only_at_or_below_the_stored_level(stub):
    study = make_study(1, n_series=2, n_instances=2)
    stub.StoreStudy(
        pb.StoreStudyRequest(namespace=NS, study=study, query_level=query_pb2.QUERY_LEVEL_SERIES)
    )
    deeper = stub.LookupStudy(
        pb.LookupStudyRequest(
            namespace=NS, study_uid=study.uid, query_level=query_pb2.QUERY_LEVEL_INSTANCE
        )
    )
    assert not deeper.hit
    series_level = stub.LookupStudy(
        pb.LookupStudyRequest(
            namespace=NS, study_uid=study.uid, query_level=query_pb2.QUERY_LEVEL_SERIES
        )
    )
    assert series_level.hit
    assert [s.uid for s in series_level.study.series] == [s.uid for s in study.series]
    assert all(len(s.instances) == 0 for s in series_level.study.series)
    study_level = stub.LookupStudy(pb.LookupStudyRequest(namespace=NS, study_uid=study.uid))
    assert study_level.hit
    assert study_level.study.attributes == study.attributes
    assert len(study_level.study.series) == 0


def test_add_get_and_invalidate_objects(stub):
    study = make_study(1, n_series=1, n_instances=2)
    added = stub.AddObjects(pb.AddObjectsRequest(namespace=NS, studies=[study]))
    assert added.objects_written == 4
    series = study.series[0]
    refs = [
        objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=study.uid)),
        objects_pb2.ObjectReference(
            series=objects_pb2.SeriesReference(study_uid=study.uid, series_uid=series.uid)
        ),
        objects_pb2.ObjectReference(
            instance=objects_pb2.InstanceReference(
                study_uid=study.uid, series_uid=series.uid, instance_uid=series.instances[1].uid
            )
        ),
        objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid="1.2.3")),
    ]
    results = stub.GetObjects(pb.GetObjectsRequest(namespace=NS, references=refs)).results
    assert [r.found for r in results] == [True, True, True, False]
    assert results[0].study == study
    assert results[1].series == series
    assert results[2].instance == series.instances[1]
    removed = stub.Invalidate(pb.InvalidateRequest(namespace=NS, reference=refs[1]))
    assert removed.objects_removed == 3
    results = stub.GetObjects(pb.GetObjectsRequest(namespace=NS, references=refs[:3])).results
    assert [r.found for r in results] == [True, False, False]
    assert len(results[0].study.series) == 0


def test_invalidate_namespace_leaves_other_namespaces(stub):
    query = query_pb2.Query(patient_id="P1")
    for ns in (NS, "pacs-b"):
        stub.StoreQuery(pb.StoreQueryRequest(namespace=ns, query=query, studies=[make_study(1)]))
    stub.Invalidate(pb.InvalidateRequest(namespace=NS))
    assert not stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query)).hit
    assert stub.LookupQuery(pb.LookupQueryRequest(namespace="pacs-b", query=query)).hit


def test_stats_count_hits_misses_and_objects(stub):
    query = query_pb2.Query(patient_id="P1", query_level=query_pb2.QUERY_LEVEL_INSTANCE)
    stub.StoreQuery(
        pb.StoreQueryRequest(
            namespace=NS, query=query, studies=[make_study(1, n_series=2, n_instances=3)]
        )
    )
    # A miss once the namespace holds data: one that holds nothing keeps no counters.
    other = query_pb2.Query(patient_id="P2", query_level=query_pb2.QUERY_LEVEL_INSTANCE)
    stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=other))
    stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query))
    stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=query))
    stats = stub.GetStats(pb.GetStatsRequest(namespace=NS))
    (ns_stats,) = stats.namespaces
    assert (ns_stats.namespace, ns_stats.hits, ns_stats.misses) == (NS, 2, 1)
    assert (ns_stats.studies, ns_stats.series, ns_stats.instances, ns_stats.queries) == (1, 2, 6, 1)
    assert ns_stats.bytes > 0
    assert stats.total_bytes >= ns_stats.bytes
    assert stats.max_bytes == 512 * 1024**2
