"""A hit needs only the slots of what it reads; the namespace registry is off its path (issue 11).

On a Redis Cluster every lookup used to add its namespace to one global set, so
the master of that one slot failing failed every lookup of every namespace. Here
MONITOR shows which keys a hit's commands name (hence which slots it needs), and a
cluster with replicas loses the registry's master while other namespaces keep
being served, missed and stored.
"""

from __future__ import annotations

import itertools
import time

import pytest

from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.names import REGISTRY, Names
from dicomcache.server.errors import BackendUnavailable
from dicomcache.server.model import Level, StudyData
from tests.redis.test_round_trips import monitored_raw
from tests.support.builders import make_study
from tests.support.redis_servers import RedisCluster
from tests.support.replicated import ReplicatedCluster, replicated_cluster

pytestmark = pytest.mark.redis


def _keys(command: list[str]) -> list[str]:
    """The keys a command names (the commands the backend sends on a lookup)."""
    name = command[0].upper()
    if name in ("EVALSHA", "EVAL"):
        return command[3 : 3 + int(command[2])]
    if name in ("MGET", "EXISTS"):
        return command[1:]
    return command[1:2]  # GET, SADD, HINCRBY, ZADD...: one key, first


def _slots_touched(nodes: RedisCluster, call: object) -> set[int]:
    assert callable(call)
    call()  # scripts loaded, connections open
    clients = nodes.clients()
    with monitored_raw(clients) as seen:
        call()
    keyslot = clients[0]
    return {keyslot.execute_command("CLUSTER KEYSLOT", key) for c in seen for key in _keys(c)}


def _slot(nodes: RedisCluster, key: str) -> int:
    return int(nodes.clients()[0].execute_command("CLUSTER KEYSLOT", key))


def test_a_hit_touches_only_the_slots_of_its_entry_and_its_studies(
    cluster: tuple[RedisCluster, RedisBackend],
) -> None:
    nodes, backend = cluster
    studies = [make_study(f"1.{n}", 1, 2) for n in range(2, 6)]
    backend.store_query("ns", b"key", studies, None)
    backend.store_study("ns", studies[0], Level.INSTANCE, None)
    names = Names("ns")
    study_slots = {_slot(nodes, names.study(s.uid)) for s in studies}
    entry_slot = _slot(nodes, names.ledger)

    query = _slots_touched(nodes, lambda: backend.lookup_query("ns", b"key"))
    study = _slots_touched(nodes, lambda: backend.lookup_study("ns", "1.2", Level.SERIES))
    thing = _slots_touched(nodes, lambda: backend.get_object("ns", ("1.2",)))

    assert query == {entry_slot, *study_slots}
    assert study == {_slot(nodes, names.study("1.2"))}
    assert thing == {_slot(nodes, names.study("1.2"))}


def test_a_miss_touches_only_the_slot_it_looks_in(
    cluster: tuple[RedisCluster, RedisBackend],
) -> None:
    nodes, backend = cluster
    names = Names("never-seen")

    query = _slots_touched(nodes, lambda: backend.lookup_query("never-seen", b"key"))
    study = _slots_touched(nodes, lambda: backend.lookup_study("never-seen", "1.2", Level.SERIES))

    assert query == {_slot(nodes, names.ledger)}
    assert study == {_slot(nodes, names.study("1.2"))}


def _elsewhere(nodes: ReplicatedCluster, victim_port: int, prefix: str) -> tuple[str, list[str]]:
    """A namespace and three study UIDs none of whose slots the victim serves."""

    def safe(key: str) -> bool:
        return nodes.master_of(key).port != victim_port

    namespace = next(
        f"{prefix}-{n}" for n in itertools.count() if safe(Names(f"{prefix}-{n}").ledger)
    )
    names = Names(namespace)
    uids = (f"1.{n}" for n in itertools.count(2) if safe(names.study(f"1.{n}")))
    return namespace, list(itertools.islice(uids, 3))


def _answer(uids: list[str]) -> list[StudyData]:
    return [make_study(uid, 1, 2) for uid in uids]


def _until_listed(backend: RedisBackend, wanted: set[str]) -> set[str]:
    """Poll GetStats' list until it holds ``wanted`` (the registry's master fails over)."""
    deadline = time.monotonic() + 60
    while True:
        try:
            listed = {s.namespace for s in backend.stats(None).namespaces}
            if wanted <= listed:
                return listed
        except BackendUnavailable:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"GetStats never listed {wanted}")
        time.sleep(0.1)


def test_losing_the_registry_master_fails_no_hit_miss_or_store_of_other_namespaces() -> None:
    with replicated_cluster() as nodes:
        backend = RedisBackend.from_url(nodes.url, ttl=600, negative_ttl=60)
        try:
            victim = nodes.master_of(REGISTRY)
            cached, cached_uids = _elsewhere(nodes, victim.port, "cached")
            fresh, fresh_uids = _elsewhere(nodes, victim.port, "fresh")
            backend.store_query(cached, b"key", _answer(cached_uids), None)
            backend.store_study(cached, _answer(cached_uids)[0], Level.INSTANCE, None)
            assert backend.lookup_query(cached, b"key") == _answer(cached_uids)

            nodes.kill(victim)

            for _ in range(3):  # not only the first call after the kill
                assert backend.lookup_query(cached, b"key") == _answer(cached_uids)
                assert (
                    backend.lookup_study(cached, cached_uids[0], Level.INSTANCE)
                    == (_answer(cached_uids)[0])
                )
                assert backend.get_object(cached, (cached_uids[0],)) == _answer(cached_uids)[0]
            assert backend.lookup_query(fresh, b"key") is None
            lease = backend.lease(fresh)
            assert backend.store_query(fresh, b"key", _answer(fresh_uids), None, lease)
            assert backend.lookup_query(fresh, b"key") == _answer(fresh_uids)
            assert backend.lookup_study(fresh, fresh_uids[1], Level.INSTANCE) is None
            lease = backend.lease(fresh)
            study = _answer(fresh_uids)[1]
            assert backend.store_study(fresh, study, Level.INSTANCE, None, lease)
            assert backend.lookup_study(fresh, fresh_uids[1], Level.INSTANCE) == study
            assert backend.add_objects(fresh, [make_study(fresh_uids[2])], None) == 1

            # Once a replica has taken over, the registry learns of both namespaces.
            nodes.wait_served(REGISTRY)
            assert {cached, fresh} <= _until_listed(backend, {cached, fresh})
        finally:
            backend.close()
