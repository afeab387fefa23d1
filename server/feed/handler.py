"""Serving ``WatchInvalidations``: one namespace's changes, numbered, with heartbeats.

Registered as a generic handler of its own for CacheService's one streaming method
that never ends by itself (``CacheServer`` adds it beside the service's handler).
The caller is authenticated and authorized (read, on the namespace) as every call
is when the stream starts, and again every second against the policy as it is then
(a reloaded policy that took the right away ends the stream: PERMISSION_DENIED).
The stream holds one of the server's worker threads while it lasts, as a health
Watch does; it is not counted in flight (it never finishes), so a stopping server
ends it, and its client flushes.

Numbering (``invalidations.proto``): the first message is a heartbeat with sequence
0; each Invalidation gets the next number; a heartbeat repeats the last. A client
tells a lost message by a gap and a stalled stream by the deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import grpc
from google.protobuf.message import DecodeError

from dicomcache.server.api import status
from dicomcache.server.api.service import SERVICE_NAME
from dicomcache.server.api.validation import Checker
from dicomcache.server.auth.authorizer import Authorizer
from dicomcache.server.errors import (
    BackendUnavailable,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
)
from dicomcache.server.feed.hub import Change, Ended, Feed, TooManyWatchers
from dicomcache.v1 import invalidations_pb2 as pb

log = logging.getLogger(__name__)

METHOD = "WatchInvalidations"
# A heartbeat every 50 ms of quiet; a client that heard nothing for 250 ms (five
# missed) is out of sync. Wide enough for a busy 2-core machine's scheduling, and
# it bounds how long a client whose stream silently stalled can go on serving.
HEARTBEAT_INTERVAL = 0.05
HEARTBEAT_DEADLINE = 0.25
# How often a stream's caller is authorized again: a policy reloaded to take the read
# right away ends the stream within about this (plus the policy's own reload pacing).
RECHECK_SECONDS = 1.0


def _invalidation(sequence: int, change: Change) -> bytes:
    message = pb.WatchInvalidationsResponse(
        sequence=sequence,
        invalidation=pb.Invalidation(protocol=change.protocol, study_uid=change.study_uid),  # type: ignore[arg-type]  # an int is a Protocol value
    )
    return message.SerializeToString()


def _heartbeat(sequence: int, interval: float, deadline: float) -> bytes:
    beat = pb.Heartbeat(
        heartbeat_deadline_ms=round(deadline * 1000), heartbeat_interval_ms=round(interval * 1000)
    )
    return pb.WatchInvalidationsResponse(sequence=sequence, heartbeat=beat).SerializeToString()


def _still_allowed(
    authorizer: Authorizer, context: grpc.ServicerContext, request: pb.WatchInvalidationsRequest
) -> None:
    """The caller again, against the policy as it is now (it may have been reloaded).

    Raises:
        Unauthenticated, PermissionDenied: the caller lost the right meanwhile.
    """
    authorizer.authorize(METHOD, request, authorizer.authenticate(context))


def watch_handler(
    feed: Feed,
    authorizer: Authorizer | None = None,
    *,
    interval: float = HEARTBEAT_INTERVAL,
    deadline: float = HEARTBEAT_DEADLINE,
    max_watchers: int | None = None,
) -> grpc.GenericRpcHandler:
    """The handler of CacheService.WatchInvalidations over ``feed``.

    Args:
        max_watchers: streams at once, each holding a worker thread; more are refused
            with RESOURCE_EXHAUSTED (their clients' near caches stay off). None: no cap.
    """
    authorizer = authorizer if authorizer is not None else Authorizer()

    def handle(raw: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
        try:
            access = authorizer.authenticate(context)
            try:
                request = pb.WatchInvalidationsRequest.FromString(raw)
            except DecodeError:
                raise InvalidArgument.single(
                    "request", "must be a serialized dicomcache.v1.WatchInvalidationsRequest"
                ) from None
            check = Checker()
            check.namespace(request.namespace)
            check.done()
            authorizer.authorize(METHOD, request, access)
            watcher = feed.watch(request.namespace, max_watchers)
        except TooManyWatchers as exc:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        except Exception as exc:
            status.abort(context, exc, METHOD)
        context.add_callback(watcher.end)  # a cancelled call wakes its thread at once
        sequence = 0
        checked = time.monotonic()
        try:
            yield _heartbeat(sequence, interval, deadline)
            while True:
                if time.monotonic() - checked >= RECHECK_SECONDS:
                    _still_allowed(authorizer, context, request)
                    checked = time.monotonic()
                changes = watcher.take(interval)
                for change in changes:
                    sequence += 1
                    yield _invalidation(sequence, change)
                if not changes:
                    yield _heartbeat(sequence, interval, deadline)
        except Ended as exc:
            if context.is_active():
                status.abort(context, BackendUnavailable(str(exc)), METHOD)
        except (Unauthenticated, PermissionDenied) as exc:
            status.abort(context, exc, METHOD)
        finally:
            feed.unwatch(watcher)

    methods = {METHOD: grpc.unary_stream_rpc_method_handler(handle)}
    return grpc.method_handlers_generic_handler(SERVICE_NAME, methods)
