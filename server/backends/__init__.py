"""The storage interface: what every backend (memory, Redis) must do.

All semantics of the cache live behind this interface, and ``tests/contract``
checks them against every backend with the same suite:

* Objects live at tree addresses inside a namespace; namespaces never see each
  other. Adding an object adds its descendants; an object given without
  attributes is only a path and is neither written nor refreshed. Each object
  expires on its own ``ttl`` seconds after it was last written.
* A query answer is kept as the set of addresses it returned. It is served only
  while the entry itself is alive (its own ttl) and every object it returned is
  still cached, with the objects' current data and exactly those objects; otherwise
  it is a miss and the entry is dropped. Empty answers live for the negative TTL.
* A study-by-id answer records that the study's children are complete to a depth.
  ``lookup_study`` answers only from such a listing of that depth or deeper, and
  only while every object of the listing is cached; the answer is trimmed to the
  requested depth.
* Writing a study or series never drops its cached descendants or listings.
* Invalidation wins over every store that began before it: a miss hands out a
  lease, and a store under a lease that an invalidation of the namespace or of a
  study it holds came after is refused (memcache's leases).
* Invalidation drops an object, its descendants, and (checked on read) whatever
  answers contain them. Invalidating an object that is not cached (it is new in
  the archive) drops its study, so that the study's listings and every answer
  holding the study are misses: they would lack the new object.
* A hit tells how long its answer has left (``lookup_answer``, ``study_answer``),
  from the backend's own clock, so the reader tells its age from the TTL it stored
  with, and a client's near cache keeps it no longer.
* A stale copy (issue 13, stale-if-error) is a document kept beside an answer
  for longer than the answer: it is served only when the archive fails. It dies
  with every invalidation of its namespace, whatever the address, and is never
  stored under a lease that an invalidation of the namespace came after.
* A flight (issue 13, coalescing) is a short lease on a request key: of the
  servers sharing the storage that miss the same request at once, one leads (asks
  the archive) while the others wait for its answer. It expires by itself, so a
  crashed holder keeps it only until then. A backend that one server owns (memory)
  always answers LEAD: the server's own single-flight coalesces.

Backends are thread-safe. Times are in seconds from the backend's own clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from dicomcache.server.model import Address, CachedObject, Level, Stats, StudyData

# How long a lease is honoured at least: a miss of a large study may take tens of
# seconds to fetch. An older lease may be refused.
LEASE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Found:
    """A query hit and the seconds its answer has left before it expires."""

    studies: list[StudyData]
    left: float


@dataclass(frozen=True, slots=True)
class StaleCopy:
    """A stale copy (see ``Backend.store_stale``), the seconds it has left and its age.

    ``age`` is the seconds since it was kept (Redis: since the lease it was kept
    under was handed out, so a little more), on the backend's clock: a reader tells
    how long ago its answer expired whoever kept it, whatever TTL they used.
    """

    document: bytes
    left: float
    age: float


class Flight(enum.Enum):
    """What ``Backend.fly`` found for a request key."""

    LEAD = "lead"  # the caller holds the flight: it asks the archive, stores, then lands
    WAIT = "wait"  # another holder has it: look again a little later
    ANSWERED = "answered"  # an answer is stored: look it up


class Backend(Protocol):
    """A store of expiring DICOM objects and the query index over them."""

    def lookup_query(self, namespace: str, key: bytes) -> list[StudyData] | None:
        """The studies of a stored answer, or None on a miss ([] is a cached empty answer).

        Args:
            namespace: the upstream archive.
            key: the query's canonical key (``keys.query_key``).
        Raises:
            BackendUnavailable: the storage cannot be reached.
        """
        ...

    def lookup_answer(self, namespace: str, key: bytes) -> Found | None:
        """``lookup_query`` with the seconds the answer has left (never above the TTL
        it was stored with), read in the same call; None on a miss."""
        ...

    def lease(self, namespace: str) -> int:
        """A lease for a miss: a store under it is refused if an invalidation of the
        namespace, or of a study the store holds, comes after it (never 0)."""
        ...

    def store_query(
        self,
        namespace: str,
        key: bytes,
        studies: Sequence[StudyData],
        ttl: float | None,
        lease: int = 0,
    ) -> bool:
        """Store the objects of an answer, then the answer as the set of their addresses.

        Args:
            ttl: seconds to keep, None for the default; an empty answer is kept for
                at most the negative TTL.
            lease: from ``lease`` at the miss; 0 for none (the store is not ordered
                against invalidations).
        Returns:
            False when the lease was revoked or is too old to tell: nothing was written.
        """
        ...

    def lookup_study(self, namespace: str, study_uid: str, level: Level) -> StudyData | None:
        """The study with exactly its complete content down to ``level``, or None."""
        ...

    def study_answer(self, namespace: str, study_uid: str, level: Level) -> Found | None:
        """``lookup_study`` as a ``Found`` of the one study, with the seconds until its
        listing expires (at most: a near cache must not keep it longer), read in the
        same call; None on a miss."""
        ...

    def store_study(
        self, namespace: str, study: StudyData, level: Level, ttl: float | None, lease: int = 0
    ) -> bool:
        """Store a study-by-id answer whose content is complete down to ``level``.

        Returns False, writing nothing, when ``lease`` was revoked (as ``store_query``).
        """
        ...

    def store_stale(
        self, namespace: str, key: bytes, document: bytes, keep: float, lease: int
    ) -> bool:
        """Keep ``document`` as the stale copy of request ``key`` for ``keep`` seconds.

        Counted against the backend's memory like any entry, and the first to go
        when it is short. ``lookup_stale`` gives it until ``keep`` has passed or
        an invalidation of ``namespace`` (any address) came.

        Args:
            document: the answer as served (DICOM JSON); sealed at rest when the
                backend seals values.
            lease: from ``lease`` at the miss: refused (False, nothing written) if
                any invalidation of the namespace came after it, or it is too old.
        """
        ...

    def lookup_stale(self, namespace: str, key: bytes) -> StaleCopy | None:
        """The stale copy of request ``key``, or None (expired, invalidated, never kept)."""
        ...

    def fly(self, namespace: str, key: bytes, holder: str, seconds: float) -> Flight:
        """Take the flight of request ``key`` for ``holder`` unless someone holds it.

        ANSWERED when an answer for ``key`` is stored (look it up); else LEAD when
        the flight was free (it is now ``holder``'s for ``seconds``) or already
        ``holder``'s; else WAIT. Costs one round trip; counts no lookup.
        """
        ...

    def land(self, namespace: str, key: bytes, holder: str) -> None:
        """Give the flight of ``key`` back, if ``holder`` still holds it."""
        ...

    def add_objects(self, namespace: str, studies: Sequence[StudyData], ttl: float | None) -> int:
        """Add objects and their descendants; returns how many objects were written."""
        ...

    def get_object(self, namespace: str, address: Address) -> CachedObject | None:
        """The object at ``address`` with whatever of its descendants is cached, or None."""
        ...

    def invalidate(self, namespace: str, address: Address | None) -> int:
        """Drop an object and its descendants (or the whole namespace when address is
        None); returns how many live objects were dropped.

        An address that is not cached drops its study instead (everything cached of
        it), as the archive has something new there.
        """
        ...

    def stats(
        self, namespace: str | None, after: str | None = None, limit: int | None = None
    ) -> Stats:
        """Counters of one namespace, or of all when namespace is None, a page at a time.

        Args:
            namespace: the one namespace to report (``after`` and ``limit`` unused).
            after: with namespace None, only namespaces whose group (see
                ``stats_page``) comes after this one in byte order; None for all.
            limit: with namespace None, at most this many groups, each whole.
        Returns:
            The namespaces asked for in ``stats_page`` order, each namespace that
            holds data; totals of the whole cache.
        """
        ...

    def expire(self, max_items: int) -> int:
        """Reap at most ``max_items`` expired entries; returns how many were reaped.

        Expired entries are already invisible to reads; this only frees their
        memory, a little at a time, from the server's background sweeper. A backend
        whose storage expires entries by itself (Redis) returns 0.
        """
        ...

    def close(self) -> None:
        """Release connections and threads."""
        ...


def group(name: str) -> str:
    """A namespace's group: its name before any "@".

    The service keeps each protocol's entries of a caller's namespace in a
    namespace of its own, NAME@PROTOCOL (``server/api/keys.py``), and reports
    them together, so a page of stats holds groups whole.
    """
    return name.partition("@")[0]


def stats_page(names: Iterable[str], after: str | None, limit: int | None) -> list[str]:
    """The names of one page of ``Backend.stats``: ordered by group, then by name.

    Only the groups after ``after`` (byte order), at most ``limit`` of them, each
    with all its names. Costs a sort of the names after ``after``: callers run it
    outside their locks.
    """
    wanted = sorted((group(name), name) for name in names if after is None or group(name) > after)
    page: list[str] = []
    groups = 0
    last = None
    for name_group, name in wanted:
        if name_group != last:
            if limit is not None and groups == limit:
                break
            groups += 1
            last = name_group
        page.append(name)
    return page
