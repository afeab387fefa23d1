"""Row 6: a hit costs the same whether the cache holds a thousand instances or a million.

Two servers run side by side, one loaded with ``plan.scale_small`` instances and
one with ``plan.scale_big`` (through AddObjects in large batches), both holding
the same hot study; the load process alternates between them call by call, so
both see the same machine at the same moments.
"""

from __future__ import annotations

import time

from ..calls import HotStudy, check_hit, load_bulk
from ..load import alternating_latency, elsewhere
from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar


def run(plan: Plan) -> list[Row]:
    """Rows 6a (study-level hit) and 6b (80-instance hit)."""
    hot = HotStudy()
    with Sidecar() as small, Sidecar() as big:
        assert small.channel is not None and big.channel is not None
        started = time.monotonic()
        small_count = load_bulk(small.channel, plan.scale_small)
        big_count = load_bulk(big.channel, plan.scale_big)
        load_seconds = time.monotonic() - started
        calls = []
        for name, server in (("small", small), ("big", big)):
            assert server.channel is not None
            hot.store(server.channel)
            for level in ("study", "instance"):
                call = hot.lookup(server.target, level, f"{name}-{level}")
                check_hit(server.channel, call)
                calls.append(call)
        rss = {"small": small.rss(), "big": big.rss()}
        samples = elsewhere(alternating_latency, calls, plan.latency_rounds)
    rows = []
    for key, level, what in (("6a", "study", "study-level"), ("6b", "instance", "80-instance")):
        big_s, small_s = samples[f"big-{level}"], samples[f"small-{level}"]
        rows.append(
            Row(
                key=key,
                measure=f"{what} hit latency, {big_count:,} instances cached",
                result=seconds(median(big_s)),
                baseline=f"{seconds(median(small_s))} with {small_count:,}",
                value=median(big_s) / median(small_s),
                target=Target("<=", 1.25),
                note=(
                    f"loading {big_count + small_count:,} instances took {load_seconds:.0f} s; "
                    f"server RSS {rss['big'] / 2**20:.0f} MiB vs {rss['small'] / 2**20:.0f} MiB; "
                    f"p99 {seconds(percentile(big_s, 99))} vs {seconds(percentile(small_s, 99))}"
                    if key == "6a"
                    else f"p99 {seconds(percentile(big_s, 99))} vs "
                    f"{seconds(percentile(small_s, 99))}"
                ),
                figures={
                    "big_instances": big_count,
                    "small_instances": small_count,
                    "big_median_s": median(big_s),
                    "small_median_s": median(small_s),
                    "big_p99_s": percentile(big_s, 99),
                    "small_p99_s": percentile(small_s, 99),
                    "big_rss_bytes": rss["big"],
                    "small_rss_bytes": rss["small"],
                    "load_seconds": load_seconds,
                    "calls_each": plan.latency_rounds,
                },
            )
        )
    return rows
