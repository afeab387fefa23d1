"""TLS and mutual TLS: real handshakes with certificates made in the test, and rotation.

Every call here goes through ``CacheClient`` or ``CachedSearcher`` over a real
secure channel to a real server on a free port; refusals are real handshake
failures (gRPC reports them as UNAVAILABLE, which the client calls CacheUnavailable).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from dicomtrolley.core import Query, QueryLevels
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dicomcache.client import CacheClient, CachedSearcher, CacheUnavailable, ClientTLS
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc
from tests.grpc.test_searcher import FakeArchive
from tests.support.certs import Authority, Pair
from tests.support.messages import make_study
from tests.support.serve_process import started

ROTATION_WAIT = 15.0  # seconds a rotation may take to be picked up before the test fails


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "ca")


@pytest.fixture
def tls_files(tmp_path: Path, ca: Authority) -> Pair:
    """The server's certificate and key, copied to where the server reads them."""
    issued = ca.server()
    live = Pair(tmp_path / "live" / "tls.crt", tmp_path / "live" / "tls.key")
    live.cert_file.parent.mkdir()
    shutil.copy(issued.cert_file, live.cert_file)
    shutil.copy(issued.key_file, live.key_file)
    return live


def start(tls_files: Pair, client_ca: Path | None = None) -> CacheServer:
    settings = Settings(
        listen="127.0.0.1:0",
        tls_cert_file=str(tls_files.cert_file),
        tls_key_file=str(tls_files.key_file),
        tls_client_ca_file=str(client_ca) if client_ca else None,
    )
    backend = MemoryBackend(ttl=settings.ttl, negative_ttl=settings.negative_ttl, max_bytes=2**26)
    return CacheServer(settings, backend=backend).start()


@pytest.fixture
def server(tls_files: Pair) -> Iterator[CacheServer]:
    server = start(tls_files)
    yield server
    server.stop(grace=0)


@pytest.fixture
def mtls_server(tls_files: Pair, ca: Authority) -> Iterator[CacheServer]:
    server = start(tls_files, client_ca=ca.cert_file)
    yield server
    server.stop(grace=0)


def round_trip(port: int, tls: ClientTLS | None, host: str = "localhost") -> bool:
    """Store a study and hit it; True when both worked, False on CacheUnavailable."""
    study = study_from_proto(make_study(1, 1, 2))
    query = Query(StudyInstanceUID=study.uid, query_level=QueryLevels.STUDY)
    with CacheClient(f"{host}:{port}", timeout=5, tls=tls) as client:
        try:
            client.store_query("ns", query, [study])
            hit = client.lookup_query("ns", query)
        except CacheUnavailable:
            return False
    assert hit is not None and [s.uid for s in hit] == [study.uid]
    return True


def test_tls_hit_through_a_verified_server(server: CacheServer, ca: Authority):
    assert round_trip(server.port, ClientTLS(ca_file=str(ca.cert_file)))


def test_tls_server_checked_by_its_ip_address_and_a_name_override(
    server: CacheServer, ca: Authority
):
    tls = ClientTLS(ca_file=str(ca.cert_file))
    assert round_trip(server.port, tls, host="127.0.0.1")
    overridden = ClientTLS(ca_file=str(ca.cert_file), server_name="localhost")
    assert round_trip(server.port, overridden, host="127.0.0.1")


def test_tls_refuses_a_server_whose_ca_the_client_does_not_trust(
    server: CacheServer, tmp_path: Path
):
    stranger = Authority(tmp_path / "stranger", name="another CA")
    assert not round_trip(server.port, ClientTLS(ca_file=str(stranger.cert_file)))


def test_tls_refuses_a_plaintext_client(server: CacheServer):
    assert not round_trip(server.port, None)


def test_tls_refuses_a_server_certificate_for_another_name(tmp_path: Path, ca: Authority):
    issued = ca.server("elsewhere", hosts=("cache.example.org",))
    server = start(issued)
    try:
        assert not round_trip(server.port, ClientTLS(ca_file=str(ca.cert_file)))
    finally:
        server.stop(grace=0)


