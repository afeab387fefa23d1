"""CachedSearcher in front of a real Orthanc: QIDO-RS, DICOM-QR, and a WADO-RS Trolley download.

The upstream is wrapped in a counter of the calls that reach the archive: the
counts prove what the cache answered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests
from dicomtrolley.core import (
    InstanceReference,
    Query,
    QueryLevels,
    Searcher,
    Study,
    StudyReference,
)
from dicomtrolley.dicom_qr import DICOMQR, DICOMQuery
from dicomtrolley.exceptions import DICOMTrolleyError
from dicomtrolley.qido_rs import HierarchicalQuery, QidoRS, RelationalQuery
from dicomtrolley.trolley import Trolley
from dicomtrolley.wado_rs import WadoRS

from dicomcache.client import CacheClient, CachedSearcher
from dicomcache.client.breaker import State
from dicomcache.client.convert.request import protocol_of
from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings
from tests.e2e.conftest import LoadedOrthanc
from tests.support.recovery import wait_until_cache_used
from tests.support.synthetic import (
    UID_ROOT,
    PatientSpec,
    SeriesSpec,
    SyntheticStudy,
    make_study,
    upload,
)
from tests.support.trees import tree_summary

pytestmark = pytest.mark.orthanc


class CountingSearcher(Searcher):
    """Passes every call to the archive's searcher and counts it. Thread-safe."""

    def __init__(self, archive: Searcher) -> None:
        self.archive = archive
        self.calls = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.calls += 1

    def find_studies(self, query: Query) -> Sequence[Study]:
        self._count()
        return self.archive.find_studies(query)

    def find_study_by_id(
        self, study_uid: str, query_level: QueryLevels = QueryLevels.STUDY
    ) -> Study:
        self._count()
        return self.archive.find_study_by_id(study_uid, query_level=query_level)


@pytest.fixture
def cache_server() -> Iterator[CacheServer]:
    server = CacheServer(Settings(listen="127.0.0.1:0")).start()
    yield server
    server.stop(grace=0)


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def qido(orthanc: LoadedOrthanc, session: requests.Session) -> CountingSearcher:
    return CountingSearcher(QidoRS(session=session, url=orthanc.dicomweb_url))


@pytest.fixture
def dicom_qr(orthanc: LoadedOrthanc) -> CountingSearcher:
    return CountingSearcher(
        DICOMQR(host=orthanc.host, port=orthanc.dicom_port, aet="DICOMCACHE", aec=orthanc.aet)
    )


def cached(upstream: Searcher, server: CacheServer, namespace: str = "orthanc") -> CachedSearcher:
    """A CachedSearcher in front of ``upstream``, told the protocol of the archive it counts."""
    return CachedSearcher(
        upstream,
        target=f"127.0.0.1:{server.port}",
        namespace=namespace,
        timeout=5,
        protocol=protocol_of(getattr(upstream, "archive", upstream)),
    )


def summaries(studies: Sequence[Study]) -> list:
    return [tree_summary(s) for s in studies]


@pytest.mark.parametrize("level", list(QueryLevels))
def test_qido_rs_answers_come_back_from_cache_equal(orthanc, qido, cache_server, level):
    searcher = cached(qido, cache_server)
    query = Query(PatientID="SYN-0001", query_level=level)
    first = searcher.find_studies(query)
    again = searcher.find_studies(query)
    assert qido.calls == 1
    assert summaries(again) == summaries(first) == summaries(qido.archive.find_studies(query))
    if level == QueryLevels.INSTANCE:
        assert sum(len(s.instances) for s in again[0].series) == 80


def test_queries_sent_as_one_request_share_an_entry_and_only_those(orthanc, qido, cache_server):
    searcher = cached(qido, cache_server)
    uid = orthanc.study(1).uid
    queries = [
        Query(StudyInstanceUID=uid, query_level=QueryLevels.SERIES),
        # the searcher sends a Query as this HierarchicalQuery: one request, one entry
        HierarchicalQuery(StudyInstanceUID=uid, query_level=QueryLevels.SERIES),
        RelationalQuery(StudyInstanceUID=uid, query_level=QueryLevels.SERIES),
        Query(StudyInstanceUID=orthanc.study(2).uid, query_level=QueryLevels.SERIES),
    ]
    for query in queries:
        searcher.find_studies(query)
        searcher.find_studies(query)
    assert qido.calls == 3


