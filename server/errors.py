"""The server's domain exceptions; ``status.py`` maps them to gRPC codes.

    DicomCacheError
    ├── InvalidArgument      bad input; carries (field, rule) violations
    ├── BackendUnavailable   the storage cannot be reached right now
    ├── AnswerTooLarge       a response larger than the server's largest message or answer
    ├── StreamBroken         a streamed request that broke off before its end
    ├── Unauthenticated      the caller presented no identity the policy knows
    ├── PermissionDenied     a known caller without the right on the namespace it asked for
    ├── UpstreamFailed       the archive of a read-through failed, timed out or refused
    └── NoUpstreams          a read-through asked of a server configured with no upstreams

Load shedding (RESOURCE_EXHAUSTED) is gRPC's own, through the server's limit on
concurrent calls, so it needs no exception here.
"""

from __future__ import annotations

from dataclasses import dataclass


class DicomCacheError(Exception):
    """Base of every error the server raises on purpose."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: the request field (dotted path) and the rule it broke."""

    field: str
    rule: str


class InvalidArgument(DicomCacheError):
    """The request breaks one or more rules; nothing was read or written.

    ``omitted`` counts further violations that were found but not kept (a hostile
    request may break a rule millions of times; see ``validation.Checker``).
    """

    def __init__(self, violations: list[Violation], omitted: int = 0) -> None:
        self.violations = violations
        self.omitted = omitted
        more = f" (and {omitted} more)" if omitted else ""
        super().__init__("; ".join(f"{v.field}: {v.rule}" for v in violations[:3]) + more)

    @classmethod
    def single(cls, field: str, rule: str) -> InvalidArgument:
        """An error for one violation."""
        return cls([Violation(field, rule)])


class BackendUnavailable(DicomCacheError):
    """The storage backend did not answer (connection refused, timed out)."""


class AnswerTooLarge(DicomCacheError):
    """A hit that cannot be sent: larger than the server's largest message.

    Stores of such answers are refused (``stored = false``), so a lookup raises this
    only for an answer whose objects grew after it was stored; GetObjects raises it
    as soon as the results summed so far pass the limit (``size`` is then a lower bound).
    """

    def __init__(self, size: int, limit: int, streamed: str = "", what: str = "message") -> None:
        """``streamed``: the RPC that returns it in pieces, when there is one."""
        self.size = size
        self.limit = limit
        instead = f"; {streamed} returns it in pieces" if streamed else ""
        super().__init__(
            f"answer of {size} bytes is larger than the largest {what} ({limit}){instead}"
        )


class StreamBroken(DicomCacheError):
    """The client's stream of a streamed store ended in a cancellation, a deadline or a
    broken connection: nothing was stored (CANCELLED)."""


class Unauthenticated(DicomCacheError):
    """No identity the authorization policy knows: no or an unknown token, no known
    certificate name. The message says what to send, never what was sent."""


class PermissionDenied(DicomCacheError):
    """A known caller without ``right`` on ``namespace``, the one it asked for.

    The message names only these two: nothing about other namespaces, nor whether
    this one holds anything.
    """

    # A namespace that passed no validation yet may be long: the message quotes its start.
    MAX_QUOTED = 128

    def __init__(self, right: str, namespace: str) -> None:
        quoted = namespace[: self.MAX_QUOTED] + ("..." if len(namespace) > self.MAX_QUOTED else "")
        super().__init__(f"no {right} right on namespace {quoted!r}")
        self.right = right
        self.namespace = namespace


class UpstreamFailed(DicomCacheError):
    """An upstream archive did not answer a read-through with an answer.

    ``reason`` is one of REASONS; ``status`` is the archive's own (an HTTP status,
    a DIMSE status) when it gave one. The message names the upstream and the
    reason, never a credential nor a query value.
    """

    UNREACHABLE = "unreachable"  # no connection (refused, reset, DNS, TLS)
    TIMEOUT = "timeout"  # no full answer within the time given
    REFUSED = "refused"  # the archive answered no to this request (HTTP 4xx, C-FIND refused)
    FAILED = "failed"  # the archive failed (HTTP 5xx, C-FIND failure status)
    REASONS = (UNREACHABLE, TIMEOUT, REFUSED, FAILED)

    def __init__(self, upstream: str, reason: str, status: int | None = None) -> None:
        self.upstream = upstream
        self.reason = reason
        self.status = status
        said = f" (archive status {status})" if status is not None else ""
        super().__init__(f"upstream {upstream}: {reason}{said}")


class NoUpstreams(DicomCacheError):
    """``Search`` on a server that has no upstreams configured (FAILED_PRECONDITION)."""