def test_tls_refuses_an_expired_server_certificate(ca: Authority):
    expired = ca.server("expired-server", expired=True)
    server = start(expired)
    try:
        assert not round_trip(server.port, ClientTLS(ca_file=str(ca.cert_file)))
    finally:
        server.stop(grace=0)


def test_mtls_hit_with_a_client_certificate_from_the_ca(mtls_server: CacheServer, ca: Authority):
    client = ca.client("svc-a", uris=("spiffe://hospital/ns/imaging/sa/viewer",))
    tls = ClientTLS(str(ca.cert_file), str(client.cert_file), str(client.key_file))
    assert round_trip(mtls_server.port, tls)


@pytest.mark.parametrize("who", ["none", "other ca", "expired"])
def test_mtls_refuses_a_client_without_a_valid_certificate(
    mtls_server: CacheServer, ca: Authority, tmp_path: Path, who: str
):
    if who == "none":
        tls = ClientTLS(ca_file=str(ca.cert_file))
    else:
        issuer = Authority(tmp_path / "evil", name="evil CA") if who == "other ca" else ca
        pair = issuer.client("mallory", expired=who == "expired", file_name=f"m-{who[:5]}")
        tls = ClientTLS(str(ca.cert_file), str(pair.cert_file), str(pair.key_file))
    assert not round_trip(mtls_server.port, tls)


def eventually(condition: Callable[[], bool]) -> bool:
    """Whether ``condition`` becomes true within ROTATION_WAIT (polled, not timed)."""
    deadline = time.monotonic() + ROTATION_WAIT
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def replace(live: Pair, new: Pair) -> None:
    """Swap the files as a Kubernetes secret mount does: write aside, then rename."""
    for source, target in ((new.cert_file, live.cert_file), (new.key_file, live.key_file)):
        aside = target.with_suffix(".new")
        shutil.copy(source, aside)
        aside.replace(target)


def test_server_certificate_rotation_is_picked_up_without_a_restart(
    server: CacheServer, tls_files: Pair, tmp_path: Path, ca: Authority
):
    renewed_ca = Authority(tmp_path / "renewed", name="renewed CA")
    old, new = ClientTLS(ca_file=str(ca.cert_file)), ClientTLS(ca_file=str(renewed_ca.cert_file))
    assert round_trip(server.port, old) and not round_trip(server.port, new)
    replace(tls_files, renewed_ca.server("renewed-server"))
    assert eventually(lambda: round_trip(server.port, new))
    assert not round_trip(server.port, old)
    assert server.tls is not None and server.tls.reloads == 1


def test_a_half_rotated_pair_keeps_the_old_one_serving(
    server: CacheServer, tls_files: Pair, ca: Authority
):
    other = ca.server("other-key")
    shutil.copy(other.key_file, tls_files.key_file)  # the key changed, the certificate not yet
    time.sleep(1.2)  # past one check: the mismatch must have been looked at and refused
    assert round_trip(server.port, ClientTLS(ca_file=str(ca.cert_file)))
    assert server.tls is not None and server.tls.reloads == 0


def test_client_ca_rotation_admits_the_new_clients(tls_files: Pair, ca: Authority, tmp_path: Path):
    client_ca = tmp_path / "clients.crt"
    shutil.copy(ca.cert_file, client_ca)
    server = start(tls_files, client_ca=client_ca)
    try:
        new_ca = Authority(tmp_path / "new-clients", name="new client CA")
        pair = new_ca.client("svc-b")
        tls = ClientTLS(str(ca.cert_file), str(pair.cert_file), str(pair.key_file))
        assert not round_trip(server.port, tls)
        aside = client_ca.with_suffix(".new")
        aside.write_bytes(ca.cert + new_ca.cert)
        aside.replace(client_ca)
        assert eventually(lambda: round_trip(server.port, tls))
    finally:
        server.stop(grace=0)


