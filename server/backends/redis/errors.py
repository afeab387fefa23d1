"""The one place where redis-py's errors become the backend's: BackendUnavailable.

Only "Redis cannot answer right now" is translated (unreachable, timed out, down,
loading, out of memory, slots moving); anything else is a bug and passes through.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from redis.exceptions import (
    AskError,
    BusyLoadingError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    MovedError,
    OutOfMemoryError,
    ReadOnlyError,
    RedisClusterException,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from dicomcache.server.errors import BackendUnavailable

UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    ClusterError,
    MasterDownError,
    TryAgainError,
    BusyLoadingError,
    ReadOnlyError,
    OutOfMemoryError,
    RedisClusterException,
    MovedError,  # slots moving (resharding): the next call uses the refreshed map
    AskError,
    OSError,
)
# Error replies that mean the same, should redis-py raise them as a plain ResponseError.
_UNAVAILABLE_REPLIES = ("OOM", "LOADING", "MASTERDOWN", "CLUSTERDOWN")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Turn 'Redis cannot be reached' into BackendUnavailable; let bugs through.

    Raises:
        BackendUnavailable: from the redis-py error, which stays its ``__cause__``.
    """
    try:
        yield
    except UNAVAILABLE as exc:
        raise BackendUnavailable(f"redis: {type(exc).__name__}") from exc
    except ResponseError as exc:
        if str(exc).startswith(_UNAVAILABLE_REPLIES):
            raise BackendUnavailable(f"redis: {str(exc)[:40]}") from exc
        raise
