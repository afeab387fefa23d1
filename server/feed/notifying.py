"""A Backend that tells the feed of every change, once the storage made it.

What may make a kept answer differ from what a lookup returns, per the storage
interface (``server/backends``):

* an invalidation of an object (its study's answers and listings die; one of an
  object not cached drops its study) or of a namespace;
* any write of an object (``store_query``, ``store_study``, ``add_objects``): a
  rewrite with other attributes kills the answers that hold it, and one with the
  same attributes moves its expiry, perhaps closer than a kept answer's
  ``fresh_for_ms``. Every write is announced, whether it changed anything or not:
  the feed cannot tell, and one message per study written is cheap.

Not announced: expiry (each hit says when it ends: ``fresh_for_ms``), eviction (the
answer was still true; the next lookup fetches it again), stale copies (served only
when the archive fails, never kept by a near cache), leases and flights.

Changes are announced after the call returns, also when it failed or was refused
(a refused store may have written some studies): an announcement too many costs a
near cache one entry; one too few would serve an old answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from dicomcache.server.backends import Backend, Flight, Found, StaleCopy
from dicomcache.server.feed.hub import Change, Feed
from dicomcache.server.model import Address, CachedObject, Level, Stats, StudyData

T = TypeVar("T")


class NotifyingBackend:
    """Wraps a Backend: every write and invalidation is announced to ``feed``.

    Thread-safe when the backend is. No clock.
    """

    def __init__(self, backend: Backend, feed: Feed) -> None:
        self.backend = backend
        self.feed = feed

    def _written(self, namespace: str, studies: Sequence[StudyData], call: Callable[[], T]) -> T:
        # Each study once, in the order first written, a bytecode step per study so
        # other threads get their turns: sorting a 100,000-study StoreQuery's uids was
        # one C call holding the interpreter lock 75-200 ms (issue 11, stall row S3).
        uids = dict.fromkeys(study.uid for study in studies)
        try:
            return call()
        finally:
            self.feed.announce([Change(namespace, uid) for uid in uids])

    def store_query(
        self,
        namespace: str,
        key: bytes,
        studies: Sequence[StudyData],
        ttl: float | None,
        lease: int = 0,
    ) -> bool:
        store = self.backend.store_query
        return self._written(namespace, studies, lambda: store(namespace, key, studies, ttl, lease))

    def store_study(
        self, namespace: str, study: StudyData, level: Level, ttl: float | None, lease: int = 0
    ) -> bool:
        store = self.backend.store_study
        return self._written(namespace, [study], lambda: store(namespace, study, level, ttl, lease))

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        add = self.backend.add_objects
        return self._written(namespace, studies, lambda: add(namespace, studies, ttl))

    def invalidate(self, namespace: str, address: Address | None) -> int:
        try:
            return self.backend.invalidate(namespace, address)
        finally:
            self.feed.announce([Change(namespace, address[0] if address else "")])

    # -- the rest as it is ------------------------------------------------------------

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        return self.backend.lookup_query(namespace, key)

    def lookup_answer(self, namespace: str, key: bytes) -> Found | None:
        return self.backend.lookup_answer(namespace, key)

    def lease(self, namespace: str) -> int:
        return self.backend.lease(namespace)

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        return self.backend.lookup_study(namespace, study_uid, level)

    def study_answer(self, namespace: str, study_uid: str, level: Level) -> Found | None:
        return self.backend.study_answer(namespace, study_uid, level)

    def store_stale(
        self, namespace: str, key: bytes, document: bytes, keep: float, lease: int
    ) -> bool:
        return self.backend.store_stale(namespace, key, document, keep, lease)

    def lookup_stale(self, namespace: str, key: bytes) -> StaleCopy | None:
        return self.backend.lookup_stale(namespace, key)

    def fly(self, namespace: str, key: bytes, holder: str, seconds: float) -> Flight:
        return self.backend.fly(namespace, key, holder, seconds)

    def land(self, namespace: str, key: bytes, holder: str) -> None:
        self.backend.land(namespace, key, holder)

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        return self.backend.get_object(namespace, address)

    def stats(
        self, namespace: str | None, after: str | None = None, limit: int | None = None
    ) -> Stats:
        return self.backend.stats(namespace, after, limit)

    def expire(self, max_items: int) -> int:
        return self.backend.expire(max_items)

    def close(self) -> None:
        self.backend.close()
