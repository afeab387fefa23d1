"""Rows 14a-14d and 15a-15b: Search and QIDO-RS endpoint hits vs QIDO-RS straight to Orthanc.

One Orthanc (the synthetic 80-instance study) is upstream "pacs" of one cache
server in its own process, its HTTP endpoint on. Two searches: study level
(``/studies?StudyInstanceUID={uid}``, one study) and the study's 80 instances
(``/studies/{uid}/instances``). Each row takes turns, call by call, between the
cached way and the same QIDO-RS GET to Orthanc, and both end with the parsed JSON
array (what a service would use):

    14a, 14b   Search from Python (a grpcio stub; json.loads of dicom_json) vs a
               requests.Session GET
    14c, 14d   Search from Node (@grpc/grpc-js; JSON.parse), in the same run, vs Node's
               fetch (benchmarks/node/search_hits.js)
    15a, 15b   the HTTP endpoint (a requests.Session GET to /dicom-web/pacs/...) vs
               the same GET to Orthanc

Every timed cached call must be a hit (Search's ``hit``, the endpoint's X-Cache) and
its answer equal to Orthanc's (parsed JSON, order included), or the row fails.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from dicomcache.server.http.request import parse
from dicomcache.v1 import cache_service_pb2_grpc
from tests.support.orthanc import running_orthanc
from tests.support.ports import free_port
from tests.support.synthetic import standard_studies, upload

from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar

WARMUP = 5
NODE_SCRIPT = Path(__file__).resolve().parents[1] / "node" / "search_hits.js"
REPO = Path(__file__).resolve().parents[2]


def run(plan: Plan) -> list[Row]:
    """Rows 14a-14d (Search from Python and Node) and 15a-15b (the HTTP endpoint)."""
    study = standard_studies()[0]  # 80 instances in 2 series
    qidos = {
        "study level": f"studies?StudyInstanceUID={study.uid}",
        "80 instances": f"studies/{study.uid}/instances",
    }
    http_port = free_port()
    with (
        tempfile.TemporaryDirectory(prefix="dicomcache-bench-orthanc-") as directory,
        running_orthanc(directory) as orthanc,
        requests.Session() as session,
    ):
        upload(orthanc.url, study.datasets)
        settings = {
            "upstream": f"pacs={orthanc.dicomweb_url}",
            "http_listen": f"127.0.0.1:{http_port}",
        }
        with Sidecar(settings=settings) as server:
            assert server.channel is not None
            stub = cache_service_pb2_grpc.CacheServiceStub(server.channel)
            endpoint = f"http://127.0.0.1:{http_port}/dicom-web/pacs"
            rows: list[Row] = []
            for key, (what, qido) in zip(("14a", "14b"), qidos.items(), strict=True):
                rows.append(
                    _guarded(
                        key,
                        f"Search hit from Python, {what}",
                        lambda q=qido: _python(
                            stub, session, orthanc.dicomweb_url, q, plan.searcher_rounds
                        ),
                    )
                )
            rows += _node(server.target, orthanc.dicomweb_url, qidos, plan.searcher_rounds)
            for key, (what, qido) in zip(("15a", "15b"), qidos.items(), strict=True):
                rows.append(
                    _guarded(
                        key,
                        f"HTTP endpoint hit, {what}",
                        lambda q=qido: _http(
                            session, endpoint, orthanc.dicomweb_url, q, plan.searcher_rounds
                        ),
                    )
                )
    return rows


def _guarded(key: str, what: str, measure: Callable[[], tuple[dict[str, list[float]], str]]) -> Row:
    """One row from its samples ("cached" and "direct"), or "not run" with the reason."""
    try:
        samples, client = measure()
    except Exception as exc:  # one broken row must not hide the others
        return Row(key=key, measure=what, note=f"not run: {type(exc).__name__}: {exc}")
    return _row(key, what, samples, client, len(samples["cached"]))


def _python(
    stub: Any, session: requests.Session, archive: str, qido: str, rounds: int
) -> tuple[dict[str, list[float]], str]:
    path, _, query = qido.partition("?")
    request = parse(f"/dicom-web/pacs/{path}", query).request
    reference = session.get(f"{archive}/{qido}", timeout=30).json()
    stub.Search(request, timeout=30)  # the miss that stores

    def cached() -> list[Any]:
        response = stub.Search(request, timeout=10)
        if not response.hit:
            raise RuntimeError("a timed Search call was not a hit")
        found: list[Any] = json.loads(response.dicom_json)
        return found

    calls = {
        "cached": cached,
        "direct": lambda: session.get(f"{archive}/{qido}", timeout=30).json(),
    }
    return _alternate(calls, rounds, reference), "requests GET to Orthanc"


def _http(
    session: requests.Session, endpoint: str, archive: str, qido: str, rounds: int
) -> tuple[dict[str, list[float]], str]:
    reference = session.get(f"{archive}/{qido}", timeout=30).json()
    session.get(f"{endpoint}/{qido}", timeout=30)  # a hit already (14a, 14b): or the miss

    def cached() -> list[Any]:
        answer = session.get(f"{endpoint}/{qido}", timeout=30)
        if answer.headers.get("X-Cache") != "HIT":
            raise RuntimeError(f"a timed endpoint call was not a hit ({answer.status_code})")
        found: list[Any] = answer.json()
        return found

    calls = {
        "cached": cached,
        "direct": lambda: session.get(f"{archive}/{qido}", timeout=30).json(),
    }
    return _alternate(calls, rounds, reference), "requests GET to Orthanc"


def _alternate(
    calls: dict[str, Callable[[], Any]], rounds: int, reference: Any
) -> dict[str, list[float]]:
    """Warm up, check the cached answer against Orthanc's, then take turns."""
    for _ in range(WARMUP):
        for call in calls.values():
            call()
    if calls["cached"]() != reference:
        raise RuntimeError("the cached answer differs from Orthanc's")
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names if i % 2 else names[::-1]:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def _node(target: str, archive: str, qidos: dict[str, str], rounds: int) -> list[Row]:
    keys = ("14c", "14d")
    titles = [f"Search hit from Node, {what}" for what in qidos]
    try:
        result = subprocess.run(
            ["node", str(NODE_SCRIPT), target, "pacs", archive, str(rounds), *qidos.values()],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=REPO,
        )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip()[-500:])
        measured = json.loads(result.stdout)
    except Exception as exc:
        return [
            Row(key=k, measure=t, note=f"not run: {exc}") for k, t in zip(keys, titles, strict=True)
        ]
    rows = []
    for key, title, qido in zip(keys, titles, qidos.values(), strict=True):
        found = measured[qido]
        if found["misses"] or not found["equal"]:
            note = f"not run: {found['misses']} misses, answers equal: {found['equal']}"
            rows.append(Row(key=key, measure=title, note=note))
            continue
        samples = {"cached": found["search"], "direct": found["direct"]}
        rows.append(_row(key, title, samples, "Node fetch to Orthanc", rounds))
    return rows


def _row(key: str, what: str, samples: dict[str, list[float]], client: str, rounds: int) -> Row:
    cached_s, direct_s = median(samples["cached"]), median(samples["direct"])
    return Row(
        key=key,
        measure=what,
        result=seconds(cached_s),
        baseline=f"{seconds(direct_s)} {client}",
        value=direct_s / cached_s,
        target=Target(">=", 1.0),
        note=f"p99 {seconds(percentile(samples['cached'], 99))} vs "
        f"{seconds(percentile(samples['direct'], 99))}; {rounds} alternating calls each, "
        "parsed JSON at both ends",
        figures={
            "cached_median_s": cached_s,
            "direct_median_s": direct_s,
            "cached_p99_s": percentile(samples["cached"], 99),
            "direct_p99_s": percentile(samples["direct"], 99),
            "calls_each": rounds,
        },
    )
