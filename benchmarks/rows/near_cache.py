"""Rows 18a-18f: the near cache (issue 15 part 2) against dicomtrolley's in-process cache.

The cache servers run in processes of their own (``Sidecar``); the searchers, the
near caches and dicomtrolley's ``CachedSearcher`` over a ``DICOMObjectCache`` run
here, over an in-process upstream holding the 80-instance study of the issue
(``corpus.STANDARD``), so every timed call is a hit that never leaves this process
(the near cache's and dicomtrolley's) or goes to the server (today's path).

* 18a: a near-cache hit of ``find_study_by_id`` at instance level, call by call
  against dicomtrolley's hit of the same study (and today's CachedSearcher hit, in
  the note). Every near call is checked to be a near hit.
* 18b: what a copy of that hit would cost (``copy.deepcopy`` of the Study the near
  cache hands out), against the near hit itself: why hits are shared, not copied.
* 18c/18d: invalidation propagation: from the start of an ``Invalidate`` of the
  study through another client (18c: the same server; 18d: another server sharing
  one redis-server) to the moment the near cache applied its message ("ack": the
  entry can no longer be served). p99 over the rounds.
* 18e/18f: hits per second of 8 threads sharing one searcher, with the near cache
  and without (today's path), windows taking turns.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from dicomtrolley.caching import CachedSearcher as TrolleyCachedSearcher
from dicomtrolley.caching import DICOMObjectCache
from dicomtrolley.core import Query, QueryLevels, Searcher, Study, StudyReference

from dicomcache.client import CachedSearcher
from dicomcache.client.near import NearCache
from tests.support.redis_servers import redis_server

from ..corpus import STANDARD, trolley_study
from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar

INSTANCE = QueryLevels.INSTANCE
THREADS = 8
COPY_ROUNDS = 100
WAIT = 10.0  # seconds an invalidation may take before the round counts as lost


class _Archive(Searcher):  # type: ignore[misc]  # dicomtrolley ships no type information
    """An upstream in this process holding one study; counts its calls."""

    def __init__(self, study: Study) -> None:
        self.study = study
        self.calls = 0

    def find_studies(self, query: Query) -> Sequence[Study]:
        self.calls += 1
        return [self.study] if query.StudyInstanceUID == self.study.uid else []


def run(plan: Plan) -> list[Row]:
    """Rows 18a-18f."""
    study = trolley_study(1, STANDARD)
    rows: list[Row] = []
    with Sidecar() as server:
        try:
            rows += _hits(server, study, plan)
        except Exception as exc:  # one broken row must not hide the others
            rows += [Row(key=k, measure="near-cache hit", note=f"not run: {exc}") for k in "ab"]
        try:
            rows.append(_propagation("18c", "one server", server, server, study, plan))
        except Exception as exc:
            rows.append(Row(key="18c", measure="invalidation propagation", note=f"not run: {exc}"))
        try:
            rows += _throughput(server, study, plan)
        except Exception as exc:
            rows += [Row(key=k, measure="8-thread hits", note=f"not run: {exc}") for k in "ef"]
    try:
        with redis_server() as redis, Sidecar(redis.url) as first, Sidecar(redis.url) as second:
            rows.append(_propagation("18d", "two servers on Redis", first, second, study, plan))
    except Exception as exc:
        rows.append(Row(key="18d", measure="invalidation propagation", note=f"not run: {exc}"))
    rows.sort(key=lambda row: row.key)
    return rows


def _searcher(
    server: Sidecar, study: Study, namespace: str, near: NearCache | None = None
) -> tuple[CachedSearcher, _Archive]:
    archive = _Archive(study)
    searcher = CachedSearcher(
        archive, target=server.target, namespace=namespace, timeout=5, near_cache=near
    )
    if near is not None and not near.wait(lambda n: n.in_sync, WAIT):
        raise RuntimeError("the near cache never got in sync")
    return searcher, archive


def _warm(searcher: CachedSearcher, uid: str) -> None:
    """Find until the near cache keeps the answer, and still does two heartbeats later
    (the store's own announcement may come after the insert, and drop it)."""
    near = searcher.near
    assert near is not None
    for _ in range(50):
        searcher.find_study_by_id(uid, INSTANCE)
        if near.counts().entries:
            beats = near.heartbeats
            if not near.wait(lambda n, beats=beats: n.heartbeats >= beats + 2, WAIT):
                raise RuntimeError("no heartbeats")
            if near.counts().entries:
                return
    raise RuntimeError("the near cache never kept the answer")


def _alternate(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def _hits(server: Sidecar, study: Study, plan: Plan) -> list[Row]:
    """18a and 18b, one alternating run."""
    near = NearCache(max_bytes=256 * 1024**2)
    searcher, _ = _searcher(server, study, "row18a", near)
    plain, _ = _searcher(server, study, "row18a-plain")
    trolley = TrolleyCachedSearcher(_Archive(study), DICOMObjectCache())
    uid = study.uid
    try:
        _warm(searcher, uid)
        for _ in range(5):
            plain.find_study_by_id(uid, INSTANCE)
            trolley.find_study_by_id(uid, INSTANCE)
        kept = searcher.find_study_by_id(uid, INSTANCE)
        hits = near.hits
        rounds = plan.searcher_rounds * 10
        near_call = lambda: searcher.find_study_by_id(uid, INSTANCE)  # noqa: E731
        samples = _alternate(
            {"near": near_call, "trolley": lambda: trolley.find_study_by_id(uid, INSTANCE)},
            rounds,
        )
        copies = min(rounds, COPY_ROUNDS)  # a copy takes ms: fewer, beside near hits
        copied = _alternate({"copy": lambda: copy.deepcopy(kept), "near": near_call}, copies)
        samples["copy"] = copied["copy"]
        if near.hits - hits != rounds + copies:
            raise RuntimeError(f"{near.hits - hits} near hits for {rounds + copies} calls")
        today = _alternate({"plain": lambda: plain.find_study_by_id(uid, INSTANCE)}, 50)
    finally:
        near.close()
        searcher.client.close()
        plain.client.close()
    near_s, trolley_s, copy_s = (median(samples[k]) for k in ("near", "trolley", "copy"))
    today_s = median(today["plain"])
    figures = {
        "near_median_s": near_s,
        "near_p99_s": percentile(samples["near"], 99),
        "trolley_median_s": trolley_s,
        "trolley_p99_s": percentile(samples["trolley"], 99),
        "today_median_s": today_s,
        "copy_median_s": copy_s,
        "calls_each": rounds,
        "object_factor_measured_once": "2.7x wire size as handed out, 12.8x every element read",
    }
    return [
        Row(
            key="18a",
            measure="near-cache hit, 80-instance find_study_by_id, instance level",
            result=seconds(near_s),
            baseline=f"{seconds(trolley_s)} dicomtrolley DICOMObjectCache hit",
            value=near_s / trolley_s,
            target=Target("<=", 2),
            note=f"{rounds} alternating calls each; today's CachedSearcher hit {seconds(today_s)}"
            f" ({today_s / near_s:.0f}x the near hit)",
            figures=figures,
        ),
        Row(
            key="18b",
            measure="a deep copy of that hit (copy.deepcopy of the Study), per hit",
            result=seconds(copy_s),
            baseline=f"{seconds(near_s)} the near hit, shared",
            value=copy_s / near_s,
            note="why hits share their objects (as dicomtrolley's cache does) rather than copy",
            figures=figures,
        ),
    ]


def _propagation(
    key: str, where: str, watched: Sidecar, other: Sidecar, study: Study, plan: Plan
) -> Row:
    """Invalidate through ``other`` until the near cache on ``watched`` applied it."""
    near = NearCache(max_bytes=64 * 1024**2)
    namespace = f"row{key}"
    searcher, _ = _searcher(watched, study, namespace, near)
    invalidator, _ = _searcher(other, study, namespace)
    reference = StudyReference(study_uid=study.uid)
    taken: list[float] = []
    returned: list[float] = []
    lost = 0
    try:
        for _ in range(plan.searcher_rounds):
            _warm(searcher, study.uid)
            seen = near.invalidations
            start = time.perf_counter()
            invalidator.client.invalidate(namespace, reference)
            done = time.perf_counter()
            if not near.wait(lambda n, seen=seen: n.invalidations > seen, WAIT):
                lost += 1
                continue
            applied = time.perf_counter()
            taken.append(applied - start)
            returned.append(applied - done)
    finally:
        near.close()
        searcher.client.close()
        invalidator.client.close()
    if not taken:
        raise RuntimeError("no invalidation arrived")
    p99 = percentile(taken, 99)
    return Row(
        key=key,
        measure=f"invalidation propagation p99, Invalidate start to near cache applied, {where}",
        result=seconds(p99),
        baseline=f"median {seconds(median(taken))}",
        value=p99 * 1000,
        unit=" ms",
        target=Target("<=", 100, " ms"),
        note=f"{len(taken)} rounds, {lost} not arrived within {WAIT:.0f} s; after Invalidate "
        f"returned: median {seconds(median(returned))}, p99 {seconds(percentile(returned, 99))}",
        figures={
            "p99_s": p99,
            "median_s": median(taken),
            "after_return_p99_s": percentile(returned, 99),
            "after_return_median_s": median(returned),
            "rounds": len(taken),
            "lost": lost,
        },
    )


def _window(call: Callable[[], Any], seconds_: float) -> int:
    """Calls of ``call`` by THREADS threads in one window."""
    counts = [0] * THREADS
    stop = threading.Event()

    def work(slot: int) -> None:
        while not stop.is_set():
            call()
            counts[slot] += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    stop.wait(seconds_)
    stop.set()
    for thread in threads:
        thread.join()
    return sum(counts)


def _throughput(server: Sidecar, study: Study, plan: Plan) -> list[Row]:
    """18e and 18f: windows with and without the near cache, taking turns."""
    near = NearCache(max_bytes=64 * 1024**2)
    with_near, _ = _searcher(server, study, "row18e", near)
    without, _ = _searcher(server, study, "row18e-plain")
    uid = study.uid
    rates: dict[str, list[float]] = {"near": [], "plain": []}
    try:
        _warm(with_near, uid)
        without.find_study_by_id(uid, INSTANCE)
        calls = {
            "near": lambda: with_near.find_study_by_id(uid, INSTANCE),
            "plain": lambda: without.find_study_by_id(uid, INSTANCE),
        }
        hits = near.hits
        served = 0
        for i in range(plan.throughput_rounds):
            for name in ["near", "plain"] if i % 2 == 0 else ["plain", "near"]:
                count = _window(calls[name], plan.throughput_window)
                served += count if name == "near" else 0
                rates[name].append(count / plan.throughput_window)
        missed = served - (near.hits - hits)
        flushes = near.flushes
    finally:
        near.close()
        with_near.client.close()
        without.client.close()
    near_rate, plain_rate = median(rates["near"]), median(rates["plain"])
    note = f"{plan.throughput_rounds} windows of {plan.throughput_window:.1f} s each, alternating"
    figures = {
        "near_per_s": near_rate,
        "plain_per_s": plain_rate,
        "near_calls_not_near": missed,
        "flushes": flushes,
    }
    return [
        Row(
            key="18e",
            measure=f"80-instance hits per second, {THREADS} threads, with the near cache",
            result=f"{near_rate:,.0f}/s",
            baseline=f"{plain_rate:,.0f}/s without (18f)",
            value=near_rate / plain_rate,
            note=f"{note}; {missed} calls of the near windows went to the server"
            f" ({flushes} flushes: out of sync, e.g. the stream's thread was late)",
            figures=figures,
        ),
        Row(
            key="18f",
            measure=f"80-instance hits per second, {THREADS} threads, without the near cache",
            result=f"{plain_rate:,.0f}/s",
            baseline="today's path (the baseline of 18e)",
            value=plain_rate,
            unit="/s",
            note=note,
            figures=figures,
        ),
    ]
