"""Bringing a CachedSearcher's breaker back once its cache server is up again."""

from __future__ import annotations

import time
from collections.abc import Callable

from dicomcache.client import CachedSearcher
from dicomcache.client.breaker import State
from tests.support.clock import FakeClock


def wait_until_cache_used(
    searcher: CachedSearcher, clock: FakeClock, call: Callable[[], object], limit: float = 20
) -> None:
    """Move the breaker's clock past each back-off and make ``call`` until the breaker closes.

    The first trials may still meet the gRPC channel's own reconnect back-off (real
    time), so a few are allowed within ``limit`` real seconds.
    """
    deadline = time.monotonic() + limit
    while searcher.breaker.state is not State.CLOSED and time.monotonic() < deadline:
        clock.advance(searcher.breaker.backoff)
        call()
        time.sleep(0.05)
    assert searcher.breaker.state is State.CLOSED, "the searcher never used the cache again"
