"""CachedSearcher against a server with an authorization policy: refusals are cache faults.

The user never sees one: every call answers from the upstream. The searcher logs
once per change of state (opened, back), with no token and no patient data, and
a read-only grant keeps its hits while the stores stop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from dicomtrolley.core import Query, QueryLevels

from dicomcache.client import CachedSearcher
from dicomcache.client.breaker import State
from tests.grpc.conftest import RunningServer, start_server
from tests.grpc.test_searcher import archive, json_of
from tests.support.clock import FakeClock
from tests.support.policies import Principal, sha256, write

NS = "pacs-a"
READER = "reader-token-0123456789abcdef"
WRITER = "writer-token-0123456789abcdef"
STRANGER = "stranger-token-0123456789abcdef"
QUERY = Query(PatientID="PAT1", query_level=QueryLevels.SERIES)


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    return write(
        tmp_path / "policy.toml",
        [
            Principal("reader", tokens=[READER], grants=[([NS], ["read"])]),
            Principal("writer", tokens=[WRITER], grants=[([NS], ["read", "write"])]),
        ],
    )


@pytest.fixture
def guarded(policy: Path):
    running = start_server(auth_policy_file=str(policy))
    yield running
    running.channel.close()
    running.server.stop(grace=0)


def searcher(running: RunningServer, token: str | None, namespace: str = NS, **options):
    return CachedSearcher(
        archive(), target=running.target, namespace=namespace, timeout=5, token=token, **options
    )


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(
    ("token", "namespace", "said"),
    [
        (STRANGER, NS, "refused this client's credentials (UNAUTHENTICATED)"),
        (None, NS, "refused this client's credentials (UNAUTHENTICATED)"),
        (WRITER, "pacs-b", "denied the read right on namespace pacs-b (PERMISSION_DENIED)"),
    ],
    ids=["unknown-token", "no-token", "other-namespace"],
)
def test_a_refused_searcher_answers_from_the_upstream_and_logs_once(
    guarded: RunningServer, caplog: pytest.LogCaptureFixture, token, namespace, said
):
    clock = FakeClock()
    cached = searcher(guarded, token, namespace, clock=clock, denied_backoff=60)
    expected = json_of(archive().find_studies(QUERY))
    with caplog.at_level(logging.DEBUG):
        for _ in range(5):
            assert json_of(cached.find_studies(QUERY)) == expected
            assert cached.find_study_by_id(archive().studies.popitem()[0]).uid
        assert cached.upstream.calls == 10  # every call answered, none from the cache
        assert cached.breaker.state is State.OPEN
        clock.advance(60)  # the trial after the back-off is refused again: no new line
        assert json_of(cached.find_studies(QUERY)) == expected
    assert warnings(caplog) == [
        f"dicomcache at {guarded.target} {said}: going to the upstream only, retrying in 60s"
    ]
    for secret in (READER, WRITER, STRANGER):
        assert secret not in caplog.text and sha256(secret) not in caplog.text
    assert "PAT1" not in caplog.text
    cached.client.close()


def test_a_read_only_grant_keeps_its_hits_and_stops_storing(
    guarded: RunningServer, caplog: pytest.LogCaptureFixture
):
    clock = FakeClock()
    writer = searcher(guarded, WRITER)
    reader = searcher(guarded, READER, clock=clock, denied_backoff=60)
    with caplog.at_level(logging.DEBUG):
        expected = json_of(writer.find_studies(QUERY))  # stored by the writer
        for _ in range(3):
            assert json_of(reader.find_studies(QUERY)) == expected  # hits
        assert reader.upstream.calls == 0
        other = Query(PatientID="PAT2", query_level=QueryLevels.SERIES)
        for _ in range(3):  # misses: the upstream answers, the first store is denied
            assert json_of(reader.find_studies(other)) == json_of(archive().find_studies(other))
        assert reader.upstream.calls == 3
        assert reader.breaker.state is State.CLOSED
        assert reader.store_breaker.state is State.OPEN
        assert json_of(reader.find_studies(QUERY)) == expected  # still hits
    assert warnings(caplog) == [
        f"dicomcache at {guarded.target} (stores) denied the write right on namespace {NS} "
        "(PERMISSION_DENIED): going to the upstream only, retrying in 60s"
    ]
    writer.client.close()
    reader.client.close()


def test_a_fixed_policy_is_used_after_the_back_off(
    policy: Path, guarded: RunningServer, caplog: pytest.LogCaptureFixture
):
    clock = FakeClock()
    cached = searcher(guarded, READER, "pacs-b", clock=clock, denied_backoff=60)
    with caplog.at_level(logging.INFO, logger="dicomcache.client"):
        cached.find_studies(QUERY)
        assert cached.breaker.state is State.OPEN
        write(
            policy,
            [Principal("reader", tokens=[READER], grants=[(["pacs-*"], ["read", "write"])])],
        )
        from tests.grpc.test_authorization import eventually

        # The server re-reads its policy within a second or so of a call; the
        # searcher tries again once its back-off has passed.
        def used() -> bool:
            clock.advance(60)
            cached.find_studies(QUERY)
            return cached.breaker.state is State.CLOSED

        assert eventually(used)
        calls = cached.upstream.calls
        cached.find_studies(QUERY)
        cached.find_studies(QUERY)
        assert cached.upstream.calls == calls  # hits now
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].endswith("retrying in 60s")
    assert messages[1:] == [f"dicomcache at {guarded.target} is back: using it again"]
    cached.client.close()
