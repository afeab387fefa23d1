"""Row 9: a CachedSearcher hit of a 10,000-instance study against the same call to Orthanc.

The study (10 series of 1,000 CT instances, about 20 attributes each in the file,
13 in Orthanc's QIDO-RS answer) is uploaded to a real Orthanc, four uploads at a
time. The CachedSearcher runs with its default settings (a 0.25 s deadline to
the first piece of the streamed answer), so the row also shows that such a hit
is served at all: the server's hit counter must grow by one per cached call. The
calls alternate with dicomtrolley's ``QidoRS`` straight to Orthanc, the upstream
a CachedSearcher replaces. Times include building the dicomtrolley objects on
both sides. A hit's datasets are built on first read (``convert.deferred``), so
row 9b times the same calls followed by reading every element of every instance,
on both sides: what a caller that uses every attribute pays. The quick run uses
1,000 instances and says so.
"""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from dicomtrolley.core import QueryLevels, Study
from dicomtrolley.qido_rs import QidoRS

from dicomcache.client import CachedSearcher
from tests.support.orthanc import running_orthanc
from tests.support.synthetic import PatientSpec, SeriesSpec, make_study, upload

from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median
from ..sidecar import Sidecar

SERIES = 10


def run(plan: Plan) -> list[Row]:
    """Row 9."""
    per_series = plan.large_instances // SERIES
    study = make_study(
        90, PatientSpec("SYN-0090", "Large^Study"), [SeriesSpec("CT", per_series)] * SERIES
    )
    what = f"hit, {plan.large_instances:,}-instance study, instance level, QIDO-RS"
    with (
        tempfile.TemporaryDirectory(prefix="dicomcache-bench-orthanc-") as directory,
        running_orthanc(directory) as orthanc,
        requests.Session() as session,
        Sidecar() as server,
    ):
        parts = [study.datasets[i::4] for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda part: upload(orthanc.url, part), parts))
        qido = QidoRS(session=session, url=orthanc.dicomweb_url)
        cached = CachedSearcher(qido, target=server.target, namespace="row9")
        try:
            cached.find_study_by_id(study.uid, QueryLevels.INSTANCE)  # the miss that stores
            return [
                _measure(key, what, server, qido, cached, study.uid, plan.large_rounds)
                for key in ("9", "9b")
            ]
        finally:
            cached.client.close()


def _measure(
    key: str,
    what: str,
    server: Sidecar,
    qido: QidoRS,
    cached: CachedSearcher,
    uid: str,
    rounds: int,
) -> Row:
    level = QueryLevels.INSTANCE
    read_all = key == "9b"
    hits_before = _hits(cached)
    upstream_s, cached_s = [], []
    for i in range(rounds):
        for name in ("upstream", "cached") if i % 2 == 0 else ("cached", "upstream"):
            start = time.perf_counter()
            study = (qido if name == "upstream" else cached).find_study_by_id(uid, level)
            if read_all:
                _read_every_element(study)
            (upstream_s if name == "upstream" else cached_s).append(time.perf_counter() - start)
    hits = _hits(cached) - hits_before
    if hits != rounds:
        raise RuntimeError(f"{hits} hits for {rounds} cached calls: not all hit")
    up, hit = median(upstream_s), median(cached_s)
    then = ", then every element of every instance read" if read_all else ""
    return Row(
        key=key,
        measure=f"CachedSearcher {what}{then}",
        result=seconds(hit),
        baseline=f"{seconds(up)} QidoRS",
        value=up / hit,
        target=Target(">=", 10) if not read_all else None,
        note=f"find_study_by_id with default settings, {rounds} alternating calls each",
        figures={"cached_median_s": hit, "upstream_median_s": up, "calls_each": rounds},
    )


def _read_every_element(study: Study) -> None:
    for series in study.series:
        for instance in series.instances:
            for element in instance.data:
                element.value  # noqa: B018  # the read is the point


def _hits(cached: CachedSearcher) -> int:
    """The server's hits in the searcher's namespace (and its per-protocol parts, if any)."""
    names = (cached.namespace, f"{cached.namespace}@")
    return sum(
        s.hits
        for s in cached.client.stats().namespaces
        if s.namespace == names[0] or s.namespace.startswith(names[1])
    )
