"""The soak's judge of hits (issue 11): a lookup's hit must keep the archive's order,
a GetObjects hit only the same objects (cache_service.proto promises it no order)."""

from __future__ import annotations

from benchmarks.reliability import soak
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.server.process import Heaps
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


def test_the_slope_row_says_where_the_last_half_went() -> None:
    mib = 2**20
    samples = [(float(t), (100 + t // 10) * mib) for t in range(0, 101, 10)]  # +5 MiB over 50-100 s
    half = Heaps(system=40 * mib, in_use=32 * mib, free=8 * mib, mmapped=2 * mib)
    end = Heaps(system=41 * mib, in_use=34 * mib, free=7 * mib, mmapped=2 * mib)

    note = soak.where_it_went(samples, 100.0, half, end)

    assert note == (
        "last half: RSS +5.0 MiB; glibc's heaps 40.0 -> 41.0 MiB (in use +2.0, free 8.0 -> 7.0), "
        "mmapped +0.0; outside the heaps +4.0"
    )
    assert soak.where_it_went(samples, 100.0, None, end) == ""


def test_the_heaps_line_says_whose_heaps_they_are() -> None:
    # A jemalloc server's line: its heaps, not glibc's empty ones (issue 11, row soak-slope).
    line = "INFO allocator: heaps system=40 in_use=32 free=8 mmapped=0 malloc=jemalloc"
    older = "INFO allocator: heaps system=40 in_use=32 free=6 mmapped=2"

    assert soak.heaps_said(line) == Heaps(40, 32, 8, 0, "jemalloc")
    assert soak.heaps_said(older) == Heaps(40, 32, 6, 2, "glibc")
    assert soak.heaps_said("INFO dicomcache serving on 127.0.0.1:1") is None
