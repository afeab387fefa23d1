"""Tallies expose exactly what prometheus_client's own Counter and Histogram would."""

from __future__ import annotations

import re
import threading

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.registry import Collector

from dicomcache.tallies import Counters, Histograms

BUCKETS = (0.0002, 0.0005, 0.001, 2.5, 10.0)
VALUES = (0.0001, 0.0002, 0.0003, 0.001, 0.01, 20.0)  # on a bound, between, past the last


class Families(Collector):
    def __init__(self, *families: Counters | Histograms) -> None:
        self.families = families

    def collect(self):
        for family in self.families:
            yield family.collect()


def exposed(registry: CollectorRegistry) -> str:
    """The text exposition, creation times left out (they are wall-clock readings)."""
    return re.sub(r"(_created\{[^}]*\}) \S+", r"\1 T", generate_latest(registry).decode())


def test_the_exposition_is_prometheus_clients_own():
    theirs = CollectorRegistry()
    calls = Counter("x_calls", "Calls", ["method", "code"], registry=theirs)
    seconds = Histogram("x_seconds", "Seconds", ["method"], buckets=BUCKETS, registry=theirs)
    ours = CollectorRegistry()
    counted = Counters("x_calls", "Calls", ["method", "code"])
    timed = Histograms("x_seconds", "Seconds", ["method"], BUCKETS)
    ours.register(Families(counted, timed))
    for method, code in (("Lookup", "OK"), ("Lookup", "OK"), ("Store", "INTERNAL")):
        calls.labels(method, code).inc()
        counted.inc((method, code))
    for value in VALUES:
        seconds.labels("Lookup").observe(value)
        timed.observe(("Lookup",), value)
    assert exposed(ours) == exposed(theirs)
    assert 'x_seconds_bucket{le="0.0002",method="Lookup"} 2.0' in exposed(ours)


def test_counts_from_many_threads_are_all_kept():
    counted = Counters("x_calls", "Calls", ["method"])
    timed = Histograms("x_seconds", "Seconds", ["method"], BUCKETS)

    def count() -> None:
        for _ in range(2000):
            counted.inc(("Lookup",))
            timed.observe(("Lookup",), 0.0003)

    threads = [threading.Thread(target=count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (total,) = [s.value for s in counted.collect().samples if s.name == "x_calls_total"]
    (many,) = [s.value for s in timed.collect().samples if s.name == "x_seconds_count"]
    assert total == many == 8000