def test_an_empty_answer_is_cached(orthanc, qido, cache_server):
    searcher = cached(qido, cache_server)
    assert searcher.find_studies(Query(PatientID="NOBODY")) == []
    assert searcher.find_studies(Query(PatientID="NOBODY")) == []
    assert qido.calls == 1


def test_study_by_id_is_served_from_a_complete_listing(orthanc, qido, cache_server):
    searcher = cached(qido, cache_server)
    uid = orthanc.study(1).uid
    full = searcher.find_study_by_id(uid, QueryLevels.INSTANCE)
    again = searcher.find_study_by_id(uid, QueryLevels.INSTANCE)
    assert qido.calls == 1
    assert tree_summary(again) == tree_summary(full)
    assert sum(len(s.instances) for s in again.series) == 80


def test_shallower_study_by_id_is_never_a_partial_answer(orthanc, qido, cache_server):
    """An instance listing from QIDO-RS holds its series as paths (no attributes): it
    must not answer at series level, where the archive returns the series' attributes."""
    searcher = cached(qido, cache_server)
    uid = orthanc.study(1).uid
    searcher.find_study_by_id(uid, QueryLevels.INSTANCE)
    series_level = searcher.find_study_by_id(uid, QueryLevels.SERIES)
    again = searcher.find_study_by_id(uid, QueryLevels.SERIES)
    assert qido.calls == 2
    expected = tree_summary(qido.archive.find_study_by_id(uid, query_level=QueryLevels.SERIES))
    assert tree_summary(series_level) == tree_summary(again) == expected
    assert all(len(s.data) for s in again.series), "series carry their attributes"


def test_a_filtered_query_never_answers_study_by_id(orthanc, qido, cache_server):
    searcher = cached(qido, cache_server)
    study = orthanc.study(1)
    searcher.find_studies(
        Query(
            StudyInstanceUID=study.uid,
            SeriesInstanceUID=study.series_uids[0],
            query_level=QueryLevels.SERIES,
        )
    )
    listing = searcher.find_study_by_id(study.uid, QueryLevels.SERIES)
    assert qido.calls == 2
    assert len(listing.series) == 2


def leading_zero_study() -> SyntheticStudy:
    """A study whose UIDs have leading-zero components: PS3.5 forbids them, archives serve them."""
    study = make_study(90, PatientSpec("SYN-0090", "Zero^Lead"), [SeriesSpec("CT", 2)])
    old, new = study.uid, f"{UID_ROOT}.090"
    for ds in study.datasets:
        ds.StudyInstanceUID = new
        ds.SeriesInstanceUID = ds.SeriesInstanceUID.replace(old, new) + "0"  # ...090.10
        ds.SOPInstanceUID = f"{ds.SeriesInstanceUID}.0{ds.InstanceNumber}"  # ...090.10.01
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    study.uid = new
    return study


@pytest.mark.parametrize("protocol", ["qido", "dicom_qr"])
def test_a_study_with_leading_zero_uids_is_served_from_cache(
    orthanc, cache_server, request, protocol
):
    study = leading_zero_study()
    upload(orthanc.url, study.datasets)
    upstream = request.getfixturevalue(protocol)
    searcher = cached(upstream, cache_server, namespace=f"orthanc-{protocol.replace('_', '-')}")
    first = searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE)
    again = searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE)
    assert upstream.calls == 1, "the second came from the cache"
    assert tree_summary(again) == tree_summary(first)
    assert [i.uid for s in again.series for i in s.instances] == [
        f"{study.uid}.10.01",
        f"{study.uid}.10.02",
    ]
    query = Query(PatientID="SYN-0090", query_level=QueryLevels.INSTANCE)
    assert summaries(searcher.find_studies(query)) == summaries(searcher.find_studies(query))
    assert upstream.calls == 2
    assert searcher.breaker.state is State.CLOSED


