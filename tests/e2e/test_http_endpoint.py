"""The QIDO-RS endpoint against a real Orthanc, through the real DICOMweb clients, unchanged.

PyPI's ``dicomweb_client.DICOMwebClient`` and npm's ``dicomweb-client`` (run by
``tests/node/dicomweb.js``) search the endpoint at ``/dicom-web/pacs`` and Orthanc's
``/dicom-web`` directly; the answers are equal as parsed JSON, order included, on the
miss and on the hit, and the archive is asked once per distinct search. The cache
headers say which was which; the endpoint shares its entries with the Search RPC;
archive failures are gateway statuses with the archive's status.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import requests
from dicomweb_client import DICOMwebClient

from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import cache_service_pb2_grpc, search_pb2
from tests.e2e.conftest import LoadedOrthanc
from tests.support.clock import FakeClock
from tests.support.counting_proxy import counting_proxy
from tests.support.ports import free_port
from tests.support.upstreams import CountingUpstream

pytestmark = pytest.mark.orthanc

ROOT = Path(__file__).resolve().parents[2]
NODE_SCRIPT = ROOT / "tests" / "node" / "dicomweb.js"


@dataclass
class Served:
    """A server with the endpoint on, reading "pacs" (Orthanc, counted) through the cache."""

    server: CacheServer
    pacs: CountingUpstream

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}/dicom-web"

    @property
    def url(self) -> str:
        """What a DICOMweb client is pointed at: the upstream's root."""
        return f"{self.base}/pacs"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(f"{self.base}{path}", timeout=30, **kwargs)


def serve(upstreams: dict[str, Any]) -> CacheServer:
    config = Settings(listen="127.0.0.1:0", http_listen="127.0.0.1:0")
    backend = MemoryBackend(ttl=config.ttl, negative_ttl=config.negative_ttl)
    return CacheServer(config, backend=backend, upstreams=upstreams).start()


@pytest.fixture
def served(orthanc: LoadedOrthanc) -> Iterator[Served]:
    pacs = CountingUpstream(QidoRsUpstream("pacs", orthanc.dicomweb_url))
    server = serve({"pacs": pacs})
    try:
        yield Served(server, pacs)
    finally:
        server.stop(grace=0)


def python_searches(orthanc: LoadedOrthanc) -> list[tuple[str, dict[str, Any]]]:
    """Searches as dicomweb_client's methods and keywords: each level, path and option."""
    big, named = orthanc.study(1), orthanc.study(2)
    series = big.series_uids[1]
    return [
        ("search_for_studies", {}),
        ("search_for_studies", {"search_filters": {"PatientID": named.patient.patient_id}}),
        ("search_for_studies", {"search_filters": {"00100020": big.patient.patient_id}}),
        ("search_for_studies", {"fields": ["StudyDescription", "00101010"]}),
        ("search_for_studies", {"search_filters": {"ModalitiesInStudy": "CT"}}),
        ("search_for_studies", {"limit": 2, "offset": 1}),
        ("search_for_series", {}),
        ("search_for_series", {"study_instance_uid": big.uid}),
        ("search_for_series", {"search_filters": {"Modality": "MR"}, "fields": ["all"]}),
        ("search_for_instances", {"study_instance_uid": big.uid}),  # 80 instances
        ("search_for_instances", {"study_instance_uid": big.uid, "series_instance_uid": series}),
        ("search_for_instances", {"search_filters": {"SeriesInstanceUID": series}}),
    ]


