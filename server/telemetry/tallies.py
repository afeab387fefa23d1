"""Counters and histograms counted as plain numbers, read as Prometheus metrics at scrape.

prometheus_client's own metrics cost a counted call four or five Python calls
each (a labelled child, its check, its value, its lock); on a busy 2-core machine
that code is not in the CPU's caches between calls, and the server's metrics took
about 45 us of a hit there (rows 13a/13b). A family here is one dict and one lock:
one call per count, and nothing else runs until a scrape asks. The exposition is
prometheus_client's own (``_total`` and ``_created``; ``_bucket``, ``_count``,
``_sum`` and ``_created``).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString


def _go_float(value: float) -> str:
    """A bucket bound as the exposition writes it (prometheus_client's own formatting)."""
    return str(floatToGoString(value))  # type: ignore[no-untyped-call]  # untyped upstream


class Counters:
    """One counter family: a value per label values. Thread-safe (one lock).

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
        self._cells: dict[tuple[str, ...], list[float]] = {}  # labels -> [value, created]

    def inc(self, labels: tuple[str, ...], amount: float = 1.0) -> None:
        """Add ``amount`` to the series of ``labels`` (one value per label name)."""
        with self._lock:
            cell = self._cells.get(labels)
            if cell is None:
                cell = self._cells[labels] = [0.0, self._created()]
            cell[0] += amount

    def collect(self) -> Metric:
        """The family as it is now."""
        with self._lock:
            cells = [(labels, value, created) for labels, (value, created) in self._cells.items()]
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for labels, value, created in cells:
            family.add_metric(labels, value, created=created)
        return family


class Histograms:
    """One histogram family: bucket counts and a sum per label values. Thread-safe (one lock).

    Clock: ``created`` (wall-clock seconds, as prometheus_client's ``_created``).
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        buckets: Sequence[float],
        created: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(float(bound) for bound in buckets)  # +Inf is implied
        self._created = created
        self._lock = threading.Lock()
        # labels -> [count in each bucket (the last is +Inf), sum, created]
        self._cells: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        """Count ``value`` in the series of ``labels``: in the first bucket it is <= to."""
        index = bisect.bisect_left(self.bounds, value)
        with self._lock:
            cell = self._cells.get(labels)
            if cell is None:
                cell = self._cells[labels] = [0] * (len(self.bounds) + 1) + [0.0, self._created()]
            cell[index] += 1
            cell[-2] += value

    def collect(self) -> Metric:
        """The family as it is now (cumulative buckets, as the exposition has them)."""
        with self._lock:
            cells = [(labels, list(cell)) for labels, cell in self._cells.items()]
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [*(_go_float(bound) for bound in self.bounds), "+Inf"]
        for labels, cell in cells:
            counts, total, created = cell[:-2], cell[-2], cell[-1]
            cumulative, buckets = 0.0, []
            for bound, count in zip(bounds, counts, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, total)
            named = dict(zip(self.labelnames, labels, strict=True))
            family.samples.append(Sample(f"{self.name}_created", named, created))
        return family
