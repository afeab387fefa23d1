"""Soak: a real ``dicomcache serve --max-memory 64MiB`` under many threads for minutes.

The server is its own process, started as deployed (``python -m dicomcache.server.cli
serve``). This process runs ``THREADS`` threads through the real ``CacheClient``,
each mixing what a fleet of ``CachedSearcher`` users and an archive's change feed
send: study-by-id lookups and the leased stores of their misses, query lookups
and stores, AddObjects, GetObjects, invalidations of studies and (rarely) of a
whole namespace, and lookups and invalidations of namespaces that hold nothing
(each a name never seen before). Stores carry a TTL of the server's default, 20
or 5 seconds, so eviction and expiry both churn. A sampler reads the server's
resident set (``VmRSS`` in ``/proc/PID/status``) twice a second.

Every study's content is a function of its index alone, so every hit must equal
what was stored, element for element: a hit that lacks an object it was stored
with is partial; one that differs in any other way is wrong.

Rows: RSS at the end minus the baseline (the server's RSS after start and a
warm-up, before the load) over ``--max-memory`` (goal <= 1.25x); the RSS slope
over the last half, as the growth it would add over a whole soak (goal: flat,
within 5% of the limit); errors by gRPC code (goal 0); hits verified (goal 0
wrong, 0 partial). Clock: ``time.monotonic``.
"""

from __future__ import annotations

import hashlib
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from dicomtrolley.core import Query, QueryLevels, Study, StudyReference

from dicomcache.client import CacheClient, CacheError
from dicomcache.client.convert.objects import study_from_proto, study_to_proto
from dicomcache.server.process import Heaps
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, dataset_pb2, objects_pb2

from ..corpus import Shape, study_uid, trolley_study
from ..report import Row, Target

MAX_MEMORY = 64 * 2**20
THREADS = 24
FULL_SECONDS = 180.0
QUICK_SECONDS = 30.0
SAMPLE_EVERY = 0.5  # seconds between RSS samples
NAMESPACES = tuple(f"soak-{n}" for n in range(4))
SHAPE = Shape(series=1, instances=10)
POOL = 20_000  # study indices in play: far more than 64 MiB holds
HOT = 600  # the studies asked for half of the time, so that hits are common
PREFILL_BATCH = 40  # studies per AddObjects while filling the cache up to its limit
GROUP = 3  # studies per query answer
COMMENT_CHARS = 600  # per instance: enough bytes that the cache fills within seconds
TTLS = (0, 20, 5)  # seconds a store asks for; 0: the server's --ttl
SERVER_TTL = "600"  # the default: the prefill stays, so eviction keeps the cache at its limit
RSS_GOAL = 1.25  # (RSS at the end - baseline) / --max-memory
FLAT_GOAL = 0.05  # growth the last half's slope adds over the soak, / --max-memory
REPO = Path(__file__).resolve().parent.parent.parent

_SOP_INSTANCE_UID = 0x00080018
_SERIES_INSTANCE_UID = 0x0020000E
_STUDY_INSTANCE_UID = 0x0020000D
_RETRIEVE_URL = 0x00081190
_IMAGE_COMMENTS = 0x00204000
_HEAPS = re.compile(
    r"allocator: heaps system=(\d+) in_use=(\d+) free=(\d+) mmapped=(\d+)(?: malloc=(\w+))?"
)


def run(quick: bool) -> list[Row]:
    """The soak's rows: RSS vs the limit, its slope, errors by code, hits verified."""
    seconds = QUICK_SECONDS if quick else FULL_SECONDS
    with Server() as server:
        studies = Studies()
        tally = Tally()
        warm_up(server.target, studies, tally)
        baseline = server.rss()
        prefill(server.target, studies)
        samples: list[tuple[float, int]] = []
        stop = threading.Event()
        sampler = threading.Thread(target=sample, args=(server, samples, stop), daemon=True)
        started = time.monotonic()
        sampler.start()
        workers = [
            threading.Thread(
                target=work, args=(server.target, studies, tally, stop, seed), daemon=True
            )
            for seed in range(THREADS)
        ]
        for worker in workers:
            worker.start()
        stop.wait(seconds / 2)
        half = server.heaps()
        stop.wait(seconds / 2)
        end = server.heaps()
        stop.set()
        for worker in workers:
            worker.join()
        sampler.join()
        final = server.rss()
        elapsed = time.monotonic() - started
        stats = final_stats(server.target)
    return rows(baseline, final, samples, elapsed, tally, stats, (half, end))


