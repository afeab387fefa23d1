"""The CacheService: parse, validate, call the backend, reply. Nothing else.

Handlers are registered through a generic handler rather than the generated
``add_CacheServiceServicer_to_server`` for two reasons: hit responses are
returned as ready-made bytes (see ``wire``), and a request that does not parse
must come back as INVALID_ARGUMENT, not as gRPC's own INTERNAL.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError, Message

from dicomcache.server.api import encode, status
from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.api.keys import query_key
from dicomcache.server.api.validation import MAX_REFERENCES, Checker
from dicomcache.server.backends import Backend
from dicomcache.server.errors import InvalidArgument
from dicomcache.v1 import cache_service_pb2 as pb

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CacheService"].full_name


class CacheService:
    """The RPCs of dicomcache.v1.CacheService over one backend.

    Thread-safe when the backend is (every backend is). Holds no clock: time is the
    backend's business.
    """

    def __init__(self, backend: Backend, *, max_ttl: float) -> None:
        self.backend = backend
        self.max_ttl = max_ttl

    def _ttl(self, seconds: int) -> float | None:
        """0 means the default; a longer TTL than the server's is cut to the server's."""
        return min(float(seconds), self.max_ttl) if seconds else None

    def lookup_query(self, request: pb.LookupQueryRequest) -> bytes:
        """LookupQuery: a hit as stored bytes, or a miss."""
        check = Checker()
        check.namespace(request.namespace)
        check.query(request.query)
        check.done()
        studies = self.backend.lookup_query(request.namespace, query_key(request.query))
        return encode.MISS if studies is None else encode.query_hit(studies)

    def store_query(self, request: pb.StoreQueryRequest) -> pb.StoreQueryResponse:
        """StoreQuery: the answer's objects, then the answer."""
        check = Checker()
        check.namespace(request.namespace)
        check.query(request.query)
        check.studies(request.studies, "studies")
        check.done()
        studies = [study_from_proto(s) for s in request.studies]
        key = query_key(request.query)
        self.backend.store_query(request.namespace, key, studies, self._ttl(request.ttl_seconds))
        return pb.StoreQueryResponse()

    def lookup_study(self, request: pb.LookupStudyRequest) -> bytes:
        """LookupStudy: the study complete to the level, or a miss."""
        check = Checker()
        check.namespace(request.namespace)
        check.uid(request.study_uid, "study_uid")
        level = check.level(request.query_level, "query_level")
        check.done()
        study = self.backend.lookup_study(request.namespace, request.study_uid, level)
        return encode.MISS if study is None else encode.study_hit(study)

    def store_study(self, request: pb.StoreStudyRequest) -> pb.StoreStudyResponse:
        """StoreStudy: a study-by-id answer, complete to its level."""
        check = Checker()
        check.namespace(request.namespace)
        if not request.HasField("study"):
            check.fail("study", "must be set")
        check.studies([request.study], "study")
        level = check.level(request.query_level, "query_level")
        check.done()
        self.backend.store_study(
            request.namespace,
            study_from_proto(request.study),
            level,
            self._ttl(request.ttl_seconds),
        )
        return pb.StoreStudyResponse()

    def add_objects(self, request: pb.AddObjectsRequest) -> pb.AddObjectsResponse:
        """AddObjects: objects and their descendants, without a query."""
        check = Checker()
        check.namespace(request.namespace)
        check.studies(request.studies, "studies")
        check.done()
        written = self.backend.add_objects(
            request.namespace,
            [study_from_proto(s) for s in request.studies],
            self._ttl(request.ttl_seconds),
        )
        return pb.AddObjectsResponse(objects_written=written)

    def get_objects(self, request: pb.GetObjectsRequest) -> bytes:
        """GetObjects: each referenced object with its cached descendants."""
        check = Checker()
        check.namespace(request.namespace)
        if len(request.references) > MAX_REFERENCES:
            check.fail("references", f"must have at most {MAX_REFERENCES} entries")
            check.done()
        addresses = [
            check.reference(ref, f"references[{i}]") for i, ref in enumerate(request.references)
        ]
        check.done()
        return encode.objects_result(
            [self.backend.get_object(request.namespace, a) for a in addresses]
        )

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
        removed = self.backend.invalidate(request.namespace, address)
        log.info("invalidated %d objects (%s)", removed, "one object" if address else "namespace")
        return pb.InvalidateResponse(objects_removed=removed)

    def get_stats(self, request: pb.GetStatsRequest) -> pb.GetStatsResponse:
        """GetStats: counters of one namespace or all."""
        check = Checker()
        if request.namespace:
            check.namespace(request.namespace)
        check.done()
        return encode.stats_to_proto(self.backend.stats(request.namespace or None))


class InFlight:
    """Counts unary calls being served, so shutdown can wait for exactly those.

    Thread-safe. Streams (health Watch) are not counted: they never end by themselves.
    """

    def __init__(self) -> None:
        self._count = 0
        self._idle = threading.Condition()

    def __enter__(self) -> None:
        with self._idle:
            self._count += 1

    def __exit__(self, *_: object) -> None:
        with self._idle:
            self._count -= 1
            if not self._count:
                self._idle.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no call is in flight; False when timeout passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._count, timeout)


class _Malformed:
    """Stands in for a request whose bytes did not parse."""


def _parser(message_type: type[Message]) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return message_type.FromString(data)
        except (DecodeError, RecursionError, ValueError):
            return _Malformed()

    return parse


def _serialize(response: bytes | Message) -> bytes:
    return response if isinstance(response, bytes) else response.SerializeToString()


def _unary(
    method: str, call: Callable[[Any], Any], message_type: type[Message], in_flight: InFlight
) -> grpc.RpcMethodHandler:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        with in_flight:
            try:
                if isinstance(request, _Malformed):
                    raise InvalidArgument.single(
                        "request", f"must be a serialized {message_type.DESCRIPTOR.full_name}"
                    )
                return call(request)
            except Exception as exc:
                status.abort(context, exc, method)

    return grpc.unary_unary_rpc_method_handler(
        handle, request_deserializer=_parser(message_type), response_serializer=_serialize
    )


def handler(service: CacheService, in_flight: InFlight) -> grpc.GenericRpcHandler:
    """The gRPC handler that serves ``service`` as dicomcache.v1.CacheService."""
    table: dict[str, tuple[Callable[[Any], Any], type[Message]]] = {
        "LookupQuery": (service.lookup_query, pb.LookupQueryRequest),
        "StoreQuery": (service.store_query, pb.StoreQueryRequest),
        "LookupStudy": (service.lookup_study, pb.LookupStudyRequest),
        "StoreStudy": (service.store_study, pb.StoreStudyRequest),
        "AddObjects": (service.add_objects, pb.AddObjectsRequest),
        "GetObjects": (service.get_objects, pb.GetObjectsRequest),
        "Invalidate": (service.invalidate, pb.InvalidateRequest),
        "GetStats": (service.get_stats, pb.GetStatsRequest),
    }
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            name: _unary(name, call, message_type, in_flight)
            for name, (call, message_type) in table.items()
        },
    )
