"""Fixtures that run every contract test once per backend of ``backends.FACTORIES``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from typing import Protocol

import pytest

from tests.contract.backends import FACTORIES, MARKS, CacheUnderTest


class MakeCache(Protocol):
    """Builds a fresh backend of the parametrized kind; the fixture tears it down."""

    def __call__(
        self, *, ttl: float = 600.0, negative_ttl: float = 60.0, max_bytes: int | None = None
    ) -> CacheUnderTest: ...


@pytest.fixture(
    params=[pytest.param(name, marks=MARKS.get(name, ()), id=name) for name in FACTORIES]
)
def make_cache(request: pytest.FixtureRequest) -> Iterator[MakeCache]:
    """A factory of backends of one kind (ttl 600 s and negative TTL 60 s by default)."""
    factory = FACTORIES[request.param]
    with ExitStack() as stack:

        def make(
            *, ttl: float = 600.0, negative_ttl: float = 60.0, max_bytes: int | None = None
        ) -> CacheUnderTest:
            return stack.enter_context(
                factory(ttl=ttl, negative_ttl=negative_ttl, max_bytes=max_bytes)
            )

        yield make


@pytest.fixture
def cache(make_cache: MakeCache) -> CacheUnderTest:
    """A backend with the default TTLs."""
    return make_cache()
