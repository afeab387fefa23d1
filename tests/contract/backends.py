"""The backends the contract suite runs against: adding a backend is adding one factory.

A factory is a context manager that takes ``ttl``, ``negative_ttl`` and
``max_bytes`` and yields a ``CacheUnderTest``: the backend, and a way to move that
backend's time forward. It owns whatever it starts (servers, connections) and
releases it on exit. Put the factory in ``FACTORIES`` under the backend's name,
and any pytest marks it needs (e.g. ``pytest.mark.redis``) in ``MARKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

import pytest

from dicomcache.server.backends import Backend
from dicomcache.server.backends.memory.backend import MemoryBackend
from tests.support.clock import FakeClock
from tests.support.redis_fixtures import (
    redis_on_cluster,
    redis_on_cluster_sealed,
    redis_single,
    redis_single_sealed,
)


@dataclass
class CacheUnderTest:
    """A backend and the hand on its clock."""

    backend: Backend
    advance: Callable[[float], None]


class Factory(Protocol):
    """Builds a backend for one test and tears it down afterwards."""

    def __call__(
        self, *, ttl: float, negative_ttl: float, max_bytes: int | None
    ) -> AbstractContextManager[CacheUnderTest]: ...


@contextmanager
def memory(*, ttl: float, negative_ttl: float, max_bytes: int | None) -> Iterator[CacheUnderTest]:
    """A MemoryBackend on a FakeClock."""
    clock = FakeClock()
    backend = MemoryBackend(ttl=ttl, negative_ttl=negative_ttl, max_bytes=max_bytes, clock=clock)
    try:
        yield CacheUnderTest(backend, clock.advance)
    finally:
        backend.close()


FACTORIES: dict[str, Factory] = {
    "memory": memory,
    "redis": redis_single,
    "redis-cluster": redis_on_cluster,
    # Values encrypted at rest (issue 12): hits, tokens and invalidation work the same.
    "redis-sealed": redis_single_sealed,
    "redis-cluster-sealed": redis_on_cluster_sealed,
}
MARKS: dict[str, tuple[pytest.MarkDecorator, ...]] = {
    "redis": (pytest.mark.redis,),
    "redis-cluster": (pytest.mark.redis,),
    "redis-sealed": (pytest.mark.redis,),
    "redis-cluster-sealed": (pytest.mark.redis,),
}
