"""Health, reflection, load shedding, graceful shutdown, logs without PHI."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from dicomcache.server.api.service import SERVICE_NAME
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, query_pb2
from tests.grpc.conftest import start_server
from tests.support.messages import make_study
from tests.support.serve_process import started


class BlockingBackend(MemoryBackend):
    """A backend whose query lookups wait for a gate: the only way to hold a call in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Semaphore(0)
        self.gate = threading.Event()

    def lookup_answer(self, namespace, key):  # type: ignore[no-untyped-def]  # an override; the base is typed
        self.entered.release()
        self.gate.wait(30)
        return super().lookup_answer(namespace, key)


def start_blocking(**settings: object):
    from dicomcache.server.app import CacheServer
    from dicomcache.server.config import Settings

    backend = BlockingBackend()
    server = CacheServer(Settings(listen="127.0.0.1:0", **settings), backend=backend).start()  # type: ignore[arg-type]  # settings as keywords
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    from dicomcache.v1 import cache_service_pb2_grpc

    return server, backend, channel, cache_service_pb2_grpc.CacheServiceStub(channel)


LOOKUP = pb.LookupQueryRequest(namespace="ns", query=query_pb2.Query(patient_id="P1"))


def test_health_reports_serving_for_the_server_and_the_service(running):
    health = health_pb2_grpc.HealthStub(running.channel)
    for service in ("", SERVICE_NAME):
        response = health.Check(health_pb2.HealthCheckRequest(service=service))
        assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_cache_service(running):
    reflection = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    (response,) = list(reflection.ServerReflectionInfo(iter([request])))
    names = {s.name for s in response.list_services_response.service}
    assert {SERVICE_NAME, "grpc.health.v1.Health"} <= names
    request = reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE_NAME)
    (response,) = list(reflection.ServerReflectionInfo(iter([request])))
    assert response.file_descriptor_response.file_descriptor_proto


def test_calls_over_the_concurrency_limit_are_shed_with_resource_exhausted():
    server, backend, channel, stub = start_blocking(max_concurrent_rpcs=2, workers=4)
    try:
        in_flight = [stub.LookupQuery.future(LOOKUP) for _ in range(2)]
        for _ in in_flight:
            assert backend.entered.acquire(timeout=10)
        with pytest.raises(grpc.RpcError) as caught:
            stub.LookupQuery(LOOKUP, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        backend.gate.set()
        assert all(f.result(timeout=10).hit is False for f in in_flight)
        assert stub.LookupQuery(LOOKUP, timeout=10).hit is False
    finally:
        backend.gate.set()
        channel.close()
        server.stop(grace=0)


def test_stop_turns_health_not_serving_and_drains_in_flight_calls():
    server, backend, channel, stub = start_blocking()
    try:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=SERVICE_NAME)
        )
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        in_flight = stub.LookupQuery.future(LOOKUP)
        assert backend.entered.acquire(timeout=10)
        stopper = threading.Thread(target=server.stop, kwargs={"grace": 30})
        stopper.start()
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert stopper.is_alive(), "stop must wait for the call in flight"
        backend.gate.set()
        assert in_flight.result(timeout=10).hit is False
        stopper.join(timeout=30)
        assert not stopper.is_alive()
    finally:
        backend.gate.set()
        channel.close()


def test_sigterm_turns_health_not_serving_and_exits_zero():
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dicomcache.server.cli",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--grace",
            "5",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        port = int(re.search(r"serving on 127\.0\.0\.1:(\d+)", line).group(1))  # type: ignore[union-attr]  # the line was matched just above
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            process.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()


