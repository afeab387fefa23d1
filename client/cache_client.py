"""CacheClient: every CacheService operation from Python, in dicomtrolley's terms.

Each call carries a deadline; every gRPC error becomes a ``CacheError`` (see
``errors``) in one place, ``_call``.

Lookups are streamed (``StreamLookupQuery``, ``StreamLookupStudy``) so that the
deadline can tell a slow cache from a large answer: the first piece, which
leaves the server once the answer is ready, must come within ``timeout``; the
rest gets ``timeout`` more plus the answer's announced size at
``MIN_TRANSFER_RATE``. A hung or dead cache costs ``timeout``; a 10,000-instance
hit (about 8 MB) still arrives. Building the answer's objects comes after and is
this process's own work, under no deadline. A study-level ``LookupStudy`` answers
one dataset, so it goes as one unary call within ``timeout`` (the stream cost it
~0.1 ms), and streamed only when the server refuses it as larger than one message.

A store larger than ``pieces.PIECE_BYTES`` (1 MiB) goes as its streamed form
(``StreamStoreQuery``, ``StreamStoreStudy``) in pieces of about that size: the
server takes a message in one step that holds up its other calls (about 1 ms per
MB) and refuses one larger than its largest message (4 MiB by default), while a
piece costs it what a small unary store does, so below 1 MiB one message is
cheaper and above it pieces are.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import grpc
from dicomtrolley.core import (
    DICOMObject,
    DICOMObjectReference,
    InstanceReference,
    Query,
    QueryLevels,
    Series,
    SeriesReference,
    Study,
    StudyReference,
)
from pydicom.dataset import Dataset

from dicomcache.client.convert import view
from dicomcache.client.convert.objects import (
    instance_from_proto,
    rooted_tree_to_proto,
    series_from_proto,
    studies_from_view,
    study_from_proto,
    study_from_view,
    study_to_proto,
)
from dicomcache.client.convert.query import LEVELS, query_to_proto
from dicomcache.client.convert.request import archive_request, protocol_value
from dicomcache.client.credentials import ClientTLS, Token
from dicomcache.client.errors import CacheError, CacheUnavailable, translate
from dicomcache.client.pieces import PIECE_BYTES, query_pieces, study_pieces
from dicomcache.client.tracing import carrier, trace_metadata
from dicomcache.client.watchdog import Watchdog
from dicomcache.contract import MAX_ANSWER_BYTES, MAX_MESSAGE_BYTES
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import cache_service_pb2_grpc, invalidations_pb2, objects_pb2, query_pb2

# The requests whose own fields carry the trace context (traceparent, tracestate).
_TRACED = frozenset(
    {pb.LookupQueryRequest, pb.StoreQueryRequest, pb.LookupStudyRequest, pb.StoreStudyRequest}
)
DEFAULT_TIMEOUT = 0.25  # seconds; a cache that takes longer is no use as a cache
# Bytes per second that the rest of a streamed answer must at least arrive at: 8
# MiB/s gives an 8 MB answer one second, 100 times what loopback needs, and still
# allows a 100 Mbit/s link.
MIN_TRANSFER_RATE = 8 * 1024**2
# Bytes per second that a store must at least be taken in at, the server's work
# included (about 10 MB/s for the memory backend on a busy 2-core machine): a
# store comes after an archive's answer that took far longer.
MIN_STORE_RATE = 2 * 1024**2
# The largest piece of a streamed answer: a 1 MiB chunk and its fields.
STREAM_PIECE_BYTES = 1024**2 + 64

# The streamed form of each lookup: the RPC, its request wrapping the unary
# request, and the unary response that its pieces make up, read through this
# client's view of it (``convert.view``: each object's attributes as their bytes).
_STREAMED = {
    "LookupQuery": ("StreamLookupQuery", pb.StreamLookupQueryRequest, view.LookupQueryResponse),
    "LookupStudy": ("StreamLookupStudy", pb.StreamLookupStudyRequest, view.LookupStudyResponse),
}
_STORES = {"StoreQuery": pb.StoreQueryResponse, "StoreStudy": pb.StoreStudyResponse}
# The streamed form of each store: its method, the cutter of its request into pieces
# (wire bytes, see ``pieces``) and its response.
_SERVICE = pb.DESCRIPTOR.services_by_name["CacheService"].full_name
_STREAMED_STORES: dict[str, tuple[str, Callable[[Any, int], Iterator[bytes]], Any]] = {
    "StoreQuery": (f"/{_SERVICE}/StreamStoreQuery", query_pieces, pb.StreamStoreQueryResponse),
    "StoreStudy": (f"/{_SERVICE}/StreamStoreStudy", study_pieces, pb.StreamStoreStudyResponse),
}

# Reconnect soon after the server comes back (gRPC's default waits up to 120 s).
CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    # Streamed lookups read on the calling thread, as unary calls do: handing each
    # piece over from gRPC's own thread cost 1 to 2 ms a call on a busy 2-core machine
    # (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream).
    ("SingleThreadedUnaryStream", 1),
)


def reference_to_proto(reference: DICOMObjectReference) -> objects_pb2.ObjectReference:
    """The wire form of a dicomtrolley reference."""
    if isinstance(reference, InstanceReference):
        return objects_pb2.ObjectReference(
            instance=objects_pb2.InstanceReference(
                study_uid=reference.study_uid,
                series_uid=reference.series_uid,
                instance_uid=reference.instance_uid,
            )
        )
    if isinstance(reference, SeriesReference):
        return objects_pb2.ObjectReference(
            series=objects_pb2.SeriesReference(
                study_uid=reference.study_uid, series_uid=reference.series_uid
            )
        )
    if isinstance(reference, StudyReference):
        return objects_pb2.ObjectReference(
            study=objects_pb2.StudyReference(study_uid=reference.study_uid)
        )
    raise TypeError(f"not a dicomtrolley reference: {type(reference).__name__}")


class Fresh(NamedTuple):
    """A lookup's answer (None on a miss), its lease, and how long a hit may be kept."""

    value: Any
    lease: int
    fresh_for: float  # seconds, from before the call: the server's fresh_for_ms
    response: Any  # the response message, for its size

    @property
    def wire_bytes(self) -> int:
        """The response's serialized size."""
        return int(self.response.ByteSize())


