"""rediss:// with a CA, and passwords from the URL or DICOMCACHE_REDIS_PASSWORD, on real servers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.errors import BackendUnavailable
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2
from tests.support.builders import make_study
from tests.support.messages import make_study as make_study_message
from tests.support.ports import free_port
from tests.support.redis_servers import redis_server
from tests.support.serve_process import serve_process

QUERY = query_pb2.Query(patient_id="PAT1")


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca_and_server_cert(directory: Path) -> None:
    """ca.crt, and server.crt/server.key for 127.0.0.1 signed by it."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
            "-keyout", "ca.key", "-out", "ca.crt", cwd=directory)  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", "server.key", "-out", "server.csr", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
            cwd=directory)  # fmt: skip


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server that also listens with TLS; yields its TLS port and the CA file."""
    certs = tmp_path_factory.mktemp("certs")
    make_ca_and_server_cert(certs)
    tls_port = free_port()
    args = ("--tls-port", str(tls_port), "--tls-cert-file", str(certs / "server.crt"),
            "--tls-key-file", str(certs / "server.key"), "--tls-ca-cert-file",
            str(certs / "ca.crt"), "--tls-auth-clients", "no")  # fmt: skip
    with redis_server(*args):
        yield tls_port, certs / "ca.crt"


def test_rediss_with_the_servers_ca_works(tls_redis):
    port, ca = tls_redis
    backend = RedisBackend.from_url(
        f"rediss://127.0.0.1:{port}/0", ttl=600, negative_ttl=60, ssl_ca_certs=str(ca)
    )
    try:
        study = make_study("1.2", 1, 2)
        backend.store_query("ns", b"k" * 16, [study], None)
        assert backend.lookup_query("ns", b"k" * 16) == [study]
    finally:
        backend.close()


def test_rediss_refuses_a_server_it_cannot_verify(tls_redis, tmp_path):
    port, _ = tls_redis
    make_ca_and_server_cert(tmp_path)  # another CA
    backend = RedisBackend.from_url(
        f"rediss://127.0.0.1:{port}/0",
        ttl=600,
        negative_ttl=60,
        ssl_ca_certs=str(tmp_path / "ca.crt"),
    )
    try:
        with pytest.raises(BackendUnavailable):
            backend.lookup_query("ns", b"k" * 16)
    finally:
        backend.close()


def test_dicomcache_serve_over_rediss_with_a_ca_file(tls_redis):
    port, ca = tls_redis
    url = f"rediss://127.0.0.1:{port}/0"
    with (
        serve_process("--backend", url, "--redis-ca-file", str(ca)) as a,
        serve_process("--backend", url, "--redis-ca-file", str(ca)) as b,
    ):
        study = make_study_message(1, 1, 1)
        a.stub.StoreQuery(
            pb.StoreQueryRequest(namespace="tls", query=QUERY, studies=[study]), timeout=10
        )
        response = b.stub.LookupQuery(
            pb.LookupQueryRequest(namespace="tls", query=QUERY), timeout=10
        )
        assert response.hit and list(response.studies) == [study]


def test_passwords_from_the_url_or_the_environment(monkeypatch):
    with redis_server() as server:
        admin = server.client()
        admin.config_set("requirepass", "s3cret")
        admin.close()
        with pytest.raises(BackendUnavailable):
            RedisBackend.from_url(server.url, ttl=600, negative_ttl=60).lookup_query(
                "ns", b"k" * 16
            )
        with_url = RedisBackend.from_url(
            f"redis://:s3cret@127.0.0.1:{server.port}/0", ttl=600, negative_ttl=60
        )
        try:
            assert with_url.lookup_query("ns", b"k" * 16) is None
        finally:
            with_url.close()

        monkeypatch.setenv("DICOMCACHE_REDIS_PASSWORD", "s3cret")
        with serve_process("--backend", server.url) as served:
            request = pb.StoreQueryRequest(
                namespace="ns", query=QUERY, studies=[make_study_message(2)]
            )
            served.stub.StoreQuery(request, timeout=10)
            lookup = pb.LookupQueryRequest(namespace="ns", query=QUERY)
            assert served.stub.LookupQuery(lookup, timeout=10).hit
