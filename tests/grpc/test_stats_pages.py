"""GetStats in pages: every page fits in a message, the pages together are every namespace.

60,000 namespaces made one GetStats of 8.16 MB, past a 4 MiB limit; now a page
holds at most ``pages.max_page_size`` namespaces and says where the next starts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from dicomcache.client import CacheClient
from dicomcache.server.api import pages
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.v1 import cache_service_pb2 as pb
from tests.grpc.conftest import RunningServer, start_server
from tests.grpc.test_validation import rejected
from tests.support.builders import make_study


def _fill(running: RunningServer, names: list[str]) -> None:
    backend = running.server.backend
    assert isinstance(backend, MemoryBackend)
    for n, name in enumerate(names):
        backend.add_objects(name, [make_study(f"1.{n}", 1, 1)], None)


def _pages(stub, page_size: int = 0) -> Iterator[pb.GetStatsResponse]:
    request = pb.GetStatsRequest(page_size=page_size)
    while True:
        response = stub.GetStats(request)
        yield response
        if not response.next_page_token:
            return
        request.page_token = response.next_page_token


def test_all_namespaces_come_in_pages_of_the_default_size(running, stub):
    names = [f"ns-{n:05d}" for n in range(2500)]
    _fill(running, names)
    got = list(_pages(stub))
    assert [len(p.namespaces) for p in got] == [1000, 1000, 500]
    assert [s.namespace for p in got for s in p.namespaces] == names
    assert len({p.total_bytes for p in got}) == 1 and got[0].total_bytes > 0


def test_every_page_fits_a_small_message_limit():
    limit = 64 * 1024
    running = start_server(max_message_bytes=limit)
    try:
        # The longest names, and counters of many bytes.
        names = [f"{n:05d}".ljust(128, "x") for n in range(1200)]
        _fill(running, names)
        got = list(_pages(running.stub, page_size=100_000))
        assert all(p.ByteSize() <= limit for p in got)
        assert max(len(p.namespaces) for p in got) == pages.max_page_size(limit)
        assert [s.namespace for p in got for s in p.namespaces] == names
    finally:
        running.channel.close()
        running.server.stop(grace=0)


def test_protocols_of_one_namespace_stay_on_one_page(running, stub):
    # "a@qido" (a's QIDO-RS entries) sorts after "a.b": still reported with "a".
    _fill(running, ["a", "a.b", "a@qido", "a@dicomqr", "b@mint"])
    got = [[(s.namespace, s.studies) for s in p.namespaces] for p in _pages(stub, page_size=1)]
    assert got == [[("a", 3)], [("a.b", 1)], [("b", 1)]]


def test_a_page_of_the_last_namespaces_has_no_token(running, stub):
    _fill(running, ["a", "b"])
    response = stub.GetStats(pb.GetStatsRequest(page_size=2))
    assert [s.namespace for s in response.namespaces] == ["a", "b"]
    assert response.next_page_token == ""


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pb.GetStatsRequest(page_size=-1), "page_size"),
        (pb.GetStatsRequest(page_token="not a token"), "page_token"),
        (pb.GetStatsRequest(page_token=pages.token("a")[:-2] + "!!"), "page_token"),
        (pb.GetStatsRequest(page_token="MjpuYW1l"), "page_token"),  # another version
        (pb.GetStatsRequest(page_token=pages.token("bad name")), "page_token"),
        (pb.GetStatsRequest(namespace="a", page_token=pages.token("a")), "page_token"),
    ],
)
def test_bad_page_requests_are_invalid_argument(stub, request_, field):
    assert [f for f, _ in rejected(stub.GetStats, request_)] == [field]


def test_the_client_reads_every_page(running):
    names = [f"ns-{n:04d}" for n in range(1234)]
    _fill(running, names)
    with CacheClient(running.target, timeout=5) as client:
        everything = client.stats(page_size=100)
        default = client.stats()
    assert [s.namespace for s in everything.namespaces] == names
    assert [s.namespace for s in default.namespaces] == names
    assert everything.next_page_token == ""
    assert everything.total_bytes == default.total_bytes > 0


def test_one_namespace_ignores_paging(running, stub):
    _fill(running, ["a", "b"])
    response = stub.GetStats(pb.GetStatsRequest(namespace="b", page_size=1))
    assert [s.namespace for s in response.namespaces] == ["b"]
    assert response.next_page_token == ""
