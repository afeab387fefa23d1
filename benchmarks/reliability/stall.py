"""Stall: the worst delay one large request imposes on concurrent small ones (goal <= 20 ms).

A real ``dicomcache serve`` process (memory backend, default --max-message-bytes,
--max-answer-bytes large enough for the study) serves small study-level LookupStudy
hits continuously, from threads of a separate process, while this process sends,
one at a time, each large request of issue 11 as ``CacheClient`` sends it: a
StoreStudy of a 300,000-instance study (100 series of 3,000) as StreamStoreStudy in
pieces of about 1 MiB, a hit of that study at instance level (StreamLookupStudy: 1
MiB pieces), a StoreQuery of a 100,000-study answer (study level) as
StreamStoreQuery, an Invalidate of a namespace holding 400,000 objects; and last
what the same hit as one unary LookupStudy, and the same study as one unary
StoreStudy (250 MB), now cost the others: the server refuses both
(RESOURCE_EXHAUSTED; the store in grpc core, before Python sees it), where grpcio
used to copy such a message in one call holding the interpreter lock (``quick``: a
tenth of each). Each row reports the worst latency of the small calls that
overlapped the large request (and the 200 ms after it) minus the worst latency of
the same calls over a stretch of the same length while nothing large ran, in the
same run: after the rows the probes go on alone for as long as the longest window
(at most ``QUIET_CAP_S``), and a row's floor is the median, over the disjoint
stretches of its window's length in that time, of each one's worst call
(``floor``). The worst of the first seconds, before the rows, is in the notes.

Row S0 is the control: the same small calls while ``SPINNERS`` processes spin (the
busy threads a large request brings, the sender's and the server's worker) and
the server has nothing else to do. On a host with no core to spare it is the floor
under every other row: what the probes' own waiting for a CPU adds, which no
server change removes. Each small call also records how long its thread waited
for a CPU while it ran (Linux's ``/proc/thread-self/schedstat``, run-queue time;
0 elsewhere), and each row says how much of its worst call that was, and how much
CPU time the hypervisor took from the VM meanwhile ("steal" in ``/proc/stat``,
read every ``STEAL_EVERY_S``; its ticks are 10 ms).

The large requests are built as wire bytes by stamping uids into serialized
templates of the benchmark's 18-attribute instances (``benchmarks.corpus``), at
a microsecond per instance; a quick run checks them against the protobuf parser.

The probe process samples with its garbage collector off (see ``_probe``): its own
full collection over the samples was otherwise the worst call of a row.

Clock: ``time.monotonic`` in both processes (one clock on Linux) for every sample.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import multiprocessing
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.context import SpawnContext
from multiprocessing.synchronize import Event
from typing import Any

import grpc

from dicomcache.client.pieces import PIECE_BYTES
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2, query_pb2

from ..corpus import BulkStudies, Shape, study_uid
from ..report import Row, Target, seconds

GOAL_S = 0.020
SERVICE = "/dicomcache.v1.CacheService"
PROBE_THREADS = 2
IDLE_S = 3.0
AFTER_S = 0.2  # small calls that start this soon after the large request still count
QUIET_CAP_S = 75.0  # the longest quiet time measured after the rows (``floor``)
SPINNERS = 2  # processes of the control row: a large request's sender and server worker
CONTROL_S = 3.0
STEAL_EVERY_S = 0.005  # how often the probe process reads the host's steal
MESSAGE_BYTES = 1024**3
_OPTIONS = [
    ("grpc.max_send_message_length", MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MESSAGE_BYTES),
]
_HOT_NAMESPACE = "stall-hot"
_BIG_NAMESPACE = "stall-big"
_DROP_NAMESPACE = "stall-drop"


@dataclass(frozen=True)
class Sizes:
    """How large each large request is."""

    study_series: int
    series_instances: int
    query_studies: int
    namespace_objects: int

    @property
    def study_instances(self) -> int:
        """Instances in the large study."""
        return self.study_series * self.series_instances


FULL = Sizes(
    study_series=100, series_instances=3000, query_studies=100_000, namespace_objects=400_000
)
QUICK = Sizes(
    study_series=10, series_instances=3000, query_studies=10_000, namespace_objects=40_000
)


def run(quick: bool) -> list[Row]:
    """The stall rows: one per large request."""
    return run_sizes(QUICK if quick else FULL, quick, IDLE_S / 3 if quick else IDLE_S)


def run_sizes(sizes: Sizes, quick: bool, idle_s: float) -> list[Row]:
    """The stall rows of requests of ``sizes``, after ``idle_s`` of the idle baseline."""
    built = Requests(sizes, check=quick)
    context = multiprocessing.get_context("spawn")
    with _serve() as target, grpc.insecure_channel(target, options=_OPTIONS) as channel:
        grpc.channel_ready_future(channel).result(timeout=30)
        _call(channel, "StoreStudy", built.hot_study())
        _load(channel, built)
        with _Probe(context, target, built.hot_lookup()) as probe:
            time.sleep(idle_s)
            idle = probe.mark()
            spin = _spinners(context, idle_s * CONTROL_S / IDLE_S)  # started, not yet spinning
            windows = [(f"nothing large, while {SPINNERS} processes spin (control)", *_timed(spin))]
            for name, method, request in built.large():
                data = request()  # built before the window opens, let go of after it
                windows.append((name, *_timed(lambda m=method, d=data: _call(channel, m, d))))
                del data
            # Nothing large again, as long as the longest window (at most QUIET_CAP_S):
            # each row's floor is the worst of a stretch of its own length (``floor``).
            quiet_start = time.monotonic()
            time.sleep(min(QUIET_CAP_S, max(_span(t0, t1) for _, t0, t1, _ in windows)))
            quiet_end = time.monotonic()
        samples, steal = probe.samples, probe.steal
    quiet = sorted(lat for start, lat, _ in samples if start < idle)
    late = [(start, lat) for start, lat, _ in samples if quiet_start <= start < quiet_end]
    return [
        _row(
            i,
            name,
            t0,
            t1,
            reply,
            samples,
            quiet,
            floor(late, quiet_start, quiet_end, _span(t0, t1)),
            quick,
            steal,
        )
        for i, (name, t0, t1, reply) in enumerate(windows)
    ]


def _span(t0: float, t1: float) -> float:
    """How long a row's window is: the request, and the AFTER_S after it."""
    return t1 - t0 + AFTER_S


