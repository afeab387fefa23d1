"""The client's tallied metrics: prometheus_client's exposition, exact counts from threads."""

from __future__ import annotations

import sys
import threading

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dicomcache.client.breaker import Breaker
from dicomcache.client.metrics import LATENCY_BUCKETS, ClientMetrics
from dicomcache.tallies import Counters, Histograms

# Values on and between the bounds, past the last, zero and negative.
OBSERVED = [0.0, -1.0, 0.0005, 0.0007, 0.001, 0.003, 0.25, 0.26, 4.9, 5.0, 7.5, 1e9]


class Tallied:
    """The tallied families as one collector (as ClientMetrics registers them)."""

    def __init__(self, *families: Counters | Histograms) -> None:
        self.families = families

    def collect(self):
        return [family.collect() for family in self.families]


def exposition(registry: CollectorRegistry) -> tuple[str, list[tuple[str, str, str, list]]]:
    """The text, and each family parsed: name, help, type and samples (``_created`` values out)."""
    text = generate_latest(registry).decode()
    parsed = [
        (
            family.name,
            family.documentation,
            family.type,
            [
                (s.name, s.labels, None if s.name.endswith("_created") else s.value)
                for s in family.samples
            ],
        )
        for family in text_string_to_metric_families(text)
    ]
    return text, parsed


def without_created(text: str) -> list[str]:
    return [line for line in text.splitlines() if "_created{" not in line]


def test_the_exposition_is_prometheus_clients_own():
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    doc, buckets = "Seconds of something", LATENCY_BUCKETS
    their_count = Counter("c_things", doc, ["namespace", "result"], registry=theirs)
    their_time = Histogram("c_seconds", doc, ["namespace", "op"], buckets=buckets, registry=theirs)
    made = 1_700_000_000.25
    our_count = Counters("c_things", doc, ["namespace", "result"], created=lambda: made)
    our_time = Histograms("c_seconds", doc, ["namespace", "op"], buckets, created=lambda: made)
    ours.register(Tallied(our_count, our_time))
    for namespace in ("pacs-a", "pacs-b"):
        for result, times in (("hit", 3), ("miss", 1)):
            for _ in range(times):
                their_count.labels(namespace, result).inc()
                our_count.series((namespace, result)).inc()
        for value in OBSERVED:
            their_time.labels(namespace, "lookup").observe(value)
            our_time.series((namespace, "lookup")).observe(value)
    their_time.labels("pacs-a", "store")  # made and not observed: shown with zeros
    our_time.series(("pacs-a", "store"))

    their_text, their_parsed = exposition(theirs)
    our_text, our_parsed = exposition(ours)
    assert our_parsed == their_parsed
    assert without_created(our_text) == without_created(their_text)
    created = [line for line in our_text.splitlines() if "_created{" in line]
    assert len(created) == 4 + 3 and all(line.endswith(" 1.70000000025e+09") for line in created)


def test_client_metrics_show_the_same_families_as_before():
    """Names, help, types and labels as the prometheus_client metrics ClientMetrics had."""
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    shared = ClientMetrics.of(ours)
    one = shared.searcher("pacs-a", {"all": Breaker()})
    counter_help = {
        "dicomcache_client_lookups": shared.lookups.documentation,
        "dicomcache_client_fallbacks": shared.fallbacks.documentation,
    }
    lookups, fallbacks = (
        Counter(name, help_text, ["namespace", second], registry=theirs)
        for (name, help_text), second in zip(
            counter_help.items(), ("result", "reason"), strict=True
        )
    )
    seconds = Histogram(
        "dicomcache_client_cache_seconds",
        shared.cache_seconds.documentation,
        ["namespace", "operation"],
        buckets=LATENCY_BUCKETS,
        registry=theirs,
    )
    one.lookups["hit"].inc()
    lookups.labels("pacs-a", "hit").inc()
    one.fallbacks["unavailable"].inc()
    fallbacks.labels("pacs-a", "unavailable").inc()
    one.cache_seconds["lookup"].observe(0.0009)
    seconds.labels("pacs-a", "lookup").observe(0.0009)
    _, our_parsed = exposition(ours)
    _, their_parsed = exposition(theirs)
    breaker = "dicomcache_client_breaker_open"
    assert [family for family in our_parsed if family[0] != breaker] == their_parsed
    assert [family[0] for family in our_parsed].count(breaker) == 1


def test_their_names_are_claimed_in_the_registry():
    registry = CollectorRegistry()
    Counter("dicomcache_client_lookups", "an app's own", registry=registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        ClientMetrics(registry)


def test_counts_from_threads_are_exact():
    """Threads that count at once, each through a searcher's series of its own.

    Each trial starts on a fresh registry, so its threads also make the series at
    once (made twice, one thread's counts would go to a series no scrape sees).
    """
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for _ in range(20):
            counted_exactly(threads=8, rounds=500)
    finally:
        sys.setswitchinterval(previous)


def counted_exactly(threads: int, rounds: int) -> None:
    registry = CollectorRegistry()
    start = threading.Barrier(threads)

    def count() -> None:
        mine = ClientMetrics.of(registry).searcher("pacs-a", {})
        start.wait()
        for _ in range(rounds):
            mine.lookups["hit"].inc()
            mine.cache_seconds["lookup"].observe(0.5)  # exact in binary: the sum is exact

    workers = [threading.Thread(target=count) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    ns = {"namespace": "pacs-a"}
    total = threads * rounds
    value = registry.get_sample_value
    assert value("dicomcache_client_lookups_total", {**ns, "result": "hit"}) == total
    timed = {**ns, "operation": "lookup"}
    assert value("dicomcache_client_cache_seconds_count", timed) == total
    assert value("dicomcache_client_cache_seconds_sum", timed) == total * 0.5
    assert value("dicomcache_client_cache_seconds_bucket", {**timed, "le": "0.25"}) == 0
    assert value("dicomcache_client_cache_seconds_bucket", {**timed, "le": "0.5"}) == total