class CacheClient:
    """A connection to a dicomcache server.

    Thread-safe (gRPC channels and stubs are; the learnt server limit is one int).
    Deadlines are gRPC's, and for lookups also the watchdog's, on its injected
    monotonic clock.

    Args:
        target: the server's address, e.g. "127.0.0.1:50051".
        timeout: seconds each call may take before it fails with CacheUnavailable;
            for a lookup, seconds to the first piece of its answer (see above).
        channel: a channel to use instead of an insecure one to ``target``; its
            receive limit should be at least ``max_message_bytes`` and 1 MiB.
        max_message_bytes: the largest message this client receives (a unary
            answer), by default the server's default (``contract.MAX_MESSAGE_BYTES``).
        max_answer_bytes: the largest answer this client receives, streamed, by
            default the server's default (``contract.MAX_ANSWER_BYTES``). A larger
            answer is a CacheUnavailable, never a hit. A store larger than this, or
            than the server's own largest answer (learnt from each lookup), is not
            sent: it could never come back, and ``store_*`` return False.
        clock: the watchdog's monotonic clock.
        tls: TLS towards the server (its CA, and a client certificate for mutual
            TLS); None talks plaintext, which the server allows on loopback only.
        token: a bearer token sent with every call, as a string or a ``Token``
            (which can read it from a file, re-read when it changes).
        trace_context: send the current OpenTelemetry trace context with every call,
            so the server's spans join the caller's trace; needs the ``tracing``
            extra. The lookups and stores carry it in their requests' ``traceparent``
            and ``tracestate`` fields (cheaper than metadata), other calls as W3C
            metadata; with a propagator other than the default, or baggage, all
            calls send the propagator's metadata.

    Raises:
        OSError: a TLS file cannot be read.
        ValueError: the token is not one non-empty word.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        timeout: float = DEFAULT_TIMEOUT,
        channel: grpc.Channel | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        clock: Callable[[], float] = time.monotonic,
        tls: ClientTLS | None = None,
        token: Token | str | None = None,
        trace_context: bool = False,
    ) -> None:
        self.target = target
        # Writes the trace context into a request (``tracing.carrier``), when sent.
        self._carry = carrier() if trace_context else None
        self.tls = tls
        self._token = Token(token) if isinstance(token, str) else token
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self.max_answer_bytes = max_answer_bytes
        # The server's limits, learnt from the first lookup.
        self.server_max_message_bytes: int | None = None
        self.server_max_answer_bytes: int | None = None
        self._watchdog = Watchdog(clock)
        # Called with (namespace, study uid or None) after each Invalidate: near caches.
        self.invalidation_listeners: list[Callable[[str, str | None], None]] = []
        self._own_channel = channel is None
        receive = max(max_message_bytes, STREAM_PIECE_BYTES)  # the limit on answers is ours
        options = (*CHANNEL_OPTIONS, ("grpc.max_receive_message_length", receive))
        if channel is None and tls is not None:
            credentials = tls.channel_credentials()
            channel = grpc.secure_channel(target, credentials, (*options, *tls.channel_options()))
        self.channel = channel if channel is not None else grpc.insecure_channel(target, options)
        stub = cache_service_pb2_grpc.CacheServiceStub
        self._stub = stub(self.channel)  # type: ignore[no-untyped-call]  # generated, unannotated
        self._lookup_study_unary = self.channel.unary_unary(
            "/dicomcache.v1.CacheService/LookupStudy",
            request_serializer=pb.LookupStudyRequest.SerializeToString,
            response_deserializer=view.LookupStudyResponse.FromString,  # as _streamed reads it
        )

    @property
    def trace_context(self) -> bool:
        """Whether the current trace context goes with every call (``trace_context``)."""
        return self._carry is not None

    def close(self) -> None:
        """Close the channel, if this client opened it."""
        if self._own_channel:
            self.channel.close()

    def __enter__(self) -> CacheClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, request: Any) -> Any:
        """Call one RPC with the deadline; the only place gRPC errors are translated.

        A lookup goes as its streamed form, and so does a store larger than a piece
        (or than the server's largest message). A store gets ``timeout`` plus its
        size at ``MIN_STORE_RATE``; one too large to come back is not sent.
        """
        if method == "LookupStudy" and request.query_level <= query_pb2.QUERY_LEVEL_STUDY:
            return self._study_level(request)
        if method in _STREAMED:
            return self._streamed(method, request)
        timeout = self.timeout
        stub = getattr(self._stub, method)
        metadata = self._metadata(request)  # before a store is measured or cut
        if method in _STORES:
            size = request.ByteSize()
            if size > self._store_limit():
                return _STORES[method](stored=False)
            timeout += size / MIN_STORE_RATE
            piece = min(PIECE_BYTES, self.server_max_message_bytes or PIECE_BYTES)
            if size > piece:
                path, cut, response = _STREAMED_STORES[method]
                stub = self.channel.stream_unary(path, None, response.FromString)
                request = cut(request, piece)
        try:
            return stub(request, timeout=timeout, metadata=metadata)
        except grpc.RpcError as exc:
            raise translate(exc) from exc

    def _metadata(self, request: Any = None) -> tuple[tuple[str, str], ...] | None:
        """The call's metadata: the token and the trace context, when there are.

        The trace context goes in ``request`` itself when it is one of the requests
        with ``traceparent`` fields (``_TRACED``): then only the token is metadata.
        A token file that cannot be read is a cache fault.
        """
        token, carry = self._token, self._carry
        if token is None:  # the trace context alone, if any: one Python call on a hit
            if carry is None:
                return None
            return (carry(request) if type(request) in _TRACED else trace_metadata()) or None
        try:
            metadata = token.metadata()
        except (OSError, ValueError) as exc:
            raise CacheUnavailable(f"cannot read the cache token: {type(exc).__name__}") from exc
        if carry is not None:
            if type(request) in _TRACED:
                metadata = (*metadata, *carry(request))
            else:
                metadata = (*metadata, *trace_metadata())
        return metadata or None

    def _store_limit(self) -> int:
        """The largest store worth sending: its hit must fit this client and the server."""
        server = self.server_max_answer_bytes
        return self.max_answer_bytes if server is None else min(server, self.max_answer_bytes)

    def _study_level(self, request: pb.LookupStudyRequest) -> Any:
        """A study-level LookupStudy as one unary call: its answer is one dataset, so
        the stream's bound on the first piece would guard nothing and cost ~0.1 ms a hit.
        An answer too large for one message (the server refuses it) goes streamed."""
        try:
            return self._lookup_study_unary(
                request, timeout=self.timeout, metadata=self._metadata(request)
            )
        except grpc.RpcError as exc:
            too_large = "StreamLookupStudy" in (exc.details() or "")  # not a shed call
            if exc.code() is grpc.StatusCode.RESOURCE_EXHAUSTED and too_large:
                return self._streamed("LookupStudy", request)
            raise translate(exc) from exc

    def _streamed(self, method: str, request: Any) -> Any:
        """A lookup's response, streamed: the first piece within ``timeout``, the rest by size."""
        name, wrapper, response_type = _STREAMED[method]
        backstop = 2 * self.timeout + self.max_answer_bytes / MIN_TRANSFER_RATE
        metadata = self._metadata(request)
        call = getattr(self._stub, name)(
            wrapper(request=request), timeout=backstop, metadata=metadata
        )
        watch = self._watchdog.watch(call, self.timeout)
        try:
            first = next(call, None)
            if first is None:
                raise CacheError(f"cache sent no answer to {name}")
            total = first.total_bytes
            self.server_max_message_bytes = first.max_message_bytes or None
            # A server older than max_answer_bytes kept answers up to its largest message.
            self.server_max_answer_bytes = first.max_answer_bytes or first.max_message_bytes or None
            if total > self.max_answer_bytes:
                call.cancel()
                raise CacheUnavailable(
                    f"cache answer of {total} bytes is larger than this client's limit "
                    f"({self.max_answer_bytes}); make the two max_answer_bytes agree",
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                )
            watch.move(self._watchdog.now() + self.timeout + total / MIN_TRANSFER_RATE)
            pieces = [first.chunk, *(piece.chunk for piece in call)]
        except grpc.RpcError as exc:
            if watch.fired:
                raise CacheUnavailable(
                    "cache answer not complete within its deadline",
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ) from exc
            raise translate(exc) from exc
        finally:
            watch.stop()
        data = b"".join(pieces)
        if len(data) != total:
            raise CacheError(f"cache answer of {len(data)} bytes, {total} announced")
        return response_type.FromString(data)

    def lookup_query(
        self, namespace: str, query: Query | query_pb2.Query, *, pause_gc: bool = False
    ) -> list[Study] | None:
        """The cached answer to a query, or None on a miss.

        Args:
            namespace: the upstream archive's namespace.
            query: a dicomtrolley Query, or one already converted.
            pause_gc: pause the garbage collector while the hit's objects are
                built (see ``convert.collector``).

        Raises:
            CacheError: the call failed.
            QueryConversionError: the query cannot be carried by the contract.
        """
        return self.lookup_query_leased(namespace, query, pause_gc=pause_gc)[0]

    def lookup_query_leased(
        self,
        namespace: str,
        query: Query | query_pb2.Query,
        *,
        pause_gc: bool = False,
        protocol: str | None = None,
        request: query_pb2.ArchiveRequest | None = None,
    ) -> tuple[list[Study] | None, int]:
        """As ``lookup_query``, with the lease of a miss (0 on a hit) for ``store_query``.

        A store under the lease is refused if the namespace, or a study the answer
        holds, is invalidated after the miss: the answer fetched meanwhile may be old.

        Args:
            protocol: the upstream's protocol ("qido-rs", "dicom-qr", "mint"); its
                entries are its own. None: entries apart from every protocol.
            request: the request the query becomes at the archive, the cache key;
                built from a dicomtrolley query for QIDO-RS and DICOM-QR when not given.
        """
        found = self.lookup_query_fresh(
            namespace, query, pause_gc=pause_gc, protocol=protocol, request=request
        )
        return found.value, found.lease

    def lookup_query_fresh(
        self,
        namespace: str,
        query: Query | query_pb2.Query,
        *,
        pause_gc: bool = False,
        protocol: str | None = None,
        request: query_pb2.ArchiveRequest | None = None,
    ) -> Fresh:
        """As ``lookup_query_leased``, with how long a hit may be kept (a near cache's)."""
        message = query if isinstance(query, query_pb2.Query) else query_to_proto(query)
        lookup = pb.LookupQueryRequest(
            namespace=namespace, query=message, protocol=protocol_value(protocol)
        )
        request = _request(protocol, query, request)
        if request is not None:
            lookup.archive_request.CopyFrom(request)
        response = self._call("LookupQuery", lookup)
        if not response.hit:
            return Fresh(None, int(response.lease), 0.0, response)
        studies = studies_from_view(response.studies, pause_gc=pause_gc)
        return Fresh(studies, 0, response.fresh_for_ms / 1000, response)

    def store_query(
        self,
        namespace: str,
        query: Query | query_pb2.Query,
        studies: Sequence[Study],
        ttl: int = 0,
        lease: int = 0,
        *,
        protocol: str | None = None,
        request: query_pb2.ArchiveRequest | None = None,
    ) -> bool:
        """Store an upstream's answer to a query (ttl in seconds, 0 for the server's).

        ``protocol`` and ``request`` as for ``lookup_query_leased``. Returns False
        when the server refused the store: its lease was revoked.
        """
        message = query if isinstance(query, query_pb2.Query) else query_to_proto(query)
        store = pb.StoreQueryRequest(
            namespace=namespace,
            query=message,
            studies=[study_to_proto(s) for s in studies],
            ttl_seconds=ttl,
            lease=lease,
            protocol=protocol_value(protocol),
        )
        request = _request(protocol, query, request)
        if request is not None:
            store.archive_request.CopyFrom(request)
        response = self._call("StoreQuery", store)
        return bool(response.stored)

    def lookup_study(
        self, namespace: str, study_uid: str, level: QueryLevels, *, pause_gc: bool = False
    ) -> Study | None:
        """The study complete down to ``level``, or None on a miss.

        ``pause_gc`` as for ``lookup_query``.
        """
        return self.lookup_study_leased(namespace, study_uid, level, pause_gc=pause_gc)[0]

    def lookup_study_leased(
        self,
        namespace: str,
        study_uid: str,
        level: QueryLevels,
        *,
        pause_gc: bool = False,
        protocol: str | None = None,
    ) -> tuple[Study | None, int]:
        """As ``lookup_study``, with the lease of a miss (0 on a hit) for ``store_study``."""
        found = self.lookup_study_fresh(
            namespace, study_uid, level, pause_gc=pause_gc, protocol=protocol
        )
        return found.value, found.lease

    def lookup_study_fresh(
        self,
        namespace: str,
        study_uid: str,
        level: QueryLevels,
        *,
        pause_gc: bool = False,
        protocol: str | None = None,
    ) -> Fresh:
        """As ``lookup_study_leased``, with how long a hit may be kept (a near cache's)."""
        request = pb.LookupStudyRequest(
            namespace=namespace,
            study_uid=study_uid,
            query_level=LEVELS[QueryLevels(level)],
            protocol=protocol_value(protocol),
        )
        response = self._call("LookupStudy", request)
        if not response.hit:
            return Fresh(None, int(response.lease), 0.0, response)
        study = study_from_view(response.study, pause_gc=pause_gc)
        return Fresh(study, 0, response.fresh_for_ms / 1000, response)

    def store_study(
        self,
        namespace: str,
        study: Study,
        level: QueryLevels,
        ttl: int = 0,
        lease: int = 0,
        *,
        protocol: str | None = None,
    ) -> bool:
        """Store a study-by-id answer, complete down to ``level``; False when refused."""
        request = pb.StoreStudyRequest(
            namespace=namespace,
            study=study_to_proto(study),
            query_level=LEVELS[QueryLevels(level)],
            ttl_seconds=ttl,
            lease=lease,
            protocol=protocol_value(protocol),
        )
        return bool(self._call("StoreStudy", request).stored)

    def add_objects(self, namespace: str, objects: Sequence[DICOMObject], ttl: int = 0) -> int:
        """Add objects with their descendants; returns how many objects the server wrote.

        The objects go in calls of about ``pieces.PIECE_BYTES`` each (whole trees; one
        larger goes alone), as a large store goes in pieces: the server refuses a
        message larger than its largest. AddObjects promises nothing across objects,
        so the calls are not one write: when one fails, the ones before it stay written.
        """
        if isinstance(objects, DICOMObject):
            raise TypeError("objects must be a sequence of DICOM objects, not one object")
        trees = [rooted_tree_to_proto(o) for o in objects]
        batches: list[list[objects_pb2.Study]] = [[]]
        size = 0
        for tree in trees:
            tree_size = tree.ByteSize()
            if batches[-1] and size + tree_size > PIECE_BYTES:
                batches.append([])
                size = 0
            batches[-1].append(tree)
            size += tree_size
        written = 0
        for batch in batches:
            request = pb.AddObjectsRequest(namespace=namespace, studies=batch, ttl_seconds=ttl)
            written += int(self._call("AddObjects", request).objects_written)
        return written

    def retrieve(
        self, namespace: str, references: Sequence[DICOMObjectReference]
    ) -> list[DICOMObject | None]:
        """The cached object for each reference (None where not cached), in one call.

        A series or instance comes with its parents linked; a parent that is not
        cached itself is an object with an empty Dataset, as dicomtrolley builds them.
        """
        wanted: list[objects_pb2.ObjectReference] = []
        for ref in references:
            wanted.append(reference_to_proto(ref))
            if not isinstance(ref, StudyReference):
                wanted.append(reference_to_proto(StudyReference(study_uid=ref.study_uid)))
            if isinstance(ref, InstanceReference):
                wanted.append(
                    reference_to_proto(
                        SeriesReference(study_uid=ref.study_uid, series_uid=ref.series_uid)
                    )
                )
        results = iter(
            self._call(
                "GetObjects", pb.GetObjectsRequest(namespace=namespace, references=wanted)
            ).results
        )
        found: list[DICOMObject | None] = []
        for ref in references:
            result = next(results)
            if isinstance(ref, StudyReference):
                found.append(study_from_proto(result.study) if result.found else None)
                continue
            study = _parent_study(next(results), ref.study_uid)
            if isinstance(ref, SeriesReference):
                found.append(series_from_proto(result.series, study) if result.found else None)
                continue
            series = _parent_series(next(results), study, ref.series_uid)
            found.append(instance_from_proto(result.instance, series) if result.found else None)
        return found

    def invalidate(self, namespace: str, reference: DICOMObjectReference | None = None) -> int:
        """Drop one object and what depends on it, or a namespace; returns objects dropped."""
        request = pb.InvalidateRequest(namespace=namespace)
        if reference is not None:
            request.reference.CopyFrom(reference_to_proto(reference))
        removed = int(self._call("Invalidate", request).objects_removed)
        study_uid = None if reference is None else str(reference.study_uid)
        for listener in self.invalidation_listeners:  # near caches: dropped before we return
            listener(namespace, study_uid)
        return removed

    def watch_invalidations(self, namespace: str) -> Any:
        """The WatchInvalidations stream of ``namespace`` (``client.near``): an iterator
        of WatchInvalidationsResponse that never ends by itself, with ``cancel``.

        Raises:
            CacheUnavailable: the token cannot be read. The stream's own errors are
                ``grpc.RpcError``, raised as it is read: its reader handles them.
        """
        request = invalidations_pb2.WatchInvalidationsRequest(namespace=namespace)
        return self._stub.WatchInvalidations(request, metadata=self._metadata())

    def stats(self, namespace: str = "", *, page_size: int = 0) -> pb.GetStatsResponse:
        """Counters of one namespace, or of all when namespace is empty.

        All namespaces come a page at a time (each page one call within ``timeout``);
        this asks for every page and returns them as one response, without a
        ``next_page_token``, with the totals of the last page.

        Args:
            namespace: the namespace; empty for all.
            page_size: namespaces per call; 0 for the server's default.
        Returns:
            The counters, in namespace order.
        Raises:
            CacheError: as any call (``errors.py``); pages already read are dropped.
        """
        request = pb.GetStatsRequest(namespace=namespace, page_size=page_size)
        response: pb.GetStatsResponse = self._call("GetStats", request)
        while response.next_page_token:
            request.page_token = response.next_page_token
            page: pb.GetStatsResponse = self._call("GetStats", request)
            if page.next_page_token == request.page_token:
                raise CacheError("GetStats: the server gave the same page token twice")
            response.namespaces.extend(page.namespaces)
            response.total_bytes, response.max_bytes = page.total_bytes, page.max_bytes
            response.next_page_token = page.next_page_token
        return response


def _request(
    protocol: str | None, query: Query | query_pb2.Query, given: query_pb2.ArchiveRequest | None
) -> query_pb2.ArchiveRequest | None:
    """The archive request to key by: the one given, else the one the upstream would send."""
    if given is not None or isinstance(query, query_pb2.Query):
        return given
    return archive_request(protocol, query)


def _parent_study(result: pb.GetObjectsResult, uid: str) -> Study:
    if result.found:
        study = study_from_proto(objects_pb2.Study(uid=uid, attributes=result.study.attributes))
        return study
    return Study(uid=uid, data=Dataset(), series=())


def _parent_series(result: pb.GetObjectsResult, study: Study, uid: str) -> Series:
    if result.found:
        return series_from_proto(
            objects_pb2.Series(uid=uid, attributes=result.series.attributes), study
        )
    return Series(uid=uid, data=Dataset(), parent=study, instances=())
