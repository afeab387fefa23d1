"""Micro-benchmark of the cache-hit conversion: proto -> pydicom -> dicomtrolley, in process.

The reference is what dicomtrolley does with a QIDO-RS answer once its JSON is
parsed: pydicom's ``Dataset.from_json`` per instance, then ``DICOMParseTree``.
Ours is what ``CacheClient.lookup_query`` does with a parsed hit:
``studies_from_proto`` on the response's studies. Its datasets are built when
first read (``convert.deferred``), so a third row reads every element on both
routes. Both build the same
80-instance study (Orthanc's 18 instance-level attributes, ``benchmarks.corpus``)
and are checked equal before timing. No server, no Orthanc: the RPC and the HTTP
request are left out on purpose, to see the conversion alone.

    python -m benchmarks.conversion [--repeat N] [--pause-rounds N] [--pause-calls N]

Prints microseconds per instance, side by side: median and mean of ``--repeat``
rounds, the two routes' rounds interleaved (the machine is shared and noisy).
The garbage collector stays on and each route's last few answers are kept
alive, as in an application: collections are a large part of the cost of
building thousands of objects that all survive, so timing without them (as
``timeit`` does) would flatter both routes. Both rows time the default,
without the collector pause.

Then the hit with and without ``pause_gc`` (``collector``), in milliseconds per
study. Each mode runs in a fresh process, the modes alternating over
``--pause-rounds`` rounds: in one process the collections that one mode's
objects trigger would land in the other mode's time.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from dicomtrolley.core import Study
from dicomtrolley.parsing import DICOMParseTree
from pydicom.dataset import Dataset

from benchmarks.corpus import STANDARD, instance_dataset
from dicomcache.client.convert.dataset import to_pydicom
from dicomcache.client.convert.objects import studies_from_proto, study_to_proto
from dicomcache.v1 import cache_service_pb2, objects_pb2

INSTANCES = STANDARD.per_study
HELD = 5  # answers each route keeps alive, as an application holds its recent results


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


def _times_us(
    actions: list[Callable[[], object]], repeat: int, number: int
) -> list[tuple[float, float]]:
    """Each action's (median, mean) time of one call over interleaved rounds, in microseconds.

    The median shows the usual round; the mean also carries the occasional full
    collection that a round of a process full of live objects runs into.
    """
    samples: list[list[float]] = [[] for _ in actions]
    held: list[deque[object]] = [deque(maxlen=HELD) for _ in actions]
    for _ in range(repeat):
        for action, times, answers in zip(actions, samples, held, strict=True):
            start = time.perf_counter()
            for _ in range(number):
                answers.append(action())
            times.append((time.perf_counter() - start) / number)
    return [(statistics.median(t) * 1e6, statistics.fmean(t) * 1e6) for t in samples]


def _hit(reference: list[Study]) -> tuple[bytes, cache_service_pb2.LookupQueryResponse]:
    """The serialized hit for the reference answer, and the hit parsed again."""
    response = cache_service_pb2.LookupQueryResponse(
        hit=True, studies=[study_to_proto(s) for s in reference]
    )
    wire = response.SerializeToString()
    return wire, cache_service_pb2.LookupQueryResponse.FromString(wire)


def _hit_times_ms(pause_gc: bool, calls: int) -> list[float]:
    """In a fresh process: the times of ``calls`` hits, GC on, the last HELD answers held."""
    _, parsed = _hit(_parse_answer(_answer()))
    studies: list[objects_pb2.Study] = list(parsed.studies)
    held: deque[object] = deque(maxlen=HELD)
    for _ in range(HELD + 5):  # warm up, and hold answers as in the timed calls
        held.append(studies_from_proto(studies, pause_gc=pause_gc))
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        held.append(studies_from_proto(studies, pause_gc=pause_gc))
        times.append((time.perf_counter() - start) * 1e3)
    return times


def _pause_times_ms(rounds: int, calls: int) -> dict[bool, list[float]]:
    """Hit times without and with the pause, each round a fresh process per mode."""
    context = multiprocessing.get_context("spawn")
    samples: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(rounds):
        for pause_gc in (False, True) if round_ % 2 == 0 else (True, False):
            with context.Pool(1) as pool:
                samples[pause_gc].extend(pool.apply(_hit_times_ms, (pause_gc, calls)))
    return samples


def _print_pause(samples: dict[bool, list[float]], rounds: int, calls: int) -> None:
    print(
        f"\nthe hit, per study, with and without pause_gc: {rounds} rounds of a fresh process"
        f" per mode, {calls} hits each, garbage collector on, last {HELD} answers held"
    )
    print(f"{'ms per study':28} {'median':>8} {'mean':>8} {'p95':>8} {'max':>8}")
    for pause_gc, times in samples.items():
        ordered = sorted(times)
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        print(
            f"{f'pause_gc={pause_gc}':28} {statistics.median(times):8.2f}"
            f" {statistics.fmean(times):8.2f} {p95:8.2f} {ordered[-1]:8.2f}"
        )
    saved = [
        100 * (1 - measure(samples[True]) / measure(samples[False]))
        for measure in (statistics.median, statistics.fmean)
    ]
    print(f"the pause saves {saved[0]:.0f}% of the median, {saved[1]:.0f}% of the mean")


def _read_all(studies: list[Study]) -> list[Study]:
    """Read every element of every instance: a hit's datasets are built on first read."""
    for study in studies:
        for series in study.series:
            for instance in series.instances:
                for element in instance.data:
                    element.value  # noqa: B018  # the read is the point
    return studies