def test_upstream_errors_pass_through_and_are_not_cached(orthanc, cache_server, session):
    broken = CountingSearcher(QidoRS(session=session, url=orthanc.url + "/no-such-endpoint"))
    searcher = cached(broken, cache_server)
    for _ in range(2):
        with pytest.raises(DICOMTrolleyError):
            searcher.find_studies(Query(PatientID="SYN-0001"))
    assert broken.calls == 2


@pytest.mark.parametrize("level", list(QueryLevels))
def test_dicom_qr_answers_come_back_from_cache_equal(orthanc, dicom_qr, cache_server, level):
    searcher = cached(dicom_qr, cache_server, namespace="orthanc-dimse")
    query = DICOMQuery(PatientID="SYN-0003", query_level=level)
    first = searcher.find_studies(query)
    again = searcher.find_studies(query)
    assert dicom_qr.calls == 1
    assert summaries(again) == summaries(first)
    assert summaries(again) == summaries(dicom_qr.archive.find_studies(query))


def test_dicom_qr_study_by_id(orthanc, dicom_qr, cache_server):
    searcher = cached(dicom_qr, cache_server, namespace="orthanc-dimse")
    uid = orthanc.study(1).uid
    first = searcher.find_study_by_id(uid, QueryLevels.INSTANCE)
    again = searcher.find_study_by_id(uid, QueryLevels.INSTANCE)
    assert dicom_qr.calls == 1
    assert tree_summary(again) == tree_summary(first)
    assert sum(len(s.instances) for s in again.series) == 80


def test_two_upstreams_never_share_entries(orthanc, qido, dicom_qr, cache_server):
    from_qido = cached(qido, cache_server, namespace="archive-a")
    from_dimse = cached(dicom_qr, cache_server, namespace="archive-b")
    query = Query(PatientID="SYN-0002", query_level=QueryLevels.SERIES)
    from_qido.find_studies(query)
    from_dimse.find_studies(query)
    assert (qido.calls, dicom_qr.calls) == (1, 1)


def test_trolley_download_through_wado_rs_asks_the_searcher_once(
    orthanc, qido, cache_server, session, tmp_path
):
    trolley = Trolley(
        downloader=WadoRS(session=session, url=orthanc.dicomweb_url),
        searcher=cached(qido, cache_server),
    )
    study = orthanc.study(3)
    for n in (1, 2):
        trolley.download(StudyReference(study_uid=study.uid), tmp_path / str(n))
    assert qido.calls == 1, "the second download's study listing came from the cache"
    for n in (1, 2):
        files = [p for p in Path(tmp_path / str(n)).rglob("*") if p.is_file()]
        assert len(files) == study.instance_count


def test_cache_server_stopped_mid_run_then_back(orthanc, qido):
    from tests.support.clock import FakeClock

    clock = FakeClock()
    server = CacheServer(Settings(listen="127.0.0.1:0")).start()
    port = server.port
    searcher = CachedSearcher(
        qido,
        target=f"127.0.0.1:{port}",
        namespace="orthanc",
        failure_threshold=2,
        backoff=5,
        clock=clock,
    )
    query = Query(PatientID="SYN-0001", query_level=QueryLevels.INSTANCE)
    expected = summaries(searcher.find_studies(query))
    searcher.find_studies(query)
    assert qido.calls == 1
    server.stop(grace=0)
    try:
        for n in range(1, 6):
            assert summaries(searcher.find_studies(query)) == expected
            assert qido.calls == 1 + n
        server = CacheServer(Settings(listen=f"127.0.0.1:{port}")).start()
        wait_until_cache_used(searcher, clock, lambda: searcher.find_studies(query))
        calls = qido.calls
        assert summaries(searcher.find_studies(query)) == expected
        assert qido.calls == calls, "hits resumed once the cache was back"
    finally:
        searcher.client.close()
        server.stop(grace=0)


# -- issue 10: a hit is what the archive would answer -----------------------------------


