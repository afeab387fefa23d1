"""A Node.js client (@grpc/grpc-js, protos loaded at run time) shares entries with Python."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from dicomcache.client import CacheClient, ClientTLS
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2
from tests.grpc.conftest import start_server
from tests.support.certs import Authority

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "node" / "client.js"


def node(command: str, target: str, **env: str) -> dict:
    if shutil.which("node") is None or not (ROOT / "node_modules" / "@grpc" / "grpc-js").is_dir():
        pytest.fail("node and the npm packages are needed: run `npm ci` (.ci/run does)")
    result = subprocess.run(
        ["node", str(SCRIPT), command, target],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, **env},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def python_query() -> query_pb2.Query:
    """The Node client's query, built with its fields in another order and spelled out."""
    query = query_pb2.Query()
    query.max_study_date.hour = 23
    query.max_study_date.minute = 59
    query.max_study_date.date.CopyFrom(query_pb2.Date(year=2024, month=12, day=31))
    query.min_study_date.date.CopyFrom(query_pb2.Date(year=2024, month=1, day=2))
    query.patient_id = "NODE-1"
    query.include_fields.extend(["Modality", "StudyDate", "Modality"])
    query.query_level = query_pb2.QUERY_LEVEL_INSTANCE
    query.kind = "dicomtrolley.core.Query"
    return query


def test_node_stores_and_python_hits_the_same_entry(running):
    assert node("store", running.target) == {"stored": True}
    response = running.stub.LookupQuery(
        pb.LookupQueryRequest(namespace="node-test", query=python_query())
    )
    assert response.hit
    (study,) = response.studies
    assert study.uid == "1.2.826.0.1.3680043.8.498.77"
    name = study.attributes.elements[0x00100010].values.items[0].person_name
    assert (name.alphabetic, name.ideographic) == ("Yamada^Tarou", "山田^太郎")
    instance = study.series[0].instances[0]
    assert instance.attributes.elements[0x00200013].values.items[0].integer == 7


def test_node_lookup_before_store_is_a_miss_and_after_a_hit(running):
    miss = node("lookup", running.target)
    assert set(miss) == {"lease"}  # hit=false (a default, so not shown) and a lease
    assert int(miss["lease"]) > 0  # uint64 as a JSON string
    node("store", running.target)
    response = node("lookup", running.target)
    assert response["hit"] is True
    assert response["studies"][0]["series"][0]["instances"][0]["uid"].endswith(".77.1.1")


def test_python_stores_and_node_hits_the_same_entry(running):
    from tests.support.messages import make_study

    study = make_study(5, 1, 2)
    running.stub.StoreQuery(
        pb.StoreQueryRequest(namespace="node-test", query=python_query(), studies=[study])
    )
    response = node("lookup", running.target)
    assert response["hit"] is True
    assert [s["uid"] for s in response["studies"]] == [study.uid]
    instances = response["studies"][0]["series"][0]["instances"]
    assert [i["uid"] for i in instances] == [i.uid for i in study.series[0].instances]


def test_node_reads_every_page_of_stats(running):
    from tests.support.messages import make_study

    names = ["node-a", "node-b", "node-c", "node-d", "node-e"]
    for name in names:
        running.stub.AddObjects(pb.AddObjectsRequest(namespace=name, studies=[make_study(1)]))
    assert node("stats", running.target) == {"pages": 3, "namespaces": names}


def test_node_over_mutual_tls_shares_entries_with_python(tmp_path):
    """A grpc-js client with a client certificate, against a server that demands one."""
    ca = Authority(tmp_path)
    server_pair, client_pair = ca.server(), ca.client("node-service")
    running = start_server(
        tls_cert_file=str(server_pair.cert_file),
        tls_key_file=str(server_pair.key_file),
        tls_client_ca_file=str(ca.cert_file),
    )
    target = f"localhost:{running.server.port}"
    tls = {
        "DICOMCACHE_CA_FILE": str(ca.cert_file),
        "DICOMCACHE_CERT_FILE": str(client_pair.cert_file),
        "DICOMCACHE_KEY_FILE": str(client_pair.key_file),
    }
    try:
        assert node("store", target, **tls) == {"stored": True}
        with CacheClient(target, timeout=5, tls=ClientTLS(*tls.values())) as client:
            response = client.stats("node-test")
        assert response.namespaces[0].queries == 1
        refused = subprocess.run(
            ["node", str(SCRIPT), "lookup", target],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "DICOMCACHE_CA_FILE": str(ca.cert_file)},  # no client certificate
        )
        assert refused.returncode == 1 and "lookup failed: 14" in refused.stderr  # UNAVAILABLE
    finally:
        running.channel.close()
        running.server.stop(grace=0)
