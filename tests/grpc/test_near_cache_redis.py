"""Near caches across two servers sharing a real Redis (and a real Redis Cluster).

An Invalidate through one server reaches the near cache watching the other; a lost
subscription to Redis ends that server's watchers (their near caches flush), and
they come back in sync once it is subscribed again. Waits are for states only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import redis
from dicomtrolley.core import QueryLevels, Study, StudyReference

from dicomcache.client import CachedSearcher
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.near import NearCache
from dicomcache.server.app import CacheServer
from dicomcache.server.config import Settings
from dicomcache.server.feed.relay import CHANNEL
from tests.grpc.test_searcher import FakeArchive
from tests.support.messages import make_study
from tests.support.redis_fixtures import shared_cluster, shared_server
from tests.support.redis_servers import flush_all

pytestmark = pytest.mark.redis

WAIT = 10.0


@dataclass
class Pair:
    servers: list[CacheServer]
    clients: list[redis.Redis]
    archive: FakeArchive
    near: NearCache
    searcher: CachedSearcher  # on servers[0], with the near cache
    other: CachedSearcher  # on servers[1], without

    @property
    def uid(self) -> str:
        return next(iter(self.archive.studies))

    def find(self) -> Study:
        return self.searcher.find_study_by_id(self.uid, QueryLevels.INSTANCE)

    def warmed(self) -> None:
        """Find until kept, and still kept two heartbeats later (the store's message came)."""
        for _ in range(20):
            self.find()
            if self.near.counts().entries:
                beats = self.near.heartbeats
                assert self.near.wait(lambda n, beats=beats: n.heartbeats >= beats + 2, WAIT)
                if self.near.counts().entries:
                    return
        raise AssertionError("never kept")


def _single() -> tuple[str, list[redis.Redis]]:
    server = shared_server()
    return server.url, [server.client()]


def _cluster() -> tuple[str, list[redis.Redis]]:
    cluster = shared_cluster()
    return cluster.url, cluster.clients()


@pytest.fixture(params=[_single, _cluster], ids=["redis", "redis-cluster"])
def pair(request: pytest.FixtureRequest) -> Iterator[Pair]:
    where: Callable[[], tuple[str, list[redis.Redis]]] = request.param
    url, clients = where()
    flush_all(clients)
    servers = [CacheServer(Settings(listen="127.0.0.1:0", backend=url)).start() for _ in "ab"]
    for server in servers:
        assert server.feed.healthy or _until(lambda s=server: s.feed.healthy)
    archive = FakeArchive([study_from_proto(make_study(n, 2, 3)) for n in (1, 2)])
    near = NearCache(max_bytes=10_000_000)
    target = [f"127.0.0.1:{s.port}" for s in servers]
    # Deadlines generous for a loaded CI host: what is tested is the feed, not the deadline
    # (a store through a busy cluster took over the default 0.25 s once).
    searcher = CachedSearcher(
        archive, target=target[0], namespace="ns", near_cache=near, timeout=10
    )
    other = CachedSearcher(archive, target=target[1], namespace="ns", timeout=10)
    assert near.wait(lambda n: n.in_sync, WAIT)
    yield Pair(servers, clients, archive, near, searcher, other)
    near.close()
    searcher.client.close()
    other.client.close()
    for server in servers:
        server.stop(grace=0)
    for client in clients:
        client.close()


def _dropped(near: NearCache) -> Callable[[NearCache], bool]:
    """Whether ``near`` dropped what it held since now: by an invalidation, or by a flush.

    A flush is the feed's answer to a message it may have missed (a PING Redis answered
    late on a loaded host ends the subscription), so it is as good as the message.
    """
    invalidations, flushes = near.invalidations, near.flushes
    return lambda n: n.invalidations > invalidations or n.flushes > flushes


def _until(condition: Callable[[], bool]) -> bool:
    import threading

    done = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if condition():
            return True
        done.wait(0.01)
    return False


def test_an_invalidate_through_the_other_server_reaches_the_near_cache(pair: Pair):
    pair.warmed()
    dropped = _dropped(pair.near)
    pair.other.client.invalidate("ns", StudyReference(study_uid=pair.uid))
    assert pair.near.wait(dropped, WAIT)
    hits, calls = pair.near.hits, pair.archive.calls
    pair.find()
    assert pair.near.hits == hits and pair.archive.calls == calls + 1


def test_a_namespace_invalidate_through_the_other_server_flushes_the_namespace(pair: Pair):
    pair.warmed()
    pair.other.client.invalidate("ns")
    assert pair.near.wait(lambda n: n.counts().entries == 0, WAIT)
    assert pair.near.in_sync


def test_a_write_through_the_other_server_reaches_the_near_cache(pair: Pair):
    pair.warmed()
    study = pair.find()
    dropped = _dropped(pair.near)
    pair.other.find_study_by_id(pair.uid, QueryLevels.INSTANCE)  # a hit: nothing written
    pair.other.client.store_study("ns", study, QueryLevels.INSTANCE, 0, 0)
    assert pair.near.wait(dropped, WAIT)
    hits = pair.near.hits
    pair.find()
    assert pair.near.hits == hits


def test_a_lost_subscription_flushes_the_watchers_then_they_come_back(pair: Pair):
    pair.warmed()
    relay = pair.servers[0].relay
    assert relay is not None
    subscriptions = relay.subscriptions
    for client in pair.clients:  # every node: the subscriber is on one of them
        client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
    assert pair.near.wait(lambda n: n.flushes >= 1, WAIT)
    assert pair.near.counts().entries == 0
    assert _until(lambda: relay.subscriptions > subscriptions)
    assert pair.near.wait(lambda n: n.in_sync, WAIT)
    dropped = _dropped(pair.near)
    pair.other.client.invalidate("ns")
    assert pair.near.wait(dropped, WAIT)


def test_the_channel_carries_uids_and_namespaces_only(pair: Pair):
    listener = pair.clients[0].pubsub()
    listener.subscribe(CHANNEL)
    assert listener.get_message(timeout=WAIT)["type"] == "subscribe"
    pair.other.client.invalidate("ns", StudyReference(study_uid=pair.uid))
    message = None
    for _ in range(100):
        message = listener.get_message(timeout=0.1)
        if message is not None and message["type"] == "message":
            break
    assert message is not None and message["type"] == "message"
    origin, *lines = message["data"].decode().split("\n")
    assert len(origin) == 16 and lines and all(line.endswith(f"\t{pair.uid}") for line in lines)
    assert all(line.split("\t")[0].startswith("ns") for line in lines)
    listener.close()
