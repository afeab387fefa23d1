"""Counter and histogram series kept as plain numbers, read as Prometheus metrics at scrape.

Both sides count with these: the server its calls and backend operations
(``server/telemetry/metrics.py``), ``CachedSearcher`` its searches
(``client/metrics.py``). prometheus_client's own per-call path (a labelled child,
its checks, its value object, its lock, the bucket loop in Python) cost a hit tens
of microseconds on a busy 2-core machine, where that code is not in the CPU's
caches between calls; it costs a few in a warm loop. Here a series is one small
object (``Count``, ``Timing``) that a caller may fetch once: a count is one lock
and one addition, a timing one bisect, one lock and two additions. Nothing else
runs until a scrape asks. The exposition is prometheus_client's own (``_total``
and ``_created``; ``_bucket``, ``_count``, ``_sum`` and ``_created``), and a
series appears when first fetched, as a labelled child does. prometheus_client is
imported only at scrape.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from prometheus_client.core import Metric


class Count:
    """One counter series: a value and when it was made. Thread-safe (its own lock)."""

    __slots__ = ("_lock", "created", "value")

    def __init__(self, created: float) -> None:
        self.value = 0.0
        self.created = created
        self._lock = threading.Lock()

    def inc(self, amount: float = 1.0) -> None:
        """Add ``amount``."""
        with self._lock:
            self.value += amount

    def read(self) -> float:
        """The value now."""
        with self._lock:
            return self.value

    add = inc  # what a held record (series, label, value) is counted with, as ``Timing``'s


class Timing:
    """One histogram series: a count per bucket and a sum. Thread-safe (its own lock)."""

    __slots__ = ("_bounds", "_counts", "_lock", "_sum", "created")

    def __init__(self, bounds: tuple[float, ...], created: float) -> None:
        self._bounds = bounds  # +Inf is implied: the last count
        self._counts = [0] * (len(bounds) + 1)
        self._sum = 0.0
        self.created = created
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count ``value`` in the first bucket whose bound it is <= to, as prometheus_client."""
        index = bisect.bisect_left(self._bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    add = observe  # as ``Count.add``

    def read(self) -> tuple[list[int], float]:
        """The count in each bucket (not cumulative, +Inf last) and the sum, together."""
        with self._lock:
            return list(self._counts), self._sum


S = TypeVar("S", Count, Timing)


class Family(Generic[S]):
    """One family's series by label values. Thread-safe: series are made under one lock.

    Clock: ``created`` (wall-clock seconds, as prometheus_client's ``_created``).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        created: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._created = created
        self._lock = threading.Lock()
        self._series: dict[tuple[str, ...], S] = {}

    def series(self, labels: tuple[str, ...]) -> S:
        """The series of ``labels`` (one value per label name), made on first use."""
        found = self._series.get(labels)
        if found is None:
            if len(labels) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {labels}")
            with self._lock:
                found = self._series.get(labels)
                if found is None:
                    found = self._series[labels] = self._make(self._created())
        return found

    def _make(self, created: float) -> S:
        raise NotImplementedError

    def _all(self) -> list[tuple[tuple[str, ...], S]]:
        with self._lock:
            return list(self._series.items())


class Counters(Family[Count]):
    """A counter family (``name`` without ``_total``)."""

    def _make(self, created: float) -> Count:
        return Count(created)

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to the series of ``labels``."""
        self.series(labels).inc(amount)

    def collect(self) -> Metric:
        """The family as it is now."""
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, count in self._all():
            family.add_metric(labels, count.read(), created=count.created)
        return family


class Histograms(Family[Timing]):
    """A histogram family with the bucket bounds ``buckets`` (+Inf implied)."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        created: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(name, documentation, labelnames, created)
        self.bounds = tuple(float(bound) for bound in buckets)

    def _make(self, created: float) -> Timing:
        return Timing(self.bounds, created)

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Count ``value`` in the series of ``labels``."""
        self.series(labels).observe(value)

    def collect(self) -> Metric:
        """The family as it is now (cumulative buckets, as the exposition has them)."""
        from prometheus_client.core import HistogramMetricFamily
        from prometheus_client.samples import Sample
        from prometheus_client.utils import floatToGoString

        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        written: Callable[[float], str] = floatToGoString  # as prometheus_client writes "le"
        bounds = [written(bound) for bound in (*self.bounds, float("inf"))]
        for labels, timing in self._all():
            counts, total = timing.read()
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, total)
            named = dict(zip(self.labelnames, labels, strict=True))
            family.samples.append(Sample(f"{self.name}_created", named, timing.created))
        return family


class Collected:
    """Tallied families as one collector for a prometheus_client registry, in order.

    ``settle`` runs before each scrape's collection (the server waits there for the
    calls it answered to be counted). Registering claims the families' names.
    """

    def __init__(
        self, *families: Counters | Histograms, settle: Callable[[], object] = lambda: None
    ) -> None:
        self._families = families
        self._settle = settle

    def describe(self) -> Iterator[Metric]:
        """The families without series: their names are claimed in the registry."""
        for family in self._families:
            metric = family.collect()
            metric.samples = []
            yield metric

    def collect(self) -> Iterator[Metric]:
        self._settle()
        for family in self._families:
            yield family.collect()
