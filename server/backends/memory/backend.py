"""The in-process backend: namespaces of expiring trees, bounded by an LRU over studies.

Costs: a hit costs O(size of the answer) and never touches other entries; a write
costs O(objects written) plus a bounded amount of reaping (``REAP_PER_WRITE``
expired items) and whatever eviction the byte bound needs. Nothing ever walks the
whole cache, except dropping a whole namespace, which walks that namespace.

Memory: instances' attributes are kept packed (``compression``: deflated against
a dictionary per study, the first instance written under it; ``packing`` says why
that work happens outside the lock). Objects are counted as ``len(uid) +
len(attributes as kept) + NODE_OVERHEAD``, a study's dictionary as its length plus
``DICTIONARY_OVERHEAD`` (see ``tree``), answers as ``len(key) + ANSWER_OVERHEAD +
ITEM_OVERHEAD`` per object (see ``answer``). When the total over all namespaces
passes ``max_bytes`` after a write, the least recently used units are evicted
until it fits: a unit is a study with all its descendants and listings, or a query
answer. A write or a hit makes its studies (and query answer) the most recently
used, so a write evicts its own studies only when everything older is already gone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeAlias, TypeVar

from dicomcache.server.backends import stats_page
from dicomcache.server.backends.memory.answer import Answer, trim
from dicomcache.server.backends.memory.expiry import ExpiryQueue
from dicomcache.server.backends.memory.leases import Leases
from dicomcache.server.backends.memory.lru import Lru
from dicomcache.server.backends.memory.namespace import Namespace
from dicomcache.server.backends.memory.packing import (
    first_dictionary,
    pack_study,
    unpack_object,
    unpack_studies,
)
from dicomcache.server.backends.memory.tree import Node, find, lineage, snapshot
from dicomcache.server.clock import Clock, monotonic
from dicomcache.server.model import (
    Address,
    CachedObject,
    Level,
    NamespaceStats,
    Stats,
    StudyData,
)

# An eviction unit: (namespace, study uid) for a study, (namespace, query key) for an answer.
Unit: TypeAlias = tuple[str, str | bytes]

# Expired items reaped by each write, so expiry keeps up without a sweeper and no
# write pays for more than this.
REAP_PER_WRITE = 64

R = TypeVar("R")


class MemoryBackend:
    """The Backend in this process's memory.

    Thread-safe: one lock guards all state, held for each call's critical section
    (a hit holds it while it builds the answer, O(answer size)). Packing and
    unpacking instances happen outside it: a write packs first (about 5 us per
    instance), reading its studies' dictionaries under the lock just before; a hit
    unpacks after (one call into zlib). Clock: the injected monotonic ``clock``,
    read once per call.

    Dropping a namespace (``invalidate(ns, None)``) empties it but keeps its
    counters (hits, misses, evictions, expirations): they only ever grow, as
    monitoring expects of counters.
    """

    def __init__(
        self,
        *,
        ttl: float = 600.0,
        negative_ttl: float = 60.0,
        max_bytes: int | None = None,
        clock: Clock = monotonic,
    ) -> None:
        """A cache keeping objects ``ttl`` seconds, empty answers ``negative_ttl`` (at most ttl).

        Args:
            ttl: default and longest lifetime of an object, an answer and a listing.
            negative_ttl: lifetime of an empty query answer, cut to ``ttl``.
            max_bytes: evict least recently used studies above this many bytes; None: no bound.
            clock: monotonic seconds.
        Raises:
            ValueError: a TTL is not positive or max_bytes is negative.
        """
        if ttl <= 0 or negative_ttl <= 0:
            raise ValueError("ttl and negative_ttl must be positive")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.ttl = ttl
        self.negative_ttl = min(negative_ttl, ttl)
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._namespaces: dict[str, Namespace] = {}
        self._expiry: ExpiryQueue[Node | Answer] = ExpiryQueue()
        self._lru: Lru[Unit] = Lru()
        self._leases = Leases()
        self._bytes = 0

    # -- queries -------------------------------------------------------------------------

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        """The studies of a live answer with current data, or None (the dead answer is dropped)."""
        with self._lock:
            now = self._clock()
            ns = self._namespace(namespace)
            answer = ns.queries.get(key)
            studies = answer.resolve(now, Level.INSTANCE) if answer is not None else None
            if studies is None:
                ns.misses += 1
                if answer is not None:
                    self._account(ns, lambda: ns.drop_query(key))
                    self._lru.discard((namespace, key))
                return None
            ns.hits += 1
            self._touch_studies(namespace, studies)
            self._lru.refresh((namespace, key))
            dictionaries = [ns.dictionary_of(s.uid) for s in studies]
        return unpack_studies(studies, dictionaries)

    def lease(self, namespace: str) -> int:
        """A lease for a miss: stores under it are refused after an invalidation."""
        with self._lock:
            return self._leases.issue(self._clock())

    def store_query(
        self,
        namespace: str,
        key: bytes,
        studies: Sequence[StudyData],
        ttl: float | None,
        lease: int = 0,
    ) -> bool:
        """Write the answer's objects, then record it (an empty one for the negative TTL)."""
        packed = self._pack(namespace, studies)
        with self._lock:
            now = self._clock()
            if not self._leases.allows(lease, namespace, (s.uid for s in studies), now):
                return False
            ns = self._namespace(namespace)
            ttl = self._ttl(ttl)
            answer_ttl = ttl if studies else min(ttl, self.negative_ttl)
            expires_at = now + ttl  # one float shared by the batch
            written: list[Node] = []
            before = ns.bytes
            shape = tuple(ns.write(s, expires_at, written, d) for s, d in packed)
            answer = Answer(ns, key, Level.INSTANCE, shape, now + answer_ttl)
            ns.set_query(answer)
            self._bytes += ns.bytes - before
            self._expiry.push(ttl, expires_at, written)
            self._expiry.push(answer_ttl, answer.expires_at, [answer])
            self._touch_studies(namespace, studies)
            self._lru.touch((namespace, key))
            self._settle(now)
            return True

    # -- studies by id -------------------------------------------------------------------

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        """The study from a live listing at least ``level`` deep, trimmed to ``level``."""
        with self._lock:
            now = self._clock()
            ns = self._namespace(namespace)
            study = self._account(ns, lambda: ns.listing(study_uid, level, now))
            if study is None:
                ns.misses += 1
                return None
            ns.hits += 1
            self._lru.refresh((namespace, study_uid))
            dictionary = ns.dictionary_of(study_uid)
        return unpack_studies([study], [dictionary])[0]

    def store_study(
        self, namespace: str, study: StudyData, level: Level, ttl: float | None, lease: int = 0
    ) -> bool:
        """Write the study's objects, then record its listing complete to ``level``."""
        ((packed, dictionary),) = self._pack(namespace, [study])
        with self._lock:
            now = self._clock()
            if not self._leases.allows(lease, namespace, (study.uid,), now):
                return False
            ns = self._namespace(namespace)
            ttl = self._ttl(ttl)
            expires_at = now + ttl
            written: list[Node] = []
            before = ns.bytes
            shape = ns.write(packed, expires_at, written, dictionary)
            listing = Answer(ns, study.uid, level, trim((shape,), level), expires_at)
            ns.set_listing(listing)
            self._bytes += ns.bytes - before
            self._expiry.push(ttl, expires_at, written)
            self._expiry.push(ttl, expires_at, [listing])
            self._touch_studies(namespace, [study])
            self._settle(now)
            return True

    # -- objects -------------------------------------------------------------------------

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        """Write objects and their descendants; paths (attributes None) are not written."""
        packed = self._pack(namespace, studies)
        with self._lock:
            now = self._clock()
            ns = self._namespace(namespace)
            ttl = self._ttl(ttl)
            expires_at = now + ttl  # one float shared by the batch
            written: list[Node] = []
            before = ns.bytes
            for study, dictionary in packed:
                ns.write(study, expires_at, written, dictionary)
            self._bytes += ns.bytes - before
            self._expiry.push(ttl, expires_at, written)
            self._touch_studies(namespace, studies)
            self._settle(now)
            return len(written)

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        """The live object at ``address`` with its live descendants, or None."""
        if not 1 <= len(address) <= Level.INSTANCE:
            return None
        with self._lock:
            now = self._clock()
            ns = self._namespaces.get(namespace)
            node = find(ns, address) if ns is not None else None
            if node is None or not node.alive(now):
                return None
            self._lru.refresh((namespace, address[0]))
            found = snapshot(node, len(address), now)
            dictionary = lineage(node)[-1].dictionary
        return unpack_object(found, dictionary) if found is not None else None

    def invalidate(self, namespace: str, address: Address | None) -> int:
        """Drop an object with its descendants and listings, or a whole namespace.

        An object that is not cached drops its study, if that is: see ``Backend.invalidate``.
        """
        with self._lock:
            now = self._clock()
            self._leases.revoke(namespace, address[0] if address else None, now)
            if address is None:
                return self._drop_namespace(namespace, now)
            ns = self._namespaces.get(namespace)
            if ns is None or not 1 <= len(address) <= Level.INSTANCE:
                return 0
            node = find(ns, address)
            level = Level(len(address))
            if node is None:
                # New in the archive: the study's listings and the answers holding the
                # study no longer tell the whole truth, so the study goes.
                node = ns.children.get(address[0])
                level = Level.STUDY
                if node is None:
                    return 0
            alive, _ = self._account(ns, lambda: ns.remove(node, level, now))
            if address[0] not in ns.children:
                self._lru.discard((namespace, address[0]))
            return alive

    # -- housekeeping --------------------------------------------------------------------

    def expire(self, max_items: int) -> int:
        """Reap at most ``max_items`` expired queue items; returns how many were handled.

        Items that were refreshed or already dropped count too, so a result below
        ``max_items`` means nothing more is due now.
        """
        with self._lock:
            return self._reap(self._clock(), max_items)

    def stats(
        self, namespace: str | None, after: str | None = None, limit: int | None = None
    ) -> Stats:
        """Counters of one namespace, or a page of all; objects count until their expiry is reaped.

        The page is chosen outside the lock (sorting 60,000 names takes tens of ms);
        a namespace dropped meanwhile is left out.
        """
        page: list[str] = []
        if namespace is None:
            with self._lock:
                names = list(self._namespaces)
            page = stats_page(names, after, limit)
        with self._lock:
            if namespace is None:
                found = (self._namespaces.get(n) for n in page)
                spaces = [ns.stats() for ns in found if ns is not None]
            elif namespace in self._namespaces:
                spaces = [self._namespaces[namespace].stats()]
            else:
                spaces = [NamespaceStats(namespace)]
            return Stats(spaces, total_bytes=self._bytes, max_bytes=self.max_bytes or 0)

    def close(self) -> None:
        """Nothing to release: no threads, no connections."""

    # -- internals -----------------------------------------------------------------------

    def _namespace(self, name: str) -> Namespace:
        ns = self._namespaces.get(name)
        if ns is None:
            ns = self._namespaces[name] = Namespace(name)
        return ns

    def _pack(
        self, namespace: str, studies: Sequence[StudyData]
    ) -> list[tuple[StudyData, bytes | None]]:
        """The studies with their instances packed, each with the dictionary used.

        A study's dictionary is the one it has now, else the one its first instance
        gives (the same for every copy of the study in the batch). ``Namespace.write``
        copes with a study that got another one in between.
        """
        with self._lock:
            ns = self._namespaces.get(namespace)
            chosen = {s.uid: ns.dictionary_of(s.uid) for s in studies} if ns is not None else {}
        packed = []
        for study in studies:
            dictionary = chosen.get(study.uid)
            if dictionary is None:
                dictionary = chosen[study.uid] = first_dictionary(study)
            packed.append((pack_study(study, dictionary), dictionary))
        return packed

    def _ttl(self, ttl: float | None) -> float:
        return self.ttl if ttl is None else min(ttl, self.ttl)

    def _account(self, ns: Namespace, change: Callable[[], R]) -> R:
        """Run a change to ``ns`` and add its byte difference to the total."""
        before = ns.bytes
        result = change()
        self._bytes += ns.bytes - before
        return result

    def _touch_studies(self, namespace: str, studies: Sequence[StudyData]) -> None:
        children = self._namespaces[namespace].children
        for study in studies:
            if study.uid in children:
                self._lru.touch((namespace, study.uid))

    def _settle(self, now: float) -> None:
        """After a write: reap a little, then evict until within the bound."""
        self._reap(now, REAP_PER_WRITE)
        if self.max_bytes is None:
            return
        while self._bytes > self.max_bytes:
            unit = self._lru.pop_oldest()
            if unit is None:
                return
            self._evict(unit, now)

    def _evict(self, unit: Unit, now: float) -> None:
        name, key = unit
        ns = self._namespaces[name]
        if isinstance(key, bytes):
            self._account(ns, lambda: ns.drop_query(key))
            return
        node = ns.children.get(key)
        if node is not None:
            alive, _ = self._account(ns, lambda: ns.remove(node, Level.STUDY, now))
            ns.evictions += alive

    def _reap(self, now: float, max_items: int) -> int:
        due = self._expiry.pop_due(now, max_items)
        for item in due:
            if item.expires_at > now:
                continue  # refreshed since
            if isinstance(item, Answer):
                self._reap_answer(item)
            elif item.parent is not None and item.data is not None:
                self._reap_node(item, now)
        return len(due)

    def _reap_node(self, node: Node, now: float) -> None:
        chain = lineage(node)
        ns = chain[-1].parent
        assert isinstance(ns, Namespace)  # an attached study's parent is its namespace
        study_uid = chain[-1].uid
        self._account(ns, lambda: ns.expire(node, now))
        if study_uid not in ns.children:
            self._lru.discard((ns.uid, study_uid))

    def _reap_answer(self, answer: Answer) -> None:
        ns = answer.root
        if not isinstance(ns, Namespace) or self._namespaces.get(ns.uid) is not ns:
            return  # its namespace was dropped
        key = answer.key
        if isinstance(key, bytes):
            self._account(ns, lambda: ns.drop_query(key, answer))
            if key not in ns.queries:
                self._lru.discard((ns.uid, key))
        else:
            self._account(ns, lambda: ns.drop_listings(key, answer.level, answer))

    def _drop_namespace(self, name: str, now: float) -> int:
        ns = self._namespaces.get(name)
        if ns is None:
            return 0
        for uid in ns.children:
            self._lru.discard((name, uid))
        for key in ns.queries:
            self._lru.discard((name, key))
        return self._account(ns, lambda: ns.clear(now))
