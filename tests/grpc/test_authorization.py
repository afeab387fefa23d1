"""Authorization over a real server: every RPC against every right, tokens and identities.

Tokens go over a loopback plaintext port here (the client sends them as plain
metadata); certificate identities over real mutual TLS are in ``test_mtls_identity``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dicomcache.server.auth.policy import PolicyError
from dicomcache.server.auth.rights import RPC_RIGHTS, Right
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import invalidations_pb2, objects_pb2, query_pb2, search_pb2
from tests.grpc.conftest import RunningServer, start_server
from tests.support.messages import make_study
from tests.support.policies import Principal, sha256, write

NS = "ns-a"
OTHER = "ns-b"
STUDY = make_study(1, 1, 1)
TOKENS = {right: f"{right.value}-token-0123456789abcdef" for right in Right}
ADMIN = "admin-token-0123456789abcdef"
STRANGER = "stranger-token-0123456789abcdef"


def requests(namespace: str) -> dict[str, Any]:
    """A valid request of every CacheService RPC, in ``namespace``."""
    query = query_pb2.Query(patient_id="PAT1")
    lookup_query = pb.LookupQueryRequest(namespace=namespace, query=query)
    lookup_study = pb.LookupStudyRequest(
        namespace=namespace, study_uid=STUDY.uid, query_level=query_pb2.QUERY_LEVEL_STUDY
    )
    reference = objects_pb2.ObjectReference(study=objects_pb2.StudyReference(study_uid=STUDY.uid))
    return {
        "LookupQuery": lookup_query,
        "StoreQuery": pb.StoreQueryRequest(namespace=namespace, query=query, studies=[STUDY]),
        "LookupStudy": lookup_study,
        "StoreStudy": pb.StoreStudyRequest(
            namespace=namespace, study=STUDY, query_level=query_pb2.QUERY_LEVEL_STUDY
        ),
        "AddObjects": pb.AddObjectsRequest(namespace=namespace, studies=[STUDY]),
        "GetObjects": pb.GetObjectsRequest(namespace=namespace, references=[reference]),
        "Invalidate": pb.InvalidateRequest(namespace=namespace),
        "GetStats": pb.GetStatsRequest(namespace=namespace),
        "StreamLookupQuery": pb.StreamLookupQueryRequest(request=lookup_query),
        "StreamLookupStudy": pb.StreamLookupStudyRequest(request=lookup_study),
        "Search": search_pb2.SearchRequest(
            upstream=namespace, level=search_pb2.SEARCH_LEVEL_STUDIES
        ),
        "WatchInvalidations": invalidations_pb2.WatchInvalidationsRequest(namespace=namespace),
        "StreamStoreQuery": pb.StreamStoreQueryRequest(
            store=pb.StoreQueryRequest(namespace=namespace, query=query, studies=[STUDY]),
            last=True,
        ),
        "StreamStoreStudy": pb.StreamStoreStudyRequest(
            store=pb.StoreStudyRequest(namespace=namespace, study=STUDY, query_level=1), last=True
        ),
    }


# What an authorized call answers when not OK: these servers have no upstreams, so a
# Search that passed authorization finds none to read through.
AUTHORIZED = {"Search": grpc.StatusCode.FAILED_PRECONDITION}


def call(running: RunningServer, method: str, request: Any, token: str | None = None) -> Any:
    """Call ``method`` with the bearer token; a stream is read to its end."""
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    rpc = getattr(running.stub, method)
    if method.startswith("StreamStore"):  # a stream of one piece in, one answer out
        return rpc(iter([request]), metadata=metadata, timeout=10)
    answer = rpc(request, metadata=metadata, timeout=10)
    if method == "WatchInvalidations":  # a stream that never ends: its first message
        try:
            return next(answer)
        finally:
            answer.cancel()
    return list(answer) if method.startswith("Stream") else answer


def code_of(thunk: Callable[[], Any]) -> tuple[grpc.StatusCode, str]:
    try:
        thunk()
    except grpc.RpcError as exc:
        return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


def principals() -> list[Principal]:
    """One principal per right on NS only, an admin with every right everywhere."""
    one_each = [
        Principal(right.value, tokens=[TOKENS[right]], grants=[([NS], [right.value])])
        for right in Right
    ]
    every = [r.value for r in Right]
    return [*one_each, Principal("admin", tokens=[ADMIN], grants=[(["*"], every)])]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return write(tmp_path / "policy.toml", principals())


@pytest.fixture
def guarded(policy_file: Path) -> Iterator[RunningServer]:
    running = start_server(auth_policy_file=str(policy_file))
    yield running
    running.channel.close()
    running.server.stop(grace=0)


CASES = [(method, right) for method in RPC_RIGHTS for right in Right]


@pytest.mark.parametrize(("method", "right"), CASES, ids=[f"{m}-{r.value}" for m, r in CASES])
def test_every_rpc_against_every_right(guarded: RunningServer, method: str, right: Right):
    code, details = code_of(lambda: call(guarded, method, requests(NS)[method], TOKENS[right]))
    if RPC_RIGHTS[method] is right:
        assert code is AUTHORIZED.get(method, grpc.StatusCode.OK), details
    else:
        assert code is grpc.StatusCode.PERMISSION_DENIED
        assert details == f"no {RPC_RIGHTS[method].value} right on namespace '{NS}'"


@pytest.mark.parametrize("method", list(RPC_RIGHTS))
def test_a_right_on_one_namespace_is_none_on_another(guarded: RunningServer, method: str):
    token = TOKENS[RPC_RIGHTS[method]]
    code, details = code_of(lambda: call(guarded, method, requests(OTHER)[method], token))
    assert code is grpc.StatusCode.PERMISSION_DENIED
    assert OTHER in details and NS not in details


@pytest.mark.parametrize("method", list(RPC_RIGHTS))
@pytest.mark.parametrize("token", [None, STRANGER, ""], ids=["none", "unknown", "empty"])
def test_unknown_callers_are_unauthenticated(guarded: RunningServer, method: str, token):
    code, details = code_of(lambda: call(guarded, method, requests(NS)[method], token))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    assert STRANGER not in details and sha256(STRANGER) not in details


def test_a_malformed_authorization_value_is_unauthenticated(guarded: RunningServer):
    for value in (f"Basic {ADMIN}", ADMIN, "Bearer"):
        code, details = code_of(
            lambda v=value: guarded.stub.GetStats(
                pb.GetStatsRequest(), metadata=(("authorization", v),), timeout=10
            )
        )
        assert code is grpc.StatusCode.UNAUTHENTICATED
        assert ADMIN not in details


def test_an_unauthenticated_caller_learns_nothing_from_a_malformed_request(
    guarded: RunningServer,
):
    raw = guarded.channel.unary_unary("/dicomcache.v1.CacheService/LookupQuery")
    code, _ = code_of(lambda: raw(b"\xff\xff\xff", timeout=10))
    assert code is grpc.StatusCode.UNAUTHENTICATED
    code, _ = code_of(
        lambda: raw(b"\xff\xff\xff", metadata=(("authorization", f"Bearer {ADMIN}"),), timeout=10)
    )
    assert code is grpc.StatusCode.INVALID_ARGUMENT


def test_health_and_reflection_stay_open(guarded: RunningServer):
    health = health_pb2_grpc.HealthStub(guarded.channel)
    answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(guarded.channel)
    replies = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert "dicomcache.v1.CacheService" in names


def fill(running: RunningServer, namespaces: list[str]) -> None:
    for namespace in namespaces:
        call(running, "AddObjects", requests(namespace)["AddObjects"], ADMIN)


def listed(running: RunningServer, token: str, page_size: int = 0) -> tuple[list[str], list[int]]:
    """Every namespace GetStats lists to ``token``, page by page; and each page's total_bytes."""
    names: list[str] = []
    totals: list[int] = []
    page_token = ""
    while True:
        page = call(
            running,
            "GetStats",
            pb.GetStatsRequest(page_size=page_size, page_token=page_token),
            token,
        )
        names += [n.namespace for n in page.namespaces]
        totals.append(page.total_bytes)
        if not page.next_page_token:
            return names, totals
        page_token = page.next_page_token


