"""The client's exceptions, and the one place where gRPC errors become them.

    Exception
    ├── CacheError                    any failure of a call to the cache server
    │   ├── CacheUnavailable          unreachable, too slow, shedding load, or its storage is down
    │   ├── CacheRejected             this request refused: invalid, or a message over a size limit
    │   └── CacheAccessDenied         this caller refused by the server's authorization policy
    │       ├── CacheUnauthenticated  no identity the server knows (no, unknown or bad token/cert)
    │       └── CachePermissionDenied known, but without the right on this namespace
    └── ValueError
        └── ConversionError           something the wire contract cannot carry, either way
            ├── QueryConversionError  a Query it cannot carry, or a proto query of unknown kind
            └── DicomJsonError        a DICOM JSON object it cannot carry, or a malformed one

A ``ConversionError`` is not a ``CacheError``: it happens in this process, before
or after a call, says nothing about the server's health and carries no status
code, so ``except CacheError`` around ``CacheClient`` calls keeps meaning "the
cache failed". It is a ``ValueError``, as both of its kinds always were.

``CachedSearcher`` never lets any of them reach its caller: it falls back to the
upstream searcher, whether the cache call failed or the query or the answer
could not be converted. ``CacheClient`` and the conversions raise them.

Which failures count against the cache (its circuit breaker): a
``CacheRejected`` never does, because it says something about one request, not
about the cache: INVALID_ARGUMENT (a UID or a value the server's rules refuse),
and RESOURCE_EXHAUSTED when gRPC's text says a message was larger than a limit
(a study too large to send, an answer too large to receive). Counting those would
let one odd study switch the cache off for every caller. Every other failure
counts, ``CacheUnavailable`` and plain ``CacheError`` alike: UNAVAILABLE,
DEADLINE_EXCEEDED, CANCELLED and ABORTED (unreachable or too slow),
RESOURCE_EXHAUSTED otherwise (the server sheds load: backing off is what it
asks for), INTERNAL, UNKNOWN and DATA_LOSS (the cache is broken), and the codes
the server never sends (UNIMPLEMENTED, UNAUTHENTICATED, PERMISSION_DENIED,
NOT_FOUND, ...), which mean that whatever answers at the address is not a cache
this client can use, for any request.

``CacheAccessDenied`` (UNAUTHENTICATED, PERMISSION_DENIED) is a cache fault too,
but one that will not heal by itself in seconds: it waits for an operator to
change the credentials or the policy. ``CachedSearcher`` opens its breaker at
once, for a longer back-off, on the first one (see ``searcher``); a denied
store switches off only the stores, as a read-only grant intends.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


class CacheError(Exception):
    """A call to the cache server failed."""

    def __init__(self, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(message)
        self.code = code


class CacheUnavailable(CacheError):
    """The cache cannot answer now; try the upstream and come back later."""


class CacheRejected(CacheError):
    """The server refused this request, not every request; ``violations`` lists (field, rule) pairs.

    ``code`` is INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for a message over a size
    limit (then ``violations`` is empty).
    """

    def __init__(
        self,
        message: str,
        violations: list[tuple[str, str]],
        code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT,
    ) -> None:
        super().__init__(message, code)
        self.violations = violations


class CacheAccessDenied(CacheError):
    """The server's authorization policy refused this caller; ``code`` says how."""


class CacheUnauthenticated(CacheAccessDenied):
    """UNAUTHENTICATED: the server knows no identity this client presented."""


class CachePermissionDenied(CacheAccessDenied):
    """PERMISSION_DENIED: a known caller without the call's right on its namespace."""


class ConversionError(ValueError):
    """A value that the wire contract cannot carry, on its way to the wire or back."""


class QueryConversionError(ConversionError):
    """A query that cannot be carried by the wire contract, or a proto query of unknown kind."""


class DicomJsonError(ConversionError):
    """A DICOM JSON object that the wire contract cannot carry (or that is malformed)."""


_UNAVAILABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
    }
)


# gRPC's own text when a message breaks a size limit, on either side, sending or
# receiving ("Received message larger than max (182026 vs. 65536)").
_TOO_LARGE = "message larger than max"


def translate(error: grpc.RpcError) -> CacheError:
    """The CacheError that a failed call stands for."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and _TOO_LARGE in details:
        return CacheRejected(f"cache refused the message size: {details}", [], code)
    if code is not None and code in _UNAVAILABLE:
        return CacheUnavailable(f"cache unavailable ({code.name}): {details}", code)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return CacheRejected(f"cache rejected the request: {details}", _violations(error))
    # The server's words name the right and the namespace, never a token.
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return CacheUnauthenticated(f"cache refused the credentials: {details}", code)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return CachePermissionDenied(f"cache denied the call: {details}", code)
    name = code.name if code is not None else "no status"
    return CacheError(f"cache call failed ({name}): {details}", code)


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        return []
    found: list[tuple[str, str]] = []
    for detail in status.details if status else []:
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            found.extend((v.field, v.description) for v in bad_request.field_violations)
    return found
