"""Hostile input to every RPC of a real server process, and a coverage-guided run in-process.

A ``dicomcache serve`` process (memory backend, ``--max-memory`` ``MAX_MEMORY``)
receives, as raw bytes through gRPC's generic calls (no serializer of ours in the
way), random bytes and mutated valid requests for each of the ten RPCs, then the
structured attacks of ``cases``. Its resident memory is sampled all along.

Rows: responses with code UNKNOWN or INTERNAL (goal 0: the server meant every
answer); structured attacks answered with a code other than the one they call for
(goal 0: e.g. 10k violations must still be INVALID_ARGUMENT, a PN holding an
integer must be refused); server deaths (goal 0, and serving after); the peak RSS
growth over the run (goal: at most ``RSS_BOUND``, see there); and an ``atheris``
run of ``fuzz_target`` in a subprocess (goal: 0 crashes).

Clock: ``time.monotonic`` for the RSS sampler and the fuzzing budget.
"""

from __future__ import annotations

import collections
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import psutil
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dicomcache.v1 import cache_service_pb2 as pb

from ..report import Row, Target, seconds
from . import cases, wire
from .processes import ServerProcess, server_process

MiB = 1024**2
MAX_MEMORY = 64 * MiB
MAX_MESSAGE = 64 * MiB  # the server's default
# The RSS growth a hostile run may cause: a full cache with the soak's 25 % allowance
# (1.25 x --max-memory), plus eight times the largest request sent: one request in
# flight is held as its received bytes, its parsed message (protobuf's arenas take
# three to five times the wire size of many small fields) and the objects decoded
# from it. Amplification (an answer built far past what any message may hold) is
# what this bound catches.
RSS_ALLOWANCE = 1.25
REQUEST_COPIES = 8
CALL_TIMEOUT = 30.0
BAD_CODES = frozenset({grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL})
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Plan:
    """How much of each kind of input is sent."""

    random_per_rpc: int
    mutated_per_rpc: int
    structured: bool
    heavy: bool  # the structured attacks at full size (several MB each)
    fuzz_seconds: int


FULL = Plan(random_per_rpc=300, mutated_per_rpc=700, structured=True, heavy=True, fuzz_seconds=60)
QUICK = Plan(random_per_rpc=20, mutated_per_rpc=40, structured=True, heavy=False, fuzz_seconds=6)


@dataclass
class Tally:
    """The codes one kind of input got back, and the cases whose code was not right."""

    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    wrong: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    rss_growth: dict[str, int] = field(default_factory=dict)  # by case name: its peak growth

    @property
    def bad(self) -> int:
        """Answers with UNKNOWN or INTERNAL."""
        return sum(self.codes[code.name] for code in BAD_CODES)


class Sampler:
    """Samples a process's RSS every 20 ms in a thread; keeps the peak. Clock: none."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.now()
        self.case_peak = self.peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        """The RSS now, in bytes (0 once the process is gone)."""
        try:
            return int(self.process.memory_info().rss)
        except psutil.Error:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            rss = self.now()
            self.peak = max(self.peak, rss)
            self.case_peak = max(self.case_peak, rss)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


class Sender:
    """Sends raw request bytes to one server and tallies the codes. Not thread-safe."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.deaths = 0
        self.largest = 0
        self._open()

    def _open(self) -> None:
        self.channel = grpc.insecure_channel(
            self.server.target,
            options=[
                ("grpc.max_send_message_length", -1),
                ("grpc.max_receive_message_length", -1),
            ],
        )
        grpc.channel_ready_future(self.channel).result(timeout=20)

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def send(self, method: str, data: bytes) -> grpc.StatusCode:
        """One call with ``data`` as the request's bytes; its status code."""
        self.largest = max(self.largest, len(data))
        path = f"/{cases.SERVICE}/{method}"
        try:
            if method.startswith("StreamStore"):  # a client stream of one piece
                self.channel.stream_unary(path)(iter([data]), timeout=CALL_TIMEOUT)
            elif cases.METHODS[method][1]:
                for _ in self.channel.unary_stream(path)(data, timeout=CALL_TIMEOUT):
                    pass
            else:
                self.channel.unary_unary(path)(data, timeout=CALL_TIMEOUT)
            return grpc.StatusCode.OK
        except grpc.RpcError as exc:
            code: grpc.StatusCode = exc.code()
            if self.server.process is not None and self.server.process.poll() is not None:
                self.deaths += 1  # counted, then brought back so the rest can be measured
                self.channel.close()
                self.server.start()
                self._open()
            return code

    def tally(self, tally: Tally, case: cases.Case) -> None:
        """Send one case; record its code and whether that code is right for it."""
        start = time.monotonic()
        code = self.send(case.method, case.data)
        tally.slowest_s = max(tally.slowest_s, time.monotonic() - start)
        tally.codes[code.name] += 1
        if code in BAD_CODES or code not in case.expected:
            tally.wrong.append(f"{case.name}: {code.name}")

    def alive(self) -> bool:
        """Whether the process runs, reports SERVING and answers a valid request."""
        if self.server.process is None or self.server.process.poll() is not None:
            return False
        try:
            health = health_pb2_grpc.HealthStub(self.channel)
            status = health.Check(health_pb2.HealthCheckRequest(), timeout=5).status
            stats = pb.GetStatsRequest(namespace=cases.NAMESPACE).SerializeToString()
            self.channel.unary_unary(f"/{cases.SERVICE}/GetStats")(stats, timeout=5)
        except grpc.RpcError:
            return False
        return bool(status == health_pb2.HealthCheckResponse.SERVING)


