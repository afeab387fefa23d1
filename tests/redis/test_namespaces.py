"""Lookups of unknown namespaces leave nothing lasting; the registry lists data holders (issue 11).

Every lookup used to add its namespace to a set without a TTL (and its counters to
a hash without one), so 60,000 made-up names cost Redis memory for ever and made
GetStats too large. Now a lookup, a lease or an invalidation of a namespace that
holds nothing leaves only keys that expire by themselves within
``LEASE_SECONDS``; the registry lists a namespace while it holds data. Leases stay
safe: their state expires only once no lease it could refuse is still honoured,
and a lease older than the state that judges it is refused.
"""

from __future__ import annotations

import pytest
import redis

from dicomcache.server.backends import LEASE_SECONDS
from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.names import REGISTRY, Names
from dicomcache.server.model import Level
from tests.support.builders import make_study
from tests.support.redis_servers import advance_ttls

pytestmark = pytest.mark.redis

WHERE = ["single", "cluster"]


def _clients(request: pytest.FixtureRequest, where: str) -> tuple[list[redis.Redis], RedisBackend]:
    servers, backend = request.getfixturevalue(where)
    clients = [servers.client()] if where == "single" else servers.clients()
    return clients, backend


def _lasting(clients: list[redis.Redis]) -> dict[str, int]:
    """Every key with its PTTL in ms (-1: none) that outlives LEASE_SECONDS or has no TTL."""
    found = {}
    for client in clients:
        for key in client.scan_iter(count=1000):
            pttl = client.pttl(key)
            if pttl == -1 or pttl > LEASE_SECONDS * 1000:
                found[key.decode()] = pttl
    return found


@pytest.mark.parametrize("where", WHERE)
def test_lookups_leases_and_invalidations_of_empty_namespaces_leave_nothing_lasting(
    request: pytest.FixtureRequest, where: str
) -> None:
    clients, backend = _clients(request, where)
    for n in range(20):
        name = f"made-up-{n}"
        assert backend.lookup_query(name, b"key") is None
        assert backend.lookup_study(name, "1.2", Level.SERIES) is None
        assert backend.get_object(name, ("1.2", "1.2.3")) is None
        assert backend.lease(name) != 0
    assert backend.stats("made-up-0").namespaces[0].misses == 0  # nothing to count them in
    for n in range(20):
        assert backend.invalidate(f"made-up-{n}", ("1.2", "1.2.3")) == 0
        assert backend.invalidate(f"made-up-{n}", None) == 0
    backend.close()  # nothing left unwritten in the process

    assert _lasting(clients) == {}
    assert all(client.zcard(REGISTRY) == 0 for client in clients if _owns(client, REGISTRY))


def _owns(client: redis.Redis, key: str) -> bool:
    try:
        client.exists(key)
    except redis.ResponseError:  # MOVED: another node's slot
        return False
    return True


@pytest.mark.parametrize("where", WHERE)
def test_the_registry_lists_namespaces_while_they_hold_data(
    request: pytest.FixtureRequest, where: str
) -> None:
    clients, backend = _clients(request, where)
    backend.store_query("short", b"key", [make_study("1.2", 1, 1)], 10)
    backend.add_objects("long", [make_study("1.2", 1, 1)], 100)
    backend.lookup_query("looked-up-only", b"key")
    assert sorted(s.namespace for s in backend.stats(None).namespaces) == ["long", "short"]

    advance_ttls(clients, 20)

    assert [s.namespace for s in backend.stats(None).namespaces] == ["long"]
    registry = next(client for client in clients if _owns(client, REGISTRY))
    assert registry.zrange(REGISTRY, 0, -1) == [b"long"]  # pruned when read
    for client in clients:  # and nothing of "short" outlives its data
        assert list(client.scan_iter(match="*short*")) == []

    backend.invalidate("long", None)
    assert backend.stats(None).namespaces == []


@pytest.mark.parametrize("where", WHERE)
@pytest.mark.parametrize("scope", ["namespace", "study"])
def test_an_invalidation_of_an_empty_namespace_still_refuses_older_leases(
    request: pytest.FixtureRequest, where: str, scope: str
) -> None:
    _, backend = _clients(request, where)
    lease = backend.lease("empty")
    backend.invalidate("empty", None if scope == "namespace" else ("1.2",))

    study = make_study("1.2", 1, 1)
    assert backend.store_study("empty", study, Level.INSTANCE, None, lease) is False
    assert backend.store_query("empty", b"key", [make_study("1.2")], None, lease) is False
    assert backend.lookup_study("empty", "1.2", Level.INSTANCE) is None
    assert backend.lookup_query("empty", b"key") is None


@pytest.mark.parametrize("where", WHERE)
def test_a_lease_older_than_the_lease_state_that_judges_it_is_refused(
    request: pytest.FixtureRequest, where: str
) -> None:
    clients, backend = _clients(request, where)
    old = backend.lease("ns")
    backend.invalidate("ns", None)
    for client in clients:  # the state expired or was evicted (volatile-ttl) meanwhile
        if _owns(client, Names("ns").leases):
            assert client.delete(Names("ns").leases) == 1
    backend.lease("ns")  # a new miss starts the state afresh

    assert backend.store_query("ns", b"key", [make_study("1.2")], None, old) is False
    assert backend.lookup_query("ns", b"key") is None


@pytest.mark.parametrize("where", WHERE)
def test_a_namespace_emptied_by_an_invalidation_goes_and_refuses_older_leases(
    request: pytest.FixtureRequest, where: str
) -> None:
    clients, backend = _clients(request, where)
    backend.add_objects("ns", [make_study("1.2", 1, 1)], None)
    backend.lookup_study("ns", "1.3", Level.STUDY)
    lease = backend.lease("ns")

    backend.invalidate("ns", ("1.2",))

    assert backend.stats(None).namespaces == []
    assert backend.stats("ns").namespaces[0].misses == 0
    other = [make_study("1.3", 1, 1)]  # another study: nothing tells what changed meanwhile
    assert backend.store_query("ns", b"key", other, None, lease) is False
    # Of the namespace's own keys only the lease hash is left, and it expires soon.
    # (The study's token serial lives out its data's TTL: tokens must stay unique.)
    own = {k.decode(): c.pttl(k) for c in clients for k in c.scan_iter(match="dc:1:{ns}:*")}
    assert list(own) == ["dc:1:{ns}:lease"]
    assert 0 < own["dc:1:{ns}:lease"] <= LEASE_SECONDS * 1000
