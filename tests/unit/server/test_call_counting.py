"""A call's counts are taken after its response has gone, and a scrape has them.

The server's metrics of a call (its RPC count and duration, its lookups, its backend
operations) are counted in one go after the call is over, so the caller does not
wait for them (issue 14): a call is held, and one callback gRPC runs once a call is
over counts every ``HELD_CALLS`` calls held; a scrape counts the rest first. A call
with its request log line (DEBUG) has a callback of its own, and a scrape waits for
it. These tests stand in for gRPC's context with one that keeps the callbacks until
told to run them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.errors import BackendUnavailable, InvalidArgument
from dicomcache.server.model import Level
from dicomcache.server.telemetry import Telemetry
from dicomcache.server.telemetry.calls import HELD_CALLS, Counted
from dicomcache.server.telemetry.labels import NamespaceLabels
from dicomcache.server.telemetry.metrics import Metrics


class HeldContext:
    """A call's context whose callbacks run only when ``finish`` is called."""

    def __init__(self, terminated: bool = False) -> None:
        self.callbacks: list[Callable[[], None]] = []
        self.terminated = terminated

    def add_callback(self, callback: Callable[[], None]) -> bool:
        if self.terminated:
            return False
        self.callbacks.append(callback)
        return True

    def invocation_metadata(self) -> tuple:
        return ()

    def finish(self) -> None:
        for callback in self.callbacks:
            callback()


def scraped(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def served() -> tuple[Telemetry, Metrics, object]:
    backend = MemoryBackend(ttl=60, negative_ttl=60, max_bytes=2**20)
    labels = NamespaceLabels()
    metrics = Metrics(backend, 0, labels)
    telemetry = Telemetry(metrics, None, labels)
    return telemetry, metrics, telemetry.backend(backend)


def lookups(samples: dict, result: str = "miss") -> float:
    key = ("dicomcache_lookups_total", (("namespace", "ns"), ("result", result)))
    return samples.get(key, 0.0)


def requests(samples: dict) -> float:
    key = ("dicomcache_rpc_requests_total", (("code", "OK"), ("method", "LookupStudy")))
    return samples.get(key, 0.0)


def test_a_calls_counts_wait_for_its_end_and_a_scrape_waits_for_them(caplog):
    """With its request log line: a callback of its own, which a scrape waits for."""
    caplog.set_level(logging.DEBUG, logger="dicomcache.calls")
    telemetry, metrics, backend = served()
    context = HeldContext()
    with telemetry.call("LookupStudy", context):
        assert backend.lookup_study("ns", "1.2.3", Level.STUDY) is None
    assert len(context.callbacks) == 1
    assert not telemetry.settle(timeout=0.01)  # answered, not yet counted
    assert telemetry.lookups.misses == 1  # the summary's counts are taken at once
    context.finish()
    assert telemetry.settle(timeout=0.01)
    samples = scraped(metrics)
    assert requests(samples) == 1
    assert lookups(samples) == 1
    operation = (("operation", "lookup_study"),)
    assert samples[("dicomcache_backend_duration_seconds_count", operation)] == 1


def test_a_calls_counts_are_held_and_the_next_scrape_has_them():
    telemetry, metrics, backend = served()
    context = HeldContext()
    with telemetry.call("LookupStudy", context):
        assert backend.lookup_study("ns", "1.2.3", Level.STUDY) is None
    assert context.callbacks == []  # nothing registered, nothing counted on its path
    assert metrics.rpc_requests.collect().samples == []  # counted by no one yet
    samples = scraped(metrics)
    assert requests(samples) == 1 and lookups(samples) == 1
    assert "1 calls" in telemetry.summary()


def test_every_held_calls_one_callback_counts_them():
    telemetry, metrics, backend = served()
    context = HeldContext()
    for _ in range(HELD_CALLS):
        with telemetry.call("LookupStudy", context):
            backend.lookup_study("ns", "1.2.3", Level.STUDY)
    assert len(context.callbacks) == 1  # the call that filled the batch asked for it
    assert metrics.rpc_requests.collect().samples == []
    context.finish()
    assert metrics.rpc_requests.series(("LookupStudy", "OK")).read() == HELD_CALLS
    assert metrics.lookups.series(("ns", "miss")).read() == HELD_CALLS


def test_a_call_over_already_is_counted_at_once():
    telemetry, metrics, backend = served()
    with telemetry.call("LookupStudy", HeldContext(terminated=True)):
        backend.lookup_study("ns", "1.2.3", Level.STUDY)
    samples = scraped(metrics)
    assert requests(samples) == 1 and lookups(samples) == 1


def test_backend_work_outside_a_call_is_counted_at_once():
    _, metrics, backend = served()
    backend.lookup_study("ns", "1.2.3", Level.STUDY)
    assert lookups(scraped(metrics)) == 1


def test_with_nothing_watching_a_call_is_only_counted_for_the_summary():
    telemetry = Telemetry()
    with telemetry.call("LookupStudy", HeldContext()) as seen:
        seen.begin()
    with pytest.raises(BackendUnavailable), telemetry.call("LookupStudy", HeldContext()):
        raise BackendUnavailable("storage down")
    with pytest.raises(InvalidArgument), telemetry.call("LookupStudy", HeldContext()):
        raise InvalidArgument.single("namespace", "must be set")  # the caller's, not an error
    assert isinstance(seen, Counted)
    assert (telemetry.calls, telemetry.errors) == (3, 1)
    summary = telemetry.summary()
    assert "3 calls" in summary and "1 errors" in summary
