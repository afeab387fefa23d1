"""The hand-encoded responses parse to the messages protobuf itself would build."""

from __future__ import annotations

import gc
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from dicomcache.server.api import encode as wire
from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.model import InstanceData, SeriesData, StudyData
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import dataset_pb2, objects_pb2
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


# Attributes of any size around the one- and two-byte length prefixes and the 16 KiB
# table of ready-made ones, or none (a path).
def _dataset(text: int) -> bytes:
    """A serialized Dataset of one LO element holding ``text`` characters."""
    element = dataset_pb2.Element(
        vr="LO", values=dataset_pb2.Values(items=[dataset_pb2.Value(text="a" * text)])
    )
    return dataset_pb2.Dataset(elements={0x00100020: element}).SerializeToString()


_BLOBS = st.one_of(
    st.none(),
    st.just(b""),
    st.integers(0, 200).map(_dataset),
    st.sampled_from([127, 128, 16383, 16384, 20000]).map(lambda size: _sized(size)),
)


def _sized(size: int) -> bytes:
    """A serialized Dataset of about ``size`` bytes: exactly, where one is."""
    blobs = [_dataset(n) for n in range(max(0, size - 40), size)]
    return next((b for b in blobs if len(b) == size), blobs[-1])


@st.composite
def _studies(draw: st.DrawFn) -> StudyData:
    def uid(*path: int) -> str:
        return ".".join(["1", *map(str, path)]) + "9" * draw(st.integers(0, 60))

    series = []
    for s in range(draw(st.integers(0, 3))):
        instances = tuple(
            InstanceData(uid(s, i), draw(_BLOBS)) for i in range(draw(st.integers(0, 4)))
        )
        series.append(SeriesData(uid(s), draw(_BLOBS), instances))
    return StudyData(uid(), draw(_BLOBS), tuple(series))


def _reference(study: StudyData) -> objects_pb2.Study:
    """The study as protobuf builds it (attributes as opaque Dataset bytes)."""

    def attributes(message: Any, data: bytes | None) -> None:
        if data is not None:
            message.attributes.MergeFromString(data)
            message.attributes.SetInParent()

    out = objects_pb2.Study(uid=study.uid)
    attributes(out, study.attributes)
    for series in study.series:
        one = out.series.add(uid=series.uid)
        attributes(one, series.attributes)
        for instance in series.instances:
            attributes(one.instances.add(uid=instance.uid), instance.attributes)
    return out


@given(st.lists(_studies(), max_size=3))
def test_any_tree_encodes_as_protobuf_would_and_its_size_is_told(studies: list[StudyData]) -> None:
    for study in studies:
        assert wire.study_size(study) == len(wire.study(study))
        assert objects_pb2.Study.FromString(wire.study(study)) == _reference(study)
        assert wire.study_hit_size(study) == len(wire.study_hit(study))
    encoded = wire.query_hit(studies)
    assert wire.query_hit_size(studies) == len(encoded)
    assert pb.LookupQueryResponse.FromString(encoded) == pb.LookupQueryResponse(
        hit=True, studies=[_reference(s) for s in studies]
    )


def test_a_study_hit_again_is_the_same_bytes_from_the_kept_encoding() -> None:
    study = study_from_proto(make_study(8, 2, 3))
    first = wire.study_hit(study)
    assert wire._RECENT.get(study) is not None
    assert wire.study_hit(study) == first == wire.query_hit([study])
    assert wire.study_hit_size(study) == len(first) == wire.query_hit_size([study])
    equal = study_from_proto(make_study(8, 2, 3))  # another object: encoded for itself
    assert wire._RECENT.get(equal) is None
    assert wire.study_hit(equal) == first


def test_the_kept_encodings_stay_within_their_bound() -> None:
    studies = [study_from_proto(make_study(n, 1, 2)) for n in range(1, 6)]
    recent = wire._Recent(max_bytes=3 * len(wire.study(studies[0])))
    for study in studies:
        assert recent.encoded(study) == wire.study(study)
    assert recent.bytes <= recent.max_bytes
    assert [recent.get(s) is not None for s in studies] == [False, False, True, True, True]


def test_the_kept_encodings_let_go_of_the_studies_no_one_else_holds() -> None:
    # Issue 11's soak: the kept entries held their StudyData objects, so evicted
    # studies stayed alive outside --max-memory (RSS 1.41x the limit, rising).
    recent = wire._Recent()
    alive = study_from_proto(make_study(1, 1, 2))
    recent.encoded(alive)
    recent.encoded(study_from_proto(make_study(2, 1, 2)))  # then let go, as an evicted study
    gc.collect()
    later = study_from_proto(make_study(3, 1, 2))
    recent.encoded(later)  # an insertion drops the entries of freed objects
    assert recent.get(alive) == wire.study(alive)
    assert recent.get(later) == wire.study(later)
    assert len(recent._kept) == 2
    assert recent.bytes == len(wire.study(alive)) + len(wire.study(later))
