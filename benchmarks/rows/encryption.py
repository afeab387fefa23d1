"""Rows 12a-12d: what encrypting values at rest costs a Redis hit, beside a plain one, in one run.

One redis-server started for the run; two servers on it, one per database (0
plain, 1 with ``--redis-encryption-key-file``, a key made for the run), hold the
same hot study. The load process alternates study-level and 80-instance hits
between them call by call. Around that run each server's CPU time is read from
its process (user + system, ``psutil``), so the CPU per 1000 hits is the server's
whole cost of a hit, gRPC included, encryption being the only difference. The
bytes are Redis's own: ``STRLEN`` of every object value in each database.
"""

from __future__ import annotations

import base64
import os
import tempfile
from pathlib import Path

import psutil
import redis as redis_py

from dicomcache.server.backends.redis.names import is_object_key
from tests.support.redis_servers import redis_server

from ..calls import HotStudy, check_hit
from ..load import alternating_latency, elsewhere
from ..plan import Plan
from ..report import Row, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar

LEVELS = (("12a", "study", "study-level"), ("12b", "instance", "80-instance"))


def run(plan: Plan) -> list[Row]:
    """Rows 12a/12b (hit latency), 12c (server CPU per 1000 hits), 12d (bytes per value)."""
    hot = HotStudy()
    with tempfile.TemporaryDirectory() as directory, redis_server() as redis:
        key_file = Path(directory) / "keys"
        key_file.write_text(f"bench {base64.b64encode(os.urandom(32)).decode()}\n")
        sealed_settings = {"redis_encryption_key_file": str(key_file)}
        with (
            Sidecar(f"redis://127.0.0.1:{redis.port}/0") as plain,
            Sidecar(f"redis://127.0.0.1:{redis.port}/1", settings=sealed_settings) as sealed,
        ):
            calls = []
            for label, server in (("plain", plain), ("sealed", sealed)):
                assert server.channel is not None
                hot.store(server.channel)
                for level in ("study", "instance"):
                    call = hot.lookup(server.target, level, f"{label}-{level}")
                    check_hit(server.channel, call)
                    calls.append(call)
            servers = {"plain": plain, "sealed": sealed}
            before = {label: _cpu(server.pid) for label, server in servers.items()}
            samples = elsewhere(alternating_latency, calls, plan.redis_rounds)
            cpu = {label: _cpu(server.pid) - before[label] for label, server in servers.items()}
            rss = {"plain": plain.rss(), "sealed": sealed.rss()}
        sizes = {db: _value_bytes(redis.port, db) for db in (0, 1)}
    rows = [_latency_row(plan, key, level, what, samples) for key, level, what in LEVELS]
    hits = 2 * plan.redis_rounds  # per server: both levels
    per_1000 = {label: seconds_ / hits * 1000 for label, seconds_ in cpu.items()}
    rows.append(
        Row(
            key="12c",
            measure="server CPU per 1000 Redis hits (study-level and 80-instance), encrypted",
            result=f"{per_1000['sealed']:.2f} s",
            baseline=f"{per_1000['plain']:.2f} s plain",
            value=per_1000["sealed"] / per_1000["plain"],
            note=f"user+system of each server process over the same {hits} alternating hits; "
            f"RSS after: {rss['sealed'] / 2**20:.1f} vs {rss['plain'] / 2**20:.1f} MiB",
            figures={"cpu_s": cpu, "cpu_s_per_1000_hits": per_1000, "hits": hits, "rss": rss},
        )
    )
    (plain_count, plain_bytes), (sealed_count, sealed_bytes) = sizes[0], sizes[1]
    overhead = (sealed_bytes - plain_bytes) / max(1, sealed_count)
    rows.append(
        Row(
            key="12d",
            measure="Redis bytes per object value (token + attributes), encrypted",
            result=f"{sealed_bytes / max(1, sealed_count):.0f} B",
            baseline=f"{plain_bytes / max(1, plain_count):.0f} B plain",
            value=sealed_bytes / max(1, plain_bytes),
            note=f"+{overhead:.0f} B per value (header with key id, 12 B nonce, 16 B tag); "
            f"{sealed_count} values each",
            figures={"plain": sizes[0], "sealed": sizes[1], "overhead_per_value": overhead},
        )
    )
    return rows


def _latency_row(
    plan: Plan, key: str, level: str, what: str, samples: dict[str, list[float]]
) -> Row:
    sealed, plain = samples[f"sealed-{level}"], samples[f"plain-{level}"]
    return Row(
        key=key,
        measure=f"{what} hit latency, Redis backend, values encrypted",
        result=seconds(median(sealed)),
        baseline=f"{seconds(median(plain))} plain",
        value=median(sealed) / median(plain),
        note=f"p99 {seconds(percentile(sealed, 99))} vs {seconds(percentile(plain, 99))}; "
        f"{plan.redis_rounds} alternating calls each, one redis-server",
        figures={
            "median_s": median(sealed),
            "plain_median_s": median(plain),
            "p99_s": percentile(sealed, 99),
            "plain_p99_s": percentile(plain, 99),
        },
    )


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def _value_bytes(port: int, db: int) -> tuple[int, int]:
    """How many object values database ``db`` holds, and their bytes."""
    client = redis_py.Redis(host="127.0.0.1", port=port, db=db, socket_timeout=5.0)
    try:
        keys = [key for key in client.scan_iter(count=1000) if is_object_key(key)]
        return len(keys), sum(int(client.strlen(key)) for key in keys)
    finally:
        client.close()
