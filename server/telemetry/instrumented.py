"""The backend seen from outside: each operation timed, failures and hits counted, traced.

``InstrumentedBackend`` is a ``Backend`` that forwards every call to the real one,
so neither backend knows about metrics or traces. It counts lookups by result
for the periodic summary always (two integers), and feeds metrics and spans when
the server has them.
"""

from __future__ import annotations

import contextvars
import itertools
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from dicomcache.server.backends import Backend, Flight, Found, StaleCopy
from dicomcache.server.model import Address, CachedObject, Level, Stats, StudyData
from dicomcache.server.telemetry.metrics import Metrics
from dicomcache.server.telemetry.tracing import Tracer

T = TypeVar("T")

# The call being served (an ``Observation``, set by ``calls``), if any: its backend
# operations and lookups are counted with it, in one go, after its response has gone
# (see ``Telemetry.observed``); work outside a call is counted at once. A context
# variable, not a ``threading.local``: reading one is a single C call that a hit's
# other code shares (a thread-local's four reads and writes cost an observed hit
# about 1%, their code cold between calls on a busy 2-core machine; issue 14).
SERVING: contextvars.ContextVar[Any] = contextvars.ContextVar("dicomcache_serving", default=None)


class LookupCounts:
    """Hits and misses since start. Thread-safe: ``next`` on a count is atomic in CPython."""

    def __init__(self) -> None:
        self._hits = itertools.count()
        self._misses = itertools.count()
        self.hits = 0
        self.misses = 0

    def hit(self) -> None:
        """Count one hit."""
        self.hits = next(self._hits) + 1

    def miss(self) -> None:
        """Count one miss."""
        self.misses = next(self._misses) + 1


class InstrumentedBackend:
    """A Backend that times, counts and traces the one it wraps.

    Thread-safe as the wrapped backend is. Clock: ``time.perf_counter`` for durations.
    """

    def __init__(
        self,
        backend: Backend,
        counts: LookupCounts,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.backend = backend
        self.counts = counts
        self.metrics = metrics
        self.tracer = tracer

    def _run(self, operation: str, call: Callable[[], T]) -> T:
        metrics, tracer = self.metrics, self.tracer
        if metrics is None and tracer is None:
            return call()
        serving = SERVING.get()
        span = None
        if tracer is not None and (serving is None or serving.traced):
            span = tracer.backend_span(operation)  # none for a caller that did not sample
        start = time.perf_counter()
        error = None
        try:
            return call()
        except Exception as exc:
            error = type(exc).__name__
            if span is not None:
                span.fail(exc)
            raise
        finally:
            if metrics is not None:
                seconds = time.perf_counter() - start
                if serving is not None:  # counted with the call, after it
                    serving.backend_calls.append((operation, seconds, error))
                else:
                    metrics.backend_call(operation, seconds, error)
            if span is not None:
                span.end()

    def _looked_up(self, namespace: str, found: Any) -> None:
        if found is None:
            self.counts.miss()
        else:
            self.counts.hit()
        metrics = self.metrics
        if metrics is not None:
            result = "miss" if found is None else "hit"
            serving = SERVING.get()
            if serving is not None:  # counted with the call, after it
                serving.lookups.append((namespace, result))
            else:
                metrics.lookup(namespace, result)

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        found = self._run("lookup_query", lambda: self.backend.lookup_query(namespace, key))
        self._looked_up(namespace, found)
        return found

    def lookup_answer(self, namespace: str, key: bytes) -> Found | None:
        found = self._run("lookup_query", lambda: self.backend.lookup_answer(namespace, key))
        self._looked_up(namespace, found)
        return found

    def lease(self, namespace: str) -> int:
        return self._run("lease", lambda: self.backend.lease(namespace))

    def store_stale(
        self, namespace: str, key: bytes, document: bytes, keep: float, lease: int
    ) -> bool:
        return self._run(
            "store_stale",
            lambda: self.backend.store_stale(namespace, key, document, keep, lease),
        )

    def lookup_stale(self, namespace: str, key: bytes) -> StaleCopy | None:
        return self._run("lookup_stale", lambda: self.backend.lookup_stale(namespace, key))

    def fly(self, namespace: str, key: bytes, holder: str, seconds: float) -> Flight:
        return self._run("fly", lambda: self.backend.fly(namespace, key, holder, seconds))

    def land(self, namespace: str, key: bytes, holder: str) -> None:
        self._run("land", lambda: self.backend.land(namespace, key, holder))

    def store_query(
        self,
        namespace: str,
        key: bytes,
        studies: Sequence[StudyData],
        ttl: float | None,
        lease: int = 0,
    ) -> bool:
        return self._run(
            "store_query", lambda: self.backend.store_query(namespace, key, studies, ttl, lease)
        )

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        found = self._run(
            "lookup_study", lambda: self.backend.lookup_study(namespace, study_uid, level)
        )
        self._looked_up(namespace, found)
        return found

    def study_answer(self, namespace: str, study_uid: str, level: Level) -> Found | None:
        if self.metrics is None and self.tracer is None:
            # Only counted: a hit's fixed cost (row 17c) without ``_run``'s two calls.
            found = self.backend.study_answer(namespace, study_uid, level)
            if found is None:
                self.counts.miss()
            else:
                self.counts.hit()
            return found
        serving = SERVING.get()
        if serving is None or (serving.traced and self.tracer is not None) or self.metrics is None:
            found = self._run(
                "lookup_study", lambda: self.backend.study_answer(namespace, study_uid, level)
            )
            self._looked_up(namespace, found)
            return found
        # A call that makes no spans (its caller did not sample): timed and counted
        # with the call as ``_run`` and ``_looked_up`` would, without their three Python
        # calls (a hit's fixed cost, issue 14, rows 13a/13b).
        start = time.perf_counter()
        try:
            found = self.backend.study_answer(namespace, study_uid, level)
        except Exception as exc:
            serving.backend_calls.append(
                ("lookup_study", time.perf_counter() - start, type(exc).__name__)
            )
            raise
        serving.backend_calls.append(("lookup_study", time.perf_counter() - start, None))
        if found is None:
            self.counts.miss()
            serving.lookups.append((namespace, "miss"))
        else:
            self.counts.hit()
            serving.lookups.append((namespace, "hit"))
        return found

    def store_study(
        self, namespace: str, study: StudyData, level: Level, ttl: float | None, lease: int = 0
    ) -> bool:
        return self._run(
            "store_study", lambda: self.backend.store_study(namespace, study, level, ttl, lease)
        )

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        return self._run("add_objects", lambda: self.backend.add_objects(namespace, studies, ttl))

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        return self._run("get_object", lambda: self.backend.get_object(namespace, address))

    def invalidate(self, namespace: str, address: Address | None) -> int:
        return self._run("invalidate", lambda: self.backend.invalidate(namespace, address))

    def stats(
        self, namespace: str | None, after: str | None = None, limit: int | None = None
    ) -> Stats:
        return self._run("stats", lambda: self.backend.stats(namespace, after, limit))

    def expire(self, max_items: int) -> int:
        return self.backend.expire(max_items)  # the sweeper's, every second: not a call's work

    def close(self) -> None:
        self.backend.close()
