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
ITEM_OVERHEAD`` per object (see ``answer``), a namespace as ``NAMESPACE_OVERHEAD``
plus its name (see ``namespace``). When the total over all namespaces
passes ``max_bytes`` after a write, the least recently used units are evicted
until it fits: a unit is a study with all its descendants and listings, or a query
answer. A write or a hit makes its studies (and query answer) the most recently
used, so a write evicts its own studies only when everything older is already gone.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeAlias, TypeVar

from dicomcache.server.backends import Flight, Found, StaleCopy, bound, stats_page
from dicomcache.server.backends.memory.answer import (
    Answer,
    Failure,
    Studies,
    StudyShape,
    least_bytes,
    trim,
)
from dicomcache.server.backends.memory.chunks import Budget, Steps, TakingTurns
from dicomcache.server.backends.memory.expiry import ExpiryQueue, unqueue
from dicomcache.server.backends.memory.leases import Leases
from dicomcache.server.backends.memory.lru import Lru
from dicomcache.server.backends.memory.namespace import Namespace, tear_down
from dicomcache.server.backends.memory.packing import (
    first_dictionary,
    pack_study,
    unpack_object,
    unpack_studies,
)
from dicomcache.server.backends.memory.readings import Reading, Readings, depended
from dicomcache.server.backends.memory.stale import StaleCopies
from dicomcache.server.backends.memory.tree import Branch, Node, find, lineage, snapshot
from dicomcache.server.clock import Clock, monotonic
from dicomcache.server.errors import AnswerTooLarge
from dicomcache.server.model import (
    Address,
    CachedObject,
    Level,
    NamespaceStats,
    Stats,
    StudyData,
    release,
)

# An eviction unit: (namespace, study uid) for a study, (namespace, query key) for an answer.
Unit: TypeAlias = tuple[str, str | bytes]

# Expired items reaped by each write, so expiry keeps up without a sweeper and no
# write pays for more than this.
REAP_PER_WRITE = 64

# Objects a request handles under the lock before it lets others in: about 1 ms
# of work (4 us an instance written, 9 us a study, on 2 shared cores), so that no
# request holds the others up for long, whatever its size.
CHUNK_ITEMS = 256
# The pause between two chunks when another thread waits for the lock. Python's
# lock is not fair: without a pause the request takes the lock back before the
# waiting thread has woken (see app.SWEEP_PAUSE).
CHUNK_PAUSE = 0.0002
# Reads of an answer that a concurrent change spoilt before the lookup gives up: a miss.
READ_TRIES = 3
# The most bytes of readings (``readings``) of a backend without a bound.
READINGS_BYTES = 64 * 1024**2

R = TypeVar("R")


def _pause() -> None:
    time.sleep(CHUNK_PAUSE)


def _unpacked(read: Studies) -> list[StudyData]:
    """The studies read, unpacked; ``read`` is emptied and let go of a series at a time."""
    studies = [study for study, _ in read]
    dictionaries = [dictionary for _, dictionary in read]
    read.clear()
    unpacked = unpack_studies(studies, dictionaries)
    if unpacked is not studies:
        release(studies)
    return unpacked


def _left(ns: Namespace, study_uid: str, level: Level, now: float) -> float:
    """Seconds to the earliest expiry of the study's listings at least ``level`` deep."""
    listings = (ns.listings.get(study_uid) or {}).items()
    ends = [listing.expires_at for depth, listing in listings if depth >= level]
    return max(0.0, min(ends, default=now) - now)


def _let_go(packed: list[tuple[StudyData, bytes | None]]) -> None:
    """Let go of a write's packed studies a series at a time (see ``model.release``).

    Their pairs go one at a time too: ``packed.clear()`` freed a 100,000-study
    answer's in one call holding the interpreter lock (6-10 ms; issue 11, row S3).
    """
    studies: list[StudyData] = []
    while packed:
        studies.append(packed.pop()[0])
    release(studies)