@dataclass
class Tally:
    """What the workers did and saw. Thread-safe: every update holds the lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    calls: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    hits: int = 0
    wrong: int = 0
    partial: int = 0
    refused: int = 0
    differences: Counter[str] = field(default_factory=Counter)  # "<operation>: <how>"

    def count(self, what: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``what``."""
        with self.lock:
            self.calls[what] += n

    def error(self, exc: CacheError) -> None:
        """Count a failed call by its gRPC code."""
        with self.lock:
            self.errors[exc.code.name if exc.code is not None else "NO_CODE"] += 1

    def verdict(self, verdict: str, operation: str = "", how: str = "") -> None:
        """Count a verified hit: "ok", "wrong" or "partial"; for the others, how it differed."""
        with self.lock:
            self.hits += 1
            if verdict == "wrong":
                self.wrong += 1
            elif verdict == "partial":
                self.partial += 1
            if verdict != "ok":
                self.differences[f"{operation}: {how}"] += 1


class Studies:
    """Study ``index`` as its wire form, the same in every call. Thread-safe: no state changes."""

    def __init__(self) -> None:
        template = study_to_proto(trolley_study(0, SHAPE))
        self._study = template.attributes
        self._series = template.series[0].attributes
        self._instance = template.series[0].instances[0].attributes
        _text(self._instance, _IMAGE_COMMENTS, "LT", "")

    def proto(self, index: int) -> objects_pb2.Study:
        """Study ``index``: the template's attributes with its own uids and comments."""
        uid = study_uid(index)
        message = objects_pb2.Study(uid=uid, attributes=_stamp(self._study, uid, None, None))
        for s in range(SHAPE.series):
            series_uid = f"{uid}.{s + 1}"
            series = message.series.add(
                uid=series_uid, attributes=_stamp(self._series, uid, series_uid, None)
            )
            for n in range(SHAPE.instances):
                sop = f"{series_uid}.{n + 1}"
                attributes = _stamp(self._instance, uid, series_uid, sop)
                attributes.elements[_IMAGE_COMMENTS].values.items[0].text = _comment(sop)
                series.instances.add(uid=sop, attributes=attributes)
        return message

    def study(self, index: int) -> Study:
        """Study ``index`` as dicomtrolley objects, as an upstream would return it."""
        return study_from_proto(self.proto(index))


def _stamp(
    template: dataset_pb2.Dataset, study: str, series: str | None, sop: str | None
) -> dataset_pb2.Dataset:
    ds = dataset_pb2.Dataset()
    ds.CopyFrom(template)
    url = f"http://127.0.0.1:8042/dicom-web/studies/{study}"
    ds.elements[_STUDY_INSTANCE_UID].values.items[0].text = study
    if series is not None:
        ds.elements[_SERIES_INSTANCE_UID].values.items[0].text = series
        url += f"/series/{series}"
    if sop is not None:
        ds.elements[_SOP_INSTANCE_UID].values.items[0].text = sop
        url += f"/instances/{sop}"
    ds.elements[_RETRIEVE_URL].values.items[0].text = url
    return ds


def _text(ds: dataset_pb2.Dataset, tag: int, vr: str, text: str) -> None:
    element = ds.elements[tag]
    element.vr = vr
    element.values.items.add(text=text)