def test_get_stats_of_all_lists_only_the_namespaces_the_caller_may_see(tmp_path: Path):
    seen = "seen-token-0123456789abcdef"
    policy = write(
        tmp_path / "policy.toml",
        [
            Principal("admin", tokens=[ADMIN], grants=[(["*"], [r.value for r in Right])]),
            # Stats on some by prefix and one by name; read on another (not stats).
            Principal(
                "seer",
                tokens=[seen],
                grants=[(["team-a/*", "solo"], ["stats"]), (["hidden-read"], ["read"])],
            ),
        ],
    )
    running = start_server(auth_policy_file=str(policy))
    try:
        visible = ["solo", "team-a/1", "team-a/2", "team-a/3"]
        fill(running, ["a-first", "hidden-read", "team-b/1", "zz-last", *visible])
        for page_size in (0, 1, 2, 3):
            names, totals = listed(running, seen, page_size)
            assert names == visible
            assert set(totals) == {0}  # the whole cache's bytes would tell of the others
        everything, totals = listed(running, ADMIN)
        assert len(everything) == 8 and all(totals)
        one = call(running, "GetStats", pb.GetStatsRequest(namespace="solo"), seen)
        assert [n.namespace for n in one.namespaces] == ["solo"] and one.total_bytes == 0
        code, details = code_of(
            lambda: call(running, "GetStats", pb.GetStatsRequest(namespace="zz-last"), seen)
        )
        assert code is grpc.StatusCode.PERMISSION_DENIED and "team" not in details
    finally:
        running.channel.close()
        running.server.stop(grace=0)


