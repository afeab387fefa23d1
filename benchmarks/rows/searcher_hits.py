"""Rows 1-3: a CachedSearcher hit against the same call straight to a real Orthanc.

The Orthanc (started for the run, loaded with the synthetic 80-instance study) is
the upstream; the cache server runs in its own process. Each row alternates, call
by call, the plain dicomtrolley searcher and the CachedSearcher wrapping it, so
both see the same machine at the same moments. The calls are
``find_study_by_id``, what a Trolley asks its searcher before a download (a
``find_studies`` hit on the same study is measured beside row 1). Both sides
return dicomtrolley objects with pydicom datasets; a hit is whole: the gRPC call,
and building those objects. The server's hit counter must grow by exactly the
number of cached calls, so every timed cached call was a hit, not a fallback.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from typing import Any

import requests
from dicomtrolley.core import Query, QueryLevels, Searcher
from dicomtrolley.dicom_qr import DICOMQR
from dicomtrolley.qido_rs import QidoRS

from dicomcache.client import CachedSearcher
from tests.support.orthanc import running_orthanc
from tests.support.synthetic import standard_studies, upload

from ..calls import stats
from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import Sidecar

WARMUP = 5


def run(plan: Plan) -> list[Row]:
    """Rows 1 (QIDO-RS, instance level), 2 (QIDO-RS, study level), 3 (DICOM-QR, instance level)."""
    study = standard_studies()[0]  # 80 instances in 2 series
    with (
        tempfile.TemporaryDirectory(prefix="dicomcache-bench-orthanc-") as directory,
        running_orthanc(directory) as orthanc,
        requests.Session() as session,
        Sidecar() as server,
    ):
        upload(orthanc.url, study.datasets)
        qido = QidoRS(session=session, url=orthanc.dicomweb_url)
        dicom_qr = DICOMQR(
            host=orthanc.host, port=orthanc.dicom_port, aet="DICOMCACHE", aec=orthanc.aet
        )
        rows = []
        for key, upstream, level, what, bound in (
            ("1", qido, QueryLevels.INSTANCE, "80-instance study, instance level, QIDO-RS", 10),
            ("2", qido, QueryLevels.STUDY, "one study, study level, QIDO-RS", 3),
            ("3", dicom_qr, QueryLevels.INSTANCE, "80-instance study via DICOM-QR C-FIND", 30),
        ):
            try:
                rows.append(_measure(key, what, bound, server, upstream, level, study.uid, plan))
            except Exception as exc:  # one broken row must not hide the others
                rows.append(Row(key=key, measure=what, note=f"not run: {exc}"))
    return rows


def _measure(
    key: str,
    what: str,
    bound: float,
    server: Sidecar,
    upstream: Searcher,
    level: QueryLevels,
    uid: str,
    plan: Plan,
) -> Row:
    """One row: the upstream and the CachedSearcher over it, taking turns."""
    cached = _cached(server, upstream, f"row{key}", uid, level)
    if cached is None:
        raise RuntimeError("the cache did not store the upstream's answer: no hit to time")
    try:
        calls: dict[str, Callable[[], Any]] = {
            "upstream": lambda: upstream.find_study_by_id(uid, level),
            "cached": lambda: cached.find_study_by_id(uid, level),
        }
        if key == "1":
            query = Query(StudyInstanceUID=uid, query_level=level)
            calls["cached_query"] = lambda: cached.find_studies(query)
        samples = _alternate(server, cached, calls, plan.searcher_rounds)
    finally:
        cached.client.close()
    return _row(key, what, bound, samples, upstream, plan.searcher_rounds)


def _cached(
    server: Sidecar, upstream: Searcher, namespace: str, uid: str, level: QueryLevels
) -> CachedSearcher | None:
    """A CachedSearcher whose second call is a hit, or None when the answer is not stored."""
    assert server.channel is not None
    cached = CachedSearcher(upstream, target=server.target, namespace=namespace, timeout=5)
    cached.find_study_by_id(uid, level)
    before = stats(server.channel, namespace).hits
    cached.find_study_by_id(uid, level)
    if stats(server.channel, namespace).hits == before:
        cached.client.close()
        return None
    return cached


def _alternate(
    server: Sidecar, cached: CachedSearcher, calls: dict[str, Callable[[], Any]], rounds: int
) -> dict[str, list[float]]:
    """Time each call ``rounds`` times, taking turns; check that every cached call was a hit."""
    assert server.channel is not None
    for call in calls.values():  # the first cached call of each kind is the miss that stores
        for _ in range(WARMUP):
            call()
    cached_kinds = sum(1 for name in calls if name != "upstream")
    hits_before = stats(server.channel, cached.namespace).hits
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    hits = stats(server.channel, cached.namespace).hits - hits_before
    if hits != rounds * cached_kinds:
        raise RuntimeError(f"{hits} hits for {rounds * cached_kinds} cached calls: not all hit")
    return samples


def _row(
    key: str,
    what: str,
    bound: float,
    samples: dict[str, list[float]],
    upstream: Searcher,
    rounds: int,
) -> Row:
    upstream_s, cached_s = median(samples["upstream"]), median(samples["cached"])
    name = type(upstream).__name__
    figures: dict[str, Any] = {
        "cached_median_s": cached_s,
        "upstream_median_s": upstream_s,
        "cached_p99_s": percentile(samples["cached"], 99),
        "upstream_p99_s": percentile(samples["upstream"], 99),
        "calls_each": rounds,
    }
    note = f"find_study_by_id, {rounds} alternating calls each"
    if "cached_query" in samples:
        query_s = median(samples["cached_query"])
        figures["cached_find_studies_median_s"] = query_s
        note += f"; a find_studies hit on the same study: {seconds(query_s)}"
        note += f" ({upstream_s / query_s:.1f}x)"
    return Row(
        key=key,
        measure=f"CachedSearcher hit, {what}",
        result=seconds(cached_s),
        baseline=f"{seconds(upstream_s)} {name}",
        value=upstream_s / cached_s,
        target=Target(">=", bound),
        note=note,
        figures=figures,
    )
