"""examples/node/search.js, as a reader would run it: one Search call, a miss then a hit,
the archive's own answer both times (Orthanc's JSON for the same QIDO-RS URL)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from tests.e2e.conftest import LoadedOrthanc
from tests.support.upstreams import CountingUpstream

pytestmark = pytest.mark.orthanc

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node" / "search.js"


@pytest.fixture
def server(orthanc: LoadedOrthanc) -> Iterator[tuple[CacheServer, CountingUpstream]]:
    pacs = CountingUpstream(QidoRsUpstream("pacs", orthanc.dicomweb_url))
    backend = MemoryBackend(ttl=600, negative_ttl=60)
    running = CacheServer(
        Settings(listen="127.0.0.1:0"), backend=backend, upstreams={"pacs": pacs}
    ).start()
    yield running, pacs
    running.stop(grace=0)


def example(target: str, upstream: str, qido: str) -> subprocess.CompletedProcess[str]:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node and the npm packages are needed: run `npm ci` (.ci/run does)")
    return subprocess.run(
        ["node", str(EXAMPLE), target, upstream, qido],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ),
    )


def answer(target: str, qido: str) -> dict[str, Any]:
    result = example(target, "pacs", qido)
    assert result.returncode == 0, result.stderr
    found: dict[str, Any] = json.loads(result.stdout)
    return found


@pytest.mark.parametrize(
    "qido",
    [
        "studies?PatientID={patient}&includefield=StudyDescription",
        "studies/{study}/series?Modality=CT",
        "studies/{study}/instances",
        "studies/{study}/series/{series}/instances?limit=5&offset=2",
    ],
)
def test_the_example_caches_a_qido_search_with_one_call(server, orthanc, qido):
    running, pacs = server
    big = orthanc.study(1)
    qido = qido.format(patient=big.patient.patient_id, study=big.uid, series=big.series_uids[0])
    target = f"127.0.0.1:{running.port}"
    direct = requests.get(f"{orthanc.dicomweb_url}/{qido}", timeout=30).json()
    assert direct
    miss, hit = answer(target, qido), answer(target, qido)
    assert (miss["hit"], hit["hit"], miss["stale"], hit["stale"]) == (False, True, False, False)
    assert miss["results"] == hit["results"] == direct
    assert miss["count"] == hit["count"] == len(direct)
    assert pacs.fetches == 1


def test_the_example_says_what_was_wrong(server):
    running, _ = server
    result = example(f"127.0.0.1:{running.port}", "elsewhere", "studies")
    assert result.returncode == 1
    assert result.stderr.startswith("INVALID_ARGUMENT: upstream:")
