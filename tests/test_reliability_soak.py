"""The soak's judge of hits (issue 11): a lookup's hit must keep the archive's order,
a GetObjects hit only the same objects (cache_service.proto promises it no order)."""

from __future__ import annotations

from benchmarks.reliability import soak
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.v1 import objects_pb2


def _reordered(study: objects_pb2.Study) -> objects_pb2.Study:
    """The study with its instances in reverse order."""
    copy = objects_pb2.Study()
    copy.CopyFrom(study)
    instances = list(reversed(copy.series[0].instances))
    del copy.series[0].instances[:]
    copy.series[0].instances.extend(instances)
    return copy


def test_a_reordered_hit_is_wrong_for_a_lookup_and_fine_for_get_objects() -> None:
    stored = soak.Studies().proto(3)
    hit = [study_from_proto(_reordered(stored))]

    assert soak.verdict(hit, [stored]) == "wrong"
    assert soak.verdict(hit, [stored], ordered=False) == "ok"


def test_a_get_objects_hit_that_lacks_an_instance_is_still_partial() -> None:
    stored = soak.Studies().proto(3)
    lacking = _reordered(stored)
    del lacking.series[0].instances[0]

    assert soak.verdict([study_from_proto(lacking)], [stored], ordered=False) == "partial"
