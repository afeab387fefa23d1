"""CacheClient: every operation from Python in dicomtrolley's terms, errors translated."""

from __future__ import annotations

import grpc
import pytest
from dicomtrolley.core import InstanceReference, Query, QueryLevels, SeriesReference, StudyReference

from dicomcache.client import CacheClient, CacheRejected, CacheUnavailable
from dicomcache.client.convert.objects import study_from_proto
from tests.grpc.conftest import RunningServer
from tests.support.messages import make_study
from tests.support.ports import free_port
from tests.support.trees import tree_summary


@pytest.fixture
def client(running: RunningServer):
    with CacheClient(running.target, timeout=5) as client:
        yield client


def study(n: int = 1):
    return study_from_proto(make_study(n, 2, 3))


def test_add_objects_and_retrieve_them_by_reference_with_parents_linked(client):
    whole = study(1)
    series = whole.series[1]
    instance = series.instances[2]
    assert client.add_objects("ns", [whole]) == 1 + 2 + 6
    study_ref = StudyReference(study_uid=whole.uid)
    series_ref = SeriesReference(study_uid=whole.uid, series_uid=series.uid)
    instance_ref = InstanceReference(
        study_uid=whole.uid, series_uid=series.uid, instance_uid=instance.uid
    )
    missing = StudyReference(study_uid="1.2.3.4")
    got_study, got_series, got_instance, nothing = client.retrieve(
        "ns", [study_ref, series_ref, instance_ref, missing]
    )
    assert nothing is None
    assert tree_summary(got_study) == tree_summary(whole)
    assert got_series.uid == series.uid and got_series.parent.uid == whole.uid
    assert got_series.data.to_json_dict() == series.data.to_json_dict()
    assert [i.uid for i in got_series.instances] == [i.uid for i in series.instances]
    assert got_instance.data.to_json_dict() == instance.data.to_json_dict()
    assert got_instance.parent.uid == series.uid
    assert got_instance.parent.parent.uid == whole.uid
    assert got_instance.parent.data.to_json_dict() == series.data.to_json_dict()


def test_adding_a_series_or_an_instance_alone_keeps_the_rest(client):
    whole = study(1)
    client.add_objects("ns", [whole.series[0].instances[0]])
    (got,) = client.retrieve("ns", [StudyReference(study_uid=whole.uid)])
    assert got is None, "the study itself was only a path"
    instance_ref = whole.series[0].instances[0].reference()
    (got,) = client.retrieve("ns", [instance_ref])
    assert got.data.to_json_dict() == whole.series[0].instances[0].data.to_json_dict()
    assert got.parent.uid == whole.series[0].uid and len(got.parent.data) == 0


def test_invalidate_an_object_or_a_namespace(client):
    client.add_objects("ns", [study(1), study(2)])
    assert client.invalidate("ns", study(1).series[0].reference()) == 4
    assert client.retrieve("ns", [study(1).series[0].reference()]) == [None]
    assert client.invalidate("ns") == (1 + 1 + 3) + (1 + 2 + 6)
    assert client.retrieve("ns", [StudyReference(study_uid=study(2).uid)]) == [None]


def test_query_and_study_operations_and_stats(client):
    query = Query(PatientID="PAT1", query_level=QueryLevels.INSTANCE)
    # Data first: a namespace that holds nothing keeps no counters (GetStats' contract).
    client.store_study("ns", study(2), QueryLevels.SERIES)
    assert client.lookup_query("ns", query) is None
    client.store_query("ns", query, [study(1)])
    (hit,) = client.lookup_query("ns", query)
    assert tree_summary(hit) == tree_summary(study(1))
    assert client.lookup_study("ns", study(2).uid, QueryLevels.INSTANCE) is None
    assert [s.uid for s in client.lookup_study("ns", study(2).uid, QueryLevels.SERIES).series] == [
        s.uid for s in study(2).series
    ]
    (stats,) = client.stats("ns").namespaces
    assert (stats.hits, stats.misses, stats.queries) == (2, 2, 1)


def test_a_rejected_request_names_the_field_and_rule(client):
    with pytest.raises(CacheRejected) as caught:
        client.stats("not a namespace")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in caught.value.violations] == ["namespace"]


def test_an_unreachable_server_is_cache_unavailable():
    with (
        CacheClient(f"127.0.0.1:{free_port()}", timeout=2) as client,
        pytest.raises(CacheUnavailable) as caught,
    ):
        client.stats()
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_a_single_object_instead_of_a_sequence_is_a_clear_error(client):
    with pytest.raises(TypeError, match="sequence"):
        client.add_objects("ns", study(1))  # type: ignore[arg-type]  # a wrong type on purpose
