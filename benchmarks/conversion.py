"""Micro-benchmark of the cache-hit conversion: proto -> pydicom -> dicomtrolley, in process.

The reference is what dicomtrolley does with a QIDO-RS answer once its JSON is
parsed: pydicom's ``Dataset.from_json`` per instance, then ``DICOMParseTree``.
Ours is what ``CacheClient.lookup_query`` does with a parsed hit:
``studies_from_proto`` on the response's studies. Both build the same
80-instance study (Orthanc's 18 instance-level attributes, ``benchmarks.corpus``)
and are checked equal before timing. No server, no Orthanc: the RPC and the HTTP
request are left out on purpose, to see the conversion alone.

    python -m benchmarks.conversion [--repeat N]

Prints microseconds per instance and per study, side by side: the best of
``--repeat`` rounds (as ``timeit`` reports), the two routes' rounds interleaved,
since on a shared machine the best round is the one least disturbed by others.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from dicomtrolley.core import Study
from dicomtrolley.parsing import DICOMParseTree
from pydicom.dataset import Dataset

from benchmarks.corpus import STANDARD, instance_dataset
from dicomcache.client.dataset import to_pydicom
from dicomcache.client.objects import studies_from_proto, study_to_proto
from dicomcache.v1 import cache_service_pb2

INSTANCES = STANDARD.per_study


def _answer() -> list[dict[str, Any]]:
    """The QIDO-RS instance-level answer for one 80-instance study, as parsed JSON."""
    return [
        instance_dataset(0, series, number).to_json_dict()
        for series in range(STANDARD.series)
        for number in range(STANDARD.instances)
    ]


def _parse_answer(answer: list[dict[str, Any]]) -> list[Study]:
    tree = DICOMParseTree()
    for item in answer:
        tree.insert_dataset(Dataset.from_json(item))
    studies: list[Study] = tree.as_studies()
    return studies


def _best_us(actions: list[Callable[[], object]], repeat: int, number: int) -> list[float]:
    """Each action's best time of one call over repeat interleaved rounds, in microseconds."""
    best = [float("inf")] * len(actions)
    for _ in range(repeat):
        for index, action in enumerate(actions):
            start = time.perf_counter()
            for _ in range(number):
                action()
            best[index] = min(best[index], (time.perf_counter() - start) / number)
    return [seconds * 1e6 for seconds in best]


def _summary(studies: list[Study]) -> list[Any]:
    return [
        (s.uid, [(x.uid, [(i.uid, i.data.to_json_dict()) for i in x.instances]) for x in s.series])
        for s in studies
    ]


def main(argv: list[str] | None = None) -> None:
    """Time both routes on the same study and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds per figure")
    args = parser.parse_args(argv)

    answer = _answer()
    reference = _parse_answer(answer)
    response = cache_service_pb2.LookupQueryResponse(
        hit=True, studies=[study_to_proto(s) for s in reference]
    )
    wire = response.SerializeToString()
    parsed = cache_service_pb2.LookupQueryResponse.FromString(wire)
    if _summary(studies_from_proto(parsed.studies)) != _summary(reference):
        raise SystemExit("conversion does not give what dicomtrolley gives: not timing it")

    attributes = [
        instance.attributes for series in parsed.studies[0].series for instance in series.instances
    ]
    datasets = _best_us(
        [
            lambda: [Dataset.from_json(item) for item in answer],
            lambda: [to_pydicom(a) for a in attributes],
        ],
        args.repeat,
        3,
    )
    studies = _best_us(
        [lambda: _parse_answer(answer), lambda: studies_from_proto(parsed.studies)],
        args.repeat,
        3,
    )
    rows = [("one instance's dataset", *datasets), ("the study, tree included", *studies)]
    (parse_us,) = _best_us(
        [lambda: cache_service_pb2.LookupQueryResponse.FromString(wire)], args.repeat, 10
    )

    attribute_count = len(answer[0])
    print(f"{INSTANCES}-instance study, {attribute_count} attributes per instance")
    print(f"{'':28} {'from_json':>24} {'dicomcache':>24} {'speed-up':>9}")
    print(f"{'':28} {'us/instance':>11} {'us/study':>12} {'us/instance':>11} {'us/study':>12}")
    for name, theirs, ours in rows:
        print(
            f"{name:28} {theirs / INSTANCES:11.1f} {theirs:12.0f} "
            f"{ours / INSTANCES:11.1f} {ours:12.0f} {theirs / ours:8.1f}x"
        )
    print(f"(parsing the {len(wire)}-byte response itself: {parse_us:.0f} us, not counted above)")


if __name__ == "__main__":
    main()
