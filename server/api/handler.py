"""Serving ``CacheService`` over gRPC: parse each request, call, map errors, count calls.

Handlers are registered through a generic handler rather than the generated
``add_CacheServiceServicer_to_server`` for two reasons: hit responses are
returned as ready-made bytes (see ``encode``), and a request that does not parse
must come back as INVALID_ARGUMENT, not as gRPC's own INTERNAL.

The streamed lookups (``StreamLookupQuery``, ``StreamLookupStudy``) are the unary
lookups' bytes cut into pieces: the first piece leaves once the answer is ready
and says the size, so a client bounds the cache's work and the transfer apart.
The streamed stores (``StreamStoreQuery``, ``StreamStoreStudy``) take the unary
store's request in pieces (``pieces``). Both exist because grpcio takes in a message,
and copies out a reply, in one step that holds the interpreter lock (about 1 ms per
MB: a 250 MB StoreStudy stopped every other call of the process for 0.2 s), so the
server's receive limit, its largest message, stays small (4 MiB by default) and no
message is larger than that.

Every call is authenticated before anything else (an unknown caller learns not
even whether its request parses), then authorized on the namespace it names,
before the service sees it: the one place, ``server/auth/authorizer.py``.
"""

from __future__ import annotations

import math
import mmap
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from dicomcache.server.api import encode, status, wire
from dicomcache.server.api.service import SERVICE_NAME, CacheService
from dicomcache.server.auth.access import Access
from dicomcache.server.auth.authorizer import Authorizer
from dicomcache.server.auth.rights import Right
from dicomcache.server.errors import AnswerTooLarge, InvalidArgument, StreamBroken
from dicomcache.server.pacing import RECENT, Pace
from dicomcache.server.search.engine import DEFAULT_TIMEOUT
from dicomcache.server.telemetry import Telemetry
from dicomcache.server.telemetry.calls import Counted
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import search_pb2


class InFlight:
    """Counts calls being served, so shutdown can wait for exactly those, and large
    requests pause while others are about (``busy``, ``server.pacing``).

    Thread-safe. Unary calls, the streamed lookups and stores count; other streams (health
    Watch) do not: they never end by themselves. Clock: ``time.monotonic``.
    """

    # Seconds between looks while waiting: shutdown is the only waiter, and a call pays
    # a plain lock instead of a condition's (a hit's fixed cost, row 17c).
    POLL = 0.005

    def __init__(self) -> None:
        self._count = 0
        self._began = -math.inf  # when the last call began
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        began = time.monotonic()
        with self._lock:
            self._count += 1
            self._began = began

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._count -= 1

    def busy(self, now: float) -> bool:
        """Whether a call other than the asker is in flight, or one began within RECENT
        seconds of ``now`` (the asker's own start included: a moment's pauses, at most)."""
        return self._count > 1 or now - self._began < RECENT

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight; False when timeout passed first.

        Clock: ``time.monotonic``.
        """
        deadline = time.monotonic() + timeout
        while self._count:
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.POLL)
        return True


class _Malformed:
    """Stands in for a request whose bytes did not parse."""


def _parser(message_type: type[Message]) -> Callable[[bytes], Any]:
    """The request's parser, run on the call's worker thread, never as a deserializer.

    grpcio runs a method's ``request_deserializer`` on its one polling thread: while
    a 250 MB StoreStudy parsed there (seconds, even in pieces), no other call could
    begin, and every small call behind it waited (issue 11, stall rows S1 and S3).
    So methods take the raw bytes and each worker parses its own request.
    """

    def parse(data: bytes) -> Any:
        try:
            return wire.parse(message_type, data)  # in pieces: see ``wire``
        except (DecodeError, RecursionError, ValueError):
            return _Malformed()

    return parse


def _serialize(response: encode.Hit | Message) -> encode.Hit:
    return response if isinstance(response, (bytes, mmap.mmap)) else response.SerializeToString()


# A service method and whether it takes the caller's access (GetStats filters by it).
Call = tuple[Callable[..., Any], type[Message], bool]

# Methods that take the seconds left before the call's deadline (Search waits on an archive).
_TIMED = frozenset({"Search"})
# Methods whose service answers are always ready-made bytes (``encode``): grpcio sends
# them as they are, without calling a serializer (a hit's fixed cost, row 17c).
_BYTES = frozenset({"LookupQuery", "LookupStudy", "GetObjects"})


def _timeout(context: grpc.ServicerContext) -> float:
    """Seconds left before the call's deadline; DEFAULT_TIMEOUT when the caller set none."""
    left = context.time_remaining()
    return DEFAULT_TIMEOUT if left is None else max(left, 0.0)