@dataclass(frozen=True)
class Floor:
    """The worst small call of a stretch with nothing large, as long as a row's window."""

    worst: float  # the median over the stretches of each one's worst call
    stretches: int  # how many disjoint stretches of that length it is the median of
    length: float  # their length: the row's window's, or the whole quiet time if shorter


def floor(samples: list[tuple[float, float]], start: float, end: float, length: float) -> Floor:
    """What a row's window of ``length`` seconds would show with nothing large running:
    the quiet time [start, end) cut into disjoint stretches of ``length``, each one's
    worst call (``samples``: each call's start and latency; a call counts in the
    stretch it starts in), and the lower median of those. No clock.

    The worst of a window grows with its length even when nothing runs: over one
    minute with nothing large, a minute's worst call here was 18-61 ms, while the
    worst of 3 s was 4-32 ms (probes as in the rows, two runs). A row is compared
    with a stretch of its own length, so that what it adds is what its request
    imposes, not the host's rarer moments that a longer window catches.
    """
    length = min(length, end - start)
    count = max(1, int((end - start) / length)) if length > 0 else 1
    worsts = [0.0] * count
    for begun, latency in samples:
        if start <= begun < end:
            index = min(count - 1, int((begun - start) / length)) if length > 0 else 0
            worsts[index] = max(worsts[index], latency)
    return Floor(sorted(worsts)[(count - 1) // 2], count, length)


def _row(
    index: int,
    name: str,
    t0: float,
    t1: float,
    reply: tuple[bytes, str],
    samples: list[tuple[float, float, float]],
    idle: list[float],
    quiet: Floor,
    quick: bool,
    steal: list[tuple[float, float]],
) -> Row:
    idle_worst = idle[-1] if idle else 0.0
    overlapping = [
        (lat, wait, start)
        for start, lat, wait in samples
        if start + lat > t0 and start < t1 + AFTER_S
    ]
    during = [lat for lat, _, _ in overlapping]
    worst, worst_wait, worst_start = max(overlapping, default=(0.0, 0.0, 0.0))
    stolen = _stolen(steal, worst_start, worst_start + worst)
    p99 = _p99(sorted(during))
    added = max(0.0, worst - quiet.worst)
    data, code = reply
    if index == 0:
        answered = (
            f"{SPINNERS} processes spun {seconds(t1 - t0)}: the host's floor for the rows below"
        )
    else:
        answered = f"the large request took {seconds(t1 - t0)}, " + (
            f"reply {len(data)} B" if code == "OK" else f"refused {code}"
        )
    stretches = (
        f"median of {quiet.stretches} stretches of {seconds(quiet.length)}"
        if quiet.stretches > 1
        else f"one stretch of {seconds(quiet.length)}"
    )
    return Row(
        key=f"S{index}",
        measure=f"stall: worst added delay of small hits during {name}",
        result=f"{seconds(added)} (worst {seconds(worst)}, {len(during)} calls)",
        baseline=f"quiet worst {seconds(quiet.worst)} ({stretches})",
        value=added * 1e3,
        unit=" ms",
        target=None if index == 0 else Target("<=", GOAL_S * 1e3, " ms"),
        note=(
            f"worst {seconds(worst)} began {seconds(max(0.0, worst_start - t0))} into it; "
            f"idle worst before the rows {seconds(idle_worst)} ({len(idle)} calls); "
            f"p99 {seconds(p99)} vs idle p99 {seconds(_p99(idle))}; "
            f"the worst call's own wait for a CPU {seconds(worst_wait)}, the host's steal "
            f"of the VM's CPUs meanwhile {seconds(stolen)}; {answered}"
            + (", quick: a tenth of the size" if quick and index == 1 else "")
        ),
        figures={
            "probe_cpu_wait_s": worst_wait,
            "steal_during_worst_s": stolen,
            "added_s": added,
            "worst_s": worst,
            "worst_began_after_s": max(0.0, worst_start - t0),
            "idle_worst_s": idle_worst,
            "quiet_worst_s": quiet.worst,
            "quiet_stretches": quiet.stretches,
            "quiet_stretch_s": quiet.length,
            "calls_during": len(during),
            "request_s": t1 - t0,
            "reply_bytes": len(data),
            "code": code,
            "p99_s": p99,
            "idle_p99_s": _p99(idle),
        },
    )


def _p99(ordered: list[float]) -> float:
    return ordered[int(len(ordered) * 0.99)] if ordered else 0.0


def _timed(call: Callable[[], tuple[bytes, str]]) -> tuple[float, float, tuple[bytes, str]]:
    start = time.monotonic()
    reply = call()
    end = time.monotonic()
    time.sleep(AFTER_S * 2)  # the next request starts after this one's window
    return start, end, reply


def _call(channel: grpc.Channel, method: str, request: Any) -> tuple[bytes, str]:
    """The reply's bytes and its status code's name (a refusal is a measured outcome)."""
    try:
        if method.startswith("StreamStore"):  # ``request``: the pieces, as wire bytes
            store: Callable[..., bytes] = channel.stream_unary(f"{SERVICE}/{method}")
            return store(iter(request), timeout=600), "OK"
        if method.startswith("Stream"):
            pieces: Callable[..., Iterator[bytes]] = channel.unary_stream(f"{SERVICE}/{method}")
            answer = pieces(request, timeout=600)
            chunks = (pb.StreamLookupStudyResponse.FromString(p).chunk for p in answer)
            return b"".join(chunks), "OK"
        stub: Callable[..., bytes] = channel.unary_unary(f"{SERVICE}/{method}")
        return stub(request, timeout=600), "OK"
    except grpc.RpcError as exc:
        return b"", exc.code().name


def _spinners(context: SpawnContext, seconds: float) -> Callable[[], tuple[bytes, str]]:
    """SPINNERS processes, started and ready; the call makes them spin ``seconds`` and
    returns once they stopped (the control row: their start-up stays out of its window)."""
    go = context.Event()
    ready: Any = context.Queue()
    spinners = [
        context.Process(target=_busy, args=(seconds, go, ready), daemon=True)
        for _ in range(SPINNERS)
    ]
    for spinner in spinners:
        spinner.start()
    for _ in spinners:
        ready.get(timeout=60)

    def spin() -> tuple[bytes, str]:
        go.set()
        for spinner in spinners:
            spinner.join()
        return b"", "OK"

    return spin


def _busy(seconds: float, go: Event, ready: Any) -> None:
    ready.put("ready")
    go.wait()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def _load(channel: grpc.Channel, built: Requests) -> None:
    """Fill the namespace that the Invalidate drops."""
    for request in built.namespace_batches():
        _call(channel, "AddObjects", request)


# -- the server ---------------------------------------------------------------------------


@contextlib.contextmanager
def _serve() -> Iterator[str]:
    """``dicomcache serve`` with room for the large messages; yields its address."""
    command = [sys.executable, "-m", "dicomcache.server.cli", "serve", "--listen", "127.0.0.1:0"]
    command += ["--max-answer-bytes", str(MESSAGE_BYTES), "--max-memory", str(16 * 1024**3)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        match = re.search(r"serving on 127\.0\.0\.1:(\d+)", line)
        if match is None:
            raise RuntimeError(f"dicomcache serve did not start: {line!r}")
        drain = threading.Thread(target=process.stderr.read, daemon=True)  # never block its log
        drain.start()
        yield f"127.0.0.1:{match.group(1)}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the small calls ----------------------------------------------------------------------


class _Probe:
    """Small hits sent continuously from another process; ``samples`` once it stopped."""

    def __init__(self, context: SpawnContext, target: str, request: bytes) -> None:
        self._stop = context.Event()
        self._marked = context.Event()
        self._queue: Any = context.Queue()
        self._process = context.Process(
            target=_probe, args=(target, request, self._stop, self._queue), daemon=True
        )
        self.samples: list[tuple[float, float, float]] = []
        self.steal: list[tuple[float, float]] = []

    def __enter__(self) -> _Probe:
        self._process.start()
        started = self._queue.get(timeout=60)
        assert started == "started"
        return self

    def mark(self) -> float:
        """Now: samples that start before it make the idle baseline."""
        return time.monotonic()

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.samples, self.steal = self._queue.get(timeout=120)
        self._process.join(timeout=30)


def _probe(target: str, request: bytes, stop: Event, queue: Any) -> None:
    """Send ``request`` as LookupStudy from PROBE_THREADS threads until ``stop``: each
    call's start, latency and its thread's wait for a CPU meanwhile."""
    samples: list[tuple[float, float, float]] = []
    with grpc.insecure_channel(target, options=_OPTIONS) as channel:
        stub = channel.unary_unary(f"{SERVICE}/LookupStudy")
        for _ in range(20):
            stub(request, timeout=10)  # warm
        # The probes' own collector stays off while they sample: the samples are
        # tuples it tracks, and once they had piled up one full collection of this
        # process took 45-136 ms, in every run the worst "stall" of its row while the
        # server answered that call in 2-11 ms (nothing a large request imposes).
        gc.collect()
        gc.freeze()
        gc.disable()
        queue.put("started")

        def loop() -> None:
            while not stop.is_set():
                waited = _cpu_wait()
                start = time.monotonic()
                stub(request, timeout=60)
                end = time.monotonic()
                samples.append((start, end - start, _cpu_wait() - waited))

        steal: list[tuple[float, float]] = []

        def watch_steal() -> None:
            while not stop.is_set():
                steal.append((time.monotonic(), _steal()))
                time.sleep(STEAL_EVERY_S)

        threads = [threading.Thread(target=loop) for _ in range(PROBE_THREADS)]
        threads.append(threading.Thread(target=watch_steal))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    gc.enable()
    queue.put((samples, steal))


def _steal() -> float:
    """CPU seconds the hypervisor has taken from this VM's CPUs, all summed (Linux's
    /proc/stat "steal", in clock ticks of 10 ms); 0 where there is none to read."""
    try:
        with open("/proc/stat") as stat:
            fields = stat.readline().split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def _stolen(steal: list[tuple[float, float]], start: float, end: float) -> float:
    """The steal between the samples around [start, end] (so at least that interval)."""
    if not steal:
        return 0.0
    times = [t for t, _ in steal]
    first = max(0, bisect.bisect_right(times, start) - 1)
    last = min(len(steal) - 1, bisect.bisect_left(times, end))
    return steal[last][1] - steal[first][1]


def _cpu_wait() -> float:
    """Seconds this thread has waited on a run queue, runnable but off every CPU (Linux)."""
    try:
        with open("/proc/thread-self/schedstat") as stat:
            return int(stat.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


# -- the large requests, as wire bytes ----------------------------------------------------


class Requests:
    """The requests' bytes, built from serialized templates with stamped uids. No clock."""

    _SERIES = b"8888"  # placeholders of the series and instance numbers in the templates
    _INSTANCE = b"777777"

    def __init__(self, sizes: Sizes, check: bool) -> None:
        self.sizes = sizes
        self.check = check
        bulk = BulkStudies(Shape(series=1, instances=1))
        template = bulk.study(0)
        self._study_attributes = template.attributes
        self._series_attributes = template.series[0].attributes
        self._instance_attributes = template.series[0].instances[0].attributes

    def hot_study(self) -> bytes:
        """The small study the probes hit, as a StoreStudy."""
        return self._store_study(_HOT_NAMESPACE, 1, 1, 2, query_pb2.QUERY_LEVEL_INSTANCE)

    def hot_lookup(self) -> bytes:
        """The probes' LookupStudy: the small study at study level."""
        return pb.LookupStudyRequest(
            namespace=_HOT_NAMESPACE,
            study_uid=study_uid(1),
            query_level=query_pb2.QUERY_LEVEL_STUDY,
        ).SerializeToString()

    def large(self) -> list[tuple[str, str, Callable[[], Any]]]:
        """(what, method, its request's builder) of each large request, in the order sent."""
        s = self.sizes
        hit = pb.LookupStudyRequest(
            namespace=_BIG_NAMESPACE,
            study_uid=study_uid(2),
            query_level=query_pb2.QUERY_LEVEL_INSTANCE,
        )
        level = query_pb2.QUERY_LEVEL_INSTANCE
        big = (_BIG_NAMESPACE, 2, s.study_series, s.series_instances, level)
        return [
            (
                f"StoreStudy, {s.study_instances:,} instances (StreamStoreStudy, 1 MiB pieces)",
                "StreamStoreStudy",
                lambda: self._store_study_pieces(*big),
            ),
            (
                "its hit (StreamLookupStudy, as CachedSearcher asks; instance level)",
                "StreamLookupStudy",
                pb.StreamLookupStudyRequest(request=hit).SerializeToString,
            ),
            (
                f"StoreQuery, {s.query_studies:,} studies (StreamStoreQuery, 1 MiB pieces)",
                "StreamStoreQuery",
                self._store_query_pieces,
            ),
            (
                f"Invalidate of a namespace of {s.namespace_objects:,} objects",
                "Invalidate",
                pb.InvalidateRequest(namespace=_DROP_NAMESPACE).SerializeToString,
            ),
            (
                "the study's hit as one unary LookupStudy (refused: larger than a message)",
                "LookupStudy",
                hit.SerializeToString,
            ),
            (
                f"the study as one unary StoreStudy, {s.study_instances:,} instances (refused)",
                "StoreStudy",
                lambda: self._store_study(*big),
            ),
        ]

    def namespace_batches(self) -> Iterator[bytes]:
        """AddObjects requests filling the namespace to drop: studies of 4 series of 20,
        20 studies (about 1.4 MB) a request, within the server's largest message."""
        per_study = 1 + 4 + 4 * 20
        studies = max(1, self.sizes.namespace_objects // per_study)
        for first in range(1000, 1000 + studies, 20):
            count = min(20, 1000 + studies - first)
            head = pb.AddObjectsRequest(namespace=_DROP_NAMESPACE).SerializeToString()
            body = b"".join(_field(2, self._study(i, 4, 20)) for i in range(first, first + count))
            yield head + body

    def _store_study(
        self, namespace: str, index: int, series: int, instances: int, level: int
    ) -> bytes:
        head = pb.StoreStudyRequest(namespace=namespace, query_level=level).SerializeToString()  # type: ignore[arg-type]  # the enum's int
        request = head + _field(2, self._study(index, series, instances))
        if self.check:
            self._check(pb.StoreStudyRequest.FromString(request).study, index, series, instances)
        return request

    def _store_study_pieces(
        self, namespace: str, index: int, series: int, instances: int, level: int
    ) -> list[bytes]:
        """The StreamStoreStudy pieces of ``_store_study``'s request, cut as the client
        cuts them: a series starts a piece, runs of instances of about PIECE_BYTES go on."""
        head = pb.StoreStudyRequest(namespace=namespace, query_level=level).SerializeToString()  # type: ignore[arg-type]  # the enum's int
        study_head, all_series = self._study_parts(index, series, instances)
        pieces = [_field(1, head + _field(2, study_head))]
        for series_head, members in all_series:
            run: list[bytes] = []
            size, started = 0, False
            for instance in members:
                run.append(instance)
                size += len(instance) + 4
                if size >= PIECE_BYTES:
                    pieces.append(_series_piece(started, series_head, run))
                    run, size, started = [], 0, True
            if run or not started:
                pieces.append(_series_piece(started, series_head, run))
        pieces[-1] += _LAST_STUDY_PIECE
        if self.check:
            self._check_pieces(pieces, head + _field(2, self._study(index, series, instances)))
        return pieces

    def _check_pieces(self, pieces: list[bytes], unary: bytes) -> None:
        """The pieces make up exactly the unary request's study (the server's assembly)."""
        from dicomcache.server.api.decode import study_from_proto
        from dicomcache.server.api.pieces import assemble

        parsed = [pb.StreamStoreStudyRequest.FromString(p) for p in pieces]
        _, studies = assemble(
            parsed, lambda check, store: None, lambda t, c, s: t.study(c, s.study, "study")
        )
        assert studies == [study_from_proto(pb.StoreStudyRequest.FromString(unary).study)]

    def _store_query_pieces(self) -> list[bytes]:
        """StreamStoreQuery pieces of about PIECE_BYTES of studies each."""
        count = self.sizes.query_studies
        query = query_pb2.Query(query_level=query_pb2.QUERY_LEVEL_STUDY, patient_id="STALL*")
        head = pb.StoreQueryRequest(namespace=_BIG_NAMESPACE, query=query).SerializeToString()
        first = 10**6
        pieces = [_field(1, head)]
        run: list[bytes] = []
        size = 0
        for i in range(first, first + count):
            run.append(_field(4, self._study(i, 0, 0)))
            size += len(run[-1])
            if size >= PIECE_BYTES:
                pieces.append(b"".join(run))
                run, size = [], 0
        pieces.append(b"".join(run) + _LAST_QUERY_PIECE)
        if self.check:
            parsed = [pb.StreamStoreQueryRequest.FromString(p) for p in pieces]
            assert sum(len(p.studies) for p in parsed) == count and parsed[-1].last
            self._check(parsed[-1].studies[-1], first + count - 1, 0, 0)
        return pieces

    def _study(self, index: int, series: int, instances: int) -> bytes:
        """A serialized Study: its own fields, then its series with their instances."""
        head, all_series = self._study_parts(index, series, instances)
        parts = [head]
        for series_head, members in all_series:
            parts.append(_field(3, series_head + b"".join(_field(3, i) for i in members)))
        return b"".join(parts)

    def _study_parts(
        self, index: int, series: int, instances: int
    ) -> tuple[bytes, list[tuple[bytes, list[bytes]]]]:
        """A study's own fields, and each series' own fields with its serialized instances."""
        uid = study_uid(index).encode()
        template_uid = study_uid(0).encode()
        study_attributes = self._study_attributes.SerializeToString().replace(template_uid, uid)
        head = _field(1, uid) + _field(2, study_attributes)
        series_template = self._series_template().replace(template_uid, uid)
        instance_template = self._instance_template().replace(template_uid, uid)
        all_series = []
        for s in range(series):
            number = b"%04d" % (1001 + s)
            series_uid = uid + b"." + number
            series_head = _field(1, series_uid) + _field(
                2, series_template.replace(self._SERIES, number)
            )
            per_series = instance_template.replace(self._SERIES, number)
            members = []
            for n in range(instances):
                stamp = b"%06d" % (100001 + n)
                attributes = per_series.replace(self._INSTANCE, stamp)
                members.append(_field(1, series_uid + b"." + stamp) + _field(2, attributes))
            all_series.append((series_head, members))
        return head, all_series

    def _series_template(self) -> bytes:
        ds = objects_pb2.Series()
        ds.attributes.CopyFrom(self._series_attributes)
        _retext(ds.attributes, study_uid(0) + "." + self._SERIES.decode())
        return ds.attributes.SerializeToString()

    def _instance_template(self) -> bytes:
        ds = objects_pb2.Instance()
        ds.attributes.CopyFrom(self._instance_attributes)
        series = study_uid(0) + "." + self._SERIES.decode()
        _retext(ds.attributes, series, series + "." + self._INSTANCE.decode())
        data = ds.attributes.SerializeToString()
        assert data.count(self._INSTANCE) == 2 and data.count(self._SERIES) == 4, "placeholders"
        return data

    def _check(self, study: objects_pb2.Study, index: int, series: int, instances: int) -> None:
        assert study.uid == study_uid(index) and len(study.series) == series
        if series:
            last = study.series[-1].instances
            assert len(last) == instances
            uid = last[-1].uid
            assert uid == f"{study_uid(index)}.{1000 + series}.{100000 + instances}"
            texts = [
                e.values.items[0].text
                for e in last[-1].attributes.elements.values()
                if e.values.items
            ]
            assert uid in texts and study_uid(index) in texts


def _retext(ds: Any, series: str, sop: str | None = None) -> None:
    """Point a template's SeriesInstanceUID, SOPInstanceUID and RetrieveURL at placeholders."""
    from ..corpus import BASE_URL

    study = study_uid(0)
    ds.elements[0x0020000E].values.items[0].text = series
    url = f"{BASE_URL}/studies/{study}/series/{series}"
    if sop is not None:
        ds.elements[0x00080018].values.items[0].text = sop
        url += f"/instances/{sop}"
    ds.elements[0x00081190].values.items[0].text = url


# StreamStoreStudyRequest.last = 4 and StreamStoreQueryRequest.last = 5, true.
_LAST_STUDY_PIECE = bytes([4 << 3, 1])
_LAST_QUERY_PIECE = bytes([5 << 3, 1])


def _series_piece(started: bool, head: bytes, run: list[bytes]) -> bytes:
    """A piece of a series: its start (its own fields and first instances, in
    StreamStoreStudyRequest.series = 3), or more of its instances (instances = 2)."""
    if not started:
        return _field(3, head + b"".join(_field(3, i) for i in run))
    return b"".join(_field(2, i) for i in run)


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return bytes([number << 3 | 2]) + _varint(len(payload)) + payload
