"""Prometheus metrics: a real server scraped over HTTP under load, against the calls counted.

The scrape is parsed with ``prometheus_client.parser``; every counter must equal
what the test itself did, exactly (a counter that counted nothing, or twice, fails).
"""

from __future__ import annotations

import logging
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings
from dicomcache.server.telemetry.labels import OTHER
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, query_pb2
from tests.grpc.conftest import RunningServer, start_server
from tests.support.messages import make_study
from tests.support.redis_servers import redis_server

INSTANCE = query_pb2.QUERY_LEVEL_INSTANCE


def scrape(port: int) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of the exposition, by sample name."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return samples


def value(samples, name: str, **labels: str) -> float:
    matching = [v for have, v in samples.get(name, []) if labels.items() <= have.items()]
    assert matching, f"no {name} with {labels}"
    return sum(matching)


@pytest.fixture
def running() -> Iterator[RunningServer]:
    running = start_server(metrics_listen="127.0.0.1:0")
    yield running
    running.channel.close()
    running.server.stop(grace=0)


def lookup(uid: str, namespace: str = "pacs-a") -> pb.LookupStudyRequest:
    return pb.LookupStudyRequest(namespace=namespace, study_uid=uid, query_level=INSTANCE)


def test_a_scrape_under_load_matches_the_calls_made(running: RunningServer):
    studies = [make_study(n, 2, 3) for n in range(1, 6)]
    for study in studies:
        running.stub.StoreStudy(
            pb.StoreStudyRequest(namespace="pacs-a", study=study, query_level=INSTANCE)
        )
    made: Counter[tuple[str, str]] = Counter({("StoreStudy", "OK"): len(studies)})
    results: Counter[str] = Counter()
    lock = threading.Lock()

    def work(seed: int) -> None:
        for i in range(40):
            if i % 10 == 9:  # a bad request now and then
                with pytest.raises(grpc.RpcError):
                    running.stub.LookupStudy(lookup("not a uid"))
                outcome = ("LookupStudy", "INVALID_ARGUMENT")
            else:
                hit = (seed + i) % 3 != 0
                uid = studies[i % len(studies)].uid if hit else f"1.2.3.{seed}.{i}"
                assert running.stub.LookupStudy(lookup(uid)).hit == hit
                outcome = ("LookupStudy", "OK")
                with lock:
                    results["hit" if hit else "miss"] += 1
            with lock:
                made[outcome] += 1

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    running.stub.GetStats(pb.GetStatsRequest(namespace="pacs-a"))
    made[("GetStats", "OK")] += 1

    samples = scrape(running.server.metrics_port)
    for (method, code), count in made.items():
        assert value(samples, "dicomcache_rpc_requests_total", method=method, code=code) == count
    for method in ("StoreStudy", "LookupStudy", "GetStats"):
        calls = sum(n for (m, _), n in made.items() if m == method)
        assert value(samples, "dicomcache_rpc_duration_seconds_count", method=method) == calls
        assert value(samples, "dicomcache_rpc_duration_seconds_sum", method=method) > 0
    for result in ("hit", "miss"):
        counted = value(samples, "dicomcache_lookups_total", namespace="pacs-a", result=result)
        assert counted == results[result]
    lookups = results["hit"] + results["miss"]
    backend = value(samples, "dicomcache_backend_duration_seconds_count", operation="lookup_study")
    assert backend == lookups
    assert (
        value(samples, "dicomcache_backend_duration_seconds_count", operation="lease")
        == (results["miss"])
    )
    assert "dicomcache_backend_errors_total" not in samples

    stats = running.server.backend.stats("pacs-a").namespaces[0]
    assert value(samples, "dicomcache_cached_objects", namespace="pacs-a", level="study") == 5
    assert value(samples, "dicomcache_cached_objects", level="series") == stats.series == 10
    assert value(samples, "dicomcache_cached_objects", level="instance") == stats.instances == 30
    assert value(samples, "dicomcache_cached_bytes", namespace="pacs-a") == stats.bytes > 0
    assert value(samples, "dicomcache_memory_bytes") == stats.bytes
    assert value(samples, "dicomcache_memory_limit_bytes") == 512 * 1024**2
    assert value(samples, "dicomcache_evictions_total", namespace="pacs-a") == 0
    assert value(samples, "dicomcache_cache_up") == 1
    assert value(samples, "process_resident_memory_bytes") > 10 * 1024**2


def test_evictions_and_expirations_are_scraped():
    small = start_server(metrics_listen="127.0.0.1:0", max_memory="20KiB")
    try:
        for n in range(1, 30):
            request = pb.StoreStudyRequest(
                namespace="tiny", study=make_study(n, 1, 3), query_level=INSTANCE
            )
            small.stub.StoreStudy(request)
        for n, ttl in ((100, 5), (101, 5), (102, 0)):  # 0: the server's TTL, 600 s
            request = pb.StoreStudyRequest(
                namespace="aging", study=make_study(n), query_level=INSTANCE, ttl_seconds=ttl
            )
            small.stub.StoreStudy(request)
        small.clock.advance(10)
        while small.server.backend.expire(1000):
            pass
        samples = scrape(small.server.metrics_port)
        stats = {s.namespace: s for s in small.server.backend.stats(None).namespaces}
        evicted = value(samples, "dicomcache_evictions_total", namespace="tiny")
        assert evicted == stats["tiny"].evictions > 0
        expired = value(samples, "dicomcache_expirations_total", namespace="aging")
        assert expired == stats["aging"].expirations == 2
        assert value(samples, "dicomcache_memory_limit_bytes") == 20 * 1024
    finally:
        small.channel.close()
        small.server.stop(grace=0)


