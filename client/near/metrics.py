"""The near caches' counters as Prometheus metrics, read when scraped (nothing per hit)."""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

from dicomcache.client.near.cache import NearCache

_collectors: weakref.WeakKeyDictionary[Any, _NearCollector] = weakref.WeakKeyDictionary()
_lock = threading.Lock()

_COUNTERS = {
    "hits": "Searches answered from the near cache",
    "misses": "Searches the near cache could not answer (then asked the cache server)",
    "invalidations": "Invalidation messages of the near cache's namespace and protocol",
    "flushes": "Times the near cache dropped everything: out of sync with the server",
}


class _NearCollector:
    """Collects every registered near cache, by namespace. Thread-safe."""

    def __init__(self) -> None:
        self._caches: weakref.WeakSet[NearCache] = weakref.WeakSet()

    def add(self, near: NearCache) -> None:
        self._caches.add(near)

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counts = [(near.namespace, near.counts()) for near in list(self._caches)]
        for name, help_text in _COUNTERS.items():
            family = CounterMetricFamily(
                f"dicomcache_client_near_{name}", help_text, labels=["namespace"]
            )
            for namespace, c in counts:
                family.add_metric([namespace], getattr(c, name))
            yield family
        sizes = GaugeMetricFamily(
            "dicomcache_client_near_bytes",
            "Bytes the near cache accounts its entries at (see NearCache)",
            labels=["namespace"],
        )
        synced = GaugeMetricFamily(
            "dicomcache_client_near_in_sync",
            "1 while the near cache is in sync with the server and may serve",
            labels=["namespace"],
        )
        for namespace, c in counts:
            sizes.add_metric([namespace], c.bytes)
            synced.add_metric([namespace], int(c.in_sync))
        yield sizes
        yield synced


def register(registry: Any, near: NearCache) -> None:
    """Count ``near`` in ``registry`` (a prometheus_client CollectorRegistry)."""
    with _lock:
        collector = _collectors.get(registry)
        if collector is None:
            collector = _collectors[registry] = _NearCollector()
            registry.register(collector)
    collector.add(near)