def _summary(studies: list[Study]) -> list[Any]:
    return [
        (s.uid, [(x.uid, [(i.uid, i.data.to_json_dict()) for i in x.instances]) for x in s.series])
        for s in studies
    ]


def main(argv: list[str] | None = None) -> None:
    """Time both routes on the same study and print them side by side."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds per figure")
    parser.add_argument(
        "--pause-rounds", type=int, default=6, help="rounds of processes for pause_gc (0: none)"
    )
    parser.add_argument("--pause-calls", type=int, default=100, help="hits per such process")
    args = parser.parse_args(argv)

    answer = _answer()
    reference = _parse_answer(answer)
    wire, parsed = _hit(reference)
    for pause_gc in (False, True):
        if _summary(studies_from_proto(parsed.studies, pause_gc=pause_gc)) != _summary(reference):
            raise SystemExit("conversion does not give what dicomtrolley gives: not timing it")

    attributes = [
        instance.attributes for series in parsed.studies[0].series for instance in series.instances
    ]
    datasets = _times_us(
        [
            lambda: [Dataset.from_json(item) for item in answer],
            lambda: [to_pydicom(a) for a in attributes],
        ],
        args.repeat,
        3,
    )
    studies = _times_us(
        [lambda: _parse_answer(answer), lambda: studies_from_proto(parsed.studies)],
        args.repeat,
        3,
    )
    read = _times_us(
        [
            lambda: _read_all(_parse_answer(answer)),
            lambda: _read_all(studies_from_proto(parsed.studies)),
        ],
        args.repeat,
        3,
    )
    ((parse_us, _),) = _times_us(
        [lambda: cache_service_pb2.LookupQueryResponse.FromString(wire)], args.repeat, 10
    )

    print(
        f"{INSTANCES}-instance study, {len(answer[0])} attributes per instance; "
        f"{args.repeat} rounds, garbage collector on, last {HELD} answers held"
    )
    print(f"{'us per instance':28} {'from_json':>17} {'dicomcache':>17} {'speed-up':>17}")
    print(f"{'':28}" + f" {'median':>8} {'mean':>8}" * 3)
    for name, (theirs, ours) in [
        ("one instance's dataset", datasets),
        ("the study, tree included", studies),
        ("the same, every element read", read),
    ]:
        print(
            f"{name:28} {theirs[0] / INSTANCES:8.1f} {theirs[1] / INSTANCES:8.1f}"
            f" {ours[0] / INSTANCES:8.1f} {ours[1] / INSTANCES:8.1f}"
            f" {theirs[0] / ours[0]:7.1f}x {theirs[1] / ours[1]:7.1f}x"
        )
    theirs_ms, ours_ms = studies[0][0] / 1000, studies[1][0] / 1000
    print(f"per study, tree included (medians): from_json {theirs_ms:.2f} ms, ", end="")
    print(f"dicomcache {ours_ms:.2f} ms")
    print(f"(parsing the {len(wire)}-byte response itself: {parse_us:.0f} us, not counted above)")
    if args.pause_rounds:
        samples = _pause_times_ms(args.pause_rounds, args.pause_calls)
        _print_pause(samples, args.pause_rounds, args.pause_calls)


if __name__ == "__main__":
    main()
