"""The WSGI application of the QIDO-RS endpoint: a URL in, ``SearchEngine.search`` out.

A request is authenticated first (the Authorization header, the verified client
certificate), as a gRPC call is, so a caller without an identity learns nothing
about paths or upstreams; then its URL is parsed into a ``SearchRequest``
(``request``), the caller's read right on the upstream checked (the right a
``Search`` call needs), and the search made by the same engine as the ``Search``
RPC, so both share every entry. ``reply`` says what each outcome looks like.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from dicomcache.server.auth.authorizer import Authorizer
from dicomcache.server.errors import NoUpstreams
from dicomcache.server.http import reply
from dicomcache.server.http.request import Search, parse
from dicomcache.server.http.tls import CERTIFICATE_NAMES
from dicomcache.server.search.engine import DEFAULT_TIMEOUT, SearchEngine
from dicomcache.server.telemetry.metrics import Metrics

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
METHOD = "QIDO-RS"  # the method label of the endpoint's requests in dicomcache_rpc_* metrics
_ACCEPTED = frozenset({reply.DICOM_JSON, "application/json", "application/*", "*/*"})


class Endpoint:
    """``GET /dicom-web/{upstream}/studies`` and the other search paths, as WSGI.

    Thread-safe: it keeps no state; the engine, the authorizer and the metrics are.
    Clock: ``time.perf_counter`` for the durations counted (the engine's deadline is
    ``timeout`` from the call).

    Args:
        engine: the server's search engine; None when it has no upstreams.
        authorizer: the server's, the same as the gRPC port's.
        timeout: seconds a search may take (HTTP carries no deadline).
        metrics: where requests are counted (method "QIDO-RS", code the HTTP status), as
            the gRPC calls are; None for none.
    """

    def __init__(
        self,
        engine: SearchEngine | None,
        authorizer: Authorizer,
        timeout: float = DEFAULT_TIMEOUT,
        metrics: Metrics | None = None,
    ) -> None:
        self.engine = engine
        self.authorizer = authorizer
        self.timeout = timeout
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start = time.perf_counter()
        answer = self.reply(environ)
        if self.metrics is not None:
            self.metrics.rpc(METHOD, str(answer.status), time.perf_counter() - start)
        start_response(
            answer.status_line, [*answer.headers, ("Content-Length", str(len(answer.body)))]
        )
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else answer.body]

    def reply(self, environ: dict[str, Any]) -> reply.Reply:
        """The reply to one request."""
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return reply.error(405, "method not allowed", "searches are GET requests")
        search: Search | None = None
        try:
            access = self.authorizer.authenticate_http(
                environ.get("HTTP_AUTHORIZATION"), environ.get(CERTIFICATE_NAMES, frozenset())
            )
            path = _path(environ)
            if path is None:
                return reply.error(400, "invalid argument", "path: must be UTF-8")
            search = parse(path, environ.get("QUERY_STRING", ""))
            if not acceptable(environ.get("HTTP_ACCEPT")):
                return reply.error(
                    406, "not acceptable", f"this endpoint answers {reply.DICOM_JSON} only"
                )
            self.authorizer.authorize("Search", search.request, access)
            if self.engine is None:
                raise NoUpstreams("no upstreams configured")
            result = self.engine.search(search.request, self.timeout)
        except Exception as exc:
            return reply.failure(exc, search)
        return reply.answer(
            result.dicom_json, result.hit, result.age_seconds, result.stale, result.stale_reason
        )


def acceptable(accept: str | None) -> bool:
    """Whether an Accept header admits DICOM JSON (no header admits anything)."""
    if not accept or not accept.strip():
        return True
    for media_range in accept.split(","):
        kind, _, parameters = media_range.partition(";")
        refused = any(
            p.strip().replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000")
            for p in parameters.split(";")
        )
        if kind.strip().lower() in _ACCEPTED and not refused:
            return True
    return False


def _path(environ: dict[str, Any]) -> str | None:
    """PATH_INFO as text: WSGI hands over the decoded bytes as latin-1 (PEP 3333)."""
    try:
        return str(environ.get("PATH_INFO", "")).encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None
