"""The QIDO-RS endpoint is as secure by default as the gRPC port: loopback unless told,
HTTPS from the same files (re-read when they change), callers authenticated by the
same policy (bearer tokens, client certificates) and refused with 401/403.

The server has no upstreams, so a caller who gets past authentication and
authorization is answered 404 "no upstreams configured": that status is the proof
that the caller was let through (tests/e2e/test_http_endpoint.py has the answers).
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import pydantic
import pytest
import requests

from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.server.http.listener import HttpListener
from dicomcache.server.http.tls import ReloadingContext
from dicomcache.server.tls import CHECK_INTERVAL, TLSFiles
from tests.support.certs import Authority
from tests.support.clock import FakeClock
from tests.support.policies import Principal, write

READER, STRANGER = "reader-token-0123456789", "stranger-token-0123456789"


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "ca")


def start(**settings: object) -> CacheServer:
    config = Settings(listen="127.0.0.1:0", http_listen="127.0.0.1:0", **settings)  # type: ignore[arg-type]  # settings as keywords
    return CacheServer(config, backend=MemoryBackend(ttl=60, negative_ttl=60)).start()


@pytest.fixture
def with_policy(tmp_path: Path, ca: Authority) -> Iterator[CacheServer]:
    """HTTPS, and a policy: "reader" may read pacs, "stranger" only elsewhere."""
    pair = ca.server()
    policy = write(
        tmp_path / "policy.toml",
        [
            Principal("reader", tokens=[READER], grants=[(["pacs"], ["read"])]),
            Principal("stranger", tokens=[STRANGER], grants=[(["elsewhere"], ["read"])]),
        ],
    )
    server = start(
        tls_cert_file=str(pair.cert_file),
        tls_key_file=str(pair.key_file),
        auth_policy_file=str(policy),
    )
    yield server
    server.stop(grace=0)


def get(server: CacheServer, ca: Authority, token: str | None = None, **kwargs: object):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))  # type: ignore[call-overload]  # test keywords
    url = f"https://localhost:{server.http_port}/dicom-web/pacs/studies"
    return requests.get(url, headers=headers, verify=str(ca.cert_file), timeout=10, **kwargs)  # type: ignore[arg-type]  # test keywords


def test_without_a_known_identity_401_with_a_bearer_challenge(with_policy, ca):
    for answer in (
        get(with_policy, ca),
        get(with_policy, ca, "not-a-known-token"),
        get(with_policy, ca, headers={"Authorization": "Basic cmVhZGVyOng="}),
    ):
        assert answer.status_code == 401
        assert answer.headers["WWW-Authenticate"] == 'Bearer realm="dicomcache"'
        assert answer.json()["error"] == "unauthenticated"


def test_a_caller_without_read_on_the_upstream_403_naming_it_only(with_policy, ca):
    answer = get(with_policy, ca, STRANGER)
    assert answer.status_code == 403
    assert answer.json()["message"] == "no read right on namespace 'pacs'"


def test_a_caller_with_read_on_the_upstream_is_let_through(with_policy, ca):
    answer = get(with_policy, ca, READER)
    assert answer.status_code == 404
    assert "no upstreams" in answer.json()["message"]


def test_unauthenticated_callers_learn_nothing_of_paths(with_policy, ca):
    url = f"https://localhost:{with_policy.http_port}/dicom-web/pacs/no-such-path"
    assert requests.get(url, verify=str(ca.cert_file), timeout=10).status_code == 401


def test_plain_http_to_the_https_port_gets_no_answer(with_policy):
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{with_policy.http_port}/dicom-web/pacs/studies", timeout=10)


def test_tokens_are_never_logged(with_policy, ca, caplog):
    caplog.set_level(logging.DEBUG)
    get(with_policy, ca, READER)
    get(with_policy, ca, STRANGER)
    get(with_policy, ca, "unknown-token-0123456789")
    for token in (READER, STRANGER, "unknown-token-0123456789"):
        assert token not in caplog.text


def test_mutual_tls_requires_a_client_certificate_and_its_name_identifies(tmp_path, ca):
    pair, client = ca.server(), ca.client("reader-service")
    policy = write(
        tmp_path / "policy.toml",
        [Principal("reader", common_names=["reader-service"], grants=[(["pacs"], ["read"])])],
    )
    server = start(
        tls_cert_file=str(pair.cert_file),
        tls_key_file=str(pair.key_file),
        tls_client_ca_file=str(ca.cert_file),
        auth_policy_file=str(policy),
    )
    try:
        with pytest.raises(requests.exceptions.SSLError):
            get(server, ca)
        answer = get(server, ca, cert=(str(client.cert_file), str(client.key_file)))
        assert answer.status_code == 404  # let through: no upstreams here
        other = ca.client("someone-else", file_name="other")
        refused = get(server, ca, cert=(str(other.cert_file), str(other.key_file)))
        assert refused.status_code == 401
    finally:
        server.stop(grace=0)


def test_certificates_are_re_read_when_their_files_change(tmp_path, ca):
    first = ca.server("first", file_name="serving")
    clock = FakeClock()
    reloading = ReloadingContext(TLSFiles(str(first.cert_file), str(first.key_file)), clock)
    listener = HttpListener("127.0.0.1:0", lambda environ, respond: [], tls=reloading)
    listener.start()
    try:
        served = ssl.get_server_certificate(("127.0.0.1", listener.port))
        assert served.strip() == first.cert.decode().strip()
        second = ca.server("second", file_name="serving")  # same files, a new pair
        assert ssl.get_server_certificate(("127.0.0.1", listener.port)) == served  # not yet
        clock.advance(CHECK_INTERVAL)
        renewed = ssl.get_server_certificate(("127.0.0.1", listener.port))
        assert renewed.strip() == second.cert.decode().strip()
        assert reloading.reloads == 1
    finally:
        listener.stop()


def test_a_half_written_pair_keeps_the_old_certificate(tmp_path, ca):
    pair = ca.server("kept", file_name="serving")
    clock = FakeClock()
    reloading = ReloadingContext(TLSFiles(str(pair.cert_file), str(pair.key_file)), clock)
    pair.key_file.write_bytes(ca.server("other", file_name="other").key_file.read_bytes())
    clock.advance(CHECK_INTERVAL)
    before = reloading.reloads
    reloading.current()
    assert reloading.reloads == before  # the mismatched key was refused, the old context kept


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "[::]:8080", ":8080", "cache.example:8080"])
def test_off_loopback_needs_https_and_authentication(listen, ca):
    with pytest.raises(pydantic.ValidationError, match=r"http_listen: .* is not a loopback"):
        Settings(http_listen=listen)
    pair = ca.server()
    tls = {"tls_cert_file": str(pair.cert_file), "tls_key_file": str(pair.key_file)}
    with pytest.raises(pydantic.ValidationError, match="not a loopback"):
        Settings(http_listen=listen, listen="127.0.0.1:0", **tls)  # TLS without authentication
    assert Settings(http_listen=listen, allow_insecure=True).http_listen == listen


def test_the_endpoint_is_off_by_default_and_a_bare_port_is_loopback():
    assert Settings().http_listen is None
    assert Settings(http_listen="8080").http_listen == "127.0.0.1:8080"
    assert Settings(http_listen="[::1]:8080").http_listen == "[::1]:8080"
    with pytest.raises(pydantic.ValidationError, match="HOST:PORT"):
        Settings(http_listen="localhost")
    server = CacheServer(Settings(listen="127.0.0.1:0"), backend=MemoryBackend(ttl=60))
    assert server.http is None and server.http_port == 0
    server.stop(grace=0)


def test_requests_are_counted_as_the_grpc_calls_are():
    server = start(metrics_listen="127.0.0.1:0")
    try:
        base = f"http://127.0.0.1:{server.http_port}/dicom-web"
        requests.get(f"{base}/pacs/studies", timeout=10)
        requests.get(f"{base}/pacs/studies?limit=x", timeout=10)
        requests.get(f"{base}/pacs/studies?limit=y", timeout=10)
        metrics = server.telemetry.metrics
        assert metrics is not None
        counted = {
            sample.labels["code"]: sample.value
            for family in metrics.registry.collect()
            for sample in family.samples
            if sample.name == "dicomcache_rpc_requests_total"
            and sample.labels["method"] == "QIDO-RS"
        }
        assert counted == {"404": 1, "400": 2}
    finally:
        server.stop(grace=0)
