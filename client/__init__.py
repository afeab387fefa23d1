"""The dicomcache client: the cached dicomtrolley Searcher, a client for every operation,
conversions between dicomtrolley/pydicom objects and the wire contract, and the
generated stubs (``dicomcache.v1``).

    from dicomcache.client import CachedSearcher
    searcher = CachedSearcher(upstream=QidoRS(session, url), target="127.0.0.1:50051",
                              namespace="pacs-a")
"""

from dicomcache.client.cache_client import CacheClient
from dicomcache.client.credentials import ClientTLS, Token
from dicomcache.client.errors import (
    CacheAccessDenied,
    CacheError,
    CachePermissionDenied,
    CacheRejected,
    CacheUnauthenticated,
    CacheUnavailable,
    ConversionError,
    DicomJsonError,
    QueryConversionError,
)
from dicomcache.client.searcher import CachedSearcher

__all__ = [
    "CacheAccessDenied",
    "CacheClient",
    "CacheError",
    "CachePermissionDenied",
    "CacheRejected",
    "CacheUnauthenticated",
    "CacheUnavailable",
    "CachedSearcher",
    "ClientTLS",
    "ConversionError",
    "DicomJsonError",
    "QueryConversionError",
    "Token",
]
