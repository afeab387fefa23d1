"""Run the benchmark rows, print the table with the machine, and write the JSON.

    python -m benchmarks            # the full run (about 15 minutes on 2 cores)
    python -m benchmarks --quick    # small sizes, few repetitions: a smoke test
    python -m benchmarks --only 4,8 # some rows

A row whose dependency is missing (no Orthanc, no redis-server) or that fails is
still printed, as "not run" with the reason, and the others go on.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from . import machine
from .plan import FULL, QUICK, Plan
from .report import Row, table, write_json
from .rows import (
    coalescing,
    encryption,
    expiry,
    large_study,
    memory,
    near_cache,
    overhead,
    redis_hits,
    scaling,
    search_hits,
    searcher_hits,
    security,
    telemetry,
    transport,
    wire_path,
)

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"

# (row keys, what they measure, the function that measures them), in table order.
SUITES: list[tuple[tuple[str, ...], str, Callable[[Plan], list[Row]]]] = [
    (
        ("1", "2", "3"),
        "CachedSearcher hits vs dicomtrolley against Orthanc",
        searcher_hits.run,
    ),
    (("4a", "4b"), "server cost of a hit vs an echo", overhead.run),
    (("5a", "5b"), "memory per cached instance", memory.run),
    (("6a", "6b"), "hit latency with many instances cached", scaling.run),
    (("7",), "p99 hit latency while objects expire", expiry.run),
    (("8a", "8b", "8c"), "Redis backend vs memory backend", redis_hits.run),
    (("9", "9b"), "a 10,000-instance study's hit vs dicomtrolley against Orthanc", large_study.run),
    (("10a", "10b"), "hits over TLS and mutual TLS vs plaintext", transport.run),
    (("11a", "11b", "11c"), "hits with authorization over mutual TLS vs without", security.run),
    (("12a", "12b", "12c", "12d"), "Redis hits with values encrypted vs plain", encryption.run),
    (("13a", "13b", "13c"), "hits with metrics and tracing on vs off", telemetry.run),
    (
        ("14a", "14b", "14c", "14d", "15a", "15b"),
        "Search (Python, Node) and QIDO-RS endpoint hits vs QIDO-RS straight to Orthanc",
        search_hits.run,
    ),
    (("16a", "16b"), "archive requests for 100 concurrent identical Search misses", coalescing.run),
    (("17a", "17b", "17c", "17d"), "the wire path of a hit vs an echo of its bytes", wire_path.run),
    (
        ("18a", "18b", "18c", "18d", "18e", "18f"),
        "near cache: hits vs dicomtrolley's cache, invalidation propagation, 8 threads",
        near_cache.run,
    ),
]

ROW_KEYS = [key for keys, _, _ in SUITES for key in keys]


def _failed(keys: tuple[str, ...], title: str, reason: str) -> list[Row]:
    return [Row(key=key, measure=title, note=f"not run: {reason}") for key in keys]


def run_suites(plan: Plan, only: set[str] | None) -> list[Row]:
    """Run every suite (or those with a key in ``only``); a failing suite gives "not run" rows."""
    rows: list[Row] = []
    for keys, title, suite in SUITES:
        if only is not None and not only & ({k.rstrip("abc") for k in keys} | set(keys)):
            continue
        print(f"[{time.strftime('%H:%M:%S')}] rows {', '.join(keys)}: {title} ...", flush=True)
        started = time.monotonic()
        try:
            rows.extend(suite(plan))
        except Exception as exc:
            traceback.print_exc()
            rows.extend(_failed(keys, title, f"{type(exc).__name__}: {exc}"))
        print(f"  ... {time.monotonic() - started:.0f} s", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchmarks``; returns the exit status (0 even for gaps)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few repetitions")
    parser.add_argument("--only", help="comma-separated row numbers, e.g. 4,8")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    plan = QUICK if args.quick else FULL
    only = set(args.only.split(",")) if args.only else None

    info = machine.describe()
    started = time.monotonic()
    rows = run_suites(plan, only)
    elapsed = time.monotonic() - started

    print()
    print(f"dicomcache benchmarks ({plan.name} run, {elapsed:.0f} s)")
    print(f"machine: {machine.one_line(info)}")
    print()
    print(table(rows))
    write_json(args.json, info, {"plan": plan.__dict__, "seconds": elapsed}, rows)
    print(f"\nwritten: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