def _unary(
    method: str,
    call: Call,
    in_flight: InFlight,
    pace: Callable[[], Pace],
    authorizer: Authorizer,
    telemetry: Telemetry,
) -> grpc.RpcMethodHandler:
    function, message_type, takes_access = call
    timed = method in _TIMED

    parse = _parser(message_type)

    def handle(raw: bytes, context: grpc.ServicerContext) -> Any:
        with in_flight, pace(), telemetry.call(method, context) as seen:
            try:
                # Who first: a caller the policy does not know learns nothing, not even
                # whether its request parses.
                access = authorizer.authenticate(context)
                request = parse(raw)
                if isinstance(request, _Malformed):
                    raise InvalidArgument.single(
                        "request", f"must be a serialized {message_type.DESCRIPTOR.full_name}"
                    )
                seen.begin(request)
                authorizer.authorize(method, request, access)
                if takes_access:
                    response = function(request, _visible(access))
                elif timed:  # Search: it may add trailing metadata (a stale answer's reason)
                    response = function(request, _timeout(context), context.set_trailing_metadata)
                else:
                    response = function(request)
            except Exception as exc:
                seen.failed(exc)
                status.abort(context, exc, method)
            seen.answered(response)
            return response

    serializer = None if method in _BYTES else _serialize
    return grpc.unary_unary_rpc_method_handler(handle, response_serializer=serializer)


# The most of a response that one stream message carries: small enough that the
# pieces keep flowing (and fit any sane message limit), large enough that a 10 MB
# answer is ten messages, not thousands.
STREAM_CHUNK_BYTES = 1024 * 1024
# Room for a stream message's own fields around its chunk.
_STREAM_OVERHEAD = 32


def _visible(access: Access) -> Callable[[str], bool] | None:
    """The namespaces GetStats of all may list: those with the stats right; None for all."""
    scope = access.scope(Right.STATS)
    return None if scope.everything else scope.__contains__