class MemoryBackend:
    """The Backend in this process's memory.

    Thread-safe: one lock guards all state. No request holds it for more than a
    chunk of ``chunk`` objects (``chunks``): a large write, read or drop lets go of
    it between chunks, pausing (``pause``) so that others get in, and makes sure
    on resuming that it may go on. A write publishes its answer only once all its
    objects are written, and stops (refused) when an invalidation of its namespace
    or of a study it holds came in between; a read in chunks gives what a read in
    one go at its start would, or reads again (``Answer.read``); a dropped
    namespace is replaced by an empty one at once and taken apart outside the
    lock. Packing and unpacking instances happen outside it: a write packs first
    (about 5 us per instance), reading its studies' dictionaries under the lock
    just before; a hit unpacks after. Clock: the injected monotonic ``clock``,
    read once per call.

    A namespace exists while it holds data (objects, answers or listings), its
    own bytes counted (``NAMESPACE_OVERHEAD``); once it holds nothing (its last
    entry expired, evicted or invalidated, or the namespace dropped) it goes, with
    its counters (hits, misses, evictions, expirations). Lookups, leases and
    invalidations of a namespace that holds nothing create nothing, so any number
    of names costs nothing; the leases issued before such an invalidation, or
    before a namespace went, are refused (``Leases.revoke_unknown``).
    """

    def __init__(
        self,
        *,
        ttl: float = 600.0,
        negative_ttl: float = 60.0,
        max_bytes: int | None = None,
        clock: Clock = monotonic,
        chunk: int = CHUNK_ITEMS,
        pause: Callable[[], None] = _pause,
        readings_bytes: int | None = None,
    ) -> None:
        """A cache keeping objects ``ttl`` seconds, empty answers ``negative_ttl`` (at most ttl).

        Args:
            ttl: default and longest lifetime of an object, an answer and a listing.
            negative_ttl: lifetime of an empty query answer, cut to ``ttl``.
            max_bytes: evict least recently used studies above this many bytes; None: no bound.
            clock: monotonic seconds.
            chunk: objects a request handles under the lock at a time (at least 1).
            pause: called between two chunks, with the lock free, when another
                thread waited for it.
            readings_bytes: the most bytes of studies kept as read, unpacked, for the
                hits that follow (``readings``), counted within ``max_bytes``; None: a
                thirty-second of max_bytes (64 MiB without a bound); 0: none.
        Raises:
            ValueError: a TTL is not positive, max_bytes is negative or chunk below 1.
        """
        if ttl <= 0 or negative_ttl <= 0:
            raise ValueError("ttl and negative_ttl must be positive")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        self.ttl = ttl
        self.negative_ttl = min(negative_ttl, ttl)
        self.max_bytes = max_bytes
        # What writes evict to: max_bytes, or less while the process's resident set
        # is past it (``resident.ResidentGuard``, through ``hold``).
        self._limit = max_bytes
        self.filled = False  # True once a write evicted for room: the cache reached its bound
        self._clock = clock
        self._chunk = chunk
        self._pause = pause
        self._turns = TakingTurns()
        self._lock = self._turns
        self._namespaces: dict[str, Namespace] = {}
        self._expiry: ExpiryQueue[Node | Answer] = ExpiryQueue()
        self._lru: Lru[Unit] = Lru()
        self._leases = Leases()
        self._stale = StaleCopies()  # counted in _bytes, evicted first
        if readings_bytes is None:
            readings_bytes = max_bytes // 32 if max_bytes is not None else READINGS_BYTES
        self._readings = Readings(readings_bytes)
        self._bytes = 0

    # -- queries -------------------------------------------------------------------------

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        """The studies of a live answer with current data, or None (the dead answer is dropped)."""
        found = self.lookup_answer(namespace, key)
        return None if found is None else found.studies

    def lookup_answer(self, namespace: str, key: bytes) -> Found | None:
        """``lookup_query`` with the seconds the answer has left, on this backend's clock."""
        with self._lock:
            now = self._clock()
            for _ in range(READ_TRIES):
                read = self._read_query(namespace, key, now)
                if read is not Failure.CHANGED:
                    break
            ns = self._namespaces.get(namespace)
            if ns is None:
                return None  # a miss that leaves nothing behind: see the class docstring
            if isinstance(read, Failure):
                ns.misses += 1
                return None
            ns.hits += 1
            answer = ns.queries.get(key)
            left = 0.0 if answer is None else max(0.0, answer.expires_at - now)
            self._lru.refresh((namespace, key))
            self._touch_studies(namespace, [study.uid for study, _ in read])
        return Found(_unpacked(read), left)

    def _read_query(self, name: str, key: bytes, now: float) -> Studies | Failure:
        """The query's answer, read a chunk at a time; a dead one is dropped."""
        ns = self._namespaces.get(name)
        answer = ns.queries.get(key) if ns is not None else None
        if ns is None or answer is None:
            return Failure.DEAD
        read = self._read(name, ns, answer, lambda: ns.queries.get(key) is answer, now)
        if read is Failure.DEAD and ns.queries.get(key) is answer:
            self._account(ns, lambda: ns.drop_query(key))
            self._lru.discard((name, key))
            self._tidy(ns, now)
        return read

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
        try:
            return self._store_query(namespace, key, studies, ttl, lease, packed)
        finally:
            _let_go(packed)

    def _store_query(
        self,
        namespace: str,
        key: bytes,
        studies: Sequence[StudyData],
        ttl: float | None,
        lease: int,
        packed: list[tuple[StudyData, bytes | None]],
    ) -> bool:
        with self._lock:
            now = self._clock()
            ttl = self._ttl(ttl)
            answer_ttl = ttl if studies else min(ttl, self.negative_ttl)
            stored = self._write(namespace, packed, now + ttl, ttl, lease, now)
            if stored is None:
                return False
            ns, shapes, start, _ = stored
        answer = Answer(ns, key, Level.INSTANCE, tuple(shapes), now + answer_ttl)  # O(objects)
        with self._lock:
            if not self._still_allowed(namespace, ns, start, lease, studies, now):
                return False
            replaced = ns.queries.get(key)  # freed after the lock, it may be large
            self._account(ns, lambda: ns.set_query(answer))
            self._expiry.push(answer.expires_at, [answer])
            self._lru.touch((namespace, key))
            self._settle(now)
        del replaced
        return True

    # -- stale copies and flights ----------------------------------------------------------

    def store_stale(
        self, namespace: str, key: bytes, document: bytes, keep: float, lease: int
    ) -> bool:
        """Keep the stale copy unless an invalidation of the namespace came after ``lease``."""
        with self._lock:
            now = self._clock()
            if not self._leases.untouched(lease, namespace, now):
                return False
            before = self._stale.bytes
            self._stale.put(namespace, key, document, now + keep, now)
            self._bytes += self._stale.bytes - before
            self._settle(now)
            return True

    def lookup_stale(self, namespace: str, key: bytes) -> StaleCopy | None:
        """The live stale copy of ``key``, or None (a dead one is dropped)."""
        with self._lock:
            now = self._clock()
            before = self._stale.bytes
            found = self._stale.get(namespace, key, now)
            self._bytes += self._stale.bytes - before
            if found is None:
                return None
            return StaleCopy(found.document, found.expires_at - now, now - found.kept_at)

    def fly(self, namespace: str, key: bytes, holder: str, seconds: float) -> Flight:
        """Always LEAD: one server owns this backend, and its own single-flight coalesces."""
        return Flight.LEAD

    def land(self, namespace: str, key: bytes, holder: str) -> None:
        """Nothing held: see ``fly``."""

    # -- studies by id -------------------------------------------------------------------

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        """The study from a live listing at least ``level`` deep, trimmed to ``level``.

        Listings found dead on the way are dropped; a deeper listing that only lacks
        data at ``level`` (see ``Answer.read``) is kept for its own level.
        """
        found = self.study_answer(namespace, study_uid, level)
        return None if found is None else found.studies[0]

    def study_answer(self, namespace: str, study_uid: str, level: Level) -> Found | None:
        """``lookup_study`` with the seconds left to the earliest expiry of the listings
        it may have read (those at least ``level`` deep), on this backend's clock."""
        most = bound.STUDY_BYTES.get()
        with self._lock:
            now = self._clock()
            ns = self._namespaces.get(namespace)
            if most is not None and ns is not None:
                self._refuse_larger(ns, study_uid, level, now, most)
            kept = self._readings.get(ns, study_uid, level, now, namespace)
            if kept is not None and ns is not None:  # what a read would give: see ``readings``
                ns.hits += 1
                self._lru.refresh((namespace, study_uid))
                return Found([kept.study], max(0.0, kept.listed_until - now))
            answered: list[Answer] = []
            for _ in range(READ_TRIES):
                read = self._read_listing(namespace, study_uid, level, now, answered)
                if read is not Failure.CHANGED:
                    break
            ns = self._namespaces.get(namespace)
            if ns is None:
                return None  # a miss that leaves nothing behind: see the class docstring
            if isinstance(read, Failure):
                ns.misses += 1
                return None
            ns.hits += 1
            self._lru.refresh((namespace, study_uid))
            left = _left(ns, study_uid, level, now)
            study_node = ns.children.get(study_uid)
            keep = self._readings.worth(answered[-1]) and isinstance(study_node, Branch)
            if keep:  # what the read depended on, taken with it, under the lock
                assert isinstance(study_node, Branch)
                on = depended(ns, study_node, answered[-1])
        study = _unpacked(read)[0]
        if keep:
            assert isinstance(study_node, Branch)
            reading = Reading(ns, study_node, level, answered[-1], on, study)
            with self._lock:  # checked at each use: a change meanwhile only voids it
                self._readings.keep(namespace, level, reading)
                self._fit(now)  # the readings count in the bound
        return Found([study], left)

    def _refuse_larger(
        self, ns: Namespace, study_uid: str, level: Level, now: float, most: int
    ) -> None:
        """Raise AnswerTooLarge, before reading, when the listing a read would try first
        holds more than ``most`` bytes at the level asked for (see ``bound``).

        That listing may turn out dead when read (an object of it expired before it):
        the streamed lookup a refused caller turns to then gives the miss.
        """
        # The first a read tries is the shallowest at least ``level`` deep; only one at
        # ``level`` itself can be refused, so that one is looked up (every hit asks).
        first = (ns.listings.get(study_uid) or {}).get(level)
        if first is None or first.level != level or now >= first.expires_at:
            return
        if first.least_bytes > most:
            ns.hits += 1  # found, as before this check: too large to send is no miss
            raise AnswerTooLarge(first.least_bytes, most)

    def _read_listing(
        self, name: str, study_uid: str, level: Level, now: float, answered: list[Answer]
    ) -> Studies | Failure:
        """The study from its shallowest good listing at least ``level`` deep, which is
        appended to ``answered``."""
        ns = self._namespaces.get(name)
        if ns is None:
            return Failure.DEAD
        for depth, listing in sorted((ns.listings.get(study_uid) or {}).items()):
            if depth >= level:
                read = self._read_one_listing(name, ns, listing, level, now)
                if read is not Failure.DEAD:
                    answered.append(listing)
                    return read
        return Failure.DEAD

    def _read_one_listing(
        self, name: str, ns: Namespace, listing: Answer, level: Level, now: float
    ) -> Studies | Failure:
        """One listing read a chunk at a time; dropped when dead, DEAD when it failed."""
        study_uid = listing.key
        assert isinstance(study_uid, str)  # a listing's key is its study's uid

        def current() -> bool:
            return (ns.listings.get(study_uid) or {}).get(listing.level) is listing

        read = self._read(name, ns, listing, current, now, level)
        if not isinstance(read, Failure) or read is Failure.CHANGED:
            return read
        if (listing.level == level or read is Failure.DEAD) and current():
            self._account(ns, lambda: ns.drop_listings(study_uid, listing.level, listing))
            self._tidy(ns, now)
        return Failure.DEAD

    def store_study(
        self, namespace: str, study: StudyData, level: Level, ttl: float | None, lease: int = 0
    ) -> bool:
        """Write the study's objects, then record its listing complete to ``level``."""
        packed = self._pack(namespace, [study])
        try:
            return self._store_study(namespace, study, level, ttl, lease, packed)
        finally:
            _let_go(packed)

    def _store_study(
        self,
        namespace: str,
        study: StudyData,
        level: Level,
        ttl: float | None,
        lease: int,
        packed: list[tuple[StudyData, bytes | None]],
    ) -> bool:
        with self._lock:
            now = self._clock()
            ttl = self._ttl(ttl)
            expires_at = now + ttl
            stored = self._write(namespace, packed, expires_at, ttl, lease, now)
            if stored is None:
                return False
            ns, shapes, start, _ = stored
        shape = trim(tuple(shapes), level)
        listing = Answer(ns, study.uid, level, shape, expires_at, least_bytes(shape))
        with self._lock:
            if not self._still_allowed(namespace, ns, start, lease, [study], now):
                return False
            self._account(ns, lambda: ns.set_listing(listing))
            self._expiry.push(expires_at, [listing])
            self._settle(now)
            return True

    # -- objects -------------------------------------------------------------------------

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        """Write objects and their descendants; paths (attributes None) are not written."""
        packed = self._pack(namespace, studies)
        with self._lock:
            now = self._clock()
            ttl = self._ttl(ttl)
            stored = self._write(namespace, packed, now + ttl, ttl, 0, now)
            self._settle(now)
            self._tidy(self._namespaces.get(namespace), now)
        _let_go(packed)
        return 0 if stored is None else stored[3]

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
            self._stale.invalidate(namespace)
            dropped = self._namespaces.get(namespace)
            if dropped is None:
                # Nothing to drop, and no record kept per unknown name: see ``leases``.
                self._leases.revoke_unknown(namespace, now)
                return 0
            if address is not None:
                self._leases.revoke(namespace, address[0], now)
                return self._invalidate_object(namespace, address, now)
            # The namespace goes at once; it is taken apart outside the lock, where
            # it is out of every request's reach.
            del self._namespaces[namespace]
            self._bytes -= dropped.bytes
            self._leases.revoke_unknown(namespace, now)
            self._readings.forget(namespace)
        return self._tear_down(namespace, dropped, now)

    def _invalidate_object(self, namespace: str, address: Address, now: float) -> int:
        """``invalidate`` of one object, under the lock."""
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
        self._tidy(ns, now)
        return alive

    # -- housekeeping --------------------------------------------------------------------

    def expire(self, max_items: int) -> int:
        """Reap at most ``max_items`` expired queue items; returns how many were handled.

        Items that were refreshed or already dropped count too, so a result below
        ``max_items`` means nothing more is due now.
        """
        with self._lock:
            return self._reap(self._clock(), max_items)

    def hold(self, limit: int) -> None:
        """Evict to ``limit`` bytes, at most ``max_bytes``, from the next write on.

        For ``resident.ResidentGuard``: a backend without ``max_bytes`` has no bound
        to hold, and ignores it. Stats still report ``max_bytes``.
        """
        if self.max_bytes is not None:
            self._limit = max(0, min(limit, self.max_bytes))

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
        """The namespace to write to, made if need be (its own bytes count at once)."""
        ns = self._namespaces.get(name)
        if ns is None:
            ns = self._namespaces[name] = Namespace(name)
            self._bytes += ns.bytes
        return ns

    def _tidy(self, ns: Namespace | None, now: float) -> None:
        """Remove ``ns`` if it holds nothing; leases issued before then are refused.

        Its counters go with it: a namespace exists only while it holds data, so
        that names looked up or emptied cost nothing (see the class docstring).
        """
        if ns is not None and ns.empty() and self._namespaces.get(ns.uid) is ns:
            del self._namespaces[ns.uid]
            self._bytes -= ns.bytes
            self._leases.revoke_unknown(ns.uid, now)
            self._readings.forget(ns.uid)

    def _pack(
        self, namespace: str, studies: Sequence[StudyData]
    ) -> list[tuple[StudyData, bytes | None]]:
        """The studies with their instances packed, each with the dictionary used.

        A study's dictionary is the one it has now, else the one its first instance
        gives (the same for every copy of the study in the batch). ``Namespace.write``
        copes with a study that got another one in between.
        """
        chosen: dict[str, bytes | None] = {}
        budget = Budget(self._chunk)

        def steps() -> Steps[None]:
            for study in studies:
                if budget.spend():
                    yield
                ns = self._namespaces.get(namespace)
                chosen[study.uid] = ns.dictionary_of(study.uid) if ns is not None else None

        with self._lock:
            self._chunked(steps(), lambda: True)
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

    def _touch_studies(self, namespace: str, uids: Sequence[str]) -> None:
        """Make the studies that are cached the most recently used, a chunk at a time."""
        budget = Budget(self._chunk)

        def steps() -> Steps[None]:
            for uid in uids:
                if budget.spend():
                    yield
                ns = self._namespaces.get(namespace)
                if ns is not None and uid in ns.children:
                    self._lru.touch((namespace, uid))

        self._chunked(steps(), lambda: True)

    # -- chunks ----------------------------------------------------------------------------

    def _chunked(
        self, steps: Steps[R], still: Callable[[], bool], between: Callable[[], None] | None = None
    ) -> R | None:
        """Run ``steps`` a chunk at a time; the lock is held on entry and on return.

        After each chunk ``between`` runs (under the lock), then the lock is let go
        for a ``pause``; the work goes on only if ``still()`` (under the lock again).
        Returns its result, or None when it did not go on.
        """
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                if between is not None:
                    between()
                result: R = stop.value
                return result
            if between is not None:
                between()
            self._lock.release()
            try:
                if self._turns.wanted:  # someone waits: let them in first
                    self._pause()
            finally:
                self._lock.acquire()
            if not still():
                steps.close()
                return None

    def _read(
        self,
        name: str,
        ns: Namespace,
        answer: Answer,
        current: Callable[[], bool],
        now: float,
        level: Level = Level.INSTANCE,
    ) -> Studies | Failure:
        """Read ``answer`` a chunk at a time (see ``Answer.read``); the lock is held.

        CHANGED as well when, in between, its namespace was dropped or it stopped
        being ``current()``.
        """
        steps = answer.read(now, level, Budget(self._chunk), ns.version)
        read = self._chunked(steps, lambda: self._namespaces.get(name) is ns and current())
        return Failure.CHANGED if read is None else read

    def _write(
        self,
        name: str,
        packed: Sequence[tuple[StudyData, bytes | None]],
        expires_at: float,
        ttl: float,
        lease: int,
        now: float,
    ) -> tuple[Namespace, list[StudyShape], int, int] | None:
        """Write packed studies a chunk at a time; the lock is held on entry and on return.

        Returns the namespace, the shapes of the studies, the lease that stood at the
        start (to tell later whether any invalidation came since) and how many
        objects were written. None when the store lost: ``lease`` was refused, or an
        invalidation of the namespace or of a study came before the study was
        written or while it was. What was written before that stays, as objects
        without an answer (what ``add_objects`` leaves), and nothing is written
        after it.
        """
        if not self._leases.allows(lease, name, (), now):
            return None
        start = self._leases.issue(now)
        guard = lease or start
        ns = self._namespace(name)
        written: list[Node] = []
        pending: list[str] = []  # the studies written to in this chunk
        mark = [ns.bytes, 0]  # the namespace's bytes at the chunk's start; objects written
        budget = Budget(self._chunk)

        def steps() -> Steps[list[StudyShape] | None]:
            shapes: list[StudyShape] = []
            for study, dictionary in packed:
                if budget.spend():  # a study counts too: answers of studies alone
                    yield
                unchanged = guard == start and self._leases.issue(now) == start
                if not unchanged and not self._leases.allows(guard, name, (study.uid,), now):
                    return None
                pending.append(study.uid)
                steps = ns.write_steps(study, expires_at, written, dictionary, budget)
                shapes.append((yield from steps))
            return shapes

        def between() -> None:
            self._bytes += ns.bytes - mark[0]
            self._expiry.push(expires_at, written)
            mark[1] += len(written)
            written.clear()
            for uid in pending:
                if uid in ns.children:
                    self._lru.touch((name, uid))
            del pending[:-1]  # the study being written goes on in the next chunk
            self._fit(now)  # within the bound whenever the lock is free

        def still() -> bool:
            mark[0] = ns.bytes
            current = self._namespaces.get(name) is ns
            return current and self._leases.allows(guard, name, pending, now)

        shapes = self._chunked(steps(), still, between)
        return None if shapes is None else (ns, shapes, start, mark[1])

    def _still_allowed(
        self,
        name: str,
        ns: Namespace,
        start: int,
        lease: int,
        studies: Sequence[StudyData],
        now: float,
    ) -> bool:
        """Whether a store that ``_write`` finished may publish its answer: no
        invalidation of its namespace or studies since ``start`` (the lease then)."""
        if self._namespaces.get(name) is not ns:
            return False
        if self._leases.issue(now) == start:
            return True  # nothing at all was invalidated since
        return self._leases.allows(lease or start, name, (s.uid for s in studies), now)

    def _tear_down(self, name: str, dropped: Namespace, now: float) -> int:
        """Take a dropped namespace apart outside the lock, then forget its eviction
        units a chunk at a time; returns how many of its objects were alive."""
        units: list[str | bytes] = [*dropped.children, *dropped.queries]
        alive, _, queued = tear_down(dropped, now)
        budget = Budget(self._chunk)

        def steps() -> Steps[None]:
            # Popped, not iterated: the list holds the last reference to each node, and
            # freeing 400,000 of them with the list at the end was one deallocation of
            # 26-35 ms that held the interpreter lock (issue 11, stall row S4).
            while queued:
                if budget.spend():
                    yield
                unqueue(queued.pop())
            while units:
                if budget.spend():
                    yield
                key = units.pop()
                ns = self._namespaces.get(name)
                held = ns is not None and (
                    key in ns.queries if isinstance(key, bytes) else key in ns.children
                )
                if not held:  # not written again since
                    self._lru.discard((name, key))

        with self._lock:
            self._chunked(steps(), lambda: True)
        return alive

    def _settle(self, now: float) -> None:
        """After a write: reap a little, then evict until within the bound."""
        self._reap(now, REAP_PER_WRITE)
        self._fit(now)

    def _fit(self, now: float) -> None:
        """Evict until within the bound, the readings' bytes counted with the rest."""
        most = self._limit
        if most is None:
            return
        while self._bytes + self._readings.bytes > most and len(self._stale):
            before = self._stale.bytes
            self._stale.evict_oldest()  # stale copies go first: they serve only failures
            self._bytes += self._stale.bytes - before
        while self._bytes + self._readings.bytes > most:
            unit = self._lru.pop_oldest()
            if unit is None:
                return
            self.filled = True
            self._evict(unit, now)

    def _evict(self, unit: Unit, now: float) -> None:
        name, key = unit
        ns = self._namespaces.get(name)
        if ns is None:
            return  # dropped; its units are being forgotten (``_tear_down``)
        if isinstance(key, bytes):
            self._account(ns, lambda: ns.drop_query(key))
        elif (node := ns.children.get(key)) is not None:
            alive, _ = self._account(ns, lambda: ns.remove(node, Level.STUDY, now))
            ns.evictions += alive
            self._readings.forget(name, key)
        self._tidy(ns, now)

    def _reap(self, now: float, max_items: int) -> int:
        before = self._stale.bytes
        reaped = self._stale.reap(now, max_items)
        self._bytes += self._stale.bytes - before
        return reaped + self._reap_entries(now, max_items - reaped)

    def _reap_entries(self, now: float, max_items: int) -> int:
        due = self._expiry.pop_due(now, max_items)
        for item in due:
            if isinstance(item, Answer):
                self._reap_answer(item, now)
            elif item.parent is None or item.data is None:
                continue  # out of the tree (a namespace being taken apart)
            elif item.expires_at > now:
                self._expiry.push(item.expires_at, [item])  # refreshed since it was queued
            else:
                self._reap_node(item, now)
        return len(due)

    def _reap_node(self, node: Node, now: float) -> None:
        chain = lineage(node)
        ns = chain[-1].parent
        if not isinstance(ns, Namespace) or self._namespaces.get(ns.uid) is not ns:
            return  # its namespace was dropped (and is being taken apart)
        study_uid = chain[-1].uid
        self._account(ns, lambda: ns.expire(node, now))
        if study_uid not in ns.children:
            self._lru.discard((ns.uid, study_uid))
        self._tidy(ns, now)

    def _reap_answer(self, answer: Answer, now: float) -> None:
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
        self._tidy(ns, now)
