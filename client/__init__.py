"""The dicomcache client: the cached dicomtrolley Searcher, a client for every operation,
conversions between dicomtrolley/pydicom objects and the wire contract, and the
generated stubs (``dicomcache.v1``).

    from dicomcache.client import CachedSearcher
    searcher = CachedSearcher(upstream=QidoRS(session, url), target="127.0.0.1:50051",
                              namespace="pacs-a")

``CacheClient`` and ``CachedSearcher`` are imported on first use (PEP 562), not
with this package: they bring dicomtrolley, pydicom and numpy (some 35 MiB of
resident memory), and the server imports this package's pure conversions
(``convert.dicom_json``), which need none of it. The errors and credentials are
light and come at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    # Type checkers see plain imports, and no __getattr__: a misspelt name is an error
    # to them, not Any.
    from dicomcache.client.cache_client import CacheClient
    from dicomcache.client.searcher import CachedSearcher
else:
    # The names imported on first use, and the module each lives in.
    _LAZY = {"CacheClient": "cache_client", "CachedSearcher": "searcher"}

    def __getattr__(name: str) -> Any:
        """Import ``CacheClient`` or ``CachedSearcher`` the first time it is asked for."""
        home = _LAZY.get(name)
        if home is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
        globals()[name] = value  # later reads are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted(set(globals()) | set(__all__))
