"""CachedSearcher against a real server, with a counting upstream (the archive is e2e's job)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest
from dicomtrolley.core import (
    InstanceReference,
    Query,
    QueryLevels,
    Searcher,
    Study,
    StudyReference,
)
from dicomtrolley.exceptions import DICOMTrolleyError

from dicomcache.client import CacheClient, CachedSearcher
from dicomcache.client.breaker import State
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings
from tests.support.clock import FakeClock
from tests.support.messages import make_study
from tests.support.recovery import wait_until_cache_used


class FakeArchive(Searcher):
    """An upstream that answers from a fixed set of studies and counts its calls."""

    def __init__(self, studies: Sequence[Study]) -> None:
        self.studies = {s.uid: s for s in studies}
        self.calls = 0
        self.fail_with: Exception | None = None
        self._lock = threading.Lock()

    def find_studies(self, query: Query) -> Sequence[Study]:
        with self._lock:
            self.calls += 1
        if self.fail_with:
            raise self.fail_with
        if query.StudyInstanceUID:
            return [s for uid, s in self.studies.items() if uid == query.StudyInstanceUID]
        return [s for s in self.studies.values() if s.data.PatientID == query.PatientID]


def archive() -> FakeArchive:
    return FakeArchive([study_from_proto(make_study(n, 2, 3)) for n in (1, 2)])


def json_of(studies: Sequence[Study]) -> list:
    return [
        (
            s.uid,
            s.data.to_json_dict(),
            [(x.uid, [i.data.to_json_dict() for i in x.instances]) for x in s.series],
        )
        for s in studies
    ]


@pytest.fixture
def searcher(running):
    upstream = archive()
    searcher = CachedSearcher(upstream, target=running.target, namespace="pacs-a", timeout=5)
    yield searcher
    searcher.client.close()


def test_miss_then_hit_returns_equal_objects_without_the_upstream(searcher):
    query = Query(PatientID="PAT1", query_level=QueryLevels.INSTANCE)
    first = searcher.find_studies(query)
    second = searcher.find_studies(query)
    assert searcher.upstream.calls == 1
    assert json_of(second) == json_of(first)
    study = second[0]
    assert study.series[0].parent is study
    assert study.series[0].instances[0].parent is study.series[0]


def test_find_study_by_id_is_cached_as_a_complete_listing(searcher):
    uid = make_study(2).uid
    first = searcher.find_study_by_id(uid, QueryLevels.INSTANCE)
    again = searcher.find_study_by_id(uid, QueryLevels.SERIES)
    assert searcher.upstream.calls == 1
    assert [s.uid for s in again.series] == [s.uid for s in first.series]
    assert all(not s.instances for s in again.series)


def test_query_answers_do_not_answer_study_by_id(searcher):
    searcher.find_studies(Query(PatientID="PAT1", query_level=QueryLevels.INSTANCE))
    searcher.find_study_by_id(make_study(1).uid, QueryLevels.INSTANCE)
    assert searcher.upstream.calls == 2


def test_upstream_errors_pass_through_unchanged_and_are_not_cached(searcher):
    error = DICOMTrolleyError("archive says no")
    searcher.upstream.fail_with = error
    query = Query(PatientID="PAT1")
    with pytest.raises(DICOMTrolleyError) as caught:
        searcher.find_studies(query)
    assert caught.value is error
    searcher.upstream.fail_with = None
    assert searcher.find_studies(query)
    assert searcher.upstream.calls == 2


def test_find_study_raises_like_dicomtrolley_for_no_result(searcher):
    with pytest.raises(DICOMTrolleyError):
        searcher.find_study(Query(PatientID="nobody"))


def test_dead_cache_falls_back_then_skips_then_resumes_by_itself():
    clock = FakeClock()
    settings = Settings(listen="127.0.0.1:0")
    server = CacheServer(settings).start()
    port = server.port
    upstream = archive()
    searcher = CachedSearcher(
        upstream,
        target=f"127.0.0.1:{port}",
        namespace="pacs-a",
        failure_threshold=2,
        backoff=30,
        clock=clock,
    )
    query = Query(PatientID="PAT2", query_level=QueryLevels.SERIES)
    expected = json_of(searcher.find_studies(query))
    server.stop(grace=0)

    for _ in range(5):
        assert json_of(searcher.find_studies(query)) == expected
    assert upstream.calls == 6
    assert searcher.breaker.state is State.OPEN

    server = CacheServer(Settings(listen=f"127.0.0.1:{port}")).start()
    try:
        # The trial finds an empty cache: a miss, then stored.
        wait_until_cache_used(searcher, clock, lambda: searcher.find_studies(query))
        calls = upstream.calls
        assert json_of(searcher.find_studies(query)) == expected
        assert upstream.calls == calls, "hits resumed"
    finally:
        searcher.client.close()
        server.stop(grace=0)


def test_a_request_the_cache_rejects_still_gets_the_upstreams_answer(searcher):
    query = Query(PatientID="PAT1" + " " * 2000)  # over the server's 1024-character bound
    assert searcher.find_studies(query) == []
    assert searcher.find_studies(query) == []
    assert searcher.upstream.calls == 2


def test_studies_the_cache_refuses_go_upstream_and_leave_the_breaker_closed(running, caplog):
    caplog.set_level(logging.DEBUG, logger="dicomcache.client.searcher")
    refused = study_from_proto(make_study(3, 1, 1))
    refused.uid = "1.2.x3"  # no UID, but an archive may serve it
    upstream = FakeArchive([refused, study_from_proto(make_study(1, 1, 1))])
    searcher = CachedSearcher(
        upstream, target=running.target, namespace="pacs-a", timeout=5, failure_threshold=2
    )
    for _ in range(5):  # more than the threshold, lookups and stores alike
        assert searcher.find_study_by_id(refused.uid, QueryLevels.INSTANCE).uid == refused.uid
    assert upstream.calls == 5
    assert searcher.breaker.state is State.CLOSED
    good = make_study(1).uid
    searcher.find_study_by_id(good, QueryLevels.INSTANCE)
    searcher.find_study_by_id(good, QueryLevels.INSTANCE)
    assert upstream.calls == 6, "the second good call is a hit"
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert refusals and all(r.levelno == logging.DEBUG for r in refusals)
    assert all(refused.uid not in r.getMessage() for r in caplog.records)
    searcher.client.close()


def test_an_invalid_namespace_is_refused_at_construction(running):
    with pytest.raises(ValueError, match="namespace"):
        CachedSearcher(archive(), target=running.target, namespace="bad namespace!")


def test_one_searcher_shared_by_many_threads(searcher):
    queries = [Query(PatientID=f"PAT{n}", query_level=QueryLevels.INSTANCE) for n in (1, 2)]
    expected = {q.PatientID: json_of(searcher.upstream.find_studies(q)) for q in queries}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(30):
                query = queries[(n + i) % 2]
                assert json_of(searcher.find_studies(query)) == expected[query.PatientID]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert searcher.upstream.calls <= 2 + 16  # 2 from expected, then at most a few racing misses


class ChangingArchive(FakeArchive):
    """An archive that changes while a miss fetches from it: someone invalidates meanwhile."""

    def __init__(self, studies: Sequence[Study], target: str, reference: object) -> None:
        super().__init__(studies)
        self.cache = CacheClient(target, timeout=5)
        self.reference = reference
        self.changes = 1

    def find_studies(self, query: Query) -> Sequence[Study]:
        answer = super().find_studies(query)  # the answer as it was...
        if self.changes:
            self.changes -= 1
            self.cache.invalidate("pacs-a", self.reference)  # ...then the change is announced
        return answer


@pytest.mark.parametrize(
    "reference",
    [
        StudyReference(study_uid=make_study(1).uid),
        InstanceReference(study_uid=make_study(1).uid, series_uid="9.9", instance_uid="9.9.1"),
        None,
    ],
    ids=["the study", "a new instance", "the namespace"],
)
@pytest.mark.parametrize("how", ["find_studies", "find_study_by_id"])
def test_an_invalidation_during_a_miss_wins_over_its_store(running, reference, how):
    upstream = ChangingArchive([study_from_proto(make_study(1, 2, 3))], running.target, reference)
    searcher = CachedSearcher(upstream, target=running.target, namespace="pacs-a", timeout=5)
    uid = make_study(1).uid

    def ask() -> object:
        if how == "find_studies":
            return searcher.find_studies(Query(StudyInstanceUID=uid))
        return searcher.find_study_by_id(uid, QueryLevels.INSTANCE)

    ask()  # a miss; the archive changes while it fetches; its store is refused
    ask()  # so this is a miss too, and stores
    ask()  # a hit
    assert upstream.calls == 2
    upstream.cache.close()
