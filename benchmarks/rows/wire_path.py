"""Rows 17a-17d: the wire path of a hit against its floor, an echo of the same bytes (issue 15).

One server process holds the 80-instance study as a listing complete down to
instances (``calls.HotStudy``), so a study-level and an 80-instance
``find_study_by_id`` are both hits. Its admin ``Echo`` returns exactly the
``LookupStudyResponse`` bytes of the hit being measured: gRPC's own cost of that
reply, the floor.

* 17a/17b, the client: ``CachedSearcher.find_study_by_id`` hits from this process
  against the echo called from this process; beside them the same lookup at the
  CacheClient (``lookup_study_leased``) through the views (``client/convert/view.py``,
  the path since issue 15) and through the contract's messages, each Dataset parsed
  and serialized again for its deferred dataset (the path before); the four take
  turns call by call. The path before is a CacheClient that parses the bytes of the
  view's message again with the contract's message (``SerializeToString`` of the
  view, about 1% of that path's time).
* 17c/17d, the server: the unary ``LookupStudy`` hit against the echo, from a
  separate load process (``load.alternating_latency``) as row 4, at instance and
  at study level: what the server adds to the floor.

The server's hit counter must grow by exactly the number of client hits.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from dicomtrolley.core import Query, QueryLevels, Searcher, Study

from dicomcache.client import CachedSearcher
from dicomcache.client.cache_client import CacheClient
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.convert.query import LEVELS
from dicomcache.v1 import cache_service_pb2 as pb

from ..calls import HotStudy, check_hit, stats
from ..load import Call, alternating_latency, elsewhere
from ..plan import Plan
from ..report import Row, Target, seconds
from ..samples import median, percentile
from ..sidecar import ADMIN_SERVICE, Sidecar

WARMUP = 20
QUERY_LEVELS = {"instance": QueryLevels.INSTANCE, "study": QueryLevels.STUDY}


class ContractPath(CacheClient):
    """A CacheClient whose hits take the path before the views: the contract's messages."""

    def lookup_study_leased(
        self,
        namespace: str,
        study_uid: str,
        level: QueryLevels,
        *,
        pause_gc: bool = False,
        protocol: str | None = None,
    ) -> tuple[Study | None, int]:
        """As CacheClient's, parsing the response whole and building with study_from_proto."""
        request = pb.LookupStudyRequest(
            namespace=namespace, study_uid=study_uid, query_level=LEVELS[QueryLevels(level)]
        )
        seen = self._call("LookupStudy", request)
        response = pb.LookupStudyResponse.FromString(seen.SerializeToString())
        if not response.hit:
            return None, int(response.lease)
        return study_from_proto(response.study, pause_gc=pause_gc), 0


class Refusing(Searcher):  # type: ignore[misc]  # dicomtrolley ships no type information
    """An upstream that must never be asked: every timed call is a hit."""

    def find_studies(self, query: Query) -> Sequence[Study]:
        raise AssertionError("a hit was expected")

    def find_study_by_id(
        self, study_uid: str, query_level: QueryLevels = QueryLevels.STUDY
    ) -> Study:
        raise AssertionError("a hit was expected")


def run(plan: Plan) -> list[Row]:
    """Rows 17a (client, 80 instances), 17b (client, study level), 17c and 17d (server)."""
    with Sidecar() as server:
        assert server.channel is not None
        hot = HotStudy()
        hot.store(server.channel, level="instance")
        rows = []
        for key, level in (("a", "instance"), ("b", "study")):
            rows.append(_client_row(f"17{key}", server, hot, level, plan.searcher_rounds * 2))
        for key, level in (("c", "instance"), ("d", "study")):
            rows.append(_server_row(f"17{key}", server, hot, level, plan.latency_rounds))
    return rows


def _echoing(server: Sidecar, hot: HotStudy, level: str) -> tuple[Call, bytes]:
    """The hit's call, with the server's echo set to its response bytes."""
    assert server.channel is not None
    hit = hot.lookup(server.target, level, "hit")
    response = check_hit(server.channel, hit)
    server.admin("SetEcho", response)
    return hit, response


