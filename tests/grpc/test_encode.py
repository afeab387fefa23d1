"""The hand-encoded responses parse to the messages protobuf itself would build."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dicomcache.server.api import encode as wire
from dicomcache.server.api.decode import study_from_proto
from dicomcache.v1 import cache_service_pb2 as pb
from tests.support.messages import make_study


@given(
    n_studies=st.integers(0, 3),
    n_series=st.integers(0, 3),
    n_instances=st.integers(0, 200),
)
def test_query_hit_parses_back_to_the_studies(n_studies, n_series, n_instances):
    studies = [make_study(n, n_series, n_instances) for n in range(1, n_studies + 1)]
    encoded = wire.query_hit([study_from_proto(s) for s in studies])
    assert pb.LookupQueryResponse.FromString(encoded) == pb.LookupQueryResponse(
        hit=True, studies=studies
    )


def test_study_hit_and_miss():
    study = make_study(7, 2, 2)
    assert pb.LookupStudyResponse.FromString(wire.study_hit(study_from_proto(study))) == (
        pb.LookupStudyResponse(hit=True, study=study)
    )
    assert pb.LookupStudyResponse.FromString(wire.miss(0)) == pb.LookupStudyResponse(hit=False)
    for lease in (1, 300, 2**63 + 5):
        assert pb.LookupStudyResponse.FromString(wire.miss(lease)) == pb.LookupStudyResponse(
            hit=False, lease=lease
        )
        assert pb.LookupQueryResponse.FromString(wire.miss(lease)) == pb.LookupQueryResponse(
            hit=False, lease=lease
        )


def test_objects_result_for_every_kind_and_a_miss():
    study = study_from_proto(make_study(3, 1, 1))
    series = study.series[0]
    instance = series.instances[0]
    parsed = pb.GetObjectsResponse.FromString(wire.objects_result([study, None, series, instance]))
    assert [r.WhichOneof("object") for r in parsed.results] == ["study", None, "series", "instance"]
    assert [r.found for r in parsed.results] == [True, False, True, True]
    assert parsed.results[2].series.uid == series.uid
    assert parsed.results[3].instance.attributes.SerializeToString() == instance.attributes


def test_path_only_objects_are_encoded_without_attributes():
    study = make_study(4, 1, 0)
    study.ClearField("attributes")
    parsed = pb.LookupStudyResponse.FromString(wire.study_hit(study_from_proto(study)))
    assert not parsed.study.HasField("attributes")
    assert parsed.study.series[0].HasField("attributes")