def random_cases(rng: random.Random, per_rpc: int) -> list[cases.Case]:
    """Random bytes of random lengths (up to 4 KiB) for every RPC."""
    return [
        cases.Case("random bytes", method, rng.randbytes(rng.choice([0, 1, 2, 8, 64, 512, 4096])))
        for method in cases.METHODS
        for _ in range(per_rpc)
    ]


def mutated_cases(rng: random.Random, per_rpc: int) -> list[cases.Case]:
    """Valid requests of every RPC with random edits."""
    seeds = cases.seeds()
    return [
        cases.Case("mutated", method, wire.mutate(rng.choice(seeds[method]), rng))
        for method in cases.METHODS
        for _ in range(per_rpc)
    ]


def _send_all(sender: Sender, batch: list[cases.Case], sampler: Sampler) -> Tally:
    """Send every case; for each named case, the peak RSS while it was served."""
    tally = Tally()
    for case in batch:
        before = sampler.now()
        sampler.peak = max(sampler.peak, before)
        overall, sampler.case_peak = sampler.peak, before
        sender.tally(tally, case)
        tally.rss_growth[case.name] = max(
            tally.rss_growth.get(case.name, 0), sampler.case_peak - before
        )
        sampler.peak = max(overall, sampler.peak)
    return tally


def _code_row(key: str, what: str, tally: Tally, sent: int) -> Row:
    return Row(
        key=key,
        measure=f"hostile input, {what}: answers UNKNOWN or INTERNAL",
        result=f"{tally.bad} of {sent}",
        baseline=", ".join(f"{code} {n}" for code, n in tally.codes.most_common()),
        value=float(tally.bad),
        unit="",
        target=Target("<=", 0, ""),
        note=f"slowest answer {seconds(tally.slowest_s)}",
        figures={"codes": dict(tally.codes), "sent": sent, "slowest_s": tally.slowest_s},
    )


def measure_server(plan: Plan, seed: int = 11) -> list[Row]:
    """Rows H1-H5: the server process under random, mutated and structured input."""
    rng = random.Random(seed)
    with server_process("--backend", "memory", "--max-memory", str(MAX_MEMORY)) as server:
        sender = Sender(server)
        try:
            for method, requests in cases.seeds().items():  # warm: every path once
                for data in requests:
                    sender.send(method, data)
            sampler = Sampler(server.pid)
            baseline = sampler.now()
            rows: list[Row] = []
            with sampler:
                batches = [
                    ("H1", "random bytes", random_cases(rng, plan.random_per_rpc)),
                    ("H2", "mutated valid requests", mutated_cases(rng, plan.mutated_per_rpc)),
                ]
                structured: list[cases.Case] = []
                if plan.structured:
                    big = pb.AddObjectsRequest(
                        namespace=cases.NAMESPACE, studies=[cases.big_study()]
                    )
                    stored = sender.send("AddObjects", big.SerializeToString())
                    structured = cases.structured(plan.heavy)
                    batches.append(("H3", "structured attacks", structured))
                tallies = {}
                for key, what, batch in batches:
                    tallies[key] = tally = _send_all(sender, batch, sampler)
                    rows.append(_code_row(key, what, tally, len(batch)))
                if plan.structured and stored is not grpc.StatusCode.OK:
                    # Without it the amplification case measures nothing: say so.
                    tallies["H3"].wrong.append(f"storing the 0.5 MB study first: {stored.name}")
                alive = sender.alive()
                # Another process's RSS, read after pieces were freed: the final figure.
                time.sleep(1.0)
                final = sampler.now()
            if plan.structured:
                rows.append(_structured_row(tallies["H3"], len(structured)))
            rows.append(_alive_row(sender.deaths, alive))
            growth: collections.Counter[str] = collections.Counter()
            for tally in tallies.values():
                growth.update(tally.rss_growth)
            rows.append(
                _rss_row(baseline, sampler.peak, final, sender.largest, server.starts, growth)
            )
            return rows
        finally:
            sender.close()


def _structured_row(tally: Tally, sent: int) -> Row:
    return Row(
        key="H4",
        measure="hostile input, structured attacks: answered with a code they do not call for",
        result=f"{len(tally.wrong)} of {sent}",
        value=float(len(tally.wrong)),
        unit="",
        target=Target("<=", 0, ""),
        note=_summary(tally.wrong),
        figures={"wrong": tally.wrong, "sent": sent},
    )


