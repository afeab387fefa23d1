"""The read-through behind ``Search``: normalize, look up, else fetch once, store, answer.

A search names an upstream; its entries live in that upstream's namespace,
partitioned by the upstream's protocol (``keys.partition``), under the key of the
request the archive receives (``keys.request_key`` of ``request.normalize``): the
same entries the Python client's ``CachedSearcher`` reads and writes for that
archive, so either fills the cache for the other.

A hit is rebuilt from the stored objects in the archive's order (``answer``). A
miss takes a lease (so a store never overwrites a later invalidation), asks the
archive once for all concurrent identical misses of this server (``flights``),
stores the objects, the order record and, for the request ``find_study_by_id``
sends, the study's listing, and answers with the JSON the archive returned.

The storage failing does not fail a search: a lookup that cannot be made is a
miss, a store that cannot be made is skipped (both logged), and the archive
answers. The archive failing does (``UpstreamFailed``), unless stale-if-error is
on (``max_stale``): then the answer's stale copy, kept ``max_stale`` seconds past
its TTL and dead with any invalidation of its namespace, is served marked stale,
with its age and the archive's failure (``SearchResult.stale_reason``).

A hit's age is the TTL it was stored with less the time it has left, on the
backend's clock (``Backend.lookup_answer``; Redis's, so every server agrees).
With a shared backend (Redis) the leader of this server's flight also takes the
backend's flight (``shared_flight``), so one server of those sharing it asks
the archive and the others wait for its answer.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from dicomcache.contract import MAX_MESSAGE_BYTES
from dicomcache.server.api.keys import partition, request_key
from dicomcache.server.backends import Backend
from dicomcache.server.errors import (
    AnswerTooLarge,
    BackendUnavailable,
    InvalidArgument,
    UpstreamFailed,
)
from dicomcache.server.search import answer
from dicomcache.server.search.flights import Coalescer, Flights, WaitTimeout
from dicomcache.server.search.rendered import Rendered
from dicomcache.server.search.request import Normalized, listing, load_dictionary, normalize
from dicomcache.server.search.shared_flight import MARGIN_SECONDS, SharedFlight
from dicomcache.server.telemetry.metrics import Metrics
from dicomcache.server.telemetry.tracing import Tracer
from dicomcache.server.upstreams import Upstream
from dicomcache.v1 import search_pb2

log = logging.getLogger(__name__)

# Seconds a search may take when its caller set no deadline.
DEFAULT_TIMEOUT = 30.0


@dataclass(frozen=True)
class SearchResult:
    """What ``Search`` answers: the archive's DICOM JSON array and how it was served.

    ``age_seconds`` is the time since the answer was fetched from the archive: 0
    for a fetch; for a hit, the TTL it was stored with less its time left (0 for a
    study's listing, which tells no time). ``stale_reason``, for a stale answer,
    says how the archive failed (``UpstreamFailed``'s message: upstream, reason,
    status; no query value).
    """

    dicom_json: str
    hit: bool
    age_seconds: float
    stale: bool
    count: int
    stale_reason: str = ""


class SearchEngine:
    """Searches through the cache, against the configured upstreams.

    Thread-safe: the backend, the upstreams and the flights are. Clock: ``clock``
    (monotonic seconds) for deadlines, ``time.perf_counter`` for fetch durations.

    Args:
        backend: the storage, as the service sees it (``Telemetry.backend``).
        upstreams: by name.
        flights: coalesces concurrent identical misses (``Flights``: within this
            server); the key is (backend namespace, request key).
        ttl: seconds to keep answers; None for the backend's default (ages are then 0).
        negative_ttl: seconds the backend keeps an empty answer (its ``negative_ttl``).
        max_stale: seconds past its TTL an answer may be served when the archive
            fails (stale-if-error); 0: never.
        shared: the backend's flights across servers; None for none (one server).
        upstream_timeout: the longest a fetch takes (a flight lasts that, plus a margin).
        max_message_bytes: the largest answer sent (a larger one is refused and not kept).
        metrics: upstream fetches and coalesced waits are counted there; None for none.
        tracer: a span per upstream fetch; None for none.
    """

    def __init__(
        self,
        backend: Backend,
        upstreams: Mapping[str, Upstream],
        *,
        flights: Coalescer | None = None,
        ttl: float | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        metrics: Metrics | None = None,
        tracer: Tracer | None = None,
        clock: Callable[[], float] = time.monotonic,
        negative_ttl: float | None = None,
        max_stale: float = 0.0,
        shared: SharedFlight | None = None,
        upstream_timeout: float | None = None,
    ) -> None:
        self.negative_ttl = negative_ttl
        self.max_stale = max_stale
        self.shared = shared
        self.upstream_timeout = upstream_timeout
        self.backend = backend
        self.upstreams = dict(upstreams)
        self.flights: Coalescer = flights if flights is not None else Flights()
        self.rendered = Rendered()  # hits' objects as text (rendered.py)
        self.ttl = ttl
        self.max_message_bytes = max_message_bytes
        self.metrics = metrics
        self.tracer = tracer
        self._clock = clock
        load_dictionary()  # pydicom's, which normalize reads: now, not at the first search

    def search(self, request: search_pb2.SearchRequest, timeout: float) -> SearchResult:
        """The answer to ``request``: from the cache, else from its upstream (then kept).

        Args:
            request: the search.
            timeout: seconds the search may take, waiting for another's fetch included.
        Raises:
            InvalidArgument: the request breaks a rule (each violation names its field),
                or names no configured upstream.
            UpstreamFailed: the archive failed, refused or did not answer in time.
            AnswerTooLarge: the answer is larger than the largest message.
        """
        upstream = self._upstream(request.upstream)
        normalized = normalize(request, upstream.protocol)
        namespace = partition(upstream.name, upstream.protocol)
        key = request_key(normalized.request)
        deadline = self._clock() + timeout
        found = self._lookup(namespace, key, normalized, upstream.protocol)
        if found is not None:
            return found
        try:
            try:
                result, led = self.flights.run(
                    (namespace, key),
                    lambda: self._read_through(upstream, namespace, key, normalized, deadline),
                    timeout,
                )
            except WaitTimeout:
                raise UpstreamFailed(upstream.name, UpstreamFailed.TIMEOUT) from None
        except UpstreamFailed as failure:
            stale = self._stale(namespace, key, failure)
            if stale is None:
                raise
            return stale
        if not led and self.metrics is not None:
            self.metrics.coalesced_wait(namespace)
        return result

    def _upstream(self, name: str) -> Upstream:
        if not name:
            raise InvalidArgument.single("upstream", "must be set")
        upstream = self.upstreams.get(name)
        if upstream is None:
            raise InvalidArgument.single(
                "upstream", "must name an upstream configured on the server"
            )
        return upstream

    def _lookup(
        self, namespace: str, key: bytes, normalized: Normalized, protocol: int
    ) -> SearchResult | None:
        """The stored answer, or None (a miss, an answer that cannot be rebuilt, no storage)."""
        try:
            found = self.backend.lookup_answer(namespace, key)
            studies = None if found is None else found.studies
            age = 0.0 if found is None else self._age(found.left, bool(found.studies))
            if studies is None and (listed := listing(normalized, protocol)) is not None:
                study = self.backend.lookup_study(namespace, *listed)
                studies = [study] if study is not None else None
            if studies is None:
                return None
            order = None
            if normalized.ordered:
                record = self.backend.get_object(namespace, (answer.record_uid(key),))
                order = answer.order_of(record)
                if order is None:  # stored without the archive's order: fetch it again
                    return None
        except BackendUnavailable as exc:
            log.warning("search: the storage did not answer a lookup (%s); asking the archive", exc)
            return None
        stored = answer.stored_text(studies, normalized.level, order, self.rendered.text)
        if stored is None:
            return None
        body, count = stored
        return SearchResult(self._sized(body), True, age, False, count)

    def _kept(self, empty: bool) -> float | None:
        """Seconds an answer is stored for (None: not known here)."""
        if self.ttl is None:
            return None
        return min(self.ttl, self.negative_ttl) if empty and self.negative_ttl else self.ttl

    def _age(self, left: float, studies: bool) -> float:
        kept = self._kept(not studies)
        return 0.0 if kept is None else max(0.0, kept - left)

    def _stale(self, namespace: str, key: bytes, failure: UpstreamFailed) -> SearchResult | None:
        """The answer's stale copy when the archive failed, or None (off, none, expired)."""
        if self.max_stale <= 0 or failure.reason == UpstreamFailed.REFUSED:
            # Refused (HTTP 4xx, C-FIND refused): the archive said no to this request
            # (credentials, rights), which an old answer must not paper over (RFC 5861
            # serves stale on errors, not on refusals).
            return None
        try:
            copy = self.backend.lookup_stale(namespace, key)
        except BackendUnavailable as exc:
            log.warning("search: the storage did not answer a stale lookup (%s)", exc)
            return None
        if copy is None:
            return None
        body = copy.document.decode()
        count = len(json.loads(body))
        kept = self._kept(count == 0)
        age = copy.age
        if kept is not None and age > kept + self.max_stale:
            return None  # never past max_stale (a copy kept longer by another server)
        if self.metrics is not None:
            self.metrics.stale_serve(namespace)
        log.info("search: %s; a stale answer served (age %.0f s)", failure, age)
        return SearchResult(self._sized(body), True, age, True, count, str(failure))

    def _read_through(
        self,
        upstream: Upstream,
        namespace: str,
        key: bytes,
        normalized: Normalized,
        deadline: float,
    ) -> SearchResult:
        """The leader's part: look again, then fetch, store and answer."""
        # A leader that finished just before this one began may have stored the answer
        # after this caller's lookup: looking again makes one fetch per answer, not a
        # race between a lookup and the end of a flight.
        found = self._lookup(namespace, key, normalized, upstream.protocol)
        if found is not None:
            return found
        if self.shared is None:
            return self._fetch_and_store(upstream, namespace, key, normalized, deadline)
        # Of the servers sharing the backend, one asks the archive (``shared_flight``).
        left = max(0.0, deadline - self._clock())
        seconds = min(left, self.upstream_timeout or left) + MARGIN_SECONDS
        with ExitStack() as stack:
            try:
                boarded = stack.enter_context(
                    self.shared.boarding(namespace, key, seconds, deadline)
                )
            except BackendUnavailable as exc:
                log.warning("search: the storage gave no flight (%s); asking the archive", exc)
                return self._fetch_and_store(upstream, namespace, key, normalized, deadline)
            except WaitTimeout:
                raise UpstreamFailed(upstream.name, UpstreamFailed.TIMEOUT) from None
            if boarded.waited and self.metrics is not None:
                self.metrics.coalesced_wait(namespace)
            if not boarded.led:
                found = self._lookup(namespace, key, normalized, upstream.protocol)
                if found is not None:
                    return found
            return self._fetch_and_store(upstream, namespace, key, normalized, deadline)

    def _fetch_and_store(
        self,
        upstream: Upstream,
        namespace: str,
        key: bytes,
        normalized: Normalized,
        deadline: float,
    ) -> SearchResult:
        lease = self._lease(namespace)
        objects = self._fetch(upstream, normalized, deadline)
        body = self._sized(answer.text(objects))
        if lease:  # no lease, no store: it could not be ordered against invalidations
            self._store(namespace, key, normalized, objects, lease, upstream.protocol)
            self._store_stale(namespace, key, body, not objects, lease)
        return SearchResult(body, False, 0.0, False, len(objects))

    def _store_stale(self, namespace: str, key: bytes, body: str, empty: bool, lease: int) -> None:
        """Keep the answer's stale copy for its TTL plus ``max_stale`` (when on)."""
        kept = self._kept(empty)
        if self.max_stale <= 0 or kept is None:
            return
        try:
            self.backend.store_stale(namespace, key, body.encode(), kept + self.max_stale, lease)
        except BackendUnavailable as exc:
            log.warning("search: the storage did not take a stale copy (%s)", exc)

    def _sized(self, body: str) -> str:
        size = len(body.encode())
        if size > self.max_message_bytes:
            raise AnswerTooLarge(size, self.max_message_bytes)
        return body

    def _lease(self, namespace: str) -> int:
        try:
            return self.backend.lease(namespace)
        except BackendUnavailable as exc:
            log.warning("search: the storage gave no lease (%s); the answer will not be kept", exc)
            return 0

    def _fetch(
        self, upstream: Upstream, normalized: Normalized, deadline: float
    ) -> list[dict[str, Any]]:
        """The archive's answer, timed, counted and traced."""
        left = deadline - self._clock()
        if left <= 0:
            raise UpstreamFailed(upstream.name, UpstreamFailed.TIMEOUT)
        span = self.tracer.upstream_span(upstream.name) if self.tracer is not None else None
        start = time.perf_counter()
        reason = None
        try:
            return upstream.fetch(normalized.request, left)
        except UpstreamFailed as exc:
            reason = exc.reason
            if span is not None:
                span.fail(exc)
            raise
        except Exception as exc:
            reason = "internal"
            if span is not None:
                span.fail(exc)
            raise
        finally:
            if self.metrics is not None:
                self.metrics.upstream_fetch(upstream.name, time.perf_counter() - start, reason)
            if span is not None:
                span.end()

    def _store(
        self,
        namespace: str,
        key: bytes,
        normalized: Normalized,
        objects: list[dict[str, Any]],
        lease: int,
        protocol: int,
    ) -> None:
        """Keep the answer: its order record first (a hit needs both), then the answer."""
        tree = answer.to_tree(
            objects, normalized.level, normalized.study_uid, normalized.series_uid
        )
        if tree is None:
            log.info("search: an answer with an object lacking its uids, or listed twice, not kept")
            return
        try:
            if normalized.ordered:
                self.backend.add_objects(namespace, [answer.record(key, tree.order)], self.ttl)
            stored = self.backend.store_query(namespace, key, tree.studies, self.ttl, lease)
            listed = listing(normalized, protocol)
            if stored and listed is not None and [s.uid for s in tree.studies] == [listed[0]]:
                # The answer find_study_by_id gets: also the study's listing.
                self.backend.store_study(namespace, tree.studies[0], listed[1], self.ttl, lease)
        except BackendUnavailable as exc:
            log.warning("search: the storage did not take an answer (%s)", exc)
