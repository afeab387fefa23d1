"""The fault matrix: a ``CachedSearcher`` calls on while real processes are broken and mended.

Upstream: a real Orthanc (QIDO-RS) holding the synthetic studies. Cache: a real
``dicomcache serve`` process, on the memory backend or on a real Redis (one
server, or a cluster of three masters with a replica each). The searcher has the
default settings (0.25 s deadline, breaker after 3 failures for 10 s); two caller
threads call it without rest (a study by id at instance level, a patient's series).

Each fault: the cache is warmed until both calls hit; a quiet window gives the
baseline; the fault is injected, held, ended (the process continued, restarted, or
failed over); the calls go on until both hit steadily again. Per fault:

* errors that reached the caller, and answers wrong or partial against the
  archive's own (goal 0);
* the worst added latency of one call (see ``traffic``; goal: at most one
  deadline, ``deadline_bound``: a store's, ``DEFAULT_TIMEOUT`` plus the answer's
  size at ``MIN_STORE_RATE``, plus the watchdog's resolution and
  ``SCHEDULING_ALLOWANCE`` for a shared machine);
* seconds from the end of the fault until both calls hit again (reported: with
  the breaker open this is up to its back-off).

A cluster fault kills a master that serves neither the hot study's slot nor its
namespace's: nothing on the hit path may depend on it, so hits go on through the
fault (goal: at least ``UNRELATED_HIT_SHARE`` of the calls during it).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
import requests
from dicomtrolley.qido_rs import QidoRS

from dicomcache.client import CachedSearcher
from dicomcache.client.cache_client import DEFAULT_TIMEOUT, MIN_STORE_RATE
from dicomcache.client.watchdog import RESOLUTION
from dicomcache.server.api.keys import partition
from dicomcache.server.backends.redis import names
from dicomcache.v1 import query_pb2
from tests.support.orthanc import running_orthanc
from tests.support.redis_servers import RedisServer, redis_server
from tests.support.replicated import ReplicatedCluster, replicated_cluster
from tests.support.synthetic import standard_studies, upload

from ..report import Row, Target, seconds
from .processes import ServerProcess, server_process
from .traffic import Call, Record, TimedUpstream, Traffic, calls_for

# Seconds a call may add beyond DEFAULT_TIMEOUT and the watchdog's resolution: the
# scheduler of a shared 2-core machine (a woken thread waits its turn).
SCHEDULING_ALLOWANCE = 0.04


def deadline_bound(store_bytes: int) -> float:
    """One deadline, the longest a single cache call is given: a store's, which is
    ``DEFAULT_TIMEOUT`` plus its size at ``MIN_STORE_RATE``; plus the watchdog's
    resolution and the scheduling allowance."""
    return DEFAULT_TIMEOUT + store_bytes / MIN_STORE_RATE + RESOLUTION + SCHEDULING_ALLOWANCE


UNRELATED_HIT_SHARE = 0.99
STEADY_HITS = 5  # hits in a row, per call, that count as "hitting again"
# The longest the calls may take to hit before a fault is made: not a figure, so
# the same in every plan (the first misses store through Redis on a busy host).
WARM_CAP_S = 30.0


@dataclass(frozen=True)
class Plan:
    """How long each phase of a fault lasts, and which faults run."""

    baseline_s: float
    hold_s: float
    recovery_cap_s: float
    after_s: float
    faults: tuple[str, ...] | None  # None: all


FULL = Plan(baseline_s=3.0, hold_s=3.0, recovery_cap_s=30.0, after_s=1.0, faults=None)
QUICK = Plan(baseline_s=1.0, hold_s=1.0, recovery_cap_s=15.0, after_s=0.5, faults=("F8",))


@dataclass
class Env:
    """What a fault acts on: the cache server, and the Redis behind it if any."""

    server: ServerProcess
    redis: RedisServer | None = None
    cluster: ReplicatedCluster | None = None
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Fault:
    """One row group: ``inject`` breaks, ``end`` mends (blocking until mended)."""

    key: str
    name: str
    inject: Callable[[Env], None]
    end: Callable[[Env], None]
    restore: Callable[[Env], None] = lambda env: None  # after the measurement
    unrelated: bool = False  # the hit path should not notice: hits go on


# --- the faults -------------------------------------------------------------------


def _redis(env: Env) -> RedisServer:
    assert env.redis is not None
    return env.redis


def _cluster(env: Env) -> ReplicatedCluster:
    assert env.cluster is not None
    return env.cluster


def _kill_node(node: RedisServer) -> None:
    assert node.process is not None
    node.process.send_signal(signal.SIGCONT)
    node.process.kill()
    node.process.wait()
    if node.process.stderr is not None:
        node.process.stderr.close()
    node.process = None


def _restart_node(node: RedisServer) -> None:
    node.start()


def _signal_redis(signum: int) -> Callable[[Env], None]:
    def send(env: Env) -> None:
        process = _redis(env).process
        assert process is not None
        process.send_signal(signum)

    return send


def _debug_sleep(env: Env) -> None:
    port, hold = _redis(env).port, env.state["hold"]

    def sleep() -> None:
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=hold + 10)
        try:
            client.execute_command("DEBUG", "SLEEP", f"{hold:.3f}")
        finally:
            client.close()

    env.state["sleeper"] = thread = threading.Thread(target=sleep, daemon=True)
    thread.start()


def _debug_sleep_end(env: Env) -> None:
    env.state.pop("sleeper").join(timeout=60)


def _client_pause(env: Env) -> None:
    client = _redis(env).client()
    try:
        client.execute_command("CLIENT", "PAUSE", int(env.state["hold"] * 1000), "ALL")
    finally:
        client.close()


def _client_pause_end(env: Env) -> None:
    """The pause ends by itself after the hold; wait until Redis answers again."""
    client = _redis(env).client()
    try:
        client.ping()
    finally:
        client.close()


def _kill_unrelated_master(env: Env) -> None:
    node = env.state["victim"]
    env.state["victim_port"] = node.port
    _kill_node(node)


def _failed_over(env: Env) -> None:
    _cluster(env).wait_healthy(avoid_port=env.state["victim_port"])


def _kill_hot_master(env: Env) -> None:
    cluster = _cluster(env)
    node = cluster.master_of(env.state["study_key"])
    env.state["victim"] = node
    env.state["victim_port"] = node.port
    _kill_node(node)


def _rejoin(env: Env) -> None:
    cluster = _cluster(env)
    _restart_node(env.state["victim"])
    cluster.wait_healthy()
    cluster.wait_replicas_synced()


def _signal_server(signum: int) -> Callable[[Env], None]:
    return lambda env: env.server.signal(signum)


def _restart_server(env: Env) -> None:
    env.server.wait_exit()
    env.server.start()


FAULTS = [
    Fault(
        "F1",
        "Redis SIGKILL, restarted",
        lambda env: _kill_node(_redis(env)),
        lambda env: _restart_node(_redis(env)),
    ),
    Fault(
        "F2",
        "Redis SIGSTOP, SIGCONT",
        _signal_redis(signal.SIGSTOP),
        _signal_redis(signal.SIGCONT),
    ),
    Fault("F3", "Redis DEBUG SLEEP", _debug_sleep, _debug_sleep_end),
    Fault("F4", "Redis CLIENT PAUSE ALL", _client_pause, _client_pause_end),
    Fault(
        "F5",
        "cluster: the hot study's master SIGKILL, failover",
        _kill_hot_master,
        _failed_over,
        _rejoin,
    ),
    Fault(
        "F6",
        "cluster: a master off the hit path SIGKILL, failover",
        _kill_unrelated_master,
        _failed_over,
        _rejoin,
        unrelated=True,
    ),
    Fault("F7", "server SIGKILL, restarted", _signal_server(signal.SIGKILL), _restart_server),
    Fault(
        "F8",
        "server SIGSTOP, SIGCONT",
        _signal_server(signal.SIGSTOP),
        _signal_server(signal.SIGCONT),
    ),
    Fault("F9", "server SIGTERM, restarted", _signal_server(signal.SIGTERM), _restart_server),
]
GROUPS = {"redis": ("F1", "F2", "F3", "F4"), "cluster": ("F5", "F6"), "memory": ("F7", "F8", "F9")}
SUFFIXES = ("a", "b", "c")


# --- the environments -------------------------------------------------------------


@contextlib.contextmanager
def _environment(group: str) -> Iterator[Env]:
    if group == "memory":
        with server_process("--backend", "memory") as server:
            yield Env(server)
    elif group == "redis":
        with (
            redis_server("--enable-debug-command", "local") as node,
            server_process("--backend", node.url) as server,
        ):
            yield Env(server, redis=node)
    else:
        with (
            replicated_cluster() as cluster,
            server_process("--backend", cluster.url) as server,
        ):
            yield Env(server, cluster=cluster)


# --- measuring --------------------------------------------------------------------


@dataclass(frozen=True)
class Upstream:
    """The archive and the calls, with its answers read once before any fault."""

    timed: TimedUpstream
    calls: dict[str, list[Call]]  # by study uid


def _namespace(key: str) -> str:
    return f"rel-{key.lower()}-{os.getpid()}"


QIDO = query_pb2.PROTOCOL_QIDO_RS


def _study_key(namespace: str, study_uid: str) -> str:
    return names.Names(partition(namespace, QIDO)).study(study_uid) + "o"


def _namespace_key(namespace: str) -> str:
    return names.Names(partition(namespace, QIDO)).counters


# The backend's keys outside every namespace and study, by the names they have had.
GLOBAL_KEYS = ("NAMESPACES", "REGISTRY")


def _choose_unrelated(env: Env, base: str, uids: list[str]) -> tuple[str, str]:
    """The namespace and study the calls use for F6, and the victim: a master serving
    neither their slots; one holding a global key of the backend when there is one."""
    cluster = _cluster(env)
    global_keys = [k for k in (getattr(names, n, None) for n in GLOBAL_KEYS) if isinstance(k, str)]
    holders = {cluster.master_of(k).port: k for k in global_keys}
    fallback: tuple[str, str, RedisServer] | None = None
    for i in range(32):
        namespace = f"{base}-{i}"
        for uid in uids:
            used = {
                cluster.master_of(_namespace_key(namespace)).port,
                cluster.master_of(_study_key(namespace, uid)).port,
            }
            spare = [n for n in cluster.live() if n.port not in used and _role(n) == "master"]
            preferred = [n for n in spare if n.port in holders]
            if preferred:
                env.state["victim"] = preferred[0]
                env.state["victim_holds"] = holders[preferred[0].port]
                return namespace, uid
            if spare and fallback is None:
                fallback = (namespace, uid, spare[0])
    if fallback is None:
        raise RuntimeError("no master is off the hit path of any study")
    env.state["victim"] = fallback[2]
    env.state["victim_holds"] = ""
    return fallback[0], fallback[1]


def _role(node: RedisServer) -> str:
    client = node.client()
    try:
        return str(client.info("replication")["role"])
    finally:
        client.close()


def measure(fault: Fault, env: Env, upstream: Upstream, plan: Plan) -> list[Row]:
    """The three rows of one fault (four for a fault off the hit path)."""
    namespace, uids = _namespace(fault.key), list(upstream.calls)
    uid = uids[0]
    if fault.unrelated:
        namespace, uid = _choose_unrelated(env, namespace, uids)
    env.state.update(hold=plan.hold_s, study_key=_study_key(namespace, uid))
    searcher = CachedSearcher(
        upstream.timed, target=env.server.target, namespace=namespace, protocol="qido-rs"
    )
    try:
        with Traffic(searcher, upstream.timed, upstream.calls[uid]) as traffic:
            if traffic.wait_hits(0.0, STEADY_HITS, max(plan.recovery_cap_s, WARM_CAP_S)) is None:
                raise RuntimeError("the calls never hit before the fault")
            quiet = time.monotonic()
            time.sleep(plan.baseline_s)
            t0 = time.monotonic()
            fault.inject(env)
            time.sleep(plan.hold_s)
            fault.end(env)
            t1 = time.monotonic()
            again = traffic.wait_hits(t1, STEADY_HITS, plan.recovery_cap_s)
            time.sleep(plan.after_s)
            records = traffic.records()
        fault.restore(env)
    finally:
        searcher.client.close()
    bound = deadline_bound(max(call.store_bytes for call in upstream.calls[uid]))
    return _rows(fault, plan, records, (quiet, t0, t1, again), bound, env.state)


def _rows(
    fault: Fault,
    plan: Plan,
    records: list[Record],
    times: tuple[float, float, float, float | None],
    bound: float,
    state: dict[str, Any],
) -> list[Row]:
    quiet, t0, t1, again = times
    baseline = sorted(r.duration for r in records if quiet <= r.start and r.end <= t0)
    if not baseline:
        raise RuntimeError("no call in the quiet window")
    hit_s = baseline[len(baseline) // 2]
    quiet_worst = max(r.cache_s for r in records if quiet <= r.start and r.end <= t0) - hit_s
    during = [r for r in records if r.end > t0]
    added = [r.cache_s - hit_s for r in during]
    errors = [r for r in records if r.outcome.startswith("error")]
    wrong = sum(r.outcome == "wrong" for r in records)
    partial = sum(r.outcome == "partial" for r in records)
    held = [r for r in records if t0 <= r.start and r.end <= t1]
    hits_held = sum(r.hit for r in held)
    worst = max(added, default=0.0)
    slowest = max(during, key=lambda r: r.cache_s, default=None)
    figures = {
        "calls": len(records),
        "calls_from_fault": len(during),
        "errors": len(errors),
        "error_types": sorted({r.outcome for r in errors}),
        "wrong": wrong,
        "partial": partial,
        "hit_median_s": hit_s,
        "quiet_worst_added_s": quiet_worst,
        "worst_added_s": worst,
        "calls_over_50ms_added": sum(a > 0.05 for a in added),
        "fault_s": t1 - t0,
        "recovery_s": None if again is None else again - t1,
        "calls_during_fault": len(held),
        "hits_during_fault": hits_held,
        "deadline_bound_s": bound,
        "worst_call": None
        if slowest is None
        else {
            "call": slowest.call,
            "start_from_fault_s": slowest.start - t0,
            "duration_s": slowest.duration,
            "upstream_s": slowest.upstream_s,
            "hit": slowest.hit,
        },
        "plan": plan.__dict__,
        **{k: v for k, v in state.items() if k == "victim_holds"},
    }
    name = fault.name
    rows = [
        Row(
            key=f"{fault.key}a",
            measure=f"{name}: errors, wrong, partial answers",
            result=f"{len(errors)} / {wrong} / {partial} of {len(records)} calls",
            value=float(len(errors) + wrong + partial),
            unit="",
            target=Target("<=", 0, ""),
            figures=figures,
        ),
        Row(
            key=f"{fault.key}b",
            measure=f"{name}: worst added latency per call",
            result=seconds(worst),
            baseline=f"quiet worst {seconds(quiet_worst)} (hit {seconds(hit_s)})",
            value=worst,
            unit=" s",
            target=Target("<=", round(bound, 3), " s"),
            figures=figures,
        ),
        Row(
            key=f"{fault.key}c",
            measure=f"{name}: seconds to hit again after it ends",
            result="never" if again is None else seconds(again - t1),
            baseline=f"fault held {seconds(t1 - t0)}",
            value=plan.recovery_cap_s if again is None else again - t1,
            unit=" s",
            note="" if again is not None else f"no steady hits within {plan.recovery_cap_s:g} s",
            figures=figures,
        ),
    ]
    if fault.unrelated:
        share = hits_held / len(held) if held else 0.0
        rows.append(
            Row(
                key=f"{fault.key}d",
                measure=f"{name}: share of calls that hit during it",
                result=f"{hits_held} of {len(held)}",
                value=share,
                unit="",
                target=Target(">=", UNRELATED_HIT_SHARE, ""),
                note=(
                    f"the victim held the backend's global key {state['victim_holds']}"
                    if state.get("victim_holds")
                    else "the victim served other slots only (no global key found)"
                ),
                figures=figures,
            )
        )
    return rows


def _not_run(fault: Fault, reason: str) -> list[Row]:
    suffixes = (*SUFFIXES, "d") if fault.unrelated else SUFFIXES
    return [
        Row(key=f"{fault.key}{s}", measure=fault.name, note=f"not run: {reason}") for s in suffixes
    ]


def run_plan(plan: Plan) -> list[Row]:
    """The rows of the plan's faults; a fault or group that cannot run says why."""
    chosen = [f for f in FAULTS if plan.faults is None or f.key in plan.faults]
    studies = standard_studies()
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="dicomcache-rel-orthanc-") as directory,
        running_orthanc(directory) as orthanc,
    ):
        with requests.Session() as session:
            for study in studies:
                upload(orthanc.url, study.datasets, session)
        timed = TimedUpstream(lambda: QidoRS(session=requests.Session(), url=orthanc.dicomweb_url))
        direct = QidoRS(session=requests.Session(), url=orthanc.dicomweb_url)
        calls = {s.uid: calls_for(s.uid, s.patient.patient_id, direct) for s in studies}
        upstream = Upstream(timed, calls)
        for group, keys in GROUPS.items():
            faults = [f for f in chosen if f.key in keys]
            if not faults:
                continue
            try:
                with _environment(group) as env:
                    for fault in faults:
                        print(f"    {fault.key} {fault.name}", flush=True)
                        try:
                            rows.extend(measure(fault, env, upstream, plan))
                        except Exception as exc:
                            rows.extend(_not_run(fault, f"{type(exc).__name__}: {exc}"))
            except Exception as exc:
                for fault in faults:
                    if not any(r.key.startswith(fault.key) for r in rows):
                        rows.extend(_not_run(fault, f"{type(exc).__name__}: {exc}"))
    return rows


def run(quick: bool) -> list[Row]:
    """The fault matrix: all faults, or one in ``--quick``."""
    return run_plan(QUICK if quick else FULL)
