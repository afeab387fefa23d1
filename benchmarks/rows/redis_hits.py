"""Row 8: the Redis backend beside the memory backend, and the Redis round trips of a hit.

Two servers, one on each backend (the Redis one on a real redis-server started
for the run), hold the same hot study; the load process alternates between them
call by call. Round trips are counted by redis-server itself: the growth of
``total_reads_processed`` (one per request read off a client socket; a pipeline
sent at once is one) over a run of hits, less the INFO calls that read it, and
less the server's own background traffic over the same time: the PINGs of its
invalidation feed's subscription and its counts' periodic flush, which no hit
causes. That rate is measured first, over ``BACKGROUND_S`` of no calls, and the
note states it; a hit's own commands are listed per hit, the background's per second.
The row compares the figure to the hundredth, as printed (see ``run``).
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from tests.support.redis_servers import redis_server

from ..calls import HotStudy, check_hit
from ..load import Call, alternating_latency, elsewhere
from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar

BACKGROUND_S = 5.0  # of no calls, to measure the server's own traffic per second


def run(plan: Plan) -> list[Row]:
    """Rows 8a (study-level hit), 8b (80-instance hit) and 8c (round trips per hit)."""
    hot = HotStudy()
    with redis_server() as redis, Sidecar() as memory, Sidecar(redis.url) as on_redis:
        calls = []
        for name, server in (("memory", memory), ("redis", on_redis)):
            assert server.channel is not None
            hot.store(server.channel)
            for level in ("study", "instance"):
                call = hot.lookup(server.target, level, f"{name}-{level}")
                check_hit(server.channel, call)
                calls.append(call)
        assert on_redis.channel is not None
        client = redis.client()
        try:
            trips = {
                level: _round_trips(client, on_redis.channel, calls[2 + i], plan)
                for i, level in enumerate(("study", "instance"))
            }
        finally:
            client.close()
        samples = elsewhere(alternating_latency, calls, plan.redis_rounds)
    rows = []
    for key, level, what in (("8a", "study", "study-level"), ("8b", "instance", "80-instance")):
        on_redis_s, memory_s = samples[f"redis-{level}"], samples[f"memory-{level}"]
        rows.append(
            Row(
                key=key,
                measure=f"{what} hit latency, Redis backend",
                result=seconds(median(on_redis_s)),
                baseline=f"{seconds(median(memory_s))} memory",
                value=median(on_redis_s) / median(memory_s),
                note=f"p99 {seconds(percentile(on_redis_s, 99))} vs "
                f"{seconds(percentile(memory_s, 99))}; {plan.redis_rounds} alternating calls each",
                figures={
                    "redis_median_s": median(on_redis_s),
                    "memory_median_s": median(memory_s),
                    "redis_p99_s": percentile(on_redis_s, 99),
                    "memory_p99_s": percentile(memory_s, 99),
                },
            )
        )
    study, instance = trips["study"], trips["instance"]
    rows.append(
        Row(
            key="8c",
            measure="Redis round trips per hit (study-level / 80-instance)",
            result=f"{study['reads_per_hit']:.2f} / {instance['reads_per_hit']:.2f}",
            baseline="-",
            # To the hundredth: the background's estimate is good to about a thousandth
            # (one flush more or less in the hits' time), an extra trip of one hit in a
            # hundred still shows.
            value=round(max(study["reads_per_hit"], instance["reads_per_hit"]), 2),
            unit="",
            target=Target("<=", 1, unit=""),
            note="commands per hit, as redis counts them (scripts' inner calls included), "
            "less the server's background traffic: "
            + "; ".join(
                f"{level}: " + ", ".join(f"{n} {c:.2f}" for n, c in counted["commands"].items())
                for level, counted in trips.items()
            )
            + "; background, per second of no calls: "
            + ", ".join(f"{n} {c:.1f}" for n, c in study["background_commands_per_s"].items())
            + f" ({study['background_reads_per_s']:.1f} reads/s)",
            figures=trips,
        )
    )
    return rows


def _round_trips(client: Any, channel: grpc.Channel, call: Call, plan: Plan) -> dict[str, Any]:
    """Hits sent one at a time (half the plan's ``redis_rounds``), with redis-server's
    read and command counters around them, less the server's background traffic
    (measured over ``BACKGROUND_S`` before, a fifth of it in a quick run)."""
    counted = plan.redis_rounds // 2
    before = client.info("all")
    started = time.monotonic()
    time.sleep(BACKGROUND_S if plan.name == "full" else BACKGROUND_S / 5)
    idle_s = time.monotonic() - started
    middle = client.info("all")
    started = time.monotonic()
    for _ in range(counted):
        check_hit(channel, call)
    hits_s = time.monotonic() - started
    after = client.info("all")
    background_reads = _reads(before, middle) / idle_s
    background = {name: count / idle_s for name, count in _commands(before, middle).items()}
    reads = _reads(middle, after) - background_reads * hits_s
    commands = {
        name: (count - background.get(name, 0.0) * hits_s) / counted
        for name, count in _commands(middle, after).items()
    }
    return {
        "hits": counted,
        "reads_per_hit": reads / counted,
        # What prints as 0.00 is left out: the background's own share, taken off, leaves
        # a few thousandths either way.
        "commands": {name: per_hit for name, per_hit in commands.items() if per_hit >= 0.005},
        "background_reads_per_s": background_reads,
        "background_commands_per_s": background,
        "hits_s": hits_s,
    }


def _reads(before: dict[str, Any], after: dict[str, Any]) -> int:
    """Requests read off client sockets between two INFOs, less the later INFO itself."""
    return int(after["total_reads_processed"] - before["total_reads_processed"] - 1)


def _commands(before: dict[str, Any], after: dict[str, Any]) -> dict[str, int]:
    """Calls of each command between two INFOs (scripts' inner calls included), INFO aside."""
    counts = {
        name.removeprefix("cmdstat_"): stat["calls"] - before.get(name, {}).get("calls", 0)
        for name, stat in after.items()
        if name.startswith("cmdstat_") and name != "cmdstat_info"
    }
    return {name: count for name, count in counts.items() if count > 0}
