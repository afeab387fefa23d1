"""Key names: schema version and namespace, no PHI, one slot per study (issue 5)."""

from __future__ import annotations

import pytest

from dicomcache.server.api.keys import query_key
from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.names import REGISTRY, escape
from dicomcache.server.model import Level
from dicomcache.v1 import query_pb2
from tests.support.builders import make_study
from tests.support.redis_servers import RedisCluster, RedisServer

pytestmark = pytest.mark.redis

PHI = ("Doe^Jane", "Doe", "Jane", "PAT-4711")


def _phi_query() -> query_pb2.Query:
    return query_pb2.Query(patient_name="Doe^Jane", patient_id="PAT-4711")


def test_keys_carry_version_and_namespace_and_no_query_values(
    single: tuple[RedisServer, RedisBackend],
) -> None:
    server, backend = single
    key = query_key(_phi_query())
    backend.store_query("archive-1", key, [make_study("1.2", 1, 1)], None)
    backend.store_query("archive-1", query_key(query_pb2.Query(patient_name="Nobody")), [], None)
    backend.store_study("archive-1", make_study("1.2", 1, 1), Level.INSTANCE, None)
    assert backend.lookup_query("archive-1", key) is not None

    names = [k.decode() for k in server.client().scan_iter(count=1000)]
    assert names
    for name in names:
        assert name.startswith("dc:1:"), name
        assert name == REGISTRY or "archive-1" in name, name
        for value in PHI:
            assert value not in name
    assert any(key.hex() in name for name in names)  # the query is named by its hash


def test_namespaces_cannot_forge_hash_tags_or_reach_each_other(
    single: tuple[RedisServer, RedisBackend],
) -> None:
    server, backend = single
    backend.add_objects("a", [make_study("1.2", 1, 1)], None)
    backend.add_objects("a:b", [make_study("1.2", 1, 1)], None)
    backend.add_objects("x}{y*", [make_study("1.2", 1, 1)], None)

    assert escape("a:b") == "a%3Ab"
    assert backend.invalidate("a", None) == 3
    assert backend.get_object("a:b", ("1.2",)) == make_study("1.2", 1, 1)
    assert backend.get_object("x}{y*", ("1.2",)) == make_study("1.2", 1, 1)
    for name in server.client().scan_iter(match="*x*"):
        assert b"}{" not in name and b"*" not in name


def test_all_keys_of_a_study_share_one_slot(cluster: tuple[RedisCluster, RedisBackend]) -> None:
    nodes, backend = cluster
    for uid in ("1.2", "1.3", "1.4", "1.5"):
        backend.store_study("ns", make_study(uid, 2, 3), Level.INSTANCE, None)
        backend.store_query("ns", uid.encode(), [make_study(uid, 2, 3)], None)
    backend.invalidate("ns", ("1.5", "1.5.1"))

    clients = nodes.clients()
    slots: dict[str, set[int]] = {}
    holders: dict[str, set[int]] = {}
    for index, client in enumerate(clients):
        for name in client.scan_iter(count=1000):
            text = name.decode()
            if text.startswith("dc:1:ns:{"):
                study = text[len("dc:1:ns:{") : text.index("}")]
                slots.setdefault(study, set()).add(client.execute_command("CLUSTER KEYSLOT", name))
                holders.setdefault(study, set()).add(index)
    assert sorted(slots) == ["1.2", "1.3", "1.4", "1.5"]
    assert all(len(s) == 1 for s in slots.values()), slots
    assert all(len(h) == 1 for h in holders.values()), holders
    assert len({next(iter(s)) for s in slots.values()}) > 1  # studies spread over slots
