"""What the endpoint answers: a search's DICOM JSON with its cache headers, or an error.

An answer is ``200 application/dicom+json``, the array the archive returned (an
empty one is ``[]``, as Orthanc answers), with

    Cache-Status  RFC 9211, cache name "dicomcache": "hit" from the cache;
                  "fwd=miss" fetched from the archive; "fwd=stale" the archive
                  failed and an expired answer was served (stale-if-error), with
                  detail="stale-if-error: <how it failed>" (upstream, reason, status)
    X-Cache       HIT or MISS (a stale answer came from the cache: HIT)
    Age           whole seconds since the answer was fetched from the archive
    Warning       110 "Response is Stale", on a stale answer only

An error is a status and ``application/json`` ``{"status", "error", "message", ...}``:

    400  bad input: "violations", each a "parameter" (as the URL spells it) and a "rule"
    401  no identity the authorization policy knows (with WWW-Authenticate: Bearer)
    403  a known caller without the read right on the upstream
    404  no such upstream, or a path that is no search
    405  a method other than GET or HEAD; 406 an Accept that excludes DICOM JSON
    502  the archive answered with a failure or refused (its "archive_status")
    503  the archive could not be reached; the cache's storage did not answer
    504  the archive did not answer in time
    500  anything else, logged with the "request_id" and without request content

Pure functions: thread-safe, no clock.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from dataclasses import dataclass
from typing import Any

from dicomcache.server.errors import (
    AnswerTooLarge,
    BackendUnavailable,
    InvalidArgument,
    NoUpstreams,
    PermissionDenied,
    Unauthenticated,
    UpstreamFailed,
)
from dicomcache.server.http.request import NotFound, Search

log = logging.getLogger(__name__)

DICOM_JSON = "application/dicom+json"
CACHE_NAME = "dicomcache"
STALE_WARNING = f'110 {CACHE_NAME} "Response is Stale"'
_UPSTREAM_STATUSES = {
    UpstreamFailed.UNREACHABLE: 503,
    UpstreamFailed.TIMEOUT: 504,
    UpstreamFailed.REFUSED: 502,
    UpstreamFailed.FAILED: 502,
}
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

Headers = list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Reply:
    """A status, its headers and its body."""

    status: int
    headers: Headers
    body: bytes

    @property
    def status_line(self) -> str:
        """The WSGI status string, e.g. "200 OK"."""
        return f"{self.status} {REASONS.get(self.status, '')}".rstrip()


def answer(
    dicom_json: str, hit: bool, age_seconds: float, stale: bool, stale_reason: str = ""
) -> Reply:
    """The 200 reply of a search's result; ``stale_reason`` says how the archive failed."""
    if stale:
        said = "".join(c for c in stale_reason if " " <= c <= "~" and c not in '"\\')
        detail = f"stale-if-error: {said}" if said else "stale-if-error"
        status = f'{CACHE_NAME}; fwd=stale; detail="{detail}"'
    else:
        status = f"{CACHE_NAME}; hit" if hit else f"{CACHE_NAME}; fwd=miss"
    headers = [
        ("Content-Type", DICOM_JSON),
        ("Cache-Status", status),
        ("X-Cache", "HIT" if hit or stale else "MISS"),
        ("Age", str(max(0, math.floor(age_seconds)))),
    ]
    if stale:
        headers.append(("Warning", STALE_WARNING))
    return Reply(200, headers, dicom_json.encode())


def error(status: int, kind: str, message: str, **extra: Any) -> Reply:
    """An error reply: ``status`` with a JSON body naming the problem."""
    body = {"status": status, "error": kind, "message": message, **extra}
    headers = [("Content-Type", "application/json")]
    if status == 401:
        headers.append(("WWW-Authenticate", f'Bearer realm="{CACHE_NAME}"'))
    if status == 405:
        headers.append(("Allow", "GET, HEAD"))
    return Reply(status, headers, json.dumps(body).encode())


def failure(exc: BaseException, search: Search | None) -> Reply:
    """The reply for an exception raised while answering ``search`` (None: before parsing)."""
    if isinstance(exc, NotFound):
        return error(404, "not found", str(exc))
    if isinstance(exc, InvalidArgument):
        return _invalid(exc, search)
    if isinstance(exc, NoUpstreams):
        return error(404, "not found", "no such upstream: this server has no upstreams configured")
    if isinstance(exc, Unauthenticated):
        return error(401, "unauthenticated", str(exc))
    if isinstance(exc, PermissionDenied):
        return error(403, "permission denied", str(exc))
    if isinstance(exc, UpstreamFailed):
        extra: dict[str, Any] = {"upstream": exc.upstream, "reason": exc.reason}
        if exc.status is not None:
            extra["archive_status"] = exc.status
        return error(_UPSTREAM_STATUSES.get(exc.reason, 502), "upstream failed", str(exc), **extra)
    if isinstance(exc, BackendUnavailable):
        return error(503, "storage unavailable", f"the cache's storage did not answer: {exc}")
    if isinstance(exc, AnswerTooLarge):
        return error(502, "answer too large", str(exc))
    request_id = uuid.uuid4().hex[:16]
    # The type alone: a message may quote request content.
    log.error("http search failed (request id %s): %s", request_id, type(exc).__name__)
    return error(500, "internal", "internal error", request_id=request_id)


def _invalid(exc: InvalidArgument, search: Search | None) -> Reply:
    """400 naming each parameter as the URL spells it; an unknown upstream is 404."""
    fields = {v.field for v in exc.violations}
    if "upstream" in fields:
        name = search.request.upstream if search is not None else ""
        return error(404, "not found", f"no such upstream: {name!r} is not configured here")
    violations = [
        {"parameter": search.parameter(v.field) if search else v.field, "rule": v.rule}
        for v in exc.violations
    ]
    extra: dict[str, Any] = {"violations": violations}
    message = "; ".join(f"{v['parameter']}: {v['rule']}" for v in violations[:3])
    if exc.omitted:
        extra["omitted"] = exc.omitted
        message += f" (and {exc.omitted} more)"
    return error(400, "invalid argument", message, **extra)