def test_shutdown_delay_keeps_serving_while_health_says_not_serving():
    """After SIGTERM calls are still served for --shutdown-delay; a second signal ends it."""
    # 600 s: far longer than the test, so only the second signal may end the delay.
    with started("--listen", "127.0.0.1:0", "--shutdown-delay", "600") as run:
        with grpc.insecure_channel(f"127.0.0.1:{run.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
            run.process.send_signal(signal.SIGTERM)
            assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = cache_service_pb2_grpc.CacheServiceStub(channel)
            request = pb.StoreStudyRequest(namespace="late", study=make_study(1, 1, 1))
            assert stub.StoreStudy(request, timeout=10).stored  # still served
            assert run.process.poll() is None
            run.process.send_signal(signal.SIGTERM)
        assert run.process.wait(timeout=30) == 0
        assert run.process.stderr is not None
        assert "still serving for 600s" in run.process.stderr.read()


def test_no_patient_data_in_logs_at_info(caplog):
    running = start_server()
    caplog.set_level(logging.INFO)
    try:
        study = make_study(1, 1, 1, patient="Secretname^Jane")
        query = query_pb2.Query(patient_name="Secretname^Jane", patient_id="SECRET-ID-42")
        running.stub.StoreQuery(pb.StoreQueryRequest(namespace="ns", query=query, studies=[study]))
        running.stub.LookupQuery(pb.LookupQueryRequest(namespace="ns", query=query))
        running.stub.Invalidate(pb.InvalidateRequest(namespace="ns"))
        bad = pb.LookupQueryRequest(
            namespace="ns", query=query_pb2.Query(patient_id="SECRET-ID-42" * 100)
        )
        with pytest.raises(grpc.RpcError):
            running.stub.LookupQuery(bad)
    finally:
        running.channel.close()
        running.server.stop(grace=0)
    logged = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "invalidated" in logged  # the test does see the server's log lines
    for secret in ("Secretname", "SECRET-ID-42", "Jane"):
        assert secret not in logged


def test_startup_line_shows_the_configuration_without_the_password(tmp_path):
    from dicomcache.server.config import Settings

    settings = Settings(backend="redis://:hunter2@127.0.0.1:1/0")
    assert "hunter2" not in settings.redacted_backend()
    assert settings.redacted_backend() == "redis://:***@127.0.0.1:1/0"


def test_cli_rejects_bad_settings_with_a_clear_message():
    result = subprocess.run(
        [sys.executable, "-m", "dicomcache.server.cli", "serve", "--ttl", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "ttl" in result.stderr and "greater than 0" in result.stderr


@pytest.mark.parametrize("value", ["0", "0MiB"])
def test_cli_rejects_a_max_memory_of_zero(capsys, value):
    from dicomcache.server.cli import main

    assert main(["serve", "--max-memory", value]) == 2
    assert "max_memory must be greater than 0, or 'auto'" in capsys.readouterr().err


def test_serve_help_documents_every_setting_and_its_variable():
    from dicomcache.server.config import Settings

    result = subprocess.run(
        [sys.executable, "-m", "dicomcache.server.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for name in Settings.model_fields:
        assert f"--{name.replace('_', '-')}" in text
        assert f"DICOMCACHE_{name.upper()}" in text


def test_json_logs_are_one_object_per_line_with_the_configuration():
    import json

    process = subprocess.Popen(
        [sys.executable, "-m", "dicomcache.server.cli", "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DICOMCACHE_LOG_FORMAT": "json", "DICOMCACHE_TTL": "30"},
    )
    try:
        assert process.stderr is not None
        record = json.loads(process.stderr.readline())
        assert record["level"] == "INFO"
        assert "serving on 127.0.0.1:" in record["message"]
        assert "ttl=30s negative_ttl=30s" in record["message"]
        assert "log_format=json" in record["message"]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        lines = [json.loads(line) for line in process.stderr.read().splitlines() if line]
        assert [r["message"] for r in lines][-1] == "stopped"
    finally:
        process.kill()
        process.wait()


def test_an_in_process_server_leaves_the_interpreter_as_it_was():
    """Library objects change nothing process-wide: only ``dicomcache serve`` may."""
    from dicomcache.server.app import CacheServer
    from dicomcache.server.config import Settings

    before = sys.getswitchinterval()
    server = CacheServer(Settings(listen="127.0.0.1:0")).start()
    try:
        assert sys.getswitchinterval() == before
    finally:
        server.stop(0)
    assert sys.getswitchinterval() == before


def test_serve_holds_the_cache_under_max_memory_for_its_resident_set():
    """``dicomcache serve`` bounds its resident set's growth, not only its accounting
    (issue 11): past --max-memory, the cache is held under it, and the log says so.

    The stores below take the server's resident set well past a 1 MiB bound (gRPC's
    buffers and Python's arenas alone grow by more), while the accounted bytes stay
    within it: only a bound on the resident set moves.
    """
    with started("--listen", "127.0.0.1:0", "--max-memory", "1MiB", "--log-level", "INFO") as run:
        lines: list[str] = []
        assert run.process.stderr is not None
        reader = threading.Thread(target=lines.extend, args=(run.process.stderr,), daemon=True)
        reader.start()
        with grpc.insecure_channel(f"127.0.0.1:{run.port}") as channel:
            stub = cache_service_pb2_grpc.CacheServiceStub(channel)
            for n in range(1, 201):
                request = pb.StoreStudyRequest(namespace="ns", study=make_study(n, 4, 50))
                assert stub.StoreStudy(request, timeout=10).stored
            for _ in range(100):  # the sweeper checks once a second
                if any("the cache is held under it" in line for line in lines):
                    break
                threading.Event().wait(0.1)
            stats = stub.GetStats(pb.GetStatsRequest(namespace="ns"), timeout=10)
        run.process.kill()
        reader.join(timeout=10)
    assert any("the cache is held under it" in line for line in lines), lines[-5:]
    assert stats.total_bytes <= 1024**2
