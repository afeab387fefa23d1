"""Continuous ``CachedSearcher`` calls, each timed, classified and checked against the archive.

Every call is recorded: when it started and ended, how much of it the upstream
took (``TimedUpstream`` times the archive's part, per thread), whether it was a hit
(the upstream was not asked), and whether its answer equals the archive's own
answer, element for element. The archive's answers are read once, straight from
it, before any fault. A call's *added latency* is its duration minus the
upstream's part minus the median hit of the quiet window before the fault: what
the cache cost the caller beyond the answer it had to wait for anyway.

Thread-safe: one ``Traffic`` runs several caller threads and appends under a lock.
Clock: ``time.monotonic``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dicomtrolley.core import Query, QueryLevels, Searcher, Study

from dicomcache.client import CachedSearcher
from dicomcache.client.convert.objects import study_to_proto

# One caller's pause between calls: two callers then leave the 2-core machine to
# the server, Redis and Orthanc, so latencies measure the fault, not the load.
PAUSE = 0.005

Canonical = tuple[Any, ...]


class TimedUpstream(Searcher):  # type: ignore[misc]  # dicomtrolley ships no type information
    """A real searcher per thread, timed: each thread's seconds and calls in it since ``take``.

    Thread-safe: each thread gets its own searcher (a requests.Session is not shared).
    """

    def __init__(self, make: Callable[[], Searcher]) -> None:
        self._make = make
        self._local = threading.local()

    def _inner(self) -> Searcher:
        if not hasattr(self._local, "searcher"):
            self._local.searcher = self._make()
            self._local.seconds = 0.0
            self._local.calls = 0
        return self._local.searcher

    def _timed(self, call: Callable[[Searcher], Any]) -> Any:
        inner = self._inner()
        start = time.monotonic()
        try:
            return call(inner)
        finally:
            self._local.seconds += time.monotonic() - start
            self._local.calls += 1

    def find_studies(self, query: Query) -> Sequence[Study]:
        """The archive's answer, timed."""
        return self._timed(lambda s: s.find_studies(query))  # type: ignore[no-any-return]

    def find_study_by_id(
        self, study_uid: str, query_level: QueryLevels = QueryLevels.STUDY
    ) -> Study:
        """The archive's study, timed."""
        return self._timed(lambda s: s.find_study_by_id(study_uid, query_level=query_level))

    def take(self) -> tuple[int, float]:
        """This thread's upstream calls and seconds since the last ``take``; resets them."""
        self._inner()
        taken = (self._local.calls, self._local.seconds)
        self._local.calls, self._local.seconds = 0, 0.0
        return taken


def canonical(studies: Sequence[Study]) -> Canonical:
    """Studies as nested tuples of uids and DICOM JSON attributes, for equality."""
    return tuple(_node(study, ("series", "instances")) for study in studies)


def _node(obj: Any, children: tuple[str, ...]) -> Canonical:
    attributes = tuple(sorted((tag, repr(v)) for tag, v in obj.data.to_json_dict().items()))
    below = () if not children else tuple(_node(c, children[1:]) for c in getattr(obj, children[0]))
    return (obj.uid, attributes, below)


def _uids_and_tags(node: Canonical, out: dict[str, set[str]]) -> None:
    uid, attributes, below = node
    out[uid] = {tag for tag, _ in attributes}
    for child in below:
        _uids_and_tags(child, out)


def verdict(got: Canonical, expected: Canonical) -> str:
    """ "ok"; "partial" (objects or attributes missing, nothing else); or "wrong"."""
    if got == expected:
        return "ok"
    have: dict[str, set[str]] = {}
    want: dict[str, set[str]] = {}
    for node in got:
        _uids_and_tags(node, have)
    for node in expected:
        _uids_and_tags(node, want)
    if have.keys() <= want.keys() and all(have[uid] <= want[uid] for uid in have):
        return "partial"
    return "wrong"


