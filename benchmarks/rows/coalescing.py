"""Rows 16a-16b: archive requests for 100 concurrent identical Search misses.

Orthanc (the 80-instance study) sits behind a counting proxy (tests/support/
counting_proxy.py), which counts the requests that reach the archive at the wire.
Each round sends 100 identical Search calls for the study's instances at once
(threads released together by a barrier), a search not asked before (its
``limit`` differs by round, above the 80 instances, so the archive's answer is the
same and the key is new):

    16a   one server (memory backend): the 100 calls to it
    16b   two servers sharing one redis-server: 50 calls to each

The row's value is the most archive requests any round caused (1 is the design:
one fetch per server, one per cluster with Redis); every call must get the
archive's 80 instances. The callers' latency (the one fetch and the waits behind
it) is reported beside.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from dicomcache.v1 import cache_service_pb2_grpc, search_pb2
from tests.support.counting_proxy import counting_proxy
from tests.support.orthanc import running_orthanc
from tests.support.redis_servers import redis_server
from tests.support.synthetic import standard_studies, upload

from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median
from ..sidecar import Sidecar

CALLERS = 100


def run(plan: Plan) -> list[Row]:
    """Rows 16a (one server) and 16b (two servers sharing Redis)."""
    study = standard_studies()[0]
    rounds = max(1, plan.searcher_rounds // 40)  # 1 quick, 5 full
    with (
        tempfile.TemporaryDirectory(prefix="dicomcache-bench-orthanc-") as directory,
        running_orthanc(directory) as orthanc,
        counting_proxy(orthanc.dicomweb_url) as proxy,
    ):
        upload(orthanc.url, study.datasets)
        settings = {"upstream": f"pacs={proxy.url}"}
        rows = []
        try:
            with Sidecar(settings=settings) as one:
                rows.append(_row("16a", "one server", _rounds([one], proxy, study.uid, rounds, 0)))
        except Exception as exc:
            rows.append(Row(key="16a", measure=_title("one server"), note=f"not run: {exc}"))
        try:
            with (
                redis_server() as redis,
                Sidecar(redis.url, settings=settings) as first,
                Sidecar(redis.url, settings=settings) as second,
            ):
                measured = _rounds([first, second], proxy, study.uid, rounds, 100)
                rows.append(_row("16b", "two servers sharing Redis", measured))
        except Exception as exc:
            rows.append(
                Row(key="16b", measure=_title("two servers sharing Redis"), note=f"not run: {exc}")
            )
    return rows


def _rounds(
    servers: list[Sidecar], proxy: Any, uid: str, rounds: int, first_limit: int
) -> dict[str, Any]:
    """Archive requests and caller latencies over ``rounds`` rounds of CALLERS misses."""
    stubs = [cache_service_pb2_grpc.CacheServiceStub(s.channel) for s in servers]
    requests_per_round, latencies = [], []
    with ThreadPoolExecutor(CALLERS) as pool:
        for index in range(rounds):
            request = search_pb2.SearchRequest(
                upstream="pacs",
                level=search_pb2.SEARCH_LEVEL_INSTANCES,
                study_uid=uid,
                limit=1000 + first_limit + index,  # a new key, the same 80 instances
            )
            barrier = threading.Barrier(CALLERS)
            before = proxy.requests

            def call(
                i: int,
                request: search_pb2.SearchRequest = request,
                barrier: threading.Barrier = barrier,
            ) -> float:
                stub = stubs[i % len(stubs)]
                barrier.wait(30)
                start = time.perf_counter()
                response = stub.Search(request, timeout=60)
                if len(json.loads(response.dicom_json)) != 80:
                    raise RuntimeError("an answer without the study's 80 instances")
                return time.perf_counter() - start

            latencies += list(pool.map(call, range(CALLERS)))
            requests_per_round.append(proxy.requests - before)
    return {"requests": requests_per_round, "latencies": latencies}


def _title(where: str) -> str:
    return f"Search: archive requests for {CALLERS} concurrent identical misses, {where}"


def _row(key: str, where: str, measured: dict[str, Any]) -> Row:
    requests, latencies = measured["requests"], measured["latencies"]
    worst = max(requests)
    return Row(
        key=key,
        measure=_title(where),
        result=f"{worst} request{'s' if worst != 1 else ''}",
        baseline=f"{CALLERS} calls",
        value=float(worst),
        unit="",
        target=Target("<=", 1.0, ""),
        note=f"per round {requests}; callers' latency median {seconds(median(latencies))}, "
        f"slowest {seconds(max(latencies))}",
        figures={
            "archive_requests_per_round": requests,
            "callers": CALLERS,
            "latency_median_s": median(latencies),
            "latency_max_s": max(latencies),
        },
    )
