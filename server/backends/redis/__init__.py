"""The Redis backend: one cache shared by many servers, on Redis or Redis Cluster.

backend   RedisBackend: the Backend interface in Redis calls
names     every key name, built in one place
scripts   the Lua scripts (``scripts/*.lua``), loaded as package data
"""

from dicomcache.server.backends.redis.backend import RedisBackend

__all__ = ["RedisBackend"]