def test_namespace_labels_are_capped(running: RunningServer):
    cap = running.server.telemetry.labels.cap
    for n in range(cap + 5):
        running.stub.LookupStudy(lookup(f"1.2.3.{n}", namespace=f"archive-{n:04d}"))
    samples = scrape(running.server.metrics_port)
    labels = {have["namespace"] for have, _ in samples["dicomcache_lookups_total"]}
    assert len(labels) == cap + 1 and OTHER in labels
    assert value(samples, "dicomcache_lookups_total", namespace=OTHER, result="miss") == 5


def test_metrics_are_off_by_default():
    running = start_server()
    try:
        assert running.server.telemetry.metrics is None and running.server.metrics_port == 0
    finally:
        running.channel.close()
        running.server.stop(grace=0)


def test_a_redis_outage_shows_as_backend_errors_and_cache_down():
    with redis_server() as redis:
        settings = Settings(listen="127.0.0.1:0", backend=redis.url, metrics_listen="127.0.0.1:0")
        server = CacheServer(settings).start()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                stub = cache_service_pb2_grpc.CacheServiceStub(channel)
                assert not stub.LookupStudy(lookup("1.2.3.4"), timeout=5).hit
                assert value(scrape(server.metrics_port), "dicomcache_cache_up") == 1
                redis.stop()
                with pytest.raises(grpc.RpcError) as failed:
                    stub.LookupStudy(lookup("1.2.3.4"), timeout=5)
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
                samples = scrape(server.metrics_port)
        finally:
            server.stop(grace=0)
    assert value(samples, "dicomcache_cache_up") == 0
    assert value(samples, "dicomcache_backend_errors_total", operation="lookup_study") == 1
    unavailable = value(
        samples, "dicomcache_rpc_requests_total", method="LookupStudy", code="UNAVAILABLE"
    )
    assert unavailable == 1


def test_debug_logs_one_json_line_per_call_and_info_a_summary(caplog):
    caplog.set_level(logging.INFO, logger="dicomcache.summary")
    caplog.set_level(logging.DEBUG, logger="dicomcache.calls")  # last: the handler's level
    running = start_server(log_summary_interval=0.05)
    try:
        study = make_study(1, 1, 1, patient="Secretname^Jane")
        running.stub.StoreStudy(
            pb.StoreStudyRequest(namespace="ns", study=study, query_level=INSTANCE)
        )
        running.stub.LookupStudy(lookup(study.uid, namespace="ns"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(
            "2 calls" in r.getMessage() for r in caplog.records if r.name == "dicomcache.summary"
        ):
            time.sleep(0.05)
    finally:
        running.channel.close()
        running.server.stop(grace=0)
    calls = [r.getMessage() for r in caplog.records if r.name == "dicomcache.calls"]
    assert len(calls) == 2
    assert '"method": "StoreStudy"' in calls[0] and '"code": "OK"' in calls[0]
    summaries = [r.getMessage() for r in caplog.records if r.name == "dicomcache.summary"]
    assert any("2 calls" in s and "1 lookups, hit ratio 1.000" in s for s in summaries)
    for record in caplog.records:
        assert "Secretname" not in record.getMessage() and study.uid not in record.getMessage()


def test_an_unsampled_callers_lookups_are_counted_as_any_others():
    """A server with a tracer counts the study lookups of a caller that did not sample
    (their request's traceparent says so) as it counts anyone's, and makes no span:
    each call, its backend operation and its lookup's result, hits and misses, unary
    and streamed."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    settings = Settings(listen="127.0.0.1:0", metrics_listen="127.0.0.1:0")
    server = CacheServer(settings, tracer_provider=provider).start()
    unsampled = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    study_level = query_pb2.QUERY_LEVEL_STUDY
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = cache_service_pb2_grpc.CacheServiceStub(channel)
            study = make_study(1, 1, 2)
            store = pb.StoreStudyRequest(namespace="pacs-a", study=study, query_level=INSTANCE)
            assert stub.StoreStudy(store).stored
            stored_spans = len(exporter.get_finished_spans())  # its caller sent no context
            for uid in (study.uid, "1.2.404"):
                request = pb.LookupStudyRequest(
                    namespace="pacs-a", study_uid=uid, query_level=study_level
                )
                request.traceparent = unsampled
                for _ in range(3):
                    stub.LookupStudy(request)
            streamed = pb.StreamLookupStudyRequest(request=lookup(study.uid))
            streamed.request.traceparent = unsampled
            for _ in range(2):
                list(stub.StreamLookupStudy(streamed))
        samples = scrape(server.metrics_port)
        assert value(samples, "dicomcache_lookups_total", namespace="pacs-a", result="hit") == 5
        assert value(samples, "dicomcache_lookups_total", namespace="pacs-a", result="miss") == 3
        operation = "lookup_study"
        assert value(samples, "dicomcache_backend_duration_seconds_count", operation=operation) == 8
        assert value(samples, "dicomcache_rpc_requests_total", method="LookupStudy") == 6
        assert value(samples, "dicomcache_rpc_requests_total", method="StreamLookupStudy") == 2
        assert len(exporter.get_finished_spans()) == stored_spans
    finally:
        server.stop(grace=0)
