"""Row 5: resident memory per cached instance, the server against dicomtrolley's own cache.

Each side is measured in a fresh process of its own, as the growth of its
resident set size (RSS) from just before loading to just after, with garbage
collected at both ends, divided by the instances held (their studies and series
are counted in: one study and four series per 80 instances).

The server's growth is taken over a second load of as many instances, after a
first: the first load's growth holds, besides its instances, the write path's
working set that glibc keeps inside its heaps once freed (a 4000-instance
AddObjects parses into about 22 MB of protobuf arena, and its converted
attributes take 3 MB more), a one-off 10-55 MiB that depends on how the gRPC
threads' allocations interleave, not on the instances held: over 100,000 it
read as 200-550 B an instance, and the row as 640-1,160 B a run while the
instances themselves stayed the same (388 B each traced by tracemalloc, about
470 B of RSS once ``malloc_trim`` gives the free pages back, in every tree
measured). The second load reuses that space, so its growth is what each more
cached instance costs; the note gives the first load's figure and the one-off part.

* dicomcache: a server process loaded through AddObjects over gRPC with
  converted datasets of the 18 attributes an Orthanc QIDO-RS instance answer has.
* dicomtrolley: ``DICOMObjectCache`` (dicomtrolley.caching) holding the same
  studies as dicomtrolley Study/Series/Instance objects with pydicom datasets,
  the way a CachedSearcher's in-process predecessor holds them.
"""

from __future__ import annotations

import gc

import psutil
from dicomtrolley.caching import DICOMObjectCache
from dicomtrolley.core import InstanceReference

from ..calls import load_bulk
from ..corpus import STANDARD, trolley_study
from ..load import elsewhere
from ..plan import Plan
from ..report import Row, Target
from ..sidecar import Sidecar

SHAPE = STANDARD


def run(plan: Plan) -> list[Row]:
    """Rows 5a (bytes per instance) and 5b (how much smaller than dicomtrolley's cache)."""
    with Sidecar() as server:
        assert server.channel is not None
        load_bulk(server.channel, SHAPE.per_study, namespace="warm-up", first=10**9)
        start = server.rss()
        first = load_bulk(server.channel, plan.memory_instances, shape=SHAPE)
        before = server.rss()
        instances = load_bulk(
            server.channel, plan.memory_instances, shape=SHAPE, first=1 + first // SHAPE.per_study
        )
        after = server.rss()
    server_per, once = per_instance(start, before, after, first, instances)
    trolley = elsewhere(trolley_growth, instances // SHAPE.per_study)
    trolley_per = trolley / instances
    return [
        Row(
            key="5a",
            measure=(
                f"server RSS per cached instance ({instances:,} instances after {first:,}, "
                "18 attributes)"
            ),
            result=f"{server_per:.0f} B",
            baseline="-",
            value=server_per,
            unit=" B",
            target=Target("<=", 1024, unit=" B"),
            note=(
                f"server RSS {start / 2**20:.0f} -> {before / 2**20:.0f}"
                f" -> {after / 2**20:.0f} MiB;"
                f" the first {first:,}: {(before - start) / first:.0f} B each,"
                f" {once / 2**20:.0f} MiB of it once (the writes' working set)"
            ),
            figures={
                "instances": instances,
                "rss_before": before,
                "rss_after": after,
                "first_instances": first,
                "rss_start": start,
                "once_bytes": once,
            },
        ),
        Row(
            key="5b",
            measure="dicomtrolley DICOMObjectCache RSS per instance / server's",
            result=f"{server_per:.0f} B",
            baseline=f"{trolley_per:.0f} B dicomtrolley",
            value=trolley_per / server_per,
            target=Target(">=", 7),
            figures={"trolley_growth_bytes": trolley, "server_growth_bytes": after - before},
        ),
    ]


def per_instance(
    start: int, before: int, after: int, first: int, instances: int
) -> tuple[float, int]:
    """Bytes per instance of the second load, and what the first load grew by beyond its
    instances at that rate: the one-off part (see the module docstring).

    Args:
        start, before, after: the RSS before the first load, between the loads, after the second.
        first, instances: the instances of the first load and of the second.
    """
    per = (after - before) / instances
    return per, round(before - start - per * first)


def _rss() -> int:
    gc.collect()
    return int(psutil.Process().memory_info().rss)


def trolley_growth(studies: int) -> int:
    """RSS growth of this (fresh) process from filling a DICOMObjectCache with ``studies``."""
    trolley_study(10**9, SHAPE)  # warm up pydicom's and pydantic's lazy tables
    cache = DICOMObjectCache()
    before = _rss()
    cache.add_all([trolley_study(index, SHAPE) for index in range(1, studies + 1)])
    after = _rss()
    probe = trolley_study(studies, SHAPE).series[-1].instances[-1]
    held = cache.retrieve(
        InstanceReference(
            study_uid=probe.parent.parent.uid, series_uid=probe.parent.uid, instance_uid=probe.uid
        )
    )
    if held.uid != probe.uid:
        raise RuntimeError("dicomtrolley's cache does not hold what was added")
    return after - before
