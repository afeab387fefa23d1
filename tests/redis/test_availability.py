"""Redis down: BackendUnavailable at once; Redis back: the same backend works (issue 5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dicomcache.server.backends.redis.backend import RedisBackend
from dicomcache.server.errors import BackendUnavailable
from dicomcache.server.model import Level
from tests.support.builders import make_study
from tests.support.ports import free_port
from tests.support.redis_servers import RedisServer, redis_server

pytestmark = pytest.mark.redis

CALLS: dict[str, Callable[[RedisBackend], object]] = {
    "lookup_query": lambda b: b.lookup_query("ns", b"key"),
    "store_query": lambda b: b.store_query("ns", b"key", [make_study("1.2", 1, 1)], None),
    "lookup_study": lambda b: b.lookup_study("ns", "1.2", Level.STUDY),
    "store_study": lambda b: b.store_study("ns", make_study("1.2"), Level.STUDY, None),
    "add_objects": lambda b: b.add_objects("ns", [make_study("1.2")], None),
    "get_object": lambda b: b.get_object("ns", ("1.2",)),
    "invalidate": lambda b: b.invalidate("ns", ("1.2",)),
    "invalidate_namespace": lambda b: b.invalidate("ns", None),
    "stats": lambda b: b.stats(None),
}


def test_down_then_up_again_with_the_same_backend() -> None:
    with redis_server() as server:
        backend = RedisBackend.from_url(server.url, ttl=600, negative_ttl=60, socket_timeout=0.25)
        try:
            backend.store_query("ns", b"key", [make_study("1.2", 1, 1)], None)
            assert backend.lookup_query("ns", b"key") == [make_study("1.2", 1, 1)]
            assert backend.stats("ns").namespaces[0].hits == 1  # counted in Redis, lost below

            server.stop()
            for name, call in CALLS.items():
                with pytest.raises(BackendUnavailable):
                    call(backend)
                    pytest.fail(f"{name} did not raise")

            server.start()  # same port, empty, and without the scripts loaded
            assert backend.lookup_query("ns", b"key") is None
            backend.store_query("ns", b"key", [make_study("1.2", 1, 1)], None)
            assert backend.lookup_query("ns", b"key") == [make_study("1.2", 1, 1)]
            assert backend.stats("ns").namespaces[0].hits == 1
        finally:
            backend.close()


def test_a_backend_made_while_redis_is_down_works_once_it_is_up(tmp_path: Path) -> None:
    port = free_port()
    backend = RedisBackend.from_url(f"redis://127.0.0.1:{port}/0", ttl=600, negative_ttl=60)
    server = RedisServer(port=port, workdir=tmp_path)
    try:
        with pytest.raises(BackendUnavailable):
            backend.lookup_query("ns", b"key")
        server.start()
        backend.store_query("ns", b"key", [], None)
        assert backend.lookup_query("ns", b"key") == []
    finally:
        backend.close()
        server.stop()


def test_a_cluster_backend_made_while_the_cluster_is_down_raises_unavailable() -> None:
    port = free_port()
    backend = RedisBackend.from_url(f"redis+cluster://127.0.0.1:{port}", ttl=600, negative_ttl=60)
    try:
        with pytest.raises(BackendUnavailable):
            backend.lookup_query("ns", b"key")
    finally:
        backend.close()


def test_urls_are_checked() -> None:
    with pytest.raises(ValueError, match="scheme"):
        RedisBackend.from_url("http://127.0.0.1:1", ttl=600, negative_ttl=60)
    with pytest.raises(ValueError, match="database 0"):
        RedisBackend.from_url("redis+cluster://127.0.0.1:1/3", ttl=600, negative_ttl=60)
