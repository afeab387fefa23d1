"""The memory backend: one process's cache, the default.

backend      MemoryBackend: the Backend interface over per-namespace trees, one lock
namespace    one namespace's trees, query answers and listings
tree         the nodes of the study/series/instance tree
answer       stored answers and complete listings, checked on read
readings     the last read of each hot listing, unpacked, while nothing it read changed
expiry       the queue that reaps expired entries a chunk at a time
lru          the eviction order of studies
compression  instances' attributes deflated against a per-study dictionary
packing      one study tree packed into and out of compressed form
"""

from dicomcache.server.backends.memory.backend import REAP_PER_WRITE, MemoryBackend

__all__ = ["REAP_PER_WRITE", "MemoryBackend"]
