"""Client-side metrics of CachedSearcher, in the app's own Prometheus registry.

What the app's operators want from their side of the cache: how often it hits,
how often it was skipped and why, whether the breaker is open, and what the cache
costs each call (the time in cache calls, conversions included: on a miss this
is added to the archive's time). ``prometheus-client`` is imported only when a
registry is given.

Every searcher that registers into one registry shares its metrics (labelled by
namespace), so an app may run several.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from dicomcache.client.breaker import Breaker, State

# Seconds: a study-level hit is about a millisecond, a deadline 0.25 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)

_SHARED: weakref.WeakKeyDictionary[Any, ClientMetrics] = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()


class ClientMetrics:
    """The metrics of every CachedSearcher of one registry. Thread-safe. No clock."""

    def __init__(self, registry: Any) -> None:
        from prometheus_client import Counter, Histogram

        self.lookups = Counter(
            "dicomcache_client_lookups",
            "Searches by how they were answered: hit, miss (asked the archive, then "
            "stored), or skipped (the cache was not usable: see fallbacks)",
            ["namespace", "result"],
            registry=registry,
        )
        self.fallbacks = Counter(
            "dicomcache_client_fallbacks",
            "Cache calls that failed or were not made, so the archive answered alone, by reason",
            ["namespace", "reason"],
            registry=registry,
        )
        self.cache_seconds = Histogram(
            "dicomcache_client_cache_seconds",
            "Time spent in cache calls per search, conversions included (added latency on a miss)",
            ["namespace", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.breakers = _BreakerCollector()
        registry.register(self.breakers)
        self._children: dict[tuple[Any, ...], Any] = {}  # labels() once per label set

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*labels))
        return child

    def lookup(self, namespace: str, result: str) -> None:
        """Count one search by how it was answered."""
        self._child(self.lookups, namespace, result).inc()

    def fallback(self, namespace: str, reason: str) -> None:
        """Count one cache call that failed or was not made."""
        self._child(self.fallbacks, namespace, reason).inc()

    def cache_time(self, namespace: str, operation: str, seconds: float) -> None:
        """Record the time of one cache call."""
        self._child(self.cache_seconds, namespace, operation).observe(seconds)

    @classmethod
    def of(cls, registry: Any) -> ClientMetrics:
        """The shared metrics of ``registry``, made on first use."""
        with _SHARED_LOCK:
            metrics = _SHARED.get(registry)
            if metrics is None:
                metrics = _SHARED[registry] = cls(registry)
            return metrics


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
