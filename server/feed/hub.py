"""Changes handed from the storage's writers to the watchers of their namespaces.

A change names a backend namespace (perhaps a protocol's partition, ``NAME@PROTOCOL``)
and a study, or no study for the whole namespace. A watcher watches a caller's
namespace, every partition of it. The feed never holds a change back: each goes to
the queues of the watchers of its namespace at once, and a watcher that falls too
far behind is ended (its client flushes) rather than given a gap.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from dicomcache.server.api.keys import PARTITIONS, base_namespace
from dicomcache.server.errors import BackendUnavailable
from dicomcache.v1 import query_pb2

# Changes a watcher may have waiting before it is ended as too slow.
MAX_PENDING = 10_000
_PROTOCOLS = {name: value for value, name in PARTITIONS.items()}


@dataclass(frozen=True, slots=True)
class Change:
    """A change in backend namespace ``namespace``: of study ``study_uid``, or "" for all."""

    namespace: str
    study_uid: str = ""

    @property
    def protocol(self) -> int:
        """The Protocol whose partition the namespace is (PROTOCOL_UNSPECIFIED: the plain one)."""
        _, _, name = self.namespace.partition("@")
        return _PROTOCOLS.get(name, query_pb2.PROTOCOL_UNSPECIFIED)


class Ended(Exception):
    """The watcher was ended: its client must flush (the reason says why, no PHI)."""


class TooManyWatchers(Exception):
    """The server watches as many streams as it may: each holds one of its threads."""


class Watcher:
    """The queue of one stream's changes. Thread-safe: the feed puts, the stream takes."""

    def __init__(self, namespace: str, max_pending: int = MAX_PENDING) -> None:
        self.namespace = namespace
        self._max_pending = max_pending
        self._pending: collections.deque[Change] = collections.deque()
        self._ended: str | None = None
        self._ready = threading.Condition()

    def put(self, changes: Iterable[Change]) -> None:
        with self._ready:
            if self._ended is not None:
                return
            self._pending.extend(changes)
            if len(self._pending) > self._max_pending:
                self._pending.clear()
                self._ended = "watcher fell behind the changes"
            self._ready.notify()

    def end(self, reason: str = "stream ended") -> None:
        """End the watcher: ``take`` raises ``Ended`` from now on."""
        with self._ready:
            if self._ended is None:
                self._ended = reason
            self._ready.notify()

    def take(self, timeout: float) -> list[Change]:
        """The changes waiting, after waiting up to ``timeout`` for one; [] if none came.

        Raises:
            Ended: the watcher was ended.
        """
        with self._ready:
            self._ready.wait_for(lambda: self._pending or self._ended is not None, timeout)
            if self._ended is not None:
                raise Ended(self._ended)
            taken = list(self._pending)
            self._pending.clear()
            return taken


class Feed:
    """Every watcher of this server, by namespace. Thread-safe.

    ``healthy`` is False while the server may be missing changes (on Redis: its
    subscription is down): no watcher may start then.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[str, set[Watcher]] = {}
        self._healthy = True
        self._why = ""
        self.relay: Relay | None = None

    def watch(self, namespace: str, limit: int | None = None) -> Watcher:
        """A new watcher of ``namespace``, unless ``limit`` watchers are watching.

        Raises:
            BackendUnavailable: the feed may be missing changes now.
            TooManyWatchers: ``limit`` watchers are watching.
        """
        watcher = Watcher(namespace)
        with self._lock:
            if not self._healthy:
                raise BackendUnavailable(f"invalidation feed out of sync: {self._why}")
            if limit is not None and sum(len(w) for w in self._watchers.values()) >= limit:
                raise TooManyWatchers(f"at most {limit} watch streams on this server")
            self._watchers.setdefault(namespace, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        with self._lock:
            watchers = self._watchers.get(watcher.namespace)
            if watchers is not None:
                watchers.discard(watcher)
                if not watchers:
                    del self._watchers[watcher.namespace]

    def announce(self, changes: list[Change]) -> None:
        """Changes this server made: to its watchers, and through the relay to the others.

        Raises:
            BackendUnavailable: the relay could not send them (the change is made,
                but other servers' watchers may not hear of it: the caller's call fails).
        """
        if not changes:
            return
        self.deliver(changes)
        if self.relay is not None:
            self.relay.send(changes)

    def deliver(self, changes: list[Change]) -> None:
        """Hand changes to the watchers of their namespaces."""
        by_namespace: dict[str, list[Change]] = {}
        for change in changes:
            by_namespace.setdefault(base_namespace(change.namespace), []).append(change)
        with self._lock:
            targets = [
                (watcher, found)
                for name, found in by_namespace.items()
                for watcher in self._watchers.get(name, ())
            ]
        for watcher, found in targets:
            watcher.put(found)

    def out_of_sync(self, why: str) -> None:
        """End every watcher and start none until ``in_sync``: changes may be missed."""
        with self._lock:
            self._healthy, self._why = False, why
            ended = [w for watchers in self._watchers.values() for w in watchers]
        for watcher in ended:
            watcher.end(why)

    def in_sync(self) -> None:
        """Watchers may start again: from now on no change is missed."""
        with self._lock:
            self._healthy, self._why = True, ""

    @property
    def healthy(self) -> bool:
        return self._healthy

    def watching(self) -> int:
        """How many watchers there are."""
        with self._lock:
            return sum(len(w) for w in self._watchers.values())

    def close(self) -> None:
        """End every watcher and start none: the server stops (its relay stops apart)."""
        self.out_of_sync("server stopping")


class Relay(Protocol):
    """Carries changes between the servers that share a storage (see ``relay``)."""

    def send(self, changes: list[Change]) -> None:
        """Send this server's changes to the others; raises BackendUnavailable."""
        ...

    def close(self) -> None:
        """Stop relaying."""
        ...
