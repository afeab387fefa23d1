"""Process memory (RSS) per cached instance in the memory backend.

Fills a fresh MemoryBackend with studies of realistic uids (about 55 characters)
and attribute blobs (650 bytes by default), one add_objects call per study, and
reports the growth of the process's resident memory divided by the number of
instances, next to what the backend accounts for itself. Run:

    python benchmarks/memory_backend_rss.py [--instances 100000] [--blob 650]
"""

from __future__ import annotations

import argparse
import gc
import os

import psutil

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.model import InstanceData, SeriesData, StudyData

ROOT = "1.2.826.0.1.3680043.8.498."  # a UID root of realistic length


def study(index: int, n_series: int, n_instances: int, blob: int) -> StudyData:
    """One study; fresh bytes and str objects per object, as a parsed request would give."""
    uid = f"{ROOT}{10**11 + index}"

    def data() -> bytes:
        return os.urandom(blob // 2).hex().encode()[:blob].ljust(blob, b"0")

    series = []
    for s in range(n_series):
        s_uid = f"{uid}.{s + 1}"
        instances = tuple(
            InstanceData(f"{s_uid}.{i + 1}.{10**8 + i}", data()) for i in range(n_instances)
        )
        series.append(SeriesData(s_uid, data(), instances))
    return StudyData(uid, data(), tuple(series))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100_000)
    parser.add_argument("--blob", type=int, default=650)
    parser.add_argument("--series", type=int, default=4)
    parser.add_argument("--per-series", type=int, default=25)
    args = parser.parse_args()
    per_study = args.series * args.per_series
    n_studies = args.instances // per_study

    backend = MemoryBackend()
    process = psutil.Process()
    gc.collect()
    before = process.memory_info().rss
    for index in range(n_studies):
        backend.add_objects(
            "archive", [study(index, args.series, args.per_series, args.blob)], None
        )
    gc.collect()
    after = process.memory_info().rss
    instances = n_studies * per_study
    stats = backend.stats("archive").namespaces[0]
    print(f"instances: {instances} (+{stats.studies} studies, {stats.series} series)")
    print(f"blob: {args.blob} bytes")
    print(f"RSS growth: {after - before} bytes = {(after - before) / instances:.0f} per instance")
    print(f"accounted:  {stats.bytes} bytes = {stats.bytes / instances:.0f} per instance")


if __name__ == "__main__":
    main()