def _streamed(
    method: str,
    call: Call,
    in_flight: InFlight,
    pace: Callable[[], Pace],
    limits: tuple[int, int],
    authorizer: Authorizer,
    telemetry: Telemetry,
) -> grpc.RpcMethodHandler:
    """A Stream* lookup: the unary lookup ``call`` of the wrapped request, in pieces."""
    function, message_type, _ = call
    max_message_bytes, max_answer_bytes = limits
    chunk_bytes = min(STREAM_CHUNK_BYTES, max_message_bytes - _STREAM_OVERHEAD)

    parse = _parser(message_type)

    def handle(raw: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        # Until the last piece is sent or the call is cancelled.
        with in_flight, pace(), telemetry.call(method, context) as seen:
            try:
                access = authorizer.authenticate(context)
                request = parse(raw)
                if isinstance(request, _Malformed):
                    raise InvalidArgument.single(
                        "request", f"must be a serialized {message_type.DESCRIPTOR.full_name}"
                    )
                if not request.HasField("request"):
                    raise InvalidArgument.single("request", "must be set")
                seen.begin(request.request)
                authorizer.authorize(method, request, access)
                response = _serialize(function(request.request))
            except Exception as exc:
                seen.failed(exc)
                status.abort(context, exc, method)
            seen.answered(response)
            try:
                yield from encode.stream(response, chunk_bytes, max_message_bytes, max_answer_bytes)
            finally:
                encode.close(response)  # a large hit's mapping: unmapped, the lock let go

    return grpc.unary_stream_rpc_method_handler(handle)


def _stream_store(
    method: str,
    call: Call,
    in_flight: InFlight,
    pace: Callable[[], Pace],
    limits: tuple[int, int],
    authorizer: Authorizer,
    telemetry: Telemetry,
) -> grpc.RpcMethodHandler:
    """A StreamStore* store: ``call`` of the pieces, each parsed on the call's thread."""
    function, message_type, _ = call
    parse = _parser(message_type)
    name = message_type.DESCRIPTOR.full_name
    max_message_bytes, max_answer_bytes = limits
    # Room for the first piece's own fields and the pieces' framing beside the answer.
    most = max_answer_bytes + max_message_bytes

    def pieces(raw: Iterable[bytes], access: Access, seen: Counted) -> Iterator[Any]:
        total = 0
        try:
            for index, data in enumerate(raw):
                total += len(data)
                if total > most:
                    raise AnswerTooLarge(total, max_answer_bytes, what="answer")
                piece = parse(data)
                if isinstance(piece, _Malformed):
                    raise InvalidArgument.single(f"pieces[{index}]", f"must be a serialized {name}")
                if index == 0:
                    if not piece.HasField("store"):
                        raise InvalidArgument.single("pieces[0].store", "must be set first")
                    seen.begin(piece.store)
                    authorizer.authorize(method, piece, access)
                yield piece
        except grpc.RpcError as exc:  # the client cancelled, its deadline passed, it went away
            raise StreamBroken(f"{method}: the stream broke off; nothing was stored") from exc

    def handle(raw: Iterator[bytes], context: grpc.ServicerContext) -> Any:
        with in_flight, pace(), telemetry.call(method, context) as seen:
            try:
                access = authorizer.authenticate(context)
                response = function(pieces(raw, access, seen))
            except Exception as exc:
                seen.failed(exc)
                status.abort(context, exc, method)
            seen.answered(response)
            return response

    return grpc.stream_unary_rpc_method_handler(handle, response_serializer=_serialize)


def handler(
    service: CacheService,
    in_flight: InFlight,
    authorizer: Authorizer | None = None,
    telemetry: Telemetry | None = None,
) -> grpc.GenericRpcHandler:
    """The gRPC handler that serves ``service`` as dicomcache.v1.CacheService.

    Every call is authenticated and authorized by ``authorizer`` before the
    service sees it (``server/auth``); without one, every caller has every right.
    Every call is observed by ``telemetry`` (``server/telemetry``).
    """
    authorizer = authorizer if authorizer is not None else Authorizer()
    telemetry = telemetry if telemetry is not None else Telemetry()
    pace = partial(Pace, in_flight.busy)  # large requests pause while others are about
    table: dict[str, Call] = {
        "LookupQuery": (service.lookup_query, pb.LookupQueryRequest, False),
        "StoreQuery": (service.store_query, pb.StoreQueryRequest, False),
        "LookupStudy": (service.lookup_study, pb.LookupStudyRequest, False),
        "StoreStudy": (service.store_study, pb.StoreStudyRequest, False),
        "AddObjects": (service.add_objects, pb.AddObjectsRequest, False),
        "GetObjects": (service.get_objects, pb.GetObjectsRequest, False),
        "Invalidate": (service.invalidate, pb.InvalidateRequest, False),
        "GetStats": (service.get_stats, pb.GetStatsRequest, True),
        "Search": (service.search, search_pb2.SearchRequest, False),
    }
    streams: dict[str, Call] = {
        "StreamLookupQuery": (
            partial(service.lookup_query, streamed=True),
            pb.StreamLookupQueryRequest,
            False,
        ),
        "StreamLookupStudy": (
            partial(service.lookup_study, streamed=True),
            pb.StreamLookupStudyRequest,
            False,
        ),
    }
    stores: dict[str, Call] = {
        "StreamStoreQuery": (service.stream_store_query, pb.StreamStoreQueryRequest, False),
        "StreamStoreStudy": (service.stream_store_study, pb.StreamStoreStudyRequest, False),
    }
    methods = {
        name: _unary(name, call, in_flight, pace, authorizer, telemetry)
        for name, call in table.items()
    }
    limits = (service.max_message_bytes, service.max_answer_bytes)
    methods.update(
        (name, _streamed(name, call, in_flight, pace, limits, authorizer, telemetry))
        for name, call in streams.items()
    )
    methods.update(
        (name, _stream_store(name, call, in_flight, pace, limits, authorizer, telemetry))
        for name, call in stores.items()
    )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)