class Upstream(FakeArchive):
    """The archive, holding one study."""

    def __init__(self) -> None:
        self.study = study_from_proto(make_study(7, 1, 2))
        super().__init__([self.study])


def test_searcher_over_mtls_hits_and_a_wrong_ca_falls_back_without_errors(
    mtls_server: CacheServer, ca: Authority, tmp_path: Path
):
    pair = ca.client("svc-a")
    upstream = Upstream()
    query = Query(StudyInstanceUID=upstream.study.uid, query_level=QueryLevels.STUDY)
    tls = ClientTLS(str(ca.cert_file), str(pair.cert_file), str(pair.key_file))
    target = f"localhost:{mtls_server.port}"
    searcher = CachedSearcher(upstream, target, "ns", timeout=5, tls=tls, protocol="qido-rs")
    assert [s.uid for s in searcher.find_studies(query)] == [upstream.study.uid]
    assert [s.uid for s in searcher.find_studies(query)] == [upstream.study.uid]
    assert upstream.calls == 1  # the second came from the cache

    stranger = Authority(tmp_path / "stranger", name="stranger CA")
    bad = ClientTLS(str(stranger.cert_file), str(pair.cert_file), str(pair.key_file))
    failing = CachedSearcher(upstream, target, "ns", timeout=5, tls=bad, protocol="qido-rs")
    assert [s.uid for s in failing.find_studies(query)] == [upstream.study.uid]
    assert upstream.calls == 2  # refused handshake: the archive answered, no error


def run_serve(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dicomcache.server.cli", "serve", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_serving_off_loopback_without_tls_and_authentication_is_refused_at_start():
    refused = run_serve("--listen", "0.0.0.0:0")
    assert refused.returncode == 2
    for advice in (
        "--tls-cert-file",
        "--tls-client-ca-file",
        "--auth-policy-file",
        "--allow-insecure",
    ):
        assert advice in refused.stderr
    tls_only = run_serve("--listen", "0.0.0.0:0", "--tls-cert-file", "a", "--tls-key-file", "b")
    assert tls_only.returncode == 2 and "not a loopback address" in tls_only.stderr


def test_serving_off_loopback_starts_with_mtls(tls_files: Pair, ca: Authority):
    flags = ("--tls-cert-file", str(tls_files.cert_file), "--tls-key-file", str(tls_files.key_file))
    with started("--listen", "0.0.0.0:0", *flags, "--tls-client-ca-file", str(ca.cert_file)) as run:
        assert "serving on 0.0.0.0:" in run.line and "transport=mtls" in run.line


def test_allow_insecure_is_an_explicit_switch():
    with started("--listen", "0.0.0.0:0", "--allow-insecure") as run:
        assert "serving on 0.0.0.0:" in run.line and "transport=plaintext" in run.line


def test_a_plaintext_health_port_beside_a_mutual_tls_server(tls_files: Pair, ca: Authority):
    """Kubernetes grpc probes cannot do TLS: health alone on its own plaintext port."""
    settings = Settings(
        listen="127.0.0.1:0",
        health_listen="127.0.0.1:0",
        tls_cert_file=str(tls_files.cert_file),
        tls_key_file=str(tls_files.key_file),
        tls_client_ca_file=str(ca.cert_file),
    )
    backend = MemoryBackend(ttl=settings.ttl, negative_ttl=settings.negative_ttl, max_bytes=2**26)
    server = CacheServer(settings, backend=backend).start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.health_port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            check = health_pb2.HealthCheckRequest(service="dicomcache.v1.CacheService")
            assert health.Check(check, timeout=5).status == health_pb2.HealthCheckResponse.SERVING
            cache = cache_service_pb2_grpc.CacheServiceStub(channel)
            with pytest.raises(grpc.RpcError) as refused:
                cache.GetStats(pb.GetStatsRequest(), timeout=5)
            assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED  # no data here
            server.announce_stop()
            assert health.Check(check, timeout=5).status == (
                health_pb2.HealthCheckResponse.NOT_SERVING
            )
    finally:
        server.stop(grace=0)