def _comment(sop: str) -> str:
    """Text unique to the instance that compresses about as well as real free text does."""
    seed = hashlib.sha256(sop.encode()).hexdigest()
    return (seed * (COMMENT_CHARS // len(seed) + 1))[:COMMENT_CHARS]


class Server:
    """A ``dicomcache serve`` process on a free loopback port.

    Not thread-safe, except that its stderr is read by a thread of its own (the
    allocator lines, under a condition). Clock: ``time.monotonic`` (``heaps``' wait).
    """

    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.target = ""
        self._drain: threading.Thread | None = None
        self._said = threading.Condition()
        self._heaps: list[Heaps] = []  # every allocator line the server logged

    def __enter__(self) -> Server:
        command = [
            sys.executable,
            "-m",
            "dicomcache.server.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--max-memory",
            "64MiB",
            "--ttl",
            SERVER_TTL,
            "--log-level",
            "INFO",  # the startup line says the port; the rest is drained
        ]
        self.process = subprocess.Popen(command, cwd=REPO, stderr=subprocess.PIPE, text=True)
        assert self.process.stderr is not None
        line = self.process.stderr.readline()
        match = re.search(r"serving on (127\.0\.0\.1:\d+)", line)
        if match is None:
            self.process.kill()
            raise RuntimeError(f"dicomcache serve did not start (said {line!r})")
        self.target = match.group(1)
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()
        return self

    def _read(self) -> None:
        """Drain the server's log, keeping what its allocator lines say."""
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            said = heaps_said(line)
            if said is not None:
                with self._said:
                    self._heaps.append(said)
                    self._said.notify_all()

    def heaps(self) -> Heaps | None:
        """The server's malloc heaps now (SIGUSR1 makes it log them); None: no reply in 10 s."""
        assert self.process is not None
        with self._said:
            seen = len(self._heaps)
            self.process.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 10
            while len(self._heaps) == seen and time.monotonic() < deadline:
                self._said.wait(deadline - time.monotonic())
            return self._heaps[seen] if len(self._heaps) > seen else None

    def __exit__(self, *_: object) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def rss(self) -> int:
        """The server's resident set in bytes, from /proc (no collection forced)."""
        assert self.process is not None
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None
        return int(match.group(1)) * 1024


def heaps_said(line: str) -> Heaps | None:
    """The heaps an allocator line of the server's log names (glibc's unless it says), or None."""
    match = _HEAPS.search(line)
    if match is None:
        return None
    *sizes, malloc = match.groups()
    return Heaps(*(int(n) for n in sizes), malloc or "glibc")


def sample(server: Server, samples: list[tuple[float, int]], stop: threading.Event) -> None:
    """Append (seconds since start, RSS) every SAMPLE_EVERY until ``stop``."""
    started = time.monotonic()
    while not stop.is_set():
        samples.append((time.monotonic() - started, server.rss()))
        stop.wait(SAMPLE_EVERY)


def warm_up(target: str, studies: Studies, tally: Tally) -> None:
    """One of each call, so the server's code paths and tables exist before the baseline."""
    with CacheClient(target, timeout=10) as client:
        rng = random.Random(-1)
        for op in OPERATIONS:
            op(client, "warm-up", rng, studies, tally)
        client.invalidate("warm-up")


def prefill(target: str, studies: Studies) -> None:
    """Fill the cache to its limit, so the soak starts where the bound must hold.

    Cold studies first, until the limit is nearly reached, then the HOT ones in
    every namespace (the most recent: eviction takes the cold ones first). Through
    the generated stub, not ``CacheClient``: converting datasets in this process
    would take longer than a quick soak lasts.
    """
    with grpc.insecure_channel(target) as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)

        def add(ns: str, start: int, stop: int) -> int:
            batch = [studies.proto(i) for i in range(start, stop)]
            stub.AddObjects(pb.AddObjectsRequest(namespace=ns, studies=batch), timeout=60)
            return int(stub.GetStats(pb.GetStatsRequest(namespace=ns), timeout=60).total_bytes)

        for start in range(HOT, POOL, PREFILL_BATCH):
            ns = NAMESPACES[start // PREFILL_BATCH % len(NAMESPACES)]
            if add(ns, start, min(start + PREFILL_BATCH, POOL)) >= MAX_MEMORY * 0.8:
                break
        for ns in NAMESPACES:
            for start in range(0, HOT, PREFILL_BATCH):
                add(ns, start, min(start + PREFILL_BATCH, HOT))


def pick(rng: random.Random, count: int = POOL) -> int:
    """A study index: half of the time one of the HOT first (``count`` scales both)."""
    return rng.randrange(count * HOT // POOL if rng.random() < 0.5 else count)


# -- the operations --------------------------------------------------------------------


def lookup_study(
    client: CacheClient, ns: str, rng: random.Random, studies: Studies, tally: Tally
) -> None:
    """A study by id: verify a hit; store a miss under its lease, as CachedSearcher does."""
    index = pick(rng)
    hit, lease = client.lookup_study_leased(ns, study_uid(index), QueryLevels.INSTANCE)
    if hit is not None:
        expected = [studies.proto(index)]
        _judge(tally, "LookupStudy", [hit], expected)
        return
    stored = client.store_study(
        ns, studies.study(index), QueryLevels.INSTANCE, ttl=rng.choice(TTLS), lease=lease
    )
    tally.count("refused" if not stored else "stored")


def lookup_query(
    client: CacheClient, ns: str, rng: random.Random, studies: Studies, tally: Tally
) -> None:
    """A query answered by GROUP studies: verify a hit; store a miss under its lease."""
    group = pick(rng, POOL // GROUP)
    query = Query(PatientID=f"GROUP{group}", query_level=QueryLevels.INSTANCE)
    indices = range(group * GROUP, group * GROUP + GROUP)
    hit, lease = client.lookup_query_leased(ns, query)
    if hit is not None:
        expected = [studies.proto(i) for i in indices]
        _judge(tally, "LookupQuery", hit, expected)
        return
    answer = [studies.study(i) for i in indices]
    stored = client.store_query(ns, query, answer, ttl=rng.choice(TTLS), lease=lease)
    tally.count("refused" if not stored else "stored")


def add_objects(
    client: CacheClient, ns: str, rng: random.Random, studies: Studies, tally: Tally
) -> None:
    """AddObjects of one study."""
    client.add_objects(ns, [studies.study(rng.randrange(POOL))], ttl=rng.choice(TTLS))
    tally.count("added")


def retrieve(
    client: CacheClient, ns: str, rng: random.Random, studies: Studies, tally: Tally
) -> None:
    """GetObjects of one study: a found study must be the whole study as stored."""
    index = pick(rng)
    (found,) = client.retrieve(ns, [StudyReference(study_uid=study_uid(index))])
    if isinstance(found, Study):
        expected = [studies.proto(index)]
        _judge(tally, "GetObjects", [found], expected, ordered=False)


def invalidate_study(
    client: CacheClient, ns: str, rng: random.Random, studies: Studies, tally: Tally
) -> None:
    """Invalidate one study, as an archive's change feed would."""
    client.invalidate(ns, StudyReference(study_uid=study_uid(pick(rng))))
    tally.count("invalidated")


def strangers(
    client: CacheClient, ns: str, rng: random.Random, studies: Studies, tally: Tally
) -> None:
    """Lookups and an invalidation in a namespace never seen before: they must cost nothing."""
    name = f"stranger-{rng.getrandbits(64):016x}"
    client.lookup_study_leased(name, study_uid(rng.randrange(POOL)), QueryLevels.STUDY)
    client.lookup_query_leased(name, Query(PatientID="X", query_level=QueryLevels.STUDY))
    client.invalidate(name, StudyReference(study_uid=study_uid(0)))
    tally.count("strangers")


def drop_namespace(
    client: CacheClient, ns: str, rng: random.Random, studies: Studies, tally: Tally
) -> None:
    """Invalidate a whole namespace."""
    client.invalidate(ns)
    tally.count("namespaces dropped")


OPERATIONS = (lookup_study, lookup_query, add_objects, retrieve, invalidate_study, strangers)
WEIGHTS = (45, 20, 12, 10, 8, 5)
DROP_EVERY = 2000  # operations per thread between drops of a whole namespace


def work(target: str, studies: Studies, tally: Tally, stop: threading.Event, seed: int) -> None:
    """Random operations on random namespaces until ``stop``."""
    rng = random.Random(seed)
    with CacheClient(target, timeout=5.0) as client:
        done = 0
        while not stop.is_set():
            ns = rng.choice(NAMESPACES)
            op = drop_namespace if done % DROP_EVERY == DROP_EVERY - 1 else None
            if op is None:
                op = rng.choices(OPERATIONS, WEIGHTS)[0]
            try:
                op(client, ns, rng, studies, tally)
            except CacheError as exc:
                tally.error(exc)
            done += 1
    tally.count("operations", done)


def verdict(hit: list[Study], stored: list[objects_pb2.Study], ordered: bool = True) -> str:
    """ "ok" when the hit is exactly what was stored; "partial" when it lacks objects.

    ``ordered``: whether the order of series and instances counts (a lookup's hit keeps
    the archive's; GetObjects promises none, see cache_service.proto).
    """
    got = [study_to_proto(study) for study in hit]
    if not ordered:
        got, stored = [_by_uid(s) for s in got], [_by_uid(s) for s in stored]
    if got == stored:
        return "ok"
    if _uids(got) < _uids(stored):
        return "partial"
    return "wrong"


def _judge(
    tally: Tally,
    operation: str,
    hit: list[Study],
    stored: list[objects_pb2.Study],
    ordered: bool = True,
) -> None:
    """Count one verified hit, saying how it differs when it does."""
    result = verdict(hit, stored, ordered)
    tally.verdict(result, operation, difference(hit, stored) if result != "ok" else "")


def difference(hit: list[Study], stored: list[objects_pb2.Study]) -> str:
    """How a hit differs from what was stored, in words without values ("" when it does not)."""
    got = [study_to_proto(study) for study in hit]
    if got == stored:
        return ""
    got_uids, stored_uids = _ordered_uids(got), _ordered_uids(stored)
    if got_uids == stored_uids:
        return "same objects in the same order, other attributes"
    if sorted(got_uids) == sorted(stored_uids):
        return "same objects, another order"
    missing, extra = set(stored_uids) - set(got_uids), set(got_uids) - set(stored_uids)
    return f"{len(missing)} objects missing, {len(extra)} extra"


def _by_uid(study: objects_pb2.Study) -> objects_pb2.Study:
    """The study with its series, and each series' instances, in uid order."""
    copy = objects_pb2.Study()
    copy.CopyFrom(study)
    series = sorted(copy.series, key=lambda s: s.uid)
    for each in series:
        instances = sorted(each.instances, key=lambda i: i.uid)
        del each.instances[:]
        each.instances.extend(instances)
    del copy.series[:]
    copy.series.extend(series)
    return copy


def _ordered_uids(studies: list[objects_pb2.Study]) -> list[str]:
    return [
        uid
        for study in studies
        for uid in (
            study.uid,
            *(s.uid for s in study.series),
            *(i.uid for s in study.series for i in s.instances),
        )
    ]


def _uids(studies: list[objects_pb2.Study]) -> set[str]:
    return {
        uid
        for study in studies
        for uid in (
            study.uid,
            *(s.uid for s in study.series),
            *(i.uid for s in study.series for i in s.instances),
        )
    }


def final_stats(target: str) -> dict[str, int]:
    """The server's accounted bytes and namespace count at the end."""
    with CacheClient(target, timeout=10) as client:
        response = client.stats()
    return {"total_bytes": response.total_bytes, "namespaces": len(response.namespaces)}


# -- the rows --------------------------------------------------------------------------


def slope(points: list[tuple[float, int]]) -> float:
    """Least-squares bytes per second through ``points``."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_r = sum(r for _, r in points) / n
    spread = sum((t - mean_t) ** 2 for t, _ in points)
    return sum((t - mean_t) * (r - mean_r) for t, r in points) / spread if spread else 0.0


def where_it_went(
    samples: list[tuple[float, int]], elapsed: float, half: Heaps | None, end: Heaps | None
) -> str:
    """The last half's RSS change beside the malloc heaps' ("" without both readings).

    What RSS gained that the heaps do not show is pymalloc's arenas (Python's small
    objects), stacks and the like; the heaps' free space is their fragmentation.
    """
    later = [r for t, r in samples if t >= elapsed / 2]
    if half is None or end is None or not later:
        return ""
    mib = 2**20

    def change(before: int, after: int) -> str:
        return f"{(after - before) / mib:+.1f}"

    return (
        f"last half: RSS {change(later[0], later[-1])} MiB; {end.malloc}'s heaps "
        f"{half.system / mib:.1f} -> {end.system / mib:.1f} MiB (in use "
        f"{change(half.in_use, end.in_use)}, free {half.free / mib:.1f} -> {end.free / mib:.1f}), "
        f"mmapped {change(half.mmapped, end.mmapped)}; outside the heaps "
        f"{change(later[0] - half.system - half.mmapped, later[-1] - end.system - end.mmapped)}"
    )


def rows(
    baseline: int,
    final: int,
    samples: list[tuple[float, int]],
    elapsed: float,
    tally: Tally,
    stats: dict[str, int],
    heaps: tuple[Heaps | None, Heaps | None] = (None, None),
) -> list[Row]:
    """The four soak rows; ``heaps``: the server's malloc's at the soak's half and at its end."""
    mib = 2**20
    half = [(t, r) for t, r in samples if t >= elapsed / 2]
    per_second = slope(half)
    growth = per_second * elapsed  # what that slope adds over a soak this long
    peak = max((r for _, r in samples), default=final)
    errors = sum(tally.errors.values())
    by_code = ", ".join(f"{code} {n}" for code, n in sorted(tally.errors.items())) or "none"
    calls = dict(sorted(tally.calls.items()))
    figures = {
        "baseline_rss": baseline,
        "final_rss": final,
        "peak_rss": peak,
        "max_memory": MAX_MEMORY,
        "seconds": elapsed,
        "threads": THREADS,
        "slope_bytes_per_second": per_second,
        "samples": samples,
        "calls": calls,
        "errors": dict(tally.errors),
        "hits": tally.hits,
        "wrong": tally.wrong,
        "partial": tally.partial,
        **stats,
    }
    return [
        Row(
            key="soak-rss",
            measure=f"soak: server RSS - baseline, {THREADS} threads, {elapsed:.0f} s",
            result=f"{(final - baseline) / mib:.1f} MiB",
            baseline=f"--max-memory {MAX_MEMORY / mib:.0f} MiB",
            value=(final - baseline) / MAX_MEMORY,
            target=Target("<=", RSS_GOAL),
            note=(
                f"RSS {baseline / mib:.0f} -> {final / mib:.0f} MiB (peak {peak / mib:.0f}); "
                f"accounted {stats['total_bytes'] / mib:.1f} MiB in {stats['namespaces']} "
                f"namespaces; calls {calls}"
            ),
            figures=figures,
        ),
        Row(
            key="soak-slope",
            measure="soak: RSS slope over the last half, times the soak / --max-memory",
            result=f"{per_second / mib * 60:+.2f} MiB/min",
            baseline=f"{growth / mib:+.1f} MiB over {elapsed:.0f} s",
            value=max(growth, 0.0) / MAX_MEMORY,
            target=Target("<=", FLAT_GOAL),
            note=where_it_went(samples, elapsed, *heaps),
        ),
        Row(
            key="soak-errors",
            measure="soak: failed calls, by gRPC code",
            result=by_code,
            baseline=f"{sum(calls.values())} counted calls",
            value=float(errors),
            unit="",
            target=Target("<=", 0, unit=""),
        ),
        Row(
            key="soak-hits",
            measure="soak: hits that differ from what was stored (wrong + partial)",
            result=f"{tally.wrong} wrong, {tally.partial} partial",
            baseline=f"{tally.hits} hits verified",
            value=float(tally.wrong + tally.partial),
            unit="",
            target=Target("<=", 0, unit=""),
            note="; ".join(f"{what} x{n}" for what, n in sorted(tally.differences.items())),
        ),
    ]