def _client_row(key: str, server: Sidecar, hot: HotStudy, level: str, rounds: int) -> Row:
    assert server.channel is not None
    _, response = _echoing(server, hot, level)
    echo = server.channel.unary_unary(f"/{ADMIN_SERVICE}/Echo")
    searcher = CachedSearcher(Refusing(), target=server.target, namespace=hot.namespace, timeout=5)
    old = ContractPath(server.target, timeout=5)
    new = CacheClient(server.target, timeout=5)
    query_level = QUERY_LEVELS[level]
    try:
        calls: dict[str, Callable[[], Any]] = {
            "searcher": lambda: searcher.find_study_by_id(hot.uid, query_level),
            "views": lambda: new.lookup_study_leased(hot.namespace, hot.uid, query_level),
            "contract": lambda: old.lookup_study_leased(hot.namespace, hot.uid, query_level),
            "echo": lambda: echo(b"", timeout=60),
        }
        samples = _alternate(server, hot, calls, rounds, hits_per_round=3)
    finally:
        for client in (searcher.client, old, new):
            client.close()
    views, contract, floor = (median(samples[name]) for name in ("views", "contract", "echo"))
    hit = median(samples["searcher"])
    figures = {f"{name}_median_s": median(samples[name]) for name in samples}
    figures |= {f"{name}_p99_s": percentile(samples[name], 99) for name in samples}
    figures |= {f"{name}_mean_s": sum(samples[name]) / rounds for name in samples}
    figures |= {"response_bytes": len(response), "calls_each": rounds}
    note = (
        f"CacheClient lookup through the views {seconds(views)}, through the contract's "
        f"messages (the path before) {seconds(contract)} ({contract / views:.2f}x); "
        f"{len(response)}-byte reply; medians of {rounds} alternating calls each"
    )
    if level == "instance":
        return Row(
            key=key,
            measure="CachedSearcher hit, 80-instance study, instance level (wire path)",
            result=seconds(hit),
            baseline=f"{seconds(floor)} echo",
            value=hit * 1e3,
            unit=" ms",
            target=Target("<=", 4.0, " ms"),
            note=f"{hit / floor:.2f}x the echo; " + note,
            figures=figures,
        )
    return Row(
        key=key,
        measure="CachedSearcher hit, one study, study level (wire path)",
        result=seconds(hit),
        baseline=f"{seconds(floor)} echo",
        value=hit / floor,
        target=Target("<=", 1.3),
        note=note,
        figures=figures,
    )


def _alternate(
    server: Sidecar,
    hot: HotStudy,
    calls: dict[str, Callable[[], Any]],
    rounds: int,
    hits_per_round: int,
) -> dict[str, list[float]]:
    """Time each call ``rounds`` times, taking turns; check that every searcher call hit."""
    assert server.channel is not None
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    before = stats(server.channel, hot.namespace).hits
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for i in range(rounds):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    hits = stats(server.channel, hot.namespace).hits - before
    if hits != rounds * hits_per_round:
        raise RuntimeError(f"{hits} hits for {rounds * hits_per_round} searcher calls")
    return samples


def _server_row(key: str, server: Sidecar, hot: HotStudy, level: str, rounds: int) -> Row:
    hit, response = _echoing(server, hot, level)
    echo = Call("echo", server.target, f"/{ADMIN_SERVICE}/Echo", hit.payload)
    latency = elsewhere(alternating_latency, [hit, echo], rounds)
    hit_s, echo_s = median(latency["hit"]), median(latency["echo"])
    what = "80-instance" if level == "instance" else "study-level"
    return Row(
        key=key,
        measure=f"server: {what} LookupStudy hit RPC, 1 in flight",
        result=seconds(hit_s),
        baseline=f"{seconds(echo_s)} echo",
        value=hit_s / echo_s,
        target=Target("<=", 1.2) if level == "instance" else None,
        note=f"an echo of the same {len(response)}-byte reply; server work "
        f"{seconds(max(hit_s - echo_s, 0.0))}; medians of {rounds} alternating calls each",
        figures={
            "hit_median_s": hit_s,
            "echo_median_s": echo_s,
            "hit_p99_s": percentile(latency["hit"], 99),
            "echo_p99_s": percentile(latency["echo"], 99),
            "response_bytes": len(response),
            "calls_each": rounds,
        },
    )
