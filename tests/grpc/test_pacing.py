"""A large request's work steps through its Pace in every phase, over a real server.

Small calls waited 11-13 ms (p50) behind a large request busy in Python, up to
58 ms at worst (issue 11, stall rows S1-S3): its work never let go of the
interpreter lock for long enough. Now the handler makes each call's Pace the
thread's current one and every phase of a large store and of its hit steps through
it, an object at a time; here the Pace counts the steps instead of timing them,
its server always busy, so the counts are exact and no timing is asserted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
from dicomtrolley.core import QueryLevels

from dicomcache.client import CacheClient
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.server.api import handler
from dicomcache.server.pacing import Pace
from dicomcache.v1 import cache_service_pb2 as pb
from tests.grpc.conftest import RunningServer, start_server
from tests.grpc.test_large_answers import big_study

SERIES, INSTANCES = 4, 400


class Counting:
    """The Paces of a server's calls, counting their steps by the RPC they serve."""

    def __init__(self) -> None:
        self.steps: Counter[int] = Counter()  # by call, in the order the calls began
        self.calls = 0

    def pace(self, busy: object) -> Pace:
        """Stands in for ``Pace`` in the handler: a Pace of the next call."""
        self.calls += 1
        return _CountingPace(self, self.calls)


class _CountingPace(Pace):
    def __init__(self, pacing: Counting, call: int) -> None:
        super().__init__(lambda now: True)
        self._pacing = pacing
        self._call = call

    def __call__(self) -> None:
        self._pacing.steps[self._call] += 1


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningServer, list[Counting]]]:
    pacing = Counting()
    monkeypatch.setattr(handler, "Pace", pacing.pace)
    running = start_server(max_memory="1GiB")
    yield running, [pacing]
    running.channel.close()
    running.server.stop(grace=0)


def test_a_large_streamed_store_and_its_hit_step_at_every_object(counted):
    running, (pacing,) = counted
    study = big_study(1, SERIES, INSTANCES)
    client = CacheClient(running.target)
    objects = SERIES * INSTANCES
    try:  # streamed: larger than a piece (PIECE_BYTES)
        assert client.store_study("ns", study_from_proto(study), QueryLevels.INSTANCE)
    finally:
        client.close()
    assert pacing.calls == 1
    store = pacing.steps[1]
    # Checked, packed and written: three steps an instance at least.
    assert store >= 3 * objects, store
    hit = running.stub.StreamLookupStudy(
        pb.StreamLookupStudyRequest(
            request=pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
        )
    )
    assert b"".join(piece.chunk for piece in hit)
    assert pacing.calls == 2
    # Read and unpacked: two steps an instance at least.
    assert pacing.steps[2] >= 2 * objects, pacing.steps


def test_a_large_unary_store_steps_at_every_object_checked(counted):
    running, (pacing,) = counted
    study = big_study(2, 2, 100)
    reply = running.stub.StoreStudy(
        pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    )
    assert reply.stored
    assert pacing.steps[pacing.calls] >= 3 * 200
