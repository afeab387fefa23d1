"""The four rights, and the right and namespace each CacheService RPC needs."""

from __future__ import annotations

from enum import Enum
from typing import Any

from dicomcache.v1 import search_pb2


class Right(Enum):
    """What a grant allows on a namespace."""

    READ = "read"  # lookups (unary and streamed), GetObjects, Search (a read-through)
    WRITE = "write"  # StoreQuery, StoreStudy, AddObjects, the streamed stores
    INVALIDATE = "invalidate"  # Invalidate
    STATS = "stats"  # GetStats


RPC_RIGHTS: dict[str, Right] = {
    "LookupQuery": Right.READ,
    "LookupStudy": Right.READ,
    "StreamLookupQuery": Right.READ,
    "StreamLookupStudy": Right.READ,
    "GetObjects": Right.READ,
    "Search": Right.READ,  # on the upstream it names: its namespace
    "StoreQuery": Right.WRITE,
    "StoreStudy": Right.WRITE,
    "AddObjects": Right.WRITE,
    "StreamStoreQuery": Right.WRITE,  # on the namespace of its first piece's store
    "StreamStoreStudy": Right.WRITE,
    "Invalidate": Right.INVALIDATE,
    "GetStats": Right.STATS,
    "WatchInvalidations": Right.READ,  # which studies of the namespace change: a read
}


def namespace_of(request: Any) -> str:
    """The namespace a parsed request asks for ("" for GetStats of all namespaces).

    The streamed lookups wrap the unary request, and a streamed store's first piece
    the unary store (``store``); its namespace is theirs. Search names an upstream,
    which is its namespace.
    """
    if isinstance(request, search_pb2.SearchRequest):
        return str(request.upstream)
    for wrapped in ("request", "store"):
        inner = getattr(request, wrapped, None)
        if inner is not None and hasattr(inner, "namespace"):
            return str(inner.namespace)
    return str(request.namespace)
