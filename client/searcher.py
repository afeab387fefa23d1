"""CachedSearcher: a dicomtrolley Searcher that answers from dicomcache first.

On a hit it returns dicomtrolley objects equal to what the upstream returned when
the answer was stored; on a miss it asks the upstream, stores the answer under the
miss's lease (refused if an invalidation came meanwhile) and returns it. The cache
can only make calls faster, never fail them: any cache fault falls back to the
upstream, and after repeated faults the cache is skipped for a back-off period (see
``breaker``). So does a conversion failure (a ``ConversionError``): a query that the
contract cannot carry goes to the upstream without a cache call; one in a call's
conversion counts as a cache fault. Upstream errors pass through unchanged and are
never cached.

A refusal by the server's authorization policy (UNAUTHENTICATED, or
PERMISSION_DENIED of a lookup) is a fault that will not heal in seconds: the cache
is skipped at once, for ``denied_backoff`` (60 s), and tried again after it (an
operator may have fixed the policy, which the server re-reads). A denied store
(a read-only grant) skips only the stores for that long; lookups go on. Each
change of state is logged once, with the right and namespace, never per call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from dicomtrolley.core import Query, QueryLevels, Searcher, Study

from dicomcache.client.breaker import Breaker
from dicomcache.client.cache_client import DEFAULT_TIMEOUT, CacheClient, Fresh
from dicomcache.client.convert.query import query_to_proto
from dicomcache.client.convert.request import Requests, protocol_of, protocol_value
from dicomcache.client.credentials import ClientTLS, Token
from dicomcache.client.errors import (
    CacheError,
    CachePermissionDenied,
    CacheRejected,
    CacheUnauthenticated,
    ConversionError,
)
from dicomcache.client.metrics import HELD_RECORDS, ClientMetrics
from dicomcache.client.namespace import derive_namespace
from dicomcache.client.near import metrics as near_metrics
from dicomcache.client.tracing import UNSAMPLED, SearchTracer
from dicomcache.contract import NAMESPACE, NAMESPACE_RULE

if TYPE_CHECKING:
    from dicomcache.client.near import NearCache

log = logging.getLogger(__name__)


def _reason(error: CacheError) -> str:
    """Why the cache could not answer, for the fallbacks metric."""
    if isinstance(error, CacheRejected):
        return "rejected"
    if isinstance(error, CachePermissionDenied):
        return "denied"
    if isinstance(error, CacheUnauthenticated):
        return "unauthenticated"
    return "unavailable"


T = TypeVar("T")

MAX_TTL = 2**32 - 1  # the wire's ttl_seconds is a uint32


class CachedSearcher(Searcher):  # type: ignore[misc]  # dicomtrolley ships no type information
    """Wraps any dicomtrolley Searcher (QIDO-RS, DICOM-QR, MINT, ...) with the cache.

    Thread-safe: one instance may serve many threads. The breaker reads the
    injected monotonic clock.

    Args:
        upstream: the searcher that asks the archive.
        target: the cache server's address.
        namespace: the archive's name in the cache; derived from the upstream's
            kind and address when not given.
        timeout: seconds any cache call may take before the upstream is asked.
        failure_threshold: cache failures in a row before the cache is skipped.
        backoff: seconds the cache is skipped after that.
        denied_backoff: seconds the cache (or, for a denied store, the stores) is
            skipped after the server's authorization policy refused a call.
        ttl: seconds to keep answers, an integer from 0 to ``MAX_TTL`` (0: the
            server's TTL; the server cuts a longer one to its own).
        client: a CacheClient to use instead of one built from target and timeout.
        clock: the breaker's monotonic clock.
        pause_gc: pause the garbage collector while a hit's objects are built,
            once per lookup (see ``convert.collector``). Off by default: the
            collector is process-wide.
        protocol: the upstream's protocol, "qido-rs", "dicom-qr" or "mint": its
            entries are its own, and for QIDO-RS and DICOM-QR queries are keyed by
            the request the archive receives. Taken from the upstream's class when
            not given (set it when the upstream wraps a dicomtrolley searcher).
        tls: TLS towards the cache server (see ``CacheClient``); ignored with ``client``.
        token: a bearer token for the cache server (see ``CacheClient``); ignored
            with ``client``.
        metrics: a prometheus_client ``CollectorRegistry`` (the app's) to count
            hits, misses, fallbacks by reason, breaker state and the time spent in
            cache calls (``client.metrics``); None for none.
        tracer_provider: an OpenTelemetry ``TracerProvider``: each search becomes a
            span with its cache calls and its upstream call as children, and the trace
            context goes to the server (``client.tracing``); None for none.
        near_cache: a ``client.near.NearCache`` to answer repeated searches from this
            process's memory, kept coherent with the server by its invalidation
            stream; None (the default) for none. Its hits hand out the very objects
            an earlier search returned: treat them as read-only (``client.near.cache``).
            Counted in ``metrics`` as ``dicomcache_client_near_*``.

    Raises:
        ValueError: the namespace breaks the contract's rule, or none was given
            and none can be derived from the upstream; or ttl breaks its rule.
    """

    def __init__(
        self,
        upstream: Searcher,
        target: str = "127.0.0.1:50051",
        namespace: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        failure_threshold: int = 3,
        backoff: float = 10.0,
        denied_backoff: float = 60.0,
        ttl: int = 0,
        client: CacheClient | None = None,
        clock: Callable[[], float] | None = None,
        pause_gc: bool = False,
        protocol: str | None = None,
        tls: ClientTLS | None = None,
        token: Token | str | None = None,
        metrics: Any = None,
        tracer_provider: Any = None,
        near_cache: NearCache | None = None,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
            # Checked here, once: a bad ttl would otherwise fail every store, silently.
            raise ValueError(f"ttl must be an integer from 0 to {MAX_TTL} seconds, got {ttl!r}")
        self.upstream = upstream
        self.protocol = protocol if protocol is not None else protocol_of(upstream)
        protocol_value(self.protocol)  # raises ValueError for an unknown name
        self._requests = Requests(self.protocol)
        self.namespace = namespace or derive_namespace(upstream)
        if not NAMESPACE.fullmatch(self.namespace):
            raise ValueError(f"namespace {self.namespace!r} {NAMESPACE_RULE}")
        traced = tracer_provider is not None
        if client is None:
            client = CacheClient(
                target, timeout=timeout, tls=tls, token=token, trace_context=traced
            )
        self.client = client
        self.ttl = ttl
        self.pause_gc = pause_gc
        breaker_options = {"clock": clock} if clock is not None else {}
        self.breaker = Breaker(
            threshold=failure_threshold,
            backoff=backoff,
            name=f"dicomcache at {self.client.target}",
            **breaker_options,
        )
        self.denied_backoff = denied_backoff
        # Stores have a gate of their own: a grant may allow reads and not writes.
        self.store_breaker = Breaker(
            threshold=1,
            backoff=denied_backoff,
            name=f"dicomcache at {self.client.target} (stores)",
            **breaker_options,
        )
        self._metrics = (
            ClientMetrics.of(metrics).searcher(
                self.namespace, {"all": self.breaker, "stores": self.store_breaker}
            )
            if metrics is not None
            else None
        )
        self._tracer = SearchTracer(tracer_provider) if traced else None
        self.near = near_cache
        if near_cache is not None:
            near_cache.attach(self.client, self.namespace, protocol_value(self.protocol))
            if metrics is not None:
                near_metrics.register(metrics, near_cache)

    def __str__(self) -> str:
        return f"CachedSearcher for {self.upstream}"

    def find_studies(self, query: Query) -> Sequence[Study]:
        """The cached answer to ``query``, else the upstream's (then cached)."""
        span = self._span("CachedSearcher.find_studies", level=str(query.query_level.value))
        with span:
            return self._find_studies(query, span is not UNSAMPLED)

    def _find_studies(self, query: Query, traced: bool = True) -> Sequence[Study]:
        try:
            message = query_to_proto(query)
        except ConversionError:
            log.debug("query cannot be carried to the cache; asking the upstream")
            self._fell_back("conversion")
            self._counted("skipped")
            return self._upstream("find_studies", lambda: self.upstream.find_studies(query))
        request = self._requests.get(query, message)
        near, key, ticket = self.near, None, None
        if near is not None:
            key = ("query", message.SerializeToString(deterministic=True))
            if (kept := near.get(key)) is not None:
                return cast(Sequence[Study], kept)
            ticket = near.ticket()
        found = self._try(
            lambda: self._lookup_query(message, request, fresh=near is not None), traced=traced
        )
        cached, lease = (found.value, found.lease) if found else (None, 0)
        self._counted("hit" if cached is not None else "miss" if found else "skipped")
        if cached is not None:
            if near is not None and ticket is not None and found is not None and key:
                uids = [study.uid for study in cached]
                near.put(ticket, key, cached, uids, found.fresh_for, found.wire_bytes)
            return cast(Sequence[Study], cached)
        studies: Sequence[Study] = self._upstream(
            "find_studies", lambda: self.upstream.find_studies(query)
        )
        if lease:  # no lease, no store: it could not be ordered against invalidations
            self._try(
                lambda: self.client.store_query(
                    self.namespace,
                    message,
                    studies,
                    self.ttl,
                    lease,
                    protocol=self.protocol,
                    request=request,
                ),
                store=True,
            )
        return studies

    def find_study_by_id(
        self, study_uid: str, query_level: QueryLevels = QueryLevels.STUDY
    ) -> Study:
        """The study complete down to ``query_level``, from the cache when it is known complete."""
        span = self._span("CachedSearcher.find_study_by_id", level=str(query_level.value))
        with span:
            return self._find_study_by_id(study_uid, query_level, span is not UNSAMPLED)

    def _find_study_by_id(
        self, study_uid: str, query_level: QueryLevels, traced: bool = True
    ) -> Study:
        near, key = self.near, ("study", study_uid, QueryLevels(query_level).value)
        if near is not None and (kept := near.get(key)) is not None:
            return cast(Study, kept)
        ticket = near.ticket() if near is not None else None
        found = self._try(
            lambda: self._lookup_study(study_uid, query_level, fresh=near is not None),
            traced=traced,
        )
        cached, lease = (found.value, found.lease) if found else (None, 0)
        self._counted("hit" if cached is not None else "miss" if found else "skipped")
        if cached is not None:
            if near is not None and ticket is not None and found is not None:
                near.put(ticket, key, cached, [study_uid], found.fresh_for, found.wire_bytes)
            return cast(Study, cached)
        study: Study = self._upstream(
            "find_study_by_id",
            lambda: self.upstream.find_study_by_id(study_uid, query_level=query_level),
        )
        if lease:
            self._try(
                lambda: self.client.store_study(
                    self.namespace, study, query_level, self.ttl, lease, protocol=self.protocol
                ),
                store=True,
            )
        return study

    def _lookup_query(self, message: Any, request: Any, fresh: bool) -> Fresh:
        """The lookup of a query; ``fresh``: with its fresh_for, for the near cache."""
        client, namespace, gc, protocol = self.client, self.namespace, self.pause_gc, self.protocol
        if fresh:
            return client.lookup_query_fresh(
                namespace, message, pause_gc=gc, protocol=protocol, request=request
            )
        found = client.lookup_query_leased(
            namespace, message, pause_gc=gc, protocol=protocol, request=request
        )
        return Fresh(*found, 0.0, None)

    def _lookup_study(self, study_uid: str, level: QueryLevels, fresh: bool) -> Fresh:
        """The lookup of a study by id, as ``_lookup_query``."""
        client, namespace, gc, protocol = self.client, self.namespace, self.pause_gc, self.protocol
        if fresh:
            return client.lookup_study_fresh(
                namespace, study_uid, level, pause_gc=gc, protocol=protocol
            )
        found = client.lookup_study_leased(
            namespace, study_uid, level, pause_gc=gc, protocol=protocol
        )
        return Fresh(*found, 0.0, None)

    def _try(self, call: Callable[[], T], store: bool = False, traced: bool = True) -> T | None:
        """Run one cache call if the breaker allows; any failure is swallowed.

        ``traced`` False: the search was not sampled, so neither is the call: its span
        is not asked for (a hit's fixed cost, issue 14, rows 13a/13b).

        Faults of the cache count against it in the breaker; a refusal of this one
        request (``CacheRejected``) does not: that call goes to the upstream alone.
        An authorization refusal opens the breaker at once for ``denied_backoff``;
        of a store (``store``), only the stores' breaker.
        """
        if store and not self.store_breaker.allow():
            self._fell_back("breaker_open")
            return None
        if not self.breaker.allow():
            self._fell_back("breaker_open")
            self._store_done(store)
            return None
        operation = "store" if store else "lookup"
        start = time.perf_counter()
        try:
            with self._span(f"dicomcache {operation}", client=True) if traced else UNSAMPLED:
                result = call()
        except CacheError as exc:
            self._timed(operation, start)
            self._fell_back(_reason(exc))
            self._failed(exc, store)
            return None
        except Exception as exc:
            self._timed(operation, start)
            self._fell_back("unexpected")
            log.warning("unexpected cache client error: %s", type(exc).__name__)
            self.breaker.failed()
            self._store_done(store)
            return None
        self._timed(operation, start)
        self.breaker.succeeded()
        if store:
            self.store_breaker.succeeded()
        return result

    def _failed(self, error: CacheError, store: bool) -> None:
        """Account for a cache call that failed, in the breakers (see ``_try``)."""
        if isinstance(error, CacheRejected):
            # The code and the field paths only: no values, so no patient data.
            fields = ", ".join(field for field, _ in error.violations) or "none"
            code = error.code.name if error.code is not None else "no status"
            log.debug("cache refused the request (%s; fields: %s)", code, fields)
            self.breaker.inconclusive()
            self._store_done(store)
        elif isinstance(error, CachePermissionDenied):
            # The right and the namespace are this searcher's own: nothing from the call.
            right = "write" if store else "read"
            reason = f"denied the {right} right on namespace {self.namespace} (PERMISSION_DENIED)"
            if store:  # the cache answered: reading may be all this caller is granted
                self.store_breaker.refused(self.denied_backoff, reason)
                self.breaker.inconclusive()
            else:
                self.breaker.refused(self.denied_backoff, reason)
        elif isinstance(error, CacheUnauthenticated):
            reason = "refused this client's credentials (UNAUTHENTICATED)"
            self.breaker.refused(self.denied_backoff, reason)
            self._store_done(store)
        else:
            log.debug("cache call failed: %s", type(error).__name__)
            self.breaker.failed()
            self._store_done(store)

    def _upstream(self, name: str, call: Callable[[], T]) -> T:
        """Ask the upstream, in a span of its own when tracing."""
        with self._span(f"upstream {name}"):
            return call()

    def _span(self, name: str, client: bool = False, **attributes: str) -> Any:
        """A span when tracing, else nothing."""
        if self._tracer is None:
            return contextlib.nullcontext()
        return self._tracer.span(name, client, namespace=self.namespace, **attributes)

    def _counted(self, result: str) -> None:
        metrics = self._metrics
        if metrics is not None:  # held, and counted in a batch (``ClientMetrics``)
            held = metrics.held
            held.append((metrics.lookups, result, 1.0))
            if len(held) >= HELD_RECORDS:
                metrics.count_held()

    def _fell_back(self, reason: str) -> None:
        if self._metrics is not None:
            self._metrics.fallbacks[reason].inc()

    def _timed(self, operation: str, start: float) -> None:
        metrics = self._metrics
        if metrics is not None:  # as ``_counted``
            held = metrics.held
            held.append((metrics.cache_seconds, operation, time.perf_counter() - start))
            if len(held) >= HELD_RECORDS:
                metrics.count_held()

    def _store_done(self, store: bool) -> None:
        """A store's call ended without a word on the write right: a trial hands its turn back."""
        if store:
            self.store_breaker.inconclusive()
