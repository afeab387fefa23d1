"""The invalidation feed: what changed in the storage, pushed to near caches.

``hub.Feed`` hands each change to the watchers of its namespace (one
``WatchInvalidations`` stream each, ``handler``); ``notifying.NotifyingBackend``
tells it of every change the service or the search engine makes, once the storage
made it; on Redis, ``relay.RedisRelay`` carries changes between the servers that
share it (pub/sub) and ends every watcher when its subscription may have missed one.
"""
