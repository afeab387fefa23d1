"""How big and how long: the full run and the quick smoke run differ only here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Plan:
    """Sizes and repetitions of one run. Immutable."""

    name: str
    searcher_rounds: int  # CachedSearcher hits and upstream calls, each, per row
    latency_rounds: int  # calls of each kind at one in flight
    throughput_window: float  # seconds per throughput window
    throughput_rounds: int  # windows of each kind
    memory_instances: int  # instances loaded for the memory row
    scale_small: int  # instances cached in the small server of the scaling row
    scale_big: int  # instances cached in the big one
    expiry_objects: int  # objects that expire at once
    expiry_cycles: int  # expiry windows (each with its own quiet window)
    redis_rounds: int  # hits of each kind against Redis and memory
    large_instances: int  # instances of the large study (row 9)
    large_rounds: int  # its hits and upstream calls, each


FULL = Plan(
    name="full",
    searcher_rounds=200,
    latency_rounds=3000,
    throughput_window=1.0,
    throughput_rounds=9,
    memory_instances=100_000,
    scale_small=1_000,
    scale_big=1_000_000,
    expiry_objects=100_000,
    expiry_cycles=5,
    redis_rounds=2000,
    large_instances=10_000,
    large_rounds=5,
)

QUICK = Plan(
    name="quick",
    searcher_rounds=10,
    latency_rounds=100,
    throughput_window=0.2,
    throughput_rounds=2,
    memory_instances=2_000,
    scale_small=400,
    scale_big=4_000,
    expiry_objects=2_000,
    expiry_cycles=1,
    redis_rounds=100,
    large_instances=1_000,
    large_rounds=3,
)
