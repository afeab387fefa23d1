"""The server's Prometheus metrics, in a registry of its own.

A registry per server, not prometheus_client's global one: a library must not
change process-wide state, and two servers in one process (the tests) must not
share counters. ``serve`` exposes it on ``--metrics-listen``.

Counted as they happen: calls by method and status, their latency, lookups by
namespace and result, backend operations' latency and failures, upstream
fetches' latency and failures, misses that waited for an identical one's fetch
(``Search``), as plain numbers (``dicomcache.tallies``: a counted hit runs little
code). Read from the backend at scrape time (``CacheCollector``): cached objects,
queries and bytes by namespace, evictions and expirations by namespace, the
cache's total and its limit. Process metrics (RSS, CPU, open files) and the
garbage collector's come with prometheus_client's own collectors, in the same
registry.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from dicomcache.server.backends import Backend
from dicomcache.server.telemetry.labels import NamespaceLabels
from dicomcache.tallies import Collected, Counters, Histograms

log = logging.getLogger(__name__)

# Seconds: a memory hit is well under a millisecond, a Redis hit a few, a large
# store or a stalled backend up to the deadline and past it.
LATENCY_BUCKETS = (
    0.0002,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    10.0,
)


class Metrics:
    """Every metric of one server. Thread-safe (prometheus_client's metrics are). No clock.

    Args:
        backend: read at scrape time for sizes, evictions and expirations.
        max_bytes: the memory limit reported (0 for a backend without one).
        labels: the namespace labels, shared with whoever counts by namespace.
    """

    def __init__(self, backend: Backend, max_bytes: int, labels: NamespaceLabels) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.labels = labels
        self.rpc_requests = Counters(
            "dicomcache_rpc_requests", "Calls served, by method and status code", ["method", "code"]
        )
        self.rpc_duration = Histograms(
            "dicomcache_rpc_duration_seconds",
            "Time from a call's arrival to its response, by method",
            ["method"],
            LATENCY_BUCKETS,
        )
        self.lookups = Counters(
            "dicomcache_lookups",
            "Lookups answered by this server, by namespace and result (hit or miss)",
            ["namespace", "result"],
        )
        self.backend_duration = Histograms(
            "dicomcache_backend_duration_seconds",
            "Time of each storage backend operation",
            ["operation"],
            LATENCY_BUCKETS,
        )
        self.backend_errors = Counters(
            "dicomcache_backend_errors",
            "Storage backend operations that failed, by operation and error",
            ["operation", "error"],
        )
        self.upstream_duration = Histograms(
            "dicomcache_upstream_duration_seconds",
            "Time of each fetch from an upstream archive (Search misses), by upstream",
            ["upstream"],
            LATENCY_BUCKETS,
        )
        self.upstream_errors = Counters(
            "dicomcache_upstream_errors",
            "Fetches from an upstream archive that failed, by upstream and reason",
            ["upstream", "reason"],
        )
        self.coalesced_waits = Counters(
            "dicomcache_coalesced_waits",
            "Search misses that waited for an identical miss's fetch instead of asking the archive",
            ["namespace"],
        )
        self.stale_serves = Counters(
            "dicomcache_stale_serves",
            "Search answers served stale because the archive failed (stale-if-error)",
            ["namespace"],
        )
        # Waits for the calls answered so far to be counted (``Telemetry.settle``).
        self.settle: Callable[[], bool] = lambda: True
        self.registry.register(
            Collected(
                self.rpc_requests,
                self.rpc_duration,
                self.lookups,
                self.backend_duration,
                self.backend_errors,
                self.upstream_duration,
                self.upstream_errors,
                self.coalesced_waits,
                self.stale_serves,
                settle=lambda: self.settle(),  # the calls answered before a scrape are in it
            )
        )
        self.registry.register(CacheCollector(backend, max_bytes, labels))
        ProcessCollector(registry=self.registry)
        GCCollector(registry=self.registry)

    def rpc(self, method: str, code: str, seconds: float) -> None:
        """Count one call and its duration."""
        self.rpc_requests.inc((method, code))
        self.rpc_duration.observe((method,), seconds)

    def lookup(self, namespace: str, result: str) -> None:
        """Count one lookup of ``namespace`` (a partition or a name) with its result."""
        self.lookups.inc((self.labels(namespace), result))

    def backend_call(self, operation: str, seconds: float, error: str | None) -> None:
        """Count one backend operation, its duration and its failure if any."""
        self.backend_duration.observe((operation,), seconds)
        if error is not None:
            self.backend_errors.inc((operation, error))

    def upstream_fetch(self, upstream: str, seconds: float, reason: str | None) -> None:
        """Count one fetch from ``upstream`` (a configured name), its duration and why it
        failed if it did (an ``UpstreamFailed`` reason, or "internal")."""
        self.upstream_duration.observe((upstream,), seconds)
        if reason is not None:
            self.upstream_errors.inc((upstream, reason))

    def coalesced_wait(self, namespace: str) -> None:
        """Count one miss that waited for another's fetch."""
        self.coalesced_waits.inc((self.labels(namespace),))

    def stale_serve(self, namespace: str) -> None:
        """Count one answer served stale (the archive failed)."""
        self.stale_serves.inc((self.labels(namespace),))


# Namespace groups read per scrape, as one GetStats page: past the label cap they
# are summed under OTHER; past this many (in name order) they are not read at all,
# so a scrape costs the same whatever the number of namespaces.
SCRAPED_GROUPS = 1000


class CacheCollector(Collector):
    """Sizes and counters of the cache, read from the backend at each scrape.

    Reading at scrape time costs nothing on the hot path, and the figures are those
    of ``GetStats`` (with Redis: of the whole shared cache, not of this server).
    Namespaces past the label cap are summed under the OTHER label. A backend that
    cannot answer leaves these metrics out of the scrape and sets
    ``dicomcache_cache_up`` to 0. Thread-safe: the backend is.
    """

    def __init__(self, backend: Backend, max_bytes: int, labels: NamespaceLabels) -> None:
        self.backend = backend
        self.max_bytes = max_bytes
        self.labels = labels

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("dicomcache_cache_up", "1 when the backend answered this scrape")
        try:
            stats = self.backend.stats(None, None, SCRAPED_GROUPS)
        except Exception as exc:  # a scrape must not fail because the cache is down
            log.warning("metrics: the backend did not answer: %s", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        objects = GaugeMetricFamily(
            "dicomcache_cached_objects", "Objects with cached data", labels=["namespace", "level"]
        )
        queries = GaugeMetricFamily(
            "dicomcache_cached_queries", "Query answers cached", labels=["namespace"]
        )
        size = GaugeMetricFamily(
            "dicomcache_cached_bytes", "Bytes of cached data", labels=["namespace"]
        )
        evictions = CounterMetricFamily(
            "dicomcache_evictions",
            "Objects evicted to stay within the memory limit (from zero when a namespace empties)",
            labels=["namespace"],
        )
        expirations = CounterMetricFamily(
            "dicomcache_expirations",
            "Objects dropped when their time to live ran out (from zero when a namespace empties)",
            labels=["namespace"],
        )
        sums: dict[str, list[int]] = defaultdict(lambda: [0] * 7)
        for each in stats.namespaces:
            figures = sums[self.labels(each.namespace)]
            for i, value in enumerate(
                (
                    each.studies,
                    each.series,
                    each.instances,
                    each.queries,
                    each.bytes,
                    each.evictions,
                    each.expirations,
                )
            ):
                figures[i] += value
        for label, (studies, series, instances, count, data, evicted, expired) in sums.items():
            for level, value in (("study", studies), ("series", series), ("instance", instances)):
                objects.add_metric([label, level], value)
            queries.add_metric([label], count)
            size.add_metric([label], data)
            evictions.add_metric([label], evicted)
            expirations.add_metric([label], expired)
        yield from (objects, queries, size, evictions, expirations)
        total = GaugeMetricFamily("dicomcache_memory_bytes", "Bytes of cached data in all")
        total.add_metric([], stats.total_bytes)
        yield total
        limit = GaugeMetricFamily(
            "dicomcache_memory_limit_bytes", "The memory backend's limit (0: none)"
        )
        limit.add_metric([], stats.max_bytes or self.max_bytes)
        yield limit
