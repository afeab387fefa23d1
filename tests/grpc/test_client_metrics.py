"""CachedSearcher's own metrics in the app's registry: hits, misses, fallbacks, the breaker."""

from __future__ import annotations

import gc

from dicomtrolley.core import Query, QueryLevels
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dicomcache.client import CachedSearcher
from dicomcache.client.convert.objects import study_from_proto
from tests.grpc.conftest import start_server
from tests.grpc.test_searcher import FakeArchive
from tests.support.messages import make_study


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_hits_misses_fallbacks_and_the_breaker_are_counted():
    running = start_server()
    registry = CollectorRegistry()
    study = study_from_proto(make_study(4, 1, 2))
    archive = FakeArchive([study])
    searcher = CachedSearcher(
        archive,
        running.target,
        "pacs-a",
        timeout=5,
        failure_threshold=2,
        metrics=registry,
        protocol="qido-rs",
    )
    query = Query(StudyInstanceUID=study.uid, query_level=QueryLevels.STUDY)
    ns = ("namespace", "pacs-a")
    try:
        searcher.find_studies(query)  # miss, then stored
        searcher.find_studies(query)  # hit
        searcher.find_studies(query)  # hit
        got = samples(registry)
        assert got[("dicomcache_client_lookups_total", (ns, ("result", "hit")))] == 2
        assert got[("dicomcache_client_lookups_total", (ns, ("result", "miss")))] == 1
        lookup_count = ("dicomcache_client_cache_seconds_count", (ns, ("operation", "lookup")))
        assert got[lookup_count] == 3
        store_count = ("dicomcache_client_cache_seconds_count", (ns, ("operation", "store")))
        assert got[store_count] == 1
        assert got[("dicomcache_client_breaker_open", (("gate", "all"), ns))] == 0
    finally:
        running.channel.close()
        running.server.stop(grace=0)

    for _ in range(4):  # the cache is gone: two failures open the breaker, two skip it
        assert [s.uid for s in searcher.find_studies(query)] == [study.uid]
    got = samples(registry)
    fallback = "dicomcache_client_fallbacks_total"
    assert got[(fallback, (ns, ("reason", "unavailable")))] == 2
    assert got[(fallback, (ns, ("reason", "breaker_open")))] == 2
    assert got[("dicomcache_client_lookups_total", (ns, ("result", "skipped")))] == 4
    assert got[("dicomcache_client_breaker_open", (("gate", "all"), ns))] == 1
    assert archive.calls == 5


def test_two_searchers_share_one_registry():
    registry = CollectorRegistry()
    searchers = [
        CachedSearcher(FakeArchive([]), "127.0.0.1:1", ns, metrics=registry, protocol="qido-rs")
        for ns in ("pacs-a", "pacs-b")
    ]
    gates = {labels for name, labels in samples(registry) if "breaker_open" in name}
    assert len(gates) == 4  # two searchers, two gates each
    del searchers  # a searcher's breakers leave with it
    gc.collect()
    assert not {labels for name, labels in samples(registry) if "breaker_open" in name}
