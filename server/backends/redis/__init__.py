"""The Redis backend: one cache shared by many servers, on Redis or Redis Cluster.

backend    RedisBackend: the Backend interface in Redis calls
topology   one Redis or a Redis Cluster: the calls that differ, chosen once
names      every key name, built in one place (the key layout is drawn there)
scripts    the Lua scripts (``scripts/*.lua``), loaded as package data
replies    the scripts' replies, each parsed into a named tuple
errors     redis-py's errors translated into BackendUnavailable
sealing    objects' attributes at rest: plain, or AES-256-GCM bound to their key
keyfile    the encryption keys' file (--redis-encryption-key-file), re-read on change
"""

from dicomcache.server.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
