"""The CacheService: validate, call the backend, reply. Nothing else.

Each method takes a parsed request and returns a response message, or the
ready-made bytes of a hit (see ``encode``); ``handler`` serves them over gRPC.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import fields
from typing import TYPE_CHECKING

from dicomcache.contract import MAX_ANSWER_BYTES, MAX_MESSAGE_BYTES
from dicomcache.server.api import encode, pages
from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.api.keys import (
    base_namespace,
    by_id,
    partition,
    partitions,
    query_key,
    request_key,
)
from dicomcache.server.api.pieces import Tree, assemble
from dicomcache.server.api.validation import Checker, study_lookup
from dicomcache.server.backends import Backend, bound
from dicomcache.server.errors import AnswerTooLarge, NoUpstreams
from dicomcache.server.model import Address, Level, NamespaceStats, Stats, StudyData, release
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2, search_pb2

if TYPE_CHECKING:
    from dicomcache.server.search.engine import SearchEngine

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CacheService"].full_name
# The trailing metadata key of a stale Search answer: how the archive failed.
STALE_REASON = "dicomcache-stale-reason"


class CacheService:
    """The RPCs of dicomcache.v1.CacheService over one backend.

    Thread-safe when the backend is (every backend is). Holds no clock: time is the
    backend's business.

    Two limits: ``max_message_bytes`` bounds a unary answer (a larger hit fails,
    naming the streamed lookup), ``max_answer_bytes`` (never below it) every answer,
    streamed ones included (a store whose hit would be larger is refused).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        max_ttl: float,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        search_engine: SearchEngine | None = None,
    ) -> None:
        self.backend = backend
        self.max_ttl = max_ttl
        self.max_message_bytes = max_message_bytes
        self.max_answer_bytes = max(max_answer_bytes, max_message_bytes)
        self.search_engine = search_engine  # None: no upstreams configured

    def _ttl(self, seconds: int) -> float | None:
        """0 means the default; a longer TTL than the server's is cut to the server's."""
        return min(float(seconds), self.max_ttl) if seconds else None

    def _fits(self, hit_size: int) -> bool:
        """Whether a hit of this size can be sent; a store of one that cannot is refused."""
        if hit_size + FRESH_FOR_BYTES <= self.max_answer_bytes:
            return True
        log.info(
            "store refused: its hit of %d bytes would be larger than the largest answer (%d)",
            hit_size,
            self.max_answer_bytes,
        )
        return False

    def _most(self, streamed: bool) -> int:
        """The largest hit that can be sent, before its fresh_for_ms: an answer
        streamed, a message else (larger than a message, only streamed); its objects
        may have grown past the largest answer since it was stored. Asked before the
        hit's bytes are built."""
        limit = self.max_answer_bytes if streamed else self.max_message_bytes
        return limit - FRESH_FOR_BYTES

    def _too_large(self, size: int, streamed: bool, instead: str) -> AnswerTooLarge:
        """The error of a hit that cannot be sent; a unary one names its streamed lookup."""
        if streamed:
            return AnswerTooLarge(size, self.max_answer_bytes, what="answer")
        return AnswerTooLarge(size, self.max_message_bytes, instead)

    def lookup_query(self, request: pb.LookupQueryRequest, streamed: bool = False) -> encode.Hit:
        """LookupQuery (StreamLookupQuery when ``streamed``): a hit as stored bytes, or a
        miss; a large streamed hit in a mapping, which the caller closes (``encode.close``)."""
        check = Checker()
        _check_query_request(check, request)
        check.done()
        namespace = partition(request.namespace, request.protocol)
        found = self.backend.lookup_answer(namespace, _key(request))
        if found is None and (uid := by_id(request.query)) is not None:
            found = self.backend.study_answer(namespace, uid, _level(request.query))
        if found is None:
            return encode.miss(self.backend.lease(namespace))
        studies, left = found.studies, found.left
        del found  # ``studies`` is the only reference: see ``release``
        size, hit = encode.hit_within(
            studies, self._most(streamed), _fresh_for(left), mapped=streamed
        )
        release(studies)  # a series at a time, not in one long deallocation
        if hit is None:
            raise self._too_large(size, streamed, "StreamLookupQuery")
        return hit

    def store_query(self, request: pb.StoreQueryRequest) -> pb.StoreQueryResponse:
        """StoreQuery: the answer's objects, then the answer."""
        check = Checker()
        _check_query_request(check, request)
        check.studies(request.studies, "studies")
        check.done()
        studies = [study_from_proto(s) for s in request.studies]
        return pb.StoreQueryResponse(stored=self._store_query(request, studies))

    def stream_store_query(
        self, pieces: Iterable[pb.StreamStoreQueryRequest]
    ) -> pb.StreamStoreQueryResponse:
        """StreamStoreQuery: StoreQuery of the request the pieces make up, each piece
        checked as it comes (``pieces``); nothing is stored before the last."""
        request, studies = assemble(pieces, _check_query_request, _query_objects)
        return pb.StreamStoreQueryResponse(stored=self._store_query(request, studies))

    def _store_query(self, request: pb.StoreQueryRequest, studies: list[StudyData]) -> bool:
        """Store a checked StoreQuery whose answer is ``studies`` (then emptied)."""
        if not self._fits(encode.query_hit_size(studies)):
            release(studies)
            return False
        namespace = partition(request.namespace, request.protocol)
        ttl = self._ttl(request.ttl_seconds)
        stored = self.backend.store_query(namespace, _key(request), studies, ttl, request.lease)
        uid = by_id(request.query)
        if stored and uid is not None and [s.uid for s in studies] == [uid]:
            # The answer find_study_by_id would get: the study's complete listing.
            level = _level(request.query)
            stored = self.backend.store_study(namespace, studies[0], level, ttl, request.lease)
        release(studies)
        return stored

    def lookup_study(self, request: pb.LookupStudyRequest, streamed: bool = False) -> encode.Hit:
        """LookupStudy (StreamLookupStudy when ``streamed``): the study complete to the
        level, or a miss; a large streamed hit in a mapping, as ``lookup_query``."""
        level = study_lookup(
            request.namespace, request.study_uid, request.query_level, request.protocol
        )
        namespace = partition(request.namespace, request.protocol)
        most = self._most(streamed)
        # The backend may refuse what cannot be sent before it reads it (``bound``): the
        # variable set here, not through ``bound.study_bytes``, whose three calls were a
        # hit's fixed cost (row 17c).
        token = bound.STUDY_BYTES.set(most)
        try:
            answer = self.backend.study_answer(namespace, request.study_uid, level)
        except AnswerTooLarge as exc:
            raise self._too_large(exc.size, streamed, "StreamLookupStudy") from None
        finally:
            bound.STUDY_BYTES.reset(token)
        if answer is None:
            return encode.miss(self.backend.lease(namespace))
        found, left = answer.studies, answer.left
        del answer  # ``found`` is the only reference: see ``release``
        size, hit = encode.hit_within(found, most, _fresh_for(left), mapped=streamed)
        release(found)
        if hit is None:
            raise self._too_large(size, streamed, "StreamLookupStudy")
        return hit

    def store_study(self, request: pb.StoreStudyRequest) -> pb.StoreStudyResponse:
        """StoreStudy: a study-by-id answer, complete to its level."""
        check = Checker()
        check.namespace(request.namespace)
        if not request.HasField("study"):
            check.fail("study", "must be set")
        check.studies([request.study], "study")
        level = check.level(request.query_level, "query_level")
        check.protocol(request.protocol)
        check.done()
        studies = [study_from_proto(request.study)]  # the only reference: see ``release``
        return pb.StoreStudyResponse(stored=self._store_study(request, level, studies))

    def stream_store_study(
        self, pieces: Iterable[pb.StreamStoreStudyRequest]
    ) -> pb.StreamStoreStudyResponse:
        """StreamStoreStudy: StoreStudy of the request the pieces make up, as
        ``stream_store_query``."""
        request, studies = assemble(pieces, _check_study_store, _study_objects)
        level = Level(request.query_level or Level.STUDY)  # checked: 0 to 3
        return pb.StreamStoreStudyResponse(stored=self._store_study(request, level, studies))

    def _store_study(
        self, request: pb.StoreStudyRequest, level: Level, studies: list[StudyData]
    ) -> bool:
        """Store a checked StoreStudy whose study is ``studies``' one (then emptied)."""
        if not self._fits(encode.study_hit_size(studies[0])):
            release(studies)
            return False
        stored = self.backend.store_study(
            partition(request.namespace, request.protocol),
            studies[0],
            level,
            self._ttl(request.ttl_seconds),
            request.lease,
        )
        release(studies)
        return stored

    def add_objects(self, request: pb.AddObjectsRequest) -> pb.AddObjectsResponse:
        """AddObjects: objects and their descendants, without a query."""
        check = Checker()
        check.namespace(request.namespace)
        check.studies(request.studies, "studies")
        check.protocol(request.protocol)
        check.done()
        studies = [study_from_proto(s) for s in request.studies]
        written = self.backend.add_objects(
            partition(request.namespace, request.protocol),
            studies,
            self._ttl(request.ttl_seconds),
        )
        release(studies)
        return pb.AddObjectsResponse(objects_written=written)

    def get_objects(self, request: pb.GetObjectsRequest) -> bytes:
        """GetObjects: each referenced object with its cached descendants."""
        check = Checker()
        check.namespace(request.namespace)
        addresses = check.references(request.references, "references")
        check.protocol(request.protocol)
        check.done()
        return self._objects(partition(request.namespace, request.protocol), addresses)

    def _objects(self, namespace: str, addresses: list[Address]) -> bytes:
        """The encoded results, refused as soon as they could not fit in one message.

        Each distinct address is fetched and encoded once (1000 references to one
        study cost one fetch), and the response's size is summed as it grows, so
        the work of a refused request stops at the largest message plus one object.
        """
        encoded: dict[Address, bytes] = {}
        parts = []
        size = 0
        for address in addresses:
            part = encoded.get(address)
            if part is None:
                found = self.backend.get_object(namespace, address)
                part = encoded[address] = encode.objects_result([found])
            size += len(part)
            if size > self.max_message_bytes:
                raise AnswerTooLarge(size, self.max_message_bytes)
            parts.append(part)
        return b"".join(parts)

    def invalidate(self, request: pb.InvalidateRequest) -> pb.InvalidateResponse:
        """Invalidate: one object and what depends on it, or a whole namespace."""
        check = Checker()
        check.namespace(request.namespace)
        address = (
            check.reference(request.reference, "reference")
            if request.HasField("reference")
            else None
        )
        check.done()
        # Under every protocol: the archive changed, whoever asks it.
        removed = sum(self.backend.invalidate(n, address) for n in partitions(request.namespace))
        log.info("invalidated %d objects (%s)", removed, "one object" if address else "namespace")
        return pb.InvalidateResponse(objects_removed=removed)

    def search(
        self,
        request: search_pb2.SearchRequest,
        timeout: float,
        trailers: Callable[[tuple[tuple[str, str], ...]], None] | None = None,
    ) -> search_pb2.SearchResponse:
        """Search: the archive's answer through the cache (``server/search``).

        A stale answer (the archive failed) says how in the trailing metadata
        ``dicomcache-stale-reason`` (upstream, reason, archive status; no PHI),
        given to ``trailers``.
        """
        if self.search_engine is None:
            raise NoUpstreams("no upstreams configured (dicomcache serve --upstream NAME=URL)")
        result = self.search_engine.search(request, timeout)
        response = search_pb2.SearchResponse(
            dicom_json=result.dicom_json,
            hit=result.hit,
            age_seconds=result.age_seconds,
            stale=result.stale,
            count=result.count,
        )
        # The engine keeps answers up to the largest answer (the QIDO-RS endpoint sends
        # them); this reply is one message.
        size = response.ByteSize()
        if size > self.max_message_bytes:
            raise AnswerTooLarge(size, self.max_message_bytes, "the QIDO-RS endpoint")
        if result.stale and trailers is not None:
            trailers(((STALE_REASON, result.stale_reason),))
        return response

    def get_stats(
        self, request: pb.GetStatsRequest, visible: Callable[[str], bool] | None = None
    ) -> pb.GetStatsResponse:
        """GetStats: counters of one namespace, or one page of all.

        Args:
            request: the request.
            visible: the namespaces a page of all may list (the caller's stats
                right); None for every namespace. A caller who may not see every
                namespace gets a total_bytes of 0: the whole cache's would tell
                it that others hold data.
        """
        check = Checker()
        size = pages.page_size(check, request.page_size, self.max_message_bytes)
        if request.namespace:
            check.namespace(request.namespace)
            if request.page_token:
                check.fail("page_token", "must be empty when namespace is set")
        after = pages.after(check, request.page_token)
        check.done()
        if request.namespace:
            parts = [self.backend.stats(n) for n in partitions(request.namespace)]
            stats = parts[0]
            stats.namespaces = _by_namespace([e for part in parts for e in part.namespaces])
            if visible is not None:
                stats.total_bytes = 0
            return encode.stats_to_proto(stats)
        stats, entries = self._page(after, size, visible)
        stats.namespaces = entries[:size]
        response = encode.stats_to_proto(stats)
        if len(entries) > size:
            response.next_page_token = pages.token(entries[size - 1].namespace)
        return response

    def _page(
        self, after: str | None, size: int, visible: Callable[[str], bool] | None
    ) -> tuple[Stats, list[NamespaceStats]]:
        """The backend's figures and up to ``size + 1`` visible namespaces after ``after``.

        One namespace more than the page holds says whether another page follows.
        With ``visible``, backend pages are read on until that many visible ones
        were found or the namespaces ran out.
        """
        stats = self.backend.stats(None, after, size + 1)
        # A namespace's figures cover all its protocols: partitions are not the caller's names.
        entries = _by_namespace(stats.namespaces)
        if visible is None:
            return stats, entries
        stats.total_bytes = 0
        found = [e for e in entries if visible(e.namespace)]
        while len(entries) > size and len(found) <= size:
            # A full backend page: more may follow, after its last namespace.
            more = self.backend.stats(None, entries[-1].namespace, size + 1)
            entries = _by_namespace(more.namespaces)
            found.extend(e for e in entries if visible(e.namespace))
        return stats, found


