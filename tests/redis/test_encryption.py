"""Values at rest (issue 12): with a key file no patient data is in any key or value of a
real Redis or Redis Cluster; a wrong key, an altered or a moved value is a miss, never
garbage or an error; a rotation keeps old entries hitting while new writes use the new key,
without a restart."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import redis

from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.app import CacheServer
from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.backends.redis.keyfile import KeyFile
from dicomcache.server.backends.redis.names import is_object_key
from dicomcache.server.backends.redis.sealing import MAGIC, PLAIN, SealedValues, Values
from dicomcache.server.config import Settings
from dicomcache.server.model import Level
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, objects_pb2, query_pb2
from tests.support.clock import FakeClock
from tests.support.messages import make_study, text_element
from tests.support.redis_fixtures import key_line, shared_cluster, shared_server
from tests.support.redis_servers import flush_all

pytestmark = pytest.mark.redis

NAME, PATIENT_ID, ACCESSION = "Quixote^Dulcinea", "PID-93817465", "ACC-55512399"
PHI = (NAME, "Quixote", "Dulcinea", PATIENT_ID, ACCESSION)
TIMEOUT = 2.0
NS = "enc"


@dataclass
class Target:
    """A flushed Redis (one server or a cluster): its URL and a client for every master."""

    url: str
    clients: list[redis.Redis]


@pytest.fixture(params=["single", "cluster"])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    if request.param == "single":
        server = shared_server()
        found = Target(server.url, [server.client()])
    else:
        cluster = shared_cluster()
        found = Target(cluster.url, cluster.clients())
    flush_all(found.clients)
    yield found
    for client in found.clients:
        client.close()


def _key_file(path: Path, *lines: str) -> str:
    """Write a key file the way a Kubernetes secret mount changes: a new file put in place."""
    staged = path.with_suffix(".new")
    staged.write_text("# keys of the test\n" + "".join(lines))
    os.replace(staged, path)
    return str(path)


def _phi_study(n: int) -> objects_pb2.Study:
    """A study of 2 series of 3 instances; the study and every instance carry the patient."""
    study = make_study(n, 2, 3, patient=NAME)
    study.attributes.elements[0x00100020].CopyFrom(text_element("LO", PATIENT_ID))
    study.attributes.elements[0x00080050].CopyFrom(text_element("SH", ACCESSION))
    for series in study.series:
        for instance in series.instances:
            instance.attributes.elements[0x00100020].CopyFrom(text_element("LO", PATIENT_ID))
    return study


QUERY = query_pb2.Query(patient_name=NAME, patient_id=PATIENT_ID, accession_number=ACCESSION)
OTHER_QUERY = query_pb2.Query(patient_id=PATIENT_ID)


@contextmanager
def _serving(url: str, key_file: str | None) -> Iterator[cache_service_pb2_grpc.CacheServiceStub]:
    """A real CacheServer on port 0, its backend built from the settings (build_backend)."""
    settings = Settings(
        listen="127.0.0.1:0",
        backend=url,
        backend_timeout=TIMEOUT,
        redis_encryption_key_file=key_file,
    )
    server = CacheServer(settings).start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield cache_service_pb2_grpc.CacheServiceStub(channel)
    finally:
        channel.close()
        server.stop(grace=0)


def _study_ref(n: int) -> objects_pb2.ObjectReference:
    return objects_pb2.ObjectReference(
        study=objects_pb2.StudyReference(study_uid=_phi_study(n).uid)
    )


def _fill(stub: cache_service_pb2_grpc.CacheServiceStub) -> None:
    """A query answer, a study by id and added objects, all hitting; counters flushed."""
    assert stub.StoreQuery(
        pb.StoreQueryRequest(namespace=NS, query=QUERY, studies=[_phi_study(1), _phi_study(2)])
    ).stored
    level = query_pb2.QUERY_LEVEL_INSTANCE
    study = _phi_study(3)
    assert stub.StoreStudy(
        pb.StoreStudyRequest(namespace=NS, study=study, query_level=level)
    ).stored
    stub.AddObjects(pb.AddObjectsRequest(namespace=NS, studies=[_phi_study(4)]))
    _assert_hits(stub)
    stub.GetStats(pb.GetStatsRequest(namespace=NS))  # counters and registry written too


def _hits(stub: cache_service_pb2_grpc.CacheServiceStub) -> list[bool]:
    """Whether the query, the study by id and the added study hit."""
    query = stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=QUERY))
    level = query_pb2.QUERY_LEVEL_INSTANCE
    study = stub.LookupStudy(
        pb.LookupStudyRequest(namespace=NS, study_uid=_phi_study(3).uid, query_level=level)
    )
    found = stub.GetObjects(pb.GetObjectsRequest(namespace=NS, references=[_study_ref(4)]))
    return [query.hit, study.hit, found.results[0].found]


def _assert_hits(stub: cache_service_pb2_grpc.CacheServiceStub) -> None:
    query = stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=QUERY))
    assert query.hit
    assert list(query.studies) == [_phi_study(1), _phi_study(2)]  # exactly what was stored
    assert _hits(stub) == [True, True, True]


def _dump(clients: list[redis.Redis]) -> tuple[bytes, set[str]]:
    """Every key and every value of every master, whatever its type, and the types seen."""
    parts: list[bytes] = []
    types: set[str] = set()
    for client in clients:
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            types.add(kind)
            parts.append(key)
            if kind == "string":
                parts.append(client.get(key) or b"")
            elif kind == "hash":
                for field, value in client.hgetall(key).items():
                    parts += [field, value]
            elif kind == "set":
                parts += list(client.smembers(key))
            elif kind == "zset":
                parts += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
            elif kind == "list":
                parts += client.lrange(key, 0, -1)
            else:
                raise AssertionError(f"a key of an unexpected type: {kind}")
    return b"\n".join(parts), types


def _object_values(clients: list[redis.Redis]) -> dict[bytes, bytes]:
    """Every object key with its value (``<token>|<attributes or sealed>``)."""
    found: dict[bytes, bytes] = {}
    for client in clients:
        for key in client.scan_iter(count=1000):
            if is_object_key(key):
                found[key] = client.get(key) or b""
    return found


def _key_id(value: bytes) -> bytes:
    sealed = value.partition(b"|")[2]
    assert sealed.startswith(MAGIC), "a value not sealed"
    return sealed[len(MAGIC) + 1 : len(MAGIC) + 1 + sealed[len(MAGIC)]]


@pytest.mark.parametrize("sealed", [True, False], ids=["encrypted", "plain"])
def test_no_patient_data_in_any_key_or_value_when_encrypted(
    target: Target, tmp_path: Path, sealed: bool
) -> None:
    key_file = _key_file(tmp_path / "keys", key_line("k1")) if sealed else None
    with _serving(target.url, key_file) as stub:
        _fill(stub)

    everything, types = _dump(target.clients)
    assert {"string", "hash", "zset"} <= types  # objects, counters, ledger and registry
    found = [phi for phi in PHI if phi.encode() in everything]
    if sealed:
        assert found == []
        assert all(_key_id(v) == b"k1" for v in _object_values(target.clients).values())
    else:  # the same scan sees them in plain values: this test can fail
        assert found == list(PHI)


def test_a_wrong_key_reads_as_misses_then_heals(
    target: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with _serving(target.url, _key_file(tmp_path / "a", key_line("k1"))) as stub:
        _fill(stub)
    other = _key_file(tmp_path / "b", key_line("k1"))  # the same id, another key
    with caplog.at_level(logging.INFO), _serving(target.url, other) as stub:
        assert _hits(stub) == [False, False, False]  # normal misses: no status raised
        stats = stub.GetStats(pb.GetStatsRequest(namespace=NS))
        assert stats.namespaces  # the namespace is still there, it just does not read
        _fill(stub)  # what a CachedSearcher does after a miss: stored again, hits again
    said = "\n".join(record.getMessage() for record in caplog.records)
    assert "did not open were served as misses" in said
    assert "did not authenticate" in said
    for phi in PHI:
        assert phi not in said


def test_rotation_keeps_old_entries_hitting_and_writes_with_the_new_key(
    target: Target, tmp_path: Path
) -> None:
    old, new = key_line("old"), key_line("new")
    with _serving(target.url, _key_file(tmp_path / "1", old)) as stub:
        _fill(stub)
    before = _object_values(target.clients)

    with _serving(target.url, _key_file(tmp_path / "2", new, old)) as stub:
        _assert_hits(stub)
        assert stub.StoreQuery(
            pb.StoreQueryRequest(namespace=NS, query=OTHER_QUERY, studies=[_phi_study(5)])
        ).stored
    after = _object_values(target.clients)
    added = {key: value for key, value in after.items() if key not in before}
    assert added and all(_key_id(value) == b"new" for value in added.values())
    assert all(_key_id(after[key]) == b"old" for key in before)

    with _serving(target.url, _key_file(tmp_path / "3", new)) as stub:  # old key retired
        assert _hits(stub) == [False, False, False]
        assert stub.LookupQuery(pb.LookupQueryRequest(namespace=NS, query=OTHER_QUERY)).hit


def _backend(url: str, values: Values) -> RedisBackend:
    return RedisBackend.from_url(
        url, ttl=600, negative_ttl=60, socket_timeout=TIMEOUT, values=values
    )


def test_a_changed_key_file_is_read_again_without_a_restart(
    target: Target, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    path = tmp_path / "keys"
    old, new = key_line("old"), key_line("new")
    keys = KeyFile(_key_file(path, old), clock=clock, recheck=1.0)
    backend = _backend(target.url, SealedValues(keys))
    first, second, third = (study_from_proto(_phi_study(n)) for n in (1, 2, 3))
    try:
        backend.add_objects(NS, [first], None)
        _key_file(path, new, old)
        backend.add_objects(NS, [second], None)  # not checked yet: still the old key
        clock.advance(1.0)
        backend.add_objects(NS, [third], None)
        by_study = {
            uid: {_key_id(v) for k, v in _object_values(target.clients).items() if uid in k}
            for uid in (b"498.1}", b"498.2}", b"498.3}")
        }
        assert list(by_study.values()) == [{b"old"}, {b"old"}, {b"new"}]
        assert all(backend.get_object(NS, (s.uid,)) == s for s in (first, second, third))

        with caplog.at_level(logging.WARNING):
            path.with_suffix(".new").write_text(new + "k3 c2hvcnQ=\n")
            os.replace(path.with_suffix(".new"), path)
            clock.advance(1.0)
            assert backend.get_object(NS, (first.uid,)) == first  # the keys read before stay
        said = "\n".join(record.getMessage() for record in caplog.records)
        assert f"{path}: line 2: the key must be 32 bytes (AES-256), it is 5" in said
        assert "c2hvcnQ" not in said and new.split()[1] not in said

        _key_file(path, new)
        clock.advance(1.0)
        assert backend.get_object(NS, (first.uid,)) is None  # sealed with a retired key
        assert backend.lookup_study(NS, first.uid, Level.STUDY) is None
        assert backend.get_object(NS, (third.uid,)) == third
    finally:
        backend.close()


def _first_instance(clients: list[redis.Redis]) -> tuple[redis.Redis, bytes, bytes]:
    """The client, key and value of the first instance of study 1's first series in NS."""
    pattern = f"dc:1:{NS}:{{*498.1}}:o:*498.1.1:*498.1.1.1"
    for client in clients:
        for key in client.scan_iter(match=pattern, count=1000):
            return client, key, client.get(key) or b""
    raise AssertionError("instance not found")


