"""Client-side metrics of CachedSearcher, in the app's own Prometheus registry.

What the app's operators want from their side of the cache: how often it hits,
how often it was skipped and why, whether the breaker is open, and what the cache
costs each call (the time in cache calls, conversions included: on a miss this
is added to the archive's time). ``prometheus-client`` is imported only when a
registry is scraped: a search counts plain numbers (``dicomcache.tallies``), held
as records until a scrape or a batch of them (``ClientMetrics.held``).

Every searcher that registers into one registry shares its metrics (labelled by
namespace), so an app may run several.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Iterator
from typing import Any

from dicomcache.client.breaker import Breaker, State
from dicomcache.tallies import Collected, Count, Counters, Family, Histograms, S, Timing

# Seconds: a study-level hit is about a millisecond, a deadline 0.25 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

# Records held before the searcher's thread that made the last one counts them all
# (``ClientMetrics.held``): a few kilobytes, one batch in so many searches' records.
HELD_RECORDS = 256

_SHARED: weakref.WeakKeyDictionary[Any, ClientMetrics] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


class ClientMetrics:
    """The metrics of every CachedSearcher of one registry. Thread-safe. No clock of its own.

    Counted in ``dicomcache.tallies`` (plain numbers, read when scraped); the
    exposition is that of prometheus_client's Counter and Histogram.

    A search's count and timing are held as records, ``(series, label, value)`` in
    ``held`` (one append each, no Python call), and counted a batch at a time: by a
    scrape first (so a scrape shows every search that returned before it), and by the
    thread whose record makes ``HELD_RECORDS``. Counting at once ran two Python
    methods, two locks and a bisect per hit, and on a busy 2-core machine, where that
    code is cold between searches, cost an unsampled study-level hit about 1.5%
    (issue 14, row 13b).
    """

    def __init__(self, registry: Any) -> None:
        self.lookups = Counters(
            "dicomcache_client_lookups",
            "Searches by how they were answered: hit, miss (asked the archive, then "
            "stored), or skipped (the cache was not usable: see fallbacks)",
            ["namespace", "result"],
        )
        self.fallbacks = Counters(
            "dicomcache_client_fallbacks",
            "Cache calls that failed or were not made, so the archive answered alone, by reason",
            ["namespace", "reason"],
        )
        self.cache_seconds = Histograms(
            "dicomcache_client_cache_seconds",
            "Time spent in cache calls per search, conversions included (added latency on a miss)",
            ["namespace", "operation"],
            buckets=LATENCY_BUCKETS,
        )
        # Records of searches not counted yet, oldest first (``count_held``).
        self.held: deque[tuple[_Series[Any], str, float]] = deque()
        self._counting = threading.Lock()
        registry.register(
            Collected(self.lookups, self.fallbacks, self.cache_seconds, settle=self.count_held)
        )
        self.breakers = _BreakerCollector()
        registry.register(self.breakers)

    def searcher(self, namespace: str, breakers: dict[str, Breaker]) -> SearcherMetrics:
        """The series of one searcher of ``namespace``, whose ``breakers`` are by gate."""
        for gate, breaker in breakers.items():
            self.breakers.add(namespace, gate, breaker)
        return SearcherMetrics(self, namespace)

    def count_held(self) -> None:
        """Count the records held, in the order they were made."""
        with self._counting:
            held = self.held
            while held:  # only this pops, under the lock: never empty here
                series, label, value = held.popleft()
                series[label].add(value)

    @classmethod
    def of(cls, registry: Any) -> ClientMetrics:
        """The shared metrics of ``registry``, made on first use."""
        with _SHARED_LOCK:
            metrics = _SHARED.get(registry)
            if metrics is None:
                metrics = _SHARED[registry] = cls(registry)
            return metrics


class SearcherMetrics:
    """One searcher's series, by the label after its namespace. Thread-safe. No clock.

    ``lookups["hit"].inc()``, ``fallbacks[reason].inc()``,
    ``cache_seconds["lookup"].observe(seconds)``: a dict look-up and the count,
    the series made (and then shown) on first use, as a labelled child is.
    Searchers of one namespace share its series. A search's hot path holds its
    records instead: ``held.append((lookups, "hit", 1.0))``, then ``count_held()``
    once ``held`` has ``HELD_RECORDS`` (``ClientMetrics``).
    """

    def __init__(self, metrics: ClientMetrics, namespace: str) -> None:
        self.lookups: _Series[Count] = _Series(metrics.lookups, namespace)
        self.fallbacks: _Series[Count] = _Series(metrics.fallbacks, namespace)
        self.cache_seconds: _Series[Timing] = _Series(metrics.cache_seconds, namespace)
        self.held = metrics.held
        self.count_held = metrics.count_held


class _Series(dict[str, S]):
    """A family's series of one namespace by the second label; a missing one is fetched."""

    def __init__(self, family: Family[S], namespace: str) -> None:
        super().__init__()
        self._family: Family[S] = family
        self._namespace = namespace

    def __missing__(self, label: str) -> S:
        series = self._family.series((self._namespace, label))
        self[label] = series
        return series


class _BreakerCollector:
    """``dicomcache_client_breaker_open``: 1 while a searcher's breaker skips the cache."""

    def __init__(self) -> None:
        self._breakers: weakref.WeakValueDictionary[tuple[str, str], Breaker] = (
            weakref.WeakValueDictionary()
        )

    def add(self, namespace: str, gate: str, breaker: Breaker) -> None:
        """Report ``breaker`` (gate "all" or "stores") of a searcher of ``namespace``."""
        self._breakers[(namespace, gate)] = breaker

    def describe(self) -> Iterator[Any]:
        yield from self._families({})

    def collect(self) -> Iterator[Any]:
        yield from self._families(dict(self._breakers.items()))

    @staticmethod
    def _families(breakers: dict[tuple[str, str], Breaker]) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "dicomcache_client_breaker_open",
            "1 while the breaker skips the cache (after faults, or a refusal), else 0",
            labels=["namespace", "gate"],
        )
        for (namespace, gate), breaker in breakers.items():
            family.add_metric([namespace, gate], 0 if breaker.state is State.CLOSED else 1)
        yield family