def _check_query_request(
    check: Checker, request: pb.LookupQueryRequest | pb.StoreQueryRequest
) -> None:
    """The checks LookupQuery and StoreQuery share: namespace, query, protocol, request."""
    check.namespace(request.namespace)
    if not request.HasField("query"):
        check.fail("query", "must be set")
    check.query(request.query)
    check.protocol(request.protocol)
    if request.HasField("archive_request"):
        check.archive_request(request.archive_request)


# Lookup*Response.fresh_for_ms = 4 (varint), after a hit's other fields: a field may
# come after the others in the wire form. Joined with the hit in its one copy
# (``encode.hit_within``), never added: ``a + b`` of a 250 MB hit copies it holding
# the interpreter lock (stall row S2 went from 33 ms to 208 ms). At most
# FRESH_FOR_BYTES long (below 2**42 ms, 139 years), counted in every hit's size.
_FRESH_FOR_MS = b"\x20"
FRESH_FOR_BYTES = 7


def _fresh_for(left: float) -> bytes:
    """The fresh_for_ms field of a hit that has ``left`` seconds, rounded down."""
    ms = max(0, int(left * 1000))
    out = bytearray(_FRESH_FOR_MS)
    while ms > 0x7F:
        out.append((ms & 0x7F) | 0x80)
        ms >>= 7
    out.append(ms)
    return bytes(out)