@pytest.mark.parametrize("sealed", [True, False], ids=["encrypted", "plain"])
def test_a_value_moved_to_another_key_is_a_miss(
    target: Target, tmp_path: Path, sealed: bool
) -> None:
    """A poisoning: the same instance of another namespace (another patient's) put under
    the victim's key, the victim's token kept so that its answer still matches."""
    key_file = _key_file(tmp_path / "keys", key_line("k1"))
    backend = _backend(target.url, SealedValues.from_file(key_file) if sealed else PLAIN)
    victim = study_from_proto(_phi_study(1))
    intruder = study_from_proto(make_study(1, 2, 3, patient="Intruder^Eve"))  # same UIDs
    try:
        assert backend.store_query(NS, b"victim", [victim], None)
        assert backend.store_query("elsewhere", b"intruder", [intruder], None)
        client, key, value = _first_instance(target.clients)
        other = client.get(key.replace(f"dc:1:{NS}:".encode(), b"dc:1:elsewhere:", 1))
        assert other is not None
        token = value.partition(b"|")[0]
        client.set(key, token + b"|" + other.partition(b"|")[2], keepttl=True)

        found = backend.lookup_query(NS, b"victim")
        if sealed:
            assert found is None
        else:  # without encryption another patient is served: what sealing defends
            assert found is not None and found != [victim]
            served = found[0].series[0].instances[0]
            assert served.attributes == intruder.series[0].instances[0].attributes
    finally:
        backend.close()


def test_an_altered_value_is_a_miss(target: Target, tmp_path: Path) -> None:
    values = SealedValues(KeyFile(_key_file(tmp_path / "keys", key_line("k1"))))
    backend = _backend(target.url, values)
    study = study_from_proto(_phi_study(1))
    try:
        backend.store_query(NS, b"q", [study], None)
        backend.store_study(NS, study, Level.INSTANCE, None)
        client, key, value = _first_instance(target.clients)
        flipped = value[:-1] + bytes([value[-1] ^ 1])
        client.set(key, flipped, keepttl=True)

        assert backend.lookup_query(NS, b"q") is None
        assert backend.lookup_study(NS, study.uid, Level.INSTANCE) is None
        assert backend.lookup_study(NS, study.uid, Level.SERIES) is not None  # others still read
        assert values.failures >= 2
        backend.store_query(NS, b"q", [study], None)  # written again: hits again
        assert backend.lookup_query(NS, b"q") == [study]
    finally:
        backend.close()
