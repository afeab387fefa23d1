"""Search against a real Orthanc: the archive's JSON exactly, in its order, through the cache.

The upstreams are the server's own (``QidoRsUpstream``, ``DicomQrUpstream``) wrapped in a
counter of the requests that reach the archive: the counts prove what the cache answered.
Each answer is compared with what Orthanc returns for the same QIDO-RS URL asked directly
(parsed JSON lists, order included), on the miss and on the hit, with the memory backend
and with Redis (which keeps a study once per answer: the order record restores the rest).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
import requests
from dicomtrolley.core import Query, QueryLevels, Searcher
from dicomtrolley.qido_rs import QidoRS

from dicomcache.client import CacheClient, CachedSearcher
from dicomcache.server.api.keys import partition, request_key
from dicomcache.server.app import CacheServer
from dicomcache.server.backends import Backend
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.config import Settings
from dicomcache.server.search.flights import Flights
from dicomcache.server.search.request import normalize
from dicomcache.server.upstreams.dicom_qr import DicomQrUpstream
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, objects_pb2, query_pb2, search_pb2
from tests.e2e.conftest import LoadedOrthanc
from tests.support.redis_fixtures import shared_server
from tests.support.redis_servers import flush_all
from tests.support.upstreams import CountingUpstream

pytestmark = pytest.mark.orthanc

STUDIES = search_pb2.SEARCH_LEVEL_STUDIES
SERIES = search_pb2.SEARCH_LEVEL_SERIES
INSTANCES = search_pb2.SEARCH_LEVEL_INSTANCES
P = search_pb2.SearchParameter


@dataclass
class Running:
    """A server with a counted QIDO-RS upstream "pacs" (and DICOM-QR "pacsqr") on Orthanc."""

    server: CacheServer
    stub: cache_service_pb2_grpc.CacheServiceStub
    qido: CountingUpstream
    qr: CountingUpstream
    channel: grpc.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def search(self, **fields: Any) -> search_pb2.SearchResponse:
        fields.setdefault("upstream", "pacs")
        response: search_pb2.SearchResponse = self.stub.Search(
            search_pb2.SearchRequest(**fields), timeout=30
        )
        return response


def start(orthanc: LoadedOrthanc, backend: Backend, **settings: Any) -> Running:
    qido = CountingUpstream(QidoRsUpstream("pacs", orthanc.dicomweb_url))
    qr = CountingUpstream(
        DicomQrUpstream(
            "pacsqr", orthanc.host, orthanc.dicom_port, called_ae=orthanc.aet, calling_ae="TEST"
        )
    )
    config = Settings(listen="127.0.0.1:0", **settings)
    server = CacheServer(config, backend=backend, upstreams={"pacs": qido, "pacsqr": qr}).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    return Running(server, cache_service_pb2_grpc.CacheServiceStub(channel), qido, qr, channel)


def _memory() -> Backend:
    return MemoryBackend(ttl=600, negative_ttl=60)


def _redis() -> Backend:
    server = shared_server()
    flush_all([server.client()])
    return RedisBackend.from_url(server.url, ttl=600, negative_ttl=60, socket_timeout=2.0)


BACKENDS = [
    pytest.param(_memory, id="memory"),
    pytest.param(_redis, id="redis", marks=pytest.mark.redis),
]


@pytest.fixture(params=BACKENDS)
def running(request: pytest.FixtureRequest, orthanc: LoadedOrthanc) -> Iterator[Running]:
    running = start(orthanc, request.param(), workers=128)
    yield running
    running.channel.close()
    running.server.stop(grace=0)


@pytest.fixture
def memory_server(orthanc: LoadedOrthanc) -> Iterator[Running]:
    running = start(orthanc, _memory(), workers=128, metrics_listen="127.0.0.1:0")
    yield running
    running.channel.close()
    running.server.stop(grace=0)


def direct(orthanc: LoadedOrthanc, path: str, **params: str | list[str]) -> list[dict[str, Any]]:
    """What Orthanc answers for the QIDO-RS URL, asked directly."""
    response = requests.get(orthanc.dicomweb_url + path, params=params, timeout=30)
    response.raise_for_status()
    return response.json() if response.content.strip() else []


def _cases(orthanc: LoadedOrthanc) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    a, c = orthanc.study(1), orthanc.study(3)
    return [
        ({"level": STUDIES}, "/studies", {}),
        (
            {"level": STUDIES, "match": [P(name="00100020", values=["SYN-0001"])]},
            "/studies",
            {"PatientID": "SYN-0001"},
        ),
        ({"level": STUDIES, "include_fields": ["all"]}, "/studies", {"includefield": "all"}),
        ({"level": SERIES}, "/series", {}),  # Orthanc interleaves the series of studies
        ({"level": SERIES, "study_uid": a.uid}, f"/studies/{a.uid}/series", {}),
        ({"level": INSTANCES}, "/instances", {}),
        ({"level": INSTANCES, "study_uid": c.uid}, f"/studies/{c.uid}/instances", {}),
        (
            {"level": INSTANCES, "study_uid": a.uid, "series_uid": a.series_uids[1]},
            f"/studies/{a.uid}/series/{a.series_uids[1]}/instances",
            {},
        ),
        (
            {
                "level": SERIES,
                "match": [P(name="Modality", values=["CT"])],
                "limit": 1,
                "offset": 1,
            },
            "/series",
            {"Modality": "CT", "limit": "1", "offset": "1"},
        ),
    ]


CASE_IDS = [
    "studies",
    "studies-PatientID",
    "studies-all",
    "series",
    "study-series",
    "instances",
    "study-instances",
    "series-instances",
    "series-limit-offset",
]


@pytest.mark.parametrize("case", range(len(CASE_IDS)), ids=CASE_IDS)
def test_the_answer_is_orthancs_exactly_in_its_order_on_miss_and_hit(
    running: Running, orthanc: LoadedOrthanc, case: int
) -> None:
    fields, path, params = _cases(orthanc)[case]
    expected = direct(orthanc, path, **params)
    assert expected, "the case must list objects to compare"

    miss = running.search(**fields)
    hit = running.search(**fields)

    assert (miss.hit, hit.hit) == (False, True)
    assert json.loads(miss.dicom_json) == expected
    assert json.loads(hit.dicom_json) == expected
    assert miss.count == hit.count == len(expected)
    assert running.qido.fetches == 1
    assert not hit.stale


def test_orthanc_does_interleave_series_of_studies(orthanc: LoadedOrthanc) -> None:
    """The order the record keeps is not the tree's: study 1's series are not together."""
    studies = [o["0020000D"]["Value"][0] for o in direct(orthanc, "/series")]
    grouped = sorted(studies, key=studies.index)
    assert studies != grouped


def test_an_invalidated_study_makes_the_next_search_a_miss(
    running: Running, orthanc: LoadedOrthanc
) -> None:
    a = orthanc.study(1)
    running.search(level=SERIES)
    assert running.search(level=SERIES).hit
    running.stub.Invalidate(
        pb.InvalidateRequest(
            namespace="pacs",
            reference=objects_pb2.ObjectReference(
                study=objects_pb2.StudyReference(study_uid=a.uid)
            ),
        )
    )
    again = running.search(level=SERIES)
    assert not again.hit
    assert json.loads(again.dicom_json) == direct(orthanc, "/series")
    assert running.qido.fetches == 2


class CountingSearcher(Searcher):
    """A dicomtrolley searcher that counts the calls reaching the archive. Thread-safe."""

    def __init__(self, archive: Searcher) -> None:
        self.archive = archive
        self.calls = 0
        self._lock = threading.Lock()

    def find_studies(self, query: Query) -> Any:
        with self._lock:
            self.calls += 1
        return self.archive.find_studies(query)

    def find_study_by_id(self, study_uid: str, query_level: QueryLevels = QueryLevels.STUDY) -> Any:
        with self._lock:
            self.calls += 1
        return self.archive.find_study_by_id(study_uid, query_level=query_level)


def cached_searcher(
    running: Running, orthanc: LoadedOrthanc
) -> tuple[CachedSearcher, CountingSearcher]:
    archive = CountingSearcher(QidoRS(requests.Session(), orthanc.dicomweb_url))
    searcher = CachedSearcher(
        archive,
        client=CacheClient(running.target, timeout=10),
        namespace="pacs",
        protocol="qido-rs",
    )
    return searcher, archive


def test_a_search_fills_the_entry_of_the_python_clients_query(
    running: Running, orthanc: LoadedOrthanc
) -> None:
    searcher, archive = cached_searcher(running, orthanc)
    running.search(level=SERIES, match=[P(name="00100020", values=["SYN-0001"])])

    studies = searcher.find_studies(Query(PatientID="SYN-0001", query_level=QueryLevels.SERIES))

    assert (running.qido.fetches, archive.calls) == (1, 0)
    assert [s.uid for s in studies] == [orthanc.study(1).uid]
    assert [se.uid for se in studies[0].series] == orthanc.study(1).series_uids


def test_the_python_clients_entry_answers_a_search(
    running: Running, orthanc: LoadedOrthanc
) -> None:
    searcher, archive = cached_searcher(running, orthanc)
    searcher.find_studies(Query(PatientID="SYN-0002"))

    found = running.search(level=STUDIES, match=[P(name="PatientID", values=["SYN-0002"])])

    assert found.hit
    assert (running.qido.fetches, archive.calls) == (0, 1)
    # What dicomtrolley parsed and the client stored: the same study, its attributes as pydicom
    # gave them (a Search's own entries keep the archive's JSON exactly, see above).
    got = json.loads(found.dicom_json)
    want = direct(orthanc, "/studies", PatientID="SYN-0002")
    assert [o["0020000D"] for o in got] == [o["0020000D"] for o in want]
    assert got[0]["00100010"] == want[0]["00100010"]


@pytest.mark.parametrize("level", [QueryLevels.STUDY, QueryLevels.SERIES, QueryLevels.INSTANCE])
def test_a_complete_listing_by_search_answers_find_study_by_id(
    running: Running, orthanc: LoadedOrthanc, level: QueryLevels
) -> None:
    a = orthanc.study(3)
    by_uid = [P(name="StudyInstanceUID", values=[a.uid])]
    fields: dict[str, Any] = {
        QueryLevels.STUDY: {"level": STUDIES, "match": by_uid},
        QueryLevels.SERIES: {"level": SERIES, "study_uid": a.uid},
        QueryLevels.INSTANCE: {"level": INSTANCES, "study_uid": a.uid, "match": by_uid},
    }[level]
    running.search(**fields)
    searcher, archive = cached_searcher(running, orthanc)

    study = searcher.find_study_by_id(a.uid, query_level=level)

    assert archive.calls == 0
    assert study.uid == a.uid
    if level != QueryLevels.STUDY:
        assert sorted(s.uid for s in study.series) == sorted(a.series_uids)
    if level == QueryLevels.INSTANCE:
        assert sorted(i.uid for s in study.series for i in s.instances) == sorted(
            u for uids in a.instance_uids.values() for u in uids
        )


def test_100_concurrent_identical_misses_ask_the_archive_once(memory_server: Running) -> None:
    running = memory_server
    gate = threading.Event()
    running.qido.gate = gate  # the first fetch is held until every other search waits
    engine = running.server.search_engine
    assert engine is not None and isinstance(engine.flights, Flights)
    flights = engine.flights
    request = normalize(search_pb2.SearchRequest(level=SERIES), query_pb2.PROTOCOL_QIDO_RS).request
    key = (partition("pacs", query_pb2.PROTOCOL_QIDO_RS), request_key(request))

    with ThreadPoolExecutor(100) as pool:
        futures = [pool.submit(running.search, level=SERIES) for _ in range(100)]
        pause = threading.Event()
        for _ in range(20_000):  # bounded: until 99 wait behind the held fetch
            all_waiting = running.qido.fetches == 1 and flights.waiting(key) == 99
            if all_waiting:
                break
            pause.wait(0.001)
        gate.set()
        answers = [f.result() for f in futures]

    assert all_waiting
    assert running.qido.fetches == 1
    assert len({a.dicom_json for a in answers}) == 1
    assert all(not a.hit for a in answers)  # 99 waited for the one fetch: none was a stored hit
    metrics = running.server.telemetry.metrics
    assert metrics is not None
    waits = metrics.registry.get_sample_value(
        "dicomcache_coalesced_waits_total", {"namespace": "pacs"}
    )
    fetched = metrics.registry.get_sample_value(
        "dicomcache_upstream_duration_seconds_count", {"upstream": "pacs"}
    )
    assert (waits, fetched) == (99, 1)


def test_a_dicom_qr_upstream_reads_through_its_c_find_identifier(
    running: Running, orthanc: LoadedOrthanc
) -> None:
    a = orthanc.study(1)
    miss = running.search(upstream="pacsqr", level=SERIES, study_uid=a.uid)
    hit = running.search(upstream="pacsqr", level=SERIES, study_uid=a.uid)

    assert (miss.hit, hit.hit, running.qr.fetches) == (False, True, 1)
    assert json.loads(hit.dicom_json) == json.loads(miss.dicom_json)
    assert sorted(o["0020000E"]["Value"][0] for o in json.loads(hit.dicom_json)) == sorted(
        a.series_uids
    )
    request = running.qr.requests[0]
    assert request.path == "SERIES"
    assert {p.name: list(p.values) for p in request.parameters} == {
        "SeriesInstanceUID": [""],
        "StudyInstanceUID": [a.uid],
    }


def test_no_patient_data_in_the_logs(
    memory_server: Running, orthanc: LoadedOrthanc, caplog: pytest.LogCaptureFixture
) -> None:
    b = orthanc.study(2)
    with caplog.at_level(logging.INFO):
        memory_server.search(
            level=STUDIES, match=[P(name="PatientID", values=[b.patient.patient_id])]
        )
        memory_server.search(level=SERIES, match=[P(name="PatientName", values=["Yamada*"])])
        memory_server.search(level=SERIES, match=[P(name="PatientName", values=["Yamada*"])])
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    for phi in (b.patient.patient_id, "Yamada", "山田", b.accession_number, b.patient.birth_date):
        assert phi not in logged