def node_searches(orthanc: LoadedOrthanc) -> list[list[Any]]:
    """The same kinds of search as npm dicomweb-client's methods and options."""
    big, named = orthanc.study(1), orthanc.study(2)
    series = big.series_uids[0]
    return [
        ["searchForStudies", {}],
        ["searchForStudies", {"queryParams": {"PatientID": named.patient.patient_id}}],
        # One field: this client sends a list as one comma-separated value, which PS3.18
        # allows and the endpoint splits, but Orthanc ignores (so their answers differ).
        ["searchForStudies", {"queryParams": {"includefield": "StudyDescription"}}],
        ["searchForStudies", {"queryParams": {"limit": 2, "offset": 1}}],
        ["searchForSeries", {"studyInstanceUID": big.uid}],
        ["searchForSeries", {"queryParams": {"Modality": "CT"}}],
        ["searchForInstances", {"studyInstanceUID": big.uid}],
        ["searchForInstances", {"studyInstanceUID": big.uid, "seriesInstanceUID": series}],
        ["searchForInstances", {"queryParams": {"SeriesInstanceUID": series}}],
    ]


def node(url: str, searches: list[list[Any]], **env: str) -> list[Any]:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "dicomweb-client").is_dir():
        pytest.fail("node and the npm packages are needed: run `npm ci` (.ci/run does)")
    result = subprocess.run(
        ["node", str(NODE_SCRIPT), url, json.dumps(searches)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    answers: list[Any] = json.loads(result.stdout)
    return answers


def as_fetched_by_the_server(answers: list[Any], orthanc: LoadedOrthanc) -> list[Any]:
    """Orthanc's answers to the PyPI client as Orthanc gives them to the server's fetch.

    Orthanc writes RetrieveURL (0008,1190) from the request's Host header, and the
    PyPI client sends its own Host header without the port (``DICOMwebClient.host``);
    the server's fetch sends the port. Nothing else differs.
    """
    text = json.dumps(answers).replace('"http://127.0.0.1/dicom-web/', f'"{orthanc.dicomweb_url}/')
    fixed: list[Any] = json.loads(text)
    return fixed


def test_pypi_dicomweb_client_gets_orthancs_answers_on_misses_and_hits(served, orthanc):
    direct = DICOMwebClient(url=orthanc.dicomweb_url)
    cached = DICOMwebClient(url=served.url)
    searches = python_searches(orthanc)
    answers = [getattr(direct, method)(**kwargs) for method, kwargs in searches]
    expected = as_fetched_by_the_server(answers, orthanc)
    assert expected != answers  # RetrieveURL is in the answers: the comparison covers it
    assert all(expected[:3]) and len(expected[9]) == 80
    for (method, kwargs), answer in zip(searches, expected, strict=True):
        fetches = served.pacs.fetches
        assert getattr(cached, method)(**kwargs) == answer  # a miss
        assert getattr(cached, method)(**kwargs) == answer  # a hit
        assert served.pacs.fetches == fetches + 1, (method, kwargs)


def test_npm_dicomweb_client_gets_orthancs_answers_on_misses_and_hits(served, orthanc):
    searches = node_searches(orthanc)
    expected = node(orthanc.dicomweb_url, searches)
    assert not any(isinstance(a, dict) and "error" in a for a in expected)
    twice = [search for search in searches for _ in range(2)]  # a miss, then a hit
    assert node(served.url, twice) == [answer for answer in expected for _ in range(2)]
    assert served.pacs.fetches == len(searches)


def test_python_and_node_clients_share_entries(served, orthanc):
    """Two clients, two spellings of one search (keyword, tag; includefield order): one fetch."""
    study = orthanc.study(3)
    cached = DICOMwebClient(url=served.url)
    first = cached.search_for_studies(
        search_filters={"PatientID": study.patient.patient_id},
        fields=["StudyDescription", "PatientAge"],
    )
    second = node(
        served.url,
        [
            [
                "searchForStudies",
                {
                    "queryParams": {
                        "includefield": "00101010,00081030",
                        "00100020": study.patient.patient_id,
                    }
                },
            ]
        ],
    )
    assert second == [first] and len(first) == 1
    assert served.pacs.fetches == 1


def test_headers_say_miss_then_hit(served, orthanc):
    path = f"/pacs/studies/{orthanc.study(1).uid}/series"
    miss = served.get(path)
    hit = served.get(path)
    assert (miss.status_code, hit.status_code) == (200, 200)
    assert miss.headers["Content-Type"] == "application/dicom+json"
    assert (miss.headers["X-Cache"], miss.headers["Cache-Status"]) == (
        "MISS",
        "dicomcache; fwd=miss",
    )
    assert (hit.headers["X-Cache"], hit.headers["Cache-Status"]) == ("HIT", "dicomcache; hit")
    assert int(hit.headers["Age"]) >= 0 and "Warning" not in hit.headers
    assert (
        hit.json()
        == miss.json()
        == requests.get(
            f"{orthanc.dicomweb_url}/studies/{orthanc.study(1).uid}/series", timeout=30
        ).json()
    )


def test_the_endpoint_and_the_search_rpc_share_entries(served, orthanc):
    uid = orthanc.study(1).uid
    with grpc.insecure_channel(f"127.0.0.1:{served.server.port}") as channel:
        stub = cache_service_pb2_grpc.CacheServiceStub(channel)
        response = stub.Search(
            search_pb2.SearchRequest(
                upstream="pacs",
                level=search_pb2.SEARCH_LEVEL_INSTANCES,
                study_uid=uid,
                match=[search_pb2.SearchParameter(name="Modality", values=["CT"])],
            ),
            timeout=30,
        )
    assert not response.hit
    over_http = served.get(f"/pacs/studies/{uid}/instances", params={"00080060": "CT"})
    assert over_http.headers["X-Cache"] == "HIT"
    assert over_http.json() == json.loads(response.dicom_json)
    assert served.pacs.fetches == 1


def test_an_answer_larger_than_one_message_is_served_over_http_not_by_the_rpc(orthanc):
    """The endpoint sends answers up to --max-answer-bytes; the Search RPC's reply is one
    message (--max-message-bytes), so a larger one is RESOURCE_EXHAUSTED naming the endpoint."""
    uid = orthanc.study(1).uid
    direct = requests.get(f"{orthanc.dicomweb_url}/studies/{uid}/instances", timeout=30)
    limit = len(direct.content) // 2
    assert limit > 1024  # the study's instance listing is a few KiB at least
    config = Settings(listen="127.0.0.1:0", http_listen="127.0.0.1:0", max_message_bytes=limit)
    pacs = CountingUpstream(QidoRsUpstream("pacs", orthanc.dicomweb_url))
    backend = MemoryBackend(ttl=config.ttl, negative_ttl=config.negative_ttl)
    server = CacheServer(config, backend=backend, upstreams={"pacs": pacs}).start()
    try:
        url = f"http://127.0.0.1:{server.http_port}/dicom-web/pacs/studies/{uid}/instances"
        miss, hit = (requests.get(url, timeout=30) for _ in range(2))
        assert (miss.status_code, hit.status_code) == (200, 200)
        assert hit.headers["X-Cache"] == "HIT"
        assert miss.json() == hit.json() == direct.json()
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = cache_service_pb2_grpc.CacheServiceStub(channel)
            with pytest.raises(grpc.RpcError) as caught:
                stub.Search(
                    search_pb2.SearchRequest(
                        upstream="pacs", level=search_pb2.SEARCH_LEVEL_INSTANCES, study_uid=uid
                    ),
                    timeout=30,
                )
        assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "QIDO-RS endpoint" in (caught.value.details() or "")
        assert pacs.fetches == 1
    finally:
        server.stop(grace=0)


def test_bad_requests_name_the_parameter_and_paths_and_upstreams_404(served):
    bad = served.get("/pacs/studies", params={"limit": "ten", "NoSuchKeyword": "1"})
    assert bad.status_code == 400
    said = {v["parameter"] for v in bad.json()["violations"]}
    assert said == {"limit"}  # the query string's own rules come first
    unknown = served.get("/pacs/studies", params={"NoSuchKeyword": "1"})
    assert unknown.status_code == 400
    assert [v["parameter"] for v in unknown.json()["violations"]] == ["NoSuchKeyword"]
    assert served.get("/elsewhere/studies").status_code == 404
    assert "elsewhere" in served.get("/elsewhere/studies").json()["message"]
    assert served.get("/pacs/studies/1.2.3/metadata").status_code == 404
    assert (
        served.get("/pacs/studies", headers={"Accept": "application/dicom+xml"}).status_code == 406
    )
    posted = requests.post(f"{served.url}/studies", timeout=30)
    assert (posted.status_code, posted.headers["Allow"]) == (405, "GET, HEAD")
    assert served.pacs.fetches == 0


def test_a_server_without_upstreams_answers_404():
    server = serve({})
    try:
        answer = requests.get(
            f"http://127.0.0.1:{server.http_port}/dicom-web/pacs/studies", timeout=30
        )
        assert answer.status_code == 404
        assert "no upstreams" in answer.json()["message"]
    finally:
        server.stop(grace=0)


def test_archive_failures_are_gateway_statuses(orthanc):
    closed = free_port()
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        server = serve(
            {
                "down": QidoRsUpstream("down", f"http://127.0.0.1:{closed}/dicom-web"),
                "silent": QidoRsUpstream(
                    "silent", f"http://127.0.0.1:{silent.getsockname()[1]}/dicom-web", timeout=0.5
                ),
                "wrong": QidoRsUpstream("wrong", f"{orthanc.url}/no-such-root"),
            }
        )
        try:
            base = f"http://127.0.0.1:{server.http_port}/dicom-web"
            down = requests.get(f"{base}/down/studies", timeout=30)
            slow = requests.get(f"{base}/silent/studies", timeout=30)
            wrong = requests.get(f"{base}/wrong/studies", timeout=30)
        finally:
            server.stop(grace=0)
    assert (down.status_code, down.json()["reason"]) == (503, "unreachable")
    assert (slow.status_code, slow.json()["reason"]) == (504, "timeout")
    assert wrong.status_code == 502
    assert (wrong.json()["upstream"], wrong.json()["archive_status"]) == ("wrong", 404)


def test_the_archive_stopped_a_stale_answer_says_so_then_past_max_stale_503(orthanc):
    clock = FakeClock()
    backend = MemoryBackend(ttl=600, negative_ttl=60, clock=clock)
    with counting_proxy(orthanc.dicomweb_url) as proxy:
        config = Settings(listen="127.0.0.1:0", http_listen="127.0.0.1:0", ttl=600, max_stale=300)
        upstreams = {"pacs": QidoRsUpstream("pacs", proxy.url)}
        server = CacheServer(config, backend=backend, upstreams=upstreams).start()
        url = f"http://127.0.0.1:{server.http_port}/dicom-web/pacs/series"
        try:
            fresh = requests.get(url, timeout=30)
            clock.advance(100)
            aged = requests.get(url, timeout=30)
            proxy.close()
            clock.advance(600)  # expired 100 s ago
            stale = requests.get(url, timeout=30)
            clock.advance(300)  # past max_stale
            gone = requests.get(url, timeout=30)
        finally:
            server.stop(grace=0)
    assert (aged.headers["X-Cache"], 99 <= int(aged.headers["Age"]) <= 101) == ("HIT", True)
    assert stale.status_code == 200 and stale.json() == fresh.json()
    assert stale.headers["Cache-Status"] == (
        'dicomcache; fwd=stale; detail="stale-if-error: upstream pacs: unreachable"'
    )
    assert stale.headers["Warning"] == '110 dicomcache "Response is Stale"'
    assert stale.headers["X-Cache"] == "HIT" and 699 <= int(stale.headers["Age"]) <= 701
    assert (gone.status_code, gone.json()["reason"]) == (503, "unreachable")