def eventually(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    """Whether the condition held within ``seconds`` (a reload is looked for each second)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_changed_policy_is_picked_up_and_a_broken_one_keeps_the_old(
    policy_file: Path, guarded: RunningServer, caplog: pytest.LogCaptureFixture
):
    reader = TOKENS[Right.READ]
    lookup = requests(NS)["LookupStudy"]
    assert code_of(lambda: call(guarded, "LookupStudy", lookup, reader))[0] is grpc.StatusCode.OK
    # The reader loses its right: denied, without a restart.
    write(policy_file, [Principal("read", tokens=[reader], grants=[([OTHER], ["read"])])])
    assert eventually(
        lambda: (
            code_of(lambda: call(guarded, "LookupStudy", lookup, reader))[0]
            is grpc.StatusCode.PERMISSION_DENIED
        )
    )
    # A broken version: a warning naming the entry and rule; the last good one stays.
    with caplog.at_level(logging.WARNING, logger="dicomcache.server.auth"):
        policy_file.write_text(
            'version = 1\n[principals.read]\ntoken_sha256 = ["abc"]\n'
            f'[[principals.read.grants]]\nnamespaces = ["{NS}"]\nrights = ["read"]\n'
        )
        # The policy is looked at when a call comes (at most once a second).
        assert eventually(
            lambda: (
                bool(code_of(lambda: call(guarded, "LookupStudy", lookup, reader)))
                and "principals.read.token_sha256[0]" in caplog.text
            )
        )
    assert "must be 64 hexadecimal digits" in caplog.text
    assert code_of(lambda: call(guarded, "LookupStudy", lookup, reader))[0] is (
        grpc.StatusCode.PERMISSION_DENIED
    )
    other = requests(OTHER)["LookupStudy"]
    assert code_of(lambda: call(guarded, "LookupStudy", other, reader))[0] is grpc.StatusCode.OK


def test_a_rotated_token_file_is_picked_up(tmp_path: Path):
    secret = tmp_path / "secret"
    old, new = "old-token-0123456789abcdef", "new-token-0123456789abcdef"
    secret.write_text(old + "\n")
    policy = write(
        tmp_path / "policy.toml",
        [Principal("svc", token_files=[secret], grants=[([NS], ["stats"])])],
    )
    running = start_server(auth_policy_file=str(policy))
    try:
        stats = requests(NS)["GetStats"]
        assert code_of(lambda: call(running, "GetStats", stats, old))[0] is grpc.StatusCode.OK
        staged = tmp_path / "secret.new"
        staged.write_text(new)
        staged.replace(secret)  # a new inode, as a Secret volume's update
        assert eventually(
            lambda: code_of(lambda: call(running, "GetStats", stats, new))[0] is grpc.StatusCode.OK
        )
        assert code_of(lambda: call(running, "GetStats", stats, old))[0] is (
            grpc.StatusCode.UNAUTHENTICATED
        )
    finally:
        running.channel.close()
        running.server.stop(grace=0)


BAD_POLICIES = [
    ("version = 2\n", "version", "must be 1"),
    ("version = 1\n", "principals", "must be a table of at least one principal"),
    ("[principals.a]\n", "principals.a", "must have an identity"),
    (
        '[principals.a]\ncommon_names = ["x"]\n[[principals.a.grants]]\n'
        'namespaces = ["ns"]\nrights = ["raed"]\n',
        "principals.a.grants[0].rights[0]",
        "must be one of read, write, invalidate, stats",
    ),
    (
        '[principals.a]\ncommon_names = ["x"]\n[[principals.a.grants]]\n'
        'namespaces = ["a*b"]\nrights = ["read"]\n',
        "principals.a.grants[0].namespaces[0]",
        "must be a namespace",
    ),
    (
        '[principals.a]\nuris = ["spiffe://x/a"]\n[principals.b]\nuris = ["spiffe://x/a"]\n',
        "principals.b.uris[0]",
        "already names principal a",
    ),
    (
        f'[principals.a]\ntoken_sha256 = ["{sha256(ADMIN)}"]\n'
        f'[principals.b]\ntoken_sha256 = ["{sha256(ADMIN)}"]\n',
        "principals.b.token_sha256[0]",
        "the same token as principals.a.token_sha256[0]",
    ),
    (
        '[principals.a]\ntoken_files = ["/nonexistent/token"]\n',
        "principals.a.token_files[0]",
        "cannot be read",
    ),
    ('[principals.a]\ncommon_name = ["x"]\n', "principals.a.common_name", "unknown key"),
    ("[principals.a\n", "file", "must be TOML"),
]


@pytest.mark.parametrize(("text", "entry", "rule"), BAD_POLICIES)
def test_a_bad_policy_is_refused_at_start(tmp_path: Path, text: str, entry: str, rule: str):
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as caught:
        start_server(auth_policy_file=str(path))
    assert caught.value.entry == entry
    assert rule in caught.value.rule
    assert str(path) in str(caught.value)
    assert sha256(ADMIN) not in str(caught.value)


def test_tokens_and_their_digests_are_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    secret = tmp_path / "secret"
    from_file = "file-token-0123456789abcdef"
    secret.write_text(from_file)
    everyone = [ADMIN, STRANGER, from_file, *TOKENS.values()]
    with caplog.at_level(logging.DEBUG):
        policy = write(
            tmp_path / "policy.toml",
            [*principals(), Principal("file", token_files=[secret], grants=[([NS], ["read"])])],
        )
        running = start_server(auth_policy_file=str(policy))
        try:
            for method, request in requests(NS).items():
                for token in everyone:
                    code_of(lambda m=method, r=request, t=token: call(running, m, r, t))
            write(policy, [Principal("file", token_files=[secret], grants=[([NS], ["read"])])])
            stats = requests(NS)["GetStats"]
            assert eventually(
                lambda: (
                    bool(code_of(lambda: call(running, "GetStats", stats, ADMIN)))
                    and "reloaded" in caplog.text
                )
            )
            policy.write_text('[principals.a]\ntoken_sha256 = ["' + sha256(ADMIN)[:-1] + 'x"]\n')
            assert eventually(
                lambda: (
                    bool(code_of(lambda: call(running, "GetStats", stats, from_file)))
                    and "keeping the policy" in caplog.text
                )
            )
        finally:
            running.channel.close()
            running.server.stop(grace=0)
    assert "authorization policy" in caplog.text  # the capture did see the auth logs
    for token in everyone:
        assert token not in caplog.text
        assert sha256(token) not in caplog.text
        assert sha256(token)[:16] not in caplog.text


def test_a_watch_stream_ends_when_a_reloaded_policy_takes_the_read_right_away(
    policy_file: Path, guarded: RunningServer
):
    reader = TOKENS[Right.READ]
    request = requests(NS)["WatchInvalidations"]
    metadata = (("authorization", f"Bearer {reader}"),)
    stream = guarded.stub.WatchInvalidations(request, metadata=metadata, timeout=60)
    assert next(stream).sequence == 0
    write(policy_file, [Principal("read", tokens=[reader], grants=[([OTHER], ["read"])])])
    with pytest.raises(grpc.RpcError) as caught:
        for _ in stream:  # heartbeats until the reloaded policy is applied
            pass
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert caught.value.details() == f"no read right on namespace '{NS}'"