@dataclass(frozen=True)
class Call:
    """One kind of call the callers make, with the archive's answer to it."""

    name: str
    run: Callable[[CachedSearcher], Sequence[Study]]
    expected: Canonical
    store_bytes: int  # the size of the answer's studies on the wire, which sets a store's deadline


@dataclass(frozen=True)
class Record:
    """One call as the caller saw it. Times are ``time.monotonic`` seconds."""

    call: str
    start: float
    end: float
    upstream_s: float
    hit: bool
    outcome: str  # "ok", "partial", "wrong", or "error: <exception type>"

    @property
    def duration(self) -> float:
        """Seconds the caller waited."""
        return self.end - self.start

    @property
    def cache_s(self) -> float:
        """The caller's wait minus the upstream's part: what the cache cost this call."""
        return self.duration - self.upstream_s


def _one_study(call: Callable[[CachedSearcher], Study]) -> Callable[[CachedSearcher], list[Study]]:
    return lambda searcher: [call(searcher)]


def calls_for(study_uid: str, patient_id: str, upstream: Searcher) -> list[Call]:
    """The calls of the matrix: a study by id (instance level) and a patient's series."""
    by_id = _one_study(lambda s: s.find_study_by_id(study_uid, QueryLevels.INSTANCE))
    query = Query(PatientID=patient_id, query_level=QueryLevels.SERIES)
    expected_by_id = [upstream.find_study_by_id(study_uid, query_level=QueryLevels.INSTANCE)]
    expected_query = list(upstream.find_studies(query))
    return [
        Call("find_study_by_id", by_id, canonical(expected_by_id), _wire_bytes(expected_by_id)),
        Call(
            "find_studies",
            lambda s: s.find_studies(query),
            canonical(expected_query),
            _wire_bytes(expected_query),
        ),
    ]


def _wire_bytes(studies: Sequence[Study]) -> int:
    return sum(study_to_proto(study).ByteSize() for study in studies)


class Traffic:
    """Caller threads, one per ``Call``, calling one searcher until stopped.

    Thread-safe: records are appended under a lock and read as a copy.
    """

    def __init__(
        self, searcher: CachedSearcher, upstream: TimedUpstream, calls: list[Call]
    ) -> None:
        self.searcher = searcher
        self.upstream = upstream
        self.calls = calls
        self._records: list[Record] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(
                target=self._loop, args=(call,), name=f"caller-{call.name}", daemon=True
            )
            for call in calls
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def records(self) -> list[Record]:
        """Every call so far, in the order they ended."""
        with self._lock:
            return list(self._records)

    def _loop(self, call: Call) -> None:
        self.upstream.take()
        while not self._stop.is_set():
            start = time.monotonic()
            try:
                answer = call.run(self.searcher)
                end = time.monotonic()
                outcome = verdict(canonical(answer), call.expected)
            except Exception as exc:  # the very thing measured: an error reaching the caller
                end = time.monotonic()
                outcome = f"error: {type(exc).__name__}"
            upstream_calls, upstream_s = self.upstream.take()
            hit = upstream_calls == 0 and not outcome.startswith("error")
            record = Record(call.name, start, end, upstream_s, hit, outcome)
            with self._lock:
                self._records.append(record)
            self._stop.wait(PAUSE)

    def wait_hits(self, since: float, steady: int, cap: float) -> float | None:
        """Wait until every call kind has hit ``steady`` times in a row, each started after
        ``since``; returns when the first of those hits ended, or None after ``cap`` seconds."""
        deadline = time.monotonic() + cap
        while time.monotonic() < deadline:
            first = self._steady_since(since, steady)
            if first is not None:
                return first
            time.sleep(0.05)
        return None

    def _steady_since(self, since: float, steady: int) -> float | None:
        firsts = []
        for call in self.calls:
            mine = [r for r in self.records() if r.call == call.name and r.start >= since]
            if len(mine) < steady or not all(r.hit for r in mine[-steady:]):
                return None
            streak = len(mine)
            while streak > 0 and mine[streak - 1].hit:
                streak -= 1
            firsts.append(mine[streak].end)
        return max(firsts)