def _summary(wrong: list[str], shown: int = 8) -> str:
    """The first cases answered wrongly, by code, and how many more."""
    by_code: dict[str, list[str]] = {}
    for entry in wrong:
        name, _, code = entry.rpartition(": ")
        by_code.setdefault(code, []).append(name)
    parts = []
    for code, names in by_code.items():
        more = f" and {len(names) - shown} more" if len(names) > shown else ""
        parts.append(f"{code} for {len(names)}: {', '.join(names[:shown])}{more}")
    return "; ".join(parts)


def _alive_row(deaths: int, alive: bool) -> Row:
    return Row(
        key="H5",
        measure="hostile input: server deaths (then: serving after the run)",
        result=f"{deaths} deaths; {'serving' if alive else 'NOT serving'} after",
        value=float(deaths + (0 if alive else 1)),
        unit="",
        target=Target("<=", 0, ""),
        figures={"deaths": deaths, "alive_after": alive},
    )


def _rss_row(
    baseline: int,
    peak: int,
    final: int,
    largest: int,
    starts: int,
    growth: collections.Counter[str],
) -> Row:
    bound = RSS_ALLOWANCE * MAX_MEMORY + REQUEST_COPIES * largest
    return Row(
        key="H6",
        measure="hostile input: server RSS growth, peak over the run",
        result=f"{(peak - baseline) / MiB:.0f} MiB (final {(final - baseline) / MiB:.0f} MiB)",
        baseline=f"RSS {baseline / MiB:.0f} MiB before",
        value=(peak - baseline) / MiB,
        unit=" MiB",
        target=Target("<=", round(bound / MiB), " MiB"),
        note=(
            f"bound: 1.25 x --max-memory ({MAX_MEMORY // MiB} MiB) + {REQUEST_COPIES} x "
            f"the largest request ({largest / MiB:.1f} MiB)"
            + ("" if starts == 1 else f"; the server was restarted {starts - 1} times")
            + "; most while served: "
            + ", ".join(f"{name} +{n / MiB:.0f} MiB" for name, n in growth.most_common(3))
        ),
        figures={
            "baseline": baseline,
            "peak": peak,
            "final": final,
            "largest_request": largest,
            "growth_by_case": dict(growth),
        },
    )


def fuzz(seconds_budget: int, runs: int = 0) -> Row:
    """Row H7: ``fuzz_target`` under atheris in a subprocess, bounded in time (and runs)."""
    with tempfile.TemporaryDirectory(prefix="dicomcache-rel-fuzz-") as directory:
        corpus = Path(directory) / "corpus"
        artifacts = Path(directory) / "artifacts"
        corpus.mkdir()
        artifacts.mkdir()
        for m, (method, requests) in enumerate(cases.seeds().items()):
            for n, data in enumerate(requests):
                index = list(cases.METHODS).index(method)
                (corpus / f"seed-{m}-{n}").write_bytes(bytes([index]) + data)
        command = [
            sys.executable,
            "-m",
            "benchmarks.reliability.fuzz_target",
            f"-max_total_time={seconds_budget}",
            "-timeout=10",
            "-rss_limit_mb=2048",
            "-max_len=8192",
            "-print_final_stats=1",
            f"-artifact_prefix={artifacts}/",
            str(corpus),
        ]
        if runs:
            command.insert(4, f"-runs={runs}")
        started = time.monotonic()
        done = subprocess.run(
            command,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=seconds_budget + 120,
            check=False,
        )
        elapsed = time.monotonic() - started
        crashes = sorted(p.name.split("-")[0] for p in artifacts.iterdir())
        return _fuzz_row(done, crashes, elapsed)


def _fuzz_row(done: subprocess.CompletedProcess[str], crashes: list[str], elapsed: float) -> Row:
    output = done.stderr
    executed = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    if executed is None:
        if "No module named 'atheris'" in output:
            return Row(key="H7", measure=_FUZZ, note="not run: atheris is not installed")
        raise RuntimeError(f"atheris gave no statistics (exit {done.returncode}): {output[-800:]}")
    reason = re.findall(r"(Uncaught Python exception: \w+|ERROR: libFuzzer: [\w-]+)", output)
    if not crashes and done.returncode != 0:
        crashes = ["exit"]
    figures: dict[str, Any] = {
        "executions": int(executed.group(1)),
        "seconds": elapsed,
        "crashes": crashes,
        "exit": done.returncode,
    }
    return Row(
        key="H7",
        measure=_FUZZ,
        result=f"{len(crashes)} crashes in {int(executed.group(1)):,} executions",
        baseline=f"{elapsed:.0f} s",
        value=float(len(crashes)),
        unit="",
        target=Target("<=", 0, ""),
        note="; ".join(dict.fromkeys(reason)) if crashes else "",
        figures=figures,
    )


_FUZZ = "atheris over request parsing, validation and the service, in-process: crashes"


def run(quick: bool) -> list[Row]:
    """Rows H1-H7."""
    plan = QUICK if quick else FULL
    rows = measure_server(plan)
    try:
        rows.append(fuzz(plan.fuzz_seconds))
    except Exception as exc:
        rows.append(Row(key="H7", measure=_FUZZ, note=f"not run: {type(exc).__name__}: {exc}"))
    return rows
