"""The one place where domain exceptions become gRPC statuses.

InvalidArgument     -> INVALID_ARGUMENT, with google.rpc.BadRequest field violations
BackendUnavailable  -> UNAVAILABLE
AnswerTooLarge      -> RESOURCE_EXHAUSTED
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

from dicomcache.server.errors import AnswerTooLarge, BackendUnavailable, InvalidArgument

log = logging.getLogger(__name__)


def abort(context: grpc.ServicerContext, exc: BaseException, method: str) -> NoReturn:
    """End the call with the status that ``exc`` stands for."""
    if isinstance(exc, InvalidArgument):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.rule)
                for v in exc.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        status = status_pb2.Status(
            code=code_pb2.INVALID_ARGUMENT, message=str(exc), details=[detail]
        )
        context.abort_with_status(rpc_status.to_status(status))
    if isinstance(exc, BackendUnavailable):
        context.abort(grpc.StatusCode.UNAVAILABLE, f"storage backend unavailable: {exc}")
    if isinstance(exc, AnswerTooLarge):
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
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
