"""Client certificates as identities, over real mutual TLS handshakes.

The policy names a certificate by the kind of name it carries: a subject CN, a
DNS SAN or a URI SAN (a SPIFFE id); a name of one kind never matches another.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from dicomcache.server.app import CacheServer
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.config import Settings
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc
from tests.grpc.test_authorization import AUTHORIZED, requests
from tests.support.certs import Authority, Pair
from tests.support.policies import Principal, write

SPIFFE_B = "spiffe://hospital.example/ns/radiology/sa/b"
TOKEN = "token-of-d-0123456789abcdef"


@pytest.fixture
def ca(tmp_path: Path) -> Authority:
    return Authority(tmp_path / "ca")


def start(ca: Authority, policy: Path | None) -> CacheServer:
    served = ca.server()
    settings = Settings(
        listen="127.0.0.1:0",
        tls_cert_file=str(served.cert_file),
        tls_key_file=str(served.key_file),
        tls_client_ca_file=str(ca.cert_file),
        auth_policy_file=str(policy) if policy else None,
    )
    backend = MemoryBackend(ttl=settings.ttl, negative_ttl=settings.negative_ttl, max_bytes=2**26)
    return CacheServer(settings, backend=backend).start()


@pytest.fixture
def guarded(ca: Authority, tmp_path: Path) -> Iterator[CacheServer]:
    policy = write(
        tmp_path / "policy.toml",
        [
            Principal("by-cn", common_names=["svc-a"], grants=[(["ns-a"], ["read"])]),
            Principal("by-uri", uris=[SPIFFE_B], grants=[(["ns-b"], ["read", "stats"])]),
            Principal("by-dns", dns_names=["c.radiology.svc"], grants=[(["ns-c"], ["write"])]),
            Principal("by-token", tokens=[TOKEN], grants=[(["ns-d"], ["read"])]),
        ],
    )
    server = start(ca, policy)
    yield server
    server.stop(grace=0)


def stub_for(server: CacheServer, ca: Authority, client: Pair) -> Any:
    credentials = grpc.ssl_channel_credentials(ca.cert, client.key, client.cert)
    channel = grpc.secure_channel(f"localhost:{server.port}", credentials)
    return cache_service_pb2_grpc.CacheServiceStub(channel)


def code(thunk: Callable[[], Any]) -> grpc.StatusCode:
    try:
        thunk()
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


def lookup(stub: Any, namespace: str, token: str | None = None) -> grpc.StatusCode:
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    request = requests(namespace)["LookupStudy"]
    return code(lambda: stub.LookupStudy(request, metadata=metadata, timeout=10))


OK, DENIED, UNKNOWN = (
    grpc.StatusCode.OK,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.UNAUTHENTICATED,
)


def test_a_subject_cn_identifies_its_principal(guarded: CacheServer, ca: Authority):
    stub = stub_for(guarded, ca, ca.client("svc-a"))
    assert (lookup(stub, "ns-a"), lookup(stub, "ns-b")) == (OK, DENIED)


def test_a_spiffe_uri_identifies_its_principal(guarded: CacheServer, ca: Authority):
    stub = stub_for(guarded, ca, ca.client("anything", uris=(SPIFFE_B,)))
    assert (lookup(stub, "ns-b"), lookup(stub, "ns-a")) == (OK, DENIED)
    stats = stub.GetStats(pb.GetStatsRequest(), timeout=10)
    assert stats.total_bytes == 0


def test_a_dns_san_identifies_its_principal(guarded: CacheServer, ca: Authority):
    stub = stub_for(guarded, ca, ca.client("svc-c", dns=("c.radiology.svc",)))
    store = requests("ns-c")["AddObjects"]
    assert code(lambda: stub.AddObjects(store, timeout=10)) is OK
    assert lookup(stub, "ns-c") is DENIED


def test_a_name_of_another_kind_does_not_match(guarded: CacheServer, ca: Authority):
    # The SPIFFE id as the CN, and svc-a as a DNS name: neither is what the policy names.
    assert lookup(stub_for(guarded, ca, ca.client(SPIFFE_B)), "ns-b") is UNKNOWN
    assert lookup(stub_for(guarded, ca, ca.client("x", dns=("svc-a",))), "ns-a") is UNKNOWN


def test_a_certificate_from_the_ca_the_policy_does_not_name_is_unauthenticated(
    guarded: CacheServer, ca: Authority
):
    stub = stub_for(guarded, ca, ca.client("svc-unknown"))
    assert lookup(stub, "ns-a") is UNKNOWN
    # With a token the policy knows, the caller is that token's principal.
    assert lookup(stub, "ns-d", TOKEN) is OK
    assert lookup(stub, "ns-d", "wrong-token-0123456789abcdef") is UNKNOWN


def test_certificate_and_token_together_hold_both_principals_rights(
    guarded: CacheServer, ca: Authority
):
    stub = stub_for(guarded, ca, ca.client("svc-a"))
    assert (lookup(stub, "ns-a", TOKEN), lookup(stub, "ns-d", TOKEN)) == (OK, OK)
    # A bad token is refused even with a known certificate: presented credentials count.
    assert lookup(stub, "ns-a", "wrong-token-0123456789abcdef") is UNKNOWN


def test_without_a_policy_any_certificate_from_the_ca_has_every_right(ca: Authority):
    server = start(ca, None)
    try:
        stub = stub_for(server, ca, ca.client("whoever"))
        for method, request in requests("any-ns").items():
            rpc = getattr(stub, method)
            if method.startswith("StreamStore"):  # a client stream: the request as one piece
                request = iter([request])
            got = code(lambda r=rpc, q=request, m=method: _drain(m, r(q, timeout=10)))
            assert got is AUTHORIZED.get(method, OK)
        stub.AddObjects(requests("any-ns")["AddObjects"], timeout=10)  # after the Invalidate
        stats = stub.GetStats(pb.GetStatsRequest(), timeout=10)
        assert [n.namespace for n in stats.namespaces] == ["any-ns"] and stats.total_bytes > 0
    finally:
        server.stop(grace=0)


def _drain(method: str, answer: Any) -> Any:
    streams = method.startswith("Stream") and not method.startswith("StreamStore")
    return list(answer) if streams else answer


def test_dicomcache_serve_refuses_a_bad_policy_naming_the_entry_and_the_rule(tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        '[principals.viewer]\nuris = ["spiffe://x/viewer"]\n'
        '[[principals.viewer.grants]]\nnamespaces = ["pacs-a"]\nrights = ["raed"]\n'
    )
    command = [sys.executable, "-m", "dicomcache.server.cli", "serve", "--listen", "127.0.0.1:0"]
    done = subprocess.run(
        [*command, "--auth-policy-file", str(policy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.strip() == (
        f"dicomcache: auth_policy_file: auth policy {policy}: "
        "principals.viewer.grants[0].rights[0]: must be one of read, write, invalidate, stats"
    )
