"""Row 4: what the server adds to a study-level hit, over gRPC's own cost of the same reply.

The baseline is an echo method on the same server (same settings, threads and
options) returning exactly the bytes of the hit's response, so the difference is
the service's work: parsing and validating the request, the backend lookup and
encoding the answer. The study is stored as a study-level listing, what
``find_study_by_id(uid, STUDY)`` stores. Latency with one call in flight, alternating call by call;
throughput with 16 in flight, alternating window by window; both from a
separate load process over loopback.
"""

from __future__ import annotations

from ..calls import HotStudy, check_hit
from ..corpus import Shape
from ..load import Call, alternating_latency, elsewhere, windowed_throughput
from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import ADMIN_SERVICE, Sidecar

IN_FLIGHT = 16


def run(plan: Plan) -> list[Row]:
    """Rows 4a (latency) and 4b (throughput)."""
    with Sidecar() as server:
        assert server.channel is not None
        hot = HotStudy(shape=Shape(0, 0))  # a study-by-id answer at study level
        hot.store(server.channel, level="study")
        hit = hot.lookup(server.target, "study", "hit")
        response = check_hit(server.channel, hit)
        server.admin("SetEcho", response)
        echo = Call("echo", server.target, f"/{ADMIN_SERVICE}/Echo", hit.payload)
        latency = elsewhere(alternating_latency, [hit, echo], plan.latency_rounds)
        throughput = elsewhere(
            windowed_throughput,
            [hit, echo],
            IN_FLIGHT,
            plan.throughput_window,
            plan.throughput_rounds,
        )
    hit_latency, echo_latency = median(latency["hit"]), median(latency["echo"])
    hit_rate, echo_rate = median(throughput["hit"]), median(throughput["echo"])
    size = f"{len(response)}-byte reply"
    return [
        Row(
            key="4a",
            measure="study-level hit RPC latency, 1 in flight (server cost)",
            result=seconds(hit_latency),
            baseline=f"{seconds(echo_latency)} echo",
            value=hit_latency / echo_latency,
            target=Target("<=", 1.3),
            note=f"LookupStudy vs an echo of the same {size}; medians of "
            f"{plan.latency_rounds} alternating calls each",
            figures={
                "hit_median_s": hit_latency,
                "echo_median_s": echo_latency,
                "hit_p99_s": percentile(latency["hit"], 99),
                "echo_p99_s": percentile(latency["echo"], 99),
                "response_bytes": len(response),
                "calls_each": plan.latency_rounds,
            },
        ),
        Row(
            key="4b",
            measure=f"study-level hit RPC throughput, {IN_FLIGHT} in flight",
            result=f"{hit_rate:.0f}/s",
            baseline=f"{echo_rate:.0f}/s echo",
            value=hit_rate / echo_rate,
            target=Target(">=", 0.8),
            note=f"medians of {plan.throughput_rounds} alternating windows of "
            f"{plan.throughput_window} s each",
            figures={
                "hit_per_s": throughput["hit"],
                "echo_per_s": throughput["echo"],
                "in_flight": IN_FLIGHT,
            },
        ),
    ]
