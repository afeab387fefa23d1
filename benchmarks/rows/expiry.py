"""Row 7: the tail latency of hits while a mass of objects expires at once.

The server's backend reads a clock the benchmark can move (see ``sidecar``), so
"at once" is exact: the bulk is loaded with a short TTL, then the clock jumps
past it and the server's sweeper reaps everything. Each cycle measures a quiet
window (nothing expiring; the same objects loaded) and then the expiry, in the
same load process, with one hit in flight. Between hits the load process polls
the server's object count (untimed) to find when reaping starts and ends; the
expiring window's p99 is taken over the hits sent in that interval. The result
is the median over cycles of each window's p99.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from dicomcache.v1 import cache_service_pb2 as pb

from ..calls import NAMESPACE, SERVICE, HotStudy, check_hit, load_bulk, stats
from ..load import elsewhere
from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import ADMIN_SERVICE, Sidecar

SHORT_TTL = 60  # seconds the bulk lives
JUMP = 2 * SHORT_TTL  # how far the clock moves
QUIET_SECONDS = 2.0
POLL_EVERY = 0.02  # seconds between object counts
MAX_WAIT = 120.0  # seconds to wait for the reaping to end


def run(plan: Plan) -> list[Row]:
    """Row 7."""
    hot = HotStudy()
    with Sidecar() as server:
        assert server.channel is not None
        hot.store(server.channel)
        hit = hot.lookup(server.target, "study", "hit")
        check_hit(server.channel, hit)
        resident = _objects(stats(server.channel))
        cycles = []
        for _ in range(plan.expiry_cycles):
            load_bulk(server.channel, plan.expiry_objects, ttl_seconds=SHORT_TTL, first=1)
            loaded = _objects(stats(server.channel)) - resident
            cycle = elsewhere(measure_cycle, server.target, hit.payload, resident)
            cycle["objects"] = loaded
            cycles.append(cycle)
    quiet = median([c["quiet_p99_s"] for c in cycles])
    expiring = median([c["expiring_p99_s"] for c in cycles])
    objects = cycles[0]["objects"]
    return [
        Row(
            key="7",
            measure=f"p99 study-level hit latency while {objects:,} objects expire at once",
            result=seconds(expiring),
            baseline=f"{seconds(quiet)} nothing expiring",
            value=expiring / quiet,
            target=Target("<=", 2.0),
            note=f"median of {len(cycles)} cycles; reaping took "
            f"{median([c['reaping_s'] for c in cycles]):.2f} s, "
            f"{median([c['expiring_hits'] for c in cycles]):.0f} hits inside it; worst hit "
            f"while reaping {seconds(max(c['expiring_max_s'] for c in cycles))}",
            figures={"cycles": cycles},
        )
    ]


def _objects(ns: pb.NamespaceStats) -> int:
    return int(ns.studies + ns.series + ns.instances)


def measure_cycle(target: str, hit: bytes, resident: int) -> dict[str, Any]:
    """A quiet window, then the clock jump and the reaping; hits timed throughout."""
    with grpc.insecure_channel(target) as channel:
        lookup = channel.unary_unary(f"{SERVICE}/LookupStudy")
        get_stats = channel.unary_unary(
            f"{SERVICE}/GetStats",
            request_serializer=pb.GetStatsRequest.SerializeToString,
            response_deserializer=pb.GetStatsResponse.FromString,
        )
        count_request = pb.GetStatsRequest(namespace=NAMESPACE)

        def count() -> int:
            return _objects(get_stats(count_request, timeout=60).namespaces[0])

        full = count()
        for _ in range(200):  # warm up
            lookup(hit, timeout=60)
        quiet_end = time.perf_counter() + QUIET_SECONDS
        quiet = _timed_hits(lookup, hit, lambda: time.perf_counter() > quiet_end, count)
        channel.unary_unary(f"/{ADMIN_SERVICE}/Shift")(str(JUMP).encode(), timeout=60)
        give_up = time.perf_counter() + MAX_WAIT
        expiring = _timed_hits(
            lookup, hit, lambda: time.perf_counter() > give_up, count, until=resident
        )
    polls = expiring["polls"]
    started = max((t for t, n in polls if n >= full), default=polls[0][0])
    ended = min((t for t, n in polls if n <= resident), default=polls[-1][0])
    inside = [d for t, d in expiring["hits"] if started <= t <= ended]
    if not inside:
        raise RuntimeError("no hit was sent while the objects were reaped")
    quiet_hits = [d for _, d in quiet["hits"]]
    return {
        "quiet_p99_s": percentile(quiet_hits, 99),
        "quiet_median_s": median(quiet_hits),
        "quiet_hits": len(quiet_hits),
        "expiring_p99_s": percentile(inside, 99),
        "expiring_median_s": median(inside),
        "expiring_max_s": max(inside),
        "expiring_hits": len(inside),
        "reaping_s": ended - started,
    }


def _timed_hits(
    lookup: Callable[..., bytes],
    hit: bytes,
    done: Callable[[], bool],
    count: Callable[[], int],
    until: int | None = None,
) -> dict[str, list[tuple[float, float]]]:
    """Hits one at a time, (start, seconds) each, with (time, objects) polls between them.

    Stops when ``done()`` or, given ``until``, when the object count falls to it.
    """
    hits: list[tuple[float, float]] = []
    polls: list[tuple[float, float]] = []
    next_poll = 0.0
    while True:
        now = time.perf_counter()
        if now >= next_poll:
            objects = count()
            polls.append((now, objects))
            if until is not None and objects <= until:
                break
            next_poll = time.perf_counter() + POLL_EVERY
        start = time.perf_counter()
        lookup(hit, timeout=60)
        hits.append((start, time.perf_counter() - start))
        if done():
            break
    return {"hits": hits, "polls": polls}
