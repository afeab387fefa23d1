"""Changes between the servers that share a Redis: one pub/sub channel.

Each server PUBLISHes the changes it makes on ``CHANNEL`` (after the storage made
them, before the call that made them returns) and SUBSCRIBEs to it, handing the
others' changes to its own watchers (its own went to them directly). Classic
PUBLISH, not the sharded SPUBLISH: on a Redis Cluster a classic message reaches the
subscribers of every node, whichever node it was published on, so a server may
subscribe through any node.

Pub/sub keeps nothing for a subscriber while it is disconnected, so a subscription
that may have missed a message ends every watcher of this server (their clients
flush) and lets none start until it is subscribed again: a lost connection (also
one redis-py reconnects by itself, subscribing again: seen by its connect callback),
and a connection that answers no PING for ``deadline`` seconds (a stalled Redis or
network; PINGs go every ``interval``). A change whose PUBLISH fails fails its call
(UNAVAILABLE): other servers' watchers could not hear of it.

Messages hold the sender's random id, then per change the backend namespace and the
StudyInstanceUID: no attribute values.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from dicomcache.server.backends.redis.errors import translated
from dicomcache.server.feed.hub import Change, Feed

log = logging.getLogger(__name__)

CHANNEL = "dc:1:feed"
PING_INTERVAL = 0.05
PING_DEADLINE = 0.25
RETRY_SECONDS = 0.1  # between two attempts to subscribe again


def encode(origin: str, changes: list[Change]) -> bytes:
    """The channel message: the origin, then one "namespace<TAB>study" line per change."""
    lines = [origin, *(f"{c.namespace}\t{c.study_uid}" for c in changes)]
    return "\n".join(lines).encode()


def decode(data: bytes) -> tuple[str, list[Change]]:
    """The origin and the changes of a channel message."""
    origin, *lines = data.decode().split("\n")
    return origin, [Change(*line.split("\t", 1)) for line in lines]


class RedisRelay:
    """Publishes this server's changes and delivers the others' to ``feed``.

    Thread-safe. Runs one daemon thread (the subscription). Clock: ``time.monotonic``
    for the PING deadline.

    Args:
        connect: makes a new redis-py client (``RedisBackend.connect_again``); called
            again after each lost subscription.
        feed: the server's feed; out of sync until the first subscription.
    """

    def __init__(
        self,
        connect: Any,
        feed: Feed,
        *,
        interval: float = PING_INTERVAL,
        deadline: float = PING_DEADLINE,
    ) -> None:
        self._connect = connect
        self._feed = feed
        self._interval = interval
        self._deadline = deadline
        self.origin = os.urandom(8).hex()
        self._publisher: Any = None
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self.subscriptions = 0  # how many times it (re)subscribed: for tests
        feed.out_of_sync("not yet subscribed to the other servers' changes")
        feed.relay = self
        self._thread = threading.Thread(target=self._run, name="feed-relay", daemon=True)

    def start(self) -> RedisRelay:
        """Start subscribing (the feed is out of sync until the first subscription)."""
        self._thread.start()
        return self

    def send(self, changes: list[Change]) -> None:
        """PUBLISH the changes; raises BackendUnavailable when Redis cannot take them."""
        payload = encode(self.origin, changes)
        with translated():
            client = self._client()
            client.publish(CHANNEL, payload)

    def _client(self) -> Any:
        with self._lock:
            if self._publisher is None:
                self._publisher = self._connect()
            return self._publisher

    def close(self) -> None:
        self._closing.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._publisher = None

    def _run(self) -> None:
        told = False  # a failure is logged once, not at every attempt while Redis is down
        while not self._closing.is_set():
            subscriptions = self.subscriptions
            try:
                self._subscribed()
            except Exception as exc:  # a lost subscription, whatever redis-py raised
                if not told or self.subscriptions != subscriptions:
                    log.warning("invalidation feed: subscription lost (%s)", type(exc).__name__)
                told = True
            self._feed.out_of_sync("subscription to the other servers' changes lost")
            self._closing.wait(RETRY_SECONDS)

    def _reconnected(self, connection: Any) -> None:
        """redis-py reconnected the subscription by itself (and subscribes again):
        what was published meanwhile is lost. In sync again at its confirmation."""
        self._feed.out_of_sync("subscription to the other servers' changes reconnected")

    def _subscribed(self) -> None:
        """Subscribe, then deliver until the subscription fails or misses its deadline."""
        client = self._connect()
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(CHANNEL)
            first = self.subscriptions
            heard = time.monotonic()
            pinged = 0.0
            while not self._closing.is_set():
                now = time.monotonic()
                if now - heard > self._deadline:
                    log.warning("invalidation feed: Redis answered no PING for %.2f s", now - heard)
                    return
                if now - pinged >= self._interval:
                    pubsub.ping()
                    pinged = now
                message = pubsub.get_message(timeout=self._interval)
                if message is None:
                    continue
                heard = time.monotonic()
                kind = message["type"]
                if kind == "subscribe":
                    if self.subscriptions == first and pubsub.connection is not None:
                        pubsub.connection.register_connect_callback(self._reconnected)
                    self.subscriptions += 1
                    self._feed.in_sync()
                elif kind == "message":
                    origin, changes = decode(message["data"])
                    if origin != self.origin:
                        self._feed.deliver(changes)
        finally:
            pubsub.close()
            client.close()
