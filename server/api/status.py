"""The one place where domain exceptions become gRPC statuses.

InvalidArgument     -> INVALID_ARGUMENT, with google.rpc.BadRequest field violations
                       (at most MAX_LISTED, the last saying how many more: see ``bad_request``)
BackendUnavailable  -> UNAVAILABLE
AnswerTooLarge      -> RESOURCE_EXHAUSTED
StreamBroken        -> CANCELLED (a streamed store whose client went away; nothing stored)
Unauthenticated     -> UNAUTHENTICATED
PermissionDenied    -> PERMISSION_DENIED
UpstreamFailed      -> by reason: unreachable, failed -> UNAVAILABLE (a retry may succeed);
                       timeout -> DEADLINE_EXCEEDED; refused -> FAILED_PRECONDITION (the
                       archive said no to a request the server had already checked: its
                       credentials, its rights or what it supports must change first, and
                       INVALID_ARGUMENT would tell the caller that its request was malformed);
                       with google.rpc.ErrorInfo (reason UPSTREAM_<REASON>, domain
                       "dicomcache", metadata "upstream" and the archive's "status")
NoUpstreams         -> FAILED_PRECONDITION (Search on a server configured with none)
anything else       -> INTERNAL, logged with a request id (and no request content)
"""

from __future__ import annotations

import logging
import traceback
import uuid
from typing import NoReturn

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from dicomcache.server.errors import (
    AnswerTooLarge,
    BackendUnavailable,
    InvalidArgument,
    NoUpstreams,
    PermissionDenied,
    StreamBroken,
    Unauthenticated,
    UpstreamFailed,
    Violation,
)

log = logging.getLogger(__name__)

# The status travels in the call's trailers, and gRPC refuses trailers over 16 KiB
# (RESOURCE_EXHAUSTED at the client instead of this status). The details go
# base64-encoded (4/3 of their bytes) and the message percent-encoded (up to 3x
# for non-ASCII), so these bounds keep both under 8 KiB together, whatever the
# request: fields quote request data (extra_fields keys), so they are cut too.
MAX_LISTED = 50  # violations listed, the last of them "and N more" when there were more
MAX_TEXT_BYTES = 200  # of one violation's field or description, UTF-8
MAX_DETAILS_BYTES = 4096  # of the serialized BadRequest
MAX_MESSAGE_BYTES = 600  # of the status message, UTF-8


_CODES: tuple[tuple[type[BaseException], grpc.StatusCode], ...] = (
    (InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (BackendUnavailable, grpc.StatusCode.UNAVAILABLE),
    (AnswerTooLarge, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NoUpstreams, grpc.StatusCode.FAILED_PRECONDITION),
    (StreamBroken, grpc.StatusCode.CANCELLED),
)


_UPSTREAM_CODES: dict[str, grpc.StatusCode] = {
    UpstreamFailed.UNREACHABLE: grpc.StatusCode.UNAVAILABLE,
    UpstreamFailed.FAILED: grpc.StatusCode.UNAVAILABLE,
    UpstreamFailed.TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
    UpstreamFailed.REFUSED: grpc.StatusCode.FAILED_PRECONDITION,
}
ERROR_DOMAIN = "dicomcache"


def code_of(exc: BaseException) -> grpc.StatusCode:
    """The status code that ``abort`` ends a call with for ``exc``."""
    if isinstance(exc, UpstreamFailed):
        return _UPSTREAM_CODES.get(exc.reason, grpc.StatusCode.UNAVAILABLE)
    for kind, code in _CODES:
        if isinstance(exc, kind):
            return code
    return grpc.StatusCode.INTERNAL


def abort(context: grpc.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    """End the call with the status that ``exc`` stands for."""
    if isinstance(exc, InvalidArgument):
        bad_request = _bad_request(exc)
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=_message(bad_request), details=[detail]
        )
        context.abort_with_status(rpc_status.to_status(status))
    if isinstance(exc, BackendUnavailable):
        context.abort(grpc.StatusCode.UNAVAILABLE, f"storage backend unavailable: {exc}")
    if isinstance(exc, UpstreamFailed):
        context.abort_with_status(rpc_status.to_status(upstream_status(exc)))
    if isinstance(exc, AnswerTooLarge):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
    if isinstance(exc, Unauthenticated):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
    if isinstance(exc, PermissionDenied):
        context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
    if isinstance(exc, NoUpstreams):
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, StreamBroken):
        context.abort(grpc.StatusCode.CANCELLED, str(exc))
    request_id = uuid.uuid4().hex[:12]
    # The exception's type and stack only: its message might quote request data.
    log.error(
        "internal error in %s (request %s): %s\n%s",
        method,
        request_id,
        type(exc).__name__,
        "".join(traceback.format_tb(exc.__traceback__)),
    )
    context.abort(grpc.StatusCode.INTERNAL, f"internal error (request id {request_id})")
    raise AssertionError("unreachable: ServicerContext.abort raises")


def upstream_status(exc: UpstreamFailed) -> status_pb2.Status:
    """The status of an upstream failure: its code, message and ErrorInfo.

    The message and metadata name the upstream, the reason and the archive's status:
    nothing of the request, nothing of its credentials.
    """
    metadata = {"upstream": exc.upstream}
    if exc.status is not None:
        metadata["status"] = str(exc.status)
    info = error_details_pb2.ErrorInfo(
        reason=f"UPSTREAM_{exc.reason.upper()}", domain=ERROR_DOMAIN, metadata=metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    code = code_of(exc).value[0]
    return status_pb2.Status(code=code, message=str(exc), details=[detail])


def _cut(text: str) -> str:
    """At most MAX_TEXT_BYTES of UTF-8, cut at a character, marked with "..."."""
    data = text.encode()
    if len(data) <= MAX_TEXT_BYTES:
        return text
    return data[: MAX_TEXT_BYTES - 3].decode(errors="ignore") + "..."


def _bad_request(exc: InvalidArgument) -> error_details_pb2.BadRequest:
    """The violations of ``exc`` as a BadRequest that always fits in a trailer.

    The first violations in request order, each cut to MAX_TEXT_BYTES, as many as
    fit MAX_LISTED and MAX_DETAILS_BYTES; when some are left out, the last listed
    violation is ``request``: "and N more violations not listed".
    """
    total = len(exc.violations) + exc.omitted
    listed = error_details_pb2.BadRequest()
    size = 0
    reserve = 100  # room for the summary violation
    for v in exc.violations[:MAX_LISTED]:
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=_cut(v.field), description=_cut(v.rule)
        )
        # A repeated field costs its tag, a length prefix (at most 2 bytes here) and the entry.
        cost = entry.ByteSize() + 3
        left = total - len(listed.field_violations)
        if left > 1 and (
            len(listed.field_violations) == MAX_LISTED - 1
            or size + cost > MAX_DETAILS_BYTES - reserve
        ):
            break
        listed.field_violations.append(entry)
        size += cost
    more = total - len(listed.field_violations)
    if more:
        summary = _more(more)
        listed.field_violations.add(field=summary.field, description=summary.rule)
    return listed


def _more(count: int) -> Violation:
    return Violation("request", f"and {count} more violation{'s' if count > 1 else ''} not listed")


def _message(bad_request: error_details_pb2.BadRequest) -> str:
    """The status message: the listed violations, cut to MAX_MESSAGE_BYTES."""
    text = "; ".join(f"{v.field}: {v.description}" for v in bad_request.field_violations)
    data = text.encode()
    if len(data) <= MAX_MESSAGE_BYTES:
        return text
    return data[: MAX_MESSAGE_BYTES - 3].decode(errors="ignore") + "..."