@pytest.mark.parametrize("level", list(QueryLevels))
@pytest.mark.parametrize("protocol", ["qido", "dicom_qr"])
def test_another_query_never_thins_a_hit(orthanc, cache_server, request, protocol, level):
    """A asks for StudyDescription, B for the defaults: B's store must not thin A's hit."""
    upstream = request.getfixturevalue(protocol)
    searcher = cached(upstream, cache_server)
    a = Query(PatientID="SYN-0003", query_level=level, include_fields=["StudyDescription"])
    b = Query(PatientID="SYN-0003", query_level=level)
    searcher.find_studies(a)
    searcher.find_studies(b)
    again = searcher.find_studies(a)
    archive_a = summaries(upstream.archive.find_studies(a))
    assert archive_a != summaries(upstream.archive.find_studies(b)), "A must ask for more"
    assert summaries(again) == archive_a


def test_qido_rs_and_c_find_answers_stay_apart_in_one_namespace(
    orthanc, qido, dicom_qr, cache_server
):
    query = Query(PatientID="SYN-0002", query_level=QueryLevels.INSTANCE)
    by_qido = cached(qido, cache_server, namespace="one-archive")
    by_qr = cached(dicom_qr, cache_server, namespace="one-archive")
    for _ in range(2):
        assert summaries(by_qido.find_studies(query)) == summaries(qido.archive.find_studies(query))
        assert summaries(by_qr.find_studies(query)) == summaries(
            dicom_qr.archive.find_studies(query)
        )
    assert (qido.calls, dicom_qr.calls) == (1, 1)


@pytest.mark.parametrize("protocol", ["qido", "dicom_qr"])
def test_a_hit_keeps_the_archive_order(orthanc, cache_server, request, protocol):
    upstream = request.getfixturevalue(protocol)
    searcher = cached(upstream, cache_server)
    query = Query(PatientID="SYN-0001", query_level=QueryLevels.INSTANCE)
    first = searcher.find_studies(query)
    again = searcher.find_studies(query)
    assert upstream.calls == 1
    order = [(s.uid, [(x.uid, [i.uid for i in x.instances]) for x in s.series]) for s in first]
    assert [
        (s.uid, [(x.uid, [i.uid for i in x.instances]) for x in s.series]) for s in again
    ] == order


@pytest.mark.parametrize("level", [QueryLevels.SERIES, QueryLevels.INSTANCE])
def test_study_by_id_and_its_unfiltered_query_share_one_answer(orthanc, qido, cache_server, level):
    """find_study_by_id runs exactly the unfiltered query for the study inside dicomtrolley."""
    searcher = cached(qido, cache_server)
    first, second = orthanc.study(1).uid, orthanc.study(3).uid
    searcher.find_studies(Query(StudyInstanceUID=first, query_level=level))
    by_id = searcher.find_study_by_id(first, level)
    assert qido.calls == 1
    assert tree_summary(by_id) == tree_summary(qido.archive.find_study_by_id(first, level))

    searcher.find_study_by_id(second, level)
    (as_query,) = searcher.find_studies(Query(StudyInstanceUID=second, query_level=level))
    assert qido.calls == 2
    assert tree_summary(as_query) == tree_summary(qido.archive.find_study_by_id(second, level))


def test_invalidating_a_new_instance_makes_its_study_fresh(orthanc, qido, cache_server):
    """A new instance arrives in the archive and is announced: nothing cached may lack it."""
    study = make_study(91, PatientSpec("SYN-0091", "New^Arrival"), [SeriesSpec("CT", 2)])
    late = study.datasets.pop()
    upload(orthanc.url, study.datasets)
    searcher = cached(qido, cache_server)
    query = Query(PatientID="SYN-0091", query_level=QueryLevels.INSTANCE)
    assert len(searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE).series[0].instances) == 1
    assert len(searcher.find_studies(query)[0].series[0].instances) == 1

    upload(orthanc.url, [late])
    with CacheClient(f"127.0.0.1:{cache_server.port}", timeout=5) as client:
        client.invalidate(
            "orthanc",
            InstanceReference(
                study_uid=study.uid,
                series_uid=late.SeriesInstanceUID,
                instance_uid=late.SOPInstanceUID,
            ),
        )
    assert len(searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE).series[0].instances) == 2
    assert len(searcher.find_studies(query)[0].series[0].instances) == 2
