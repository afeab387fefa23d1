"""A search's client metrics are held as records and counted a batch at a time: by a
scrape first, or by the searching thread once ``HELD_RECORDS`` are held (issue 14,
row 13b). Counts stay exact."""

from __future__ import annotations

import sys
import threading

from dicomtrolley.core import QueryLevels
from prometheus_client import CollectorRegistry

from dicomcache.client import CachedSearcher
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.metrics import HELD_RECORDS, ClientMetrics
from tests.grpc.conftest import start_server
from tests.grpc.test_searcher import FakeArchive
from tests.support.messages import make_study

NS = {"namespace": "pacs-a"}


def test_a_search_is_counted_by_the_next_scrape_not_at_once():
    running = start_server()
    registry = CollectorRegistry()
    study = study_from_proto(make_study(4, 1, 2))
    searcher = CachedSearcher(
        FakeArchive([study]), running.target, "pacs-a", timeout=5, metrics=registry
    )
    shared = ClientMetrics.of(registry)
    try:
        for _ in range(3):  # a miss, then stored; two hits
            searcher.find_study_by_id(study.uid, QueryLevels.STUDY)
        # Nothing counted yet: no series made, seven records held (three lookups'
        # times, the store's, three results).
        assert not shared.lookups._all() and not shared.cache_seconds._all()
        assert len(shared.held) == 7
        value = registry.get_sample_value
        assert value("dicomcache_client_lookups_total", {**NS, "result": "hit"}) == 2
        assert value("dicomcache_client_lookups_total", {**NS, "result": "miss"}) == 1
        timed = {**NS, "operation": "lookup"}
        assert value("dicomcache_client_cache_seconds_count", timed) == 3
        assert value("dicomcache_client_cache_seconds_count", {**NS, "operation": "store"}) == 1
        assert not shared.held
    finally:
        running.channel.close()
        running.server.stop(grace=0)


def test_searches_from_threads_are_counted_exactly_and_in_batches():
    """Held records never pile up past a batch between scrapes, and none is lost when
    threads append and count at once."""
    running = start_server()
    registry = CollectorRegistry()
    study = study_from_proto(make_study(5, 1, 2))
    searchers = [
        CachedSearcher(FakeArchive([study]), running.target, "pacs-a", timeout=5, metrics=registry)
        for _ in range(4)
    ]
    searchers[0].find_study_by_id(study.uid, QueryLevels.STUDY)  # the miss that stores
    shared = ClientMetrics.of(registry)
    rounds = HELD_RECORDS // 2  # 4 threads, 2 records a hit: 4 batches at least
    start = threading.Barrier(len(searchers))
    most: list[int] = []

    def search(searcher: CachedSearcher) -> None:
        start.wait()
        for _ in range(rounds):
            searcher.find_study_by_id(study.uid, QueryLevels.STUDY)
            most.append(len(shared.held))

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=search, args=(s,)) for s in searchers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
        running.channel.close()
        running.server.stop(grace=0)
    assert max(most) < HELD_RECORDS + 2 * len(searchers)  # counted by the searching threads
    value = registry.get_sample_value
    hits = len(searchers) * rounds
    assert value("dicomcache_client_lookups_total", {**NS, "result": "hit"}) == hits
    timed = {**NS, "operation": "lookup"}
    assert value("dicomcache_client_cache_seconds_count", timed) == hits + 1
