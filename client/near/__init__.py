"""The near cache: answers kept in the client process, coherent with the server.

``NearCache`` (``cache.py``: the rules), its bounded LRU by bytes (``lru.py``), the
thread that follows the server's invalidation stream (``watcher.py``) and its
Prometheus metrics (``metrics.py``). Opt in with
``CachedSearcher(..., near_cache=NearCache(max_bytes=...))``.
"""

from dicomcache.client.near.cache import Counts, NearCache

__all__ = ["Counts", "NearCache"]