def _check_study_store(check: Checker, request: pb.StoreStudyRequest) -> None:
    """StoreStudy's checks but of its study's content (a streamed store's first piece)."""
    check.namespace(request.namespace)
    if not request.HasField("study"):
        check.fail("study", "must be set")
    check.level(request.query_level, "query_level")
    check.protocol(request.protocol)


def _query_objects(tree: Tree, check: Checker, request: pb.StoreQueryRequest) -> None:
    tree.studies(check, request.studies, "studies")


def _study_objects(tree: Tree, check: Checker, request: pb.StoreStudyRequest) -> None:
    if request.HasField("study"):
        tree.study(check, request.study, "study")


def _level(query: query_pb2.Query) -> Level:
    """The level of a query that passed ``Checker.query`` (unspecified reads as STUDY)."""
    return Level(query.query_level or Level.STUDY)


def _key(request: pb.LookupQueryRequest | pb.StoreQueryRequest) -> bytes:
    """The request's cache key: its archive request when given, else its query."""
    if request.HasField("archive_request"):
        return request_key(request.archive_request)
    return query_key(request.query)


def _by_namespace(entries: list[NamespaceStats]) -> list[NamespaceStats]:
    """The entries of the backend's namespaces summed per caller's namespace, in order."""
    merged: dict[str, NamespaceStats] = {}
    for entry in entries:
        name = base_namespace(entry.namespace)
        total = merged.setdefault(name, NamespaceStats(name))
        for field in fields(NamespaceStats):
            if field.name != "namespace":
                setattr(total, field.name, getattr(total, field.name) + getattr(entry, field.name))
    return [merged[name] for name in sorted(merged)]
