"""A QIDO-RS archive over HTTP(S), asked directly with one pooled httpx client.

Why not dicomtrolley's ``QidoRS``: it parses the answer into its Study tree, and
``Search`` must return the archive's DICOM JSON as it came (objects, order,
attributes), and the parsing made it 1.3-1.4x slower than a plain GET of the same
answer (study level 15.3 ms against 10.7; 80 instances 120 against 92 ms, one run
of ``benchmarks/upstreams.py``). Why httpx rather than a requests Session, which
was as fast there (11.4 and 92 ms): an ``httpx.Client`` is documented as thread-safe, and its
response streams network reads one by one, so the whole exchange is held to its
deadline (a requests timeout bounds each socket read, not the answer).

The request sent: ``GET <root><path>?<name>=<value>&...``, each value of a
parameter as its own ``name=value`` pair in order (as dicomtrolley sends a list,
and as Orthanc reads ``includefield``), ``Accept: application/dicom+json``, and
the upstream's ``Authorization`` header when it has credentials. Redirects are
not followed (credentials go to the configured host only).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from typing import Any

import httpx

from dicomcache.server.errors import UpstreamFailed
from dicomcache.server.telemetry.tracing import trace_headers
from dicomcache.server.upstreams.credentials import Credentials
from dicomcache.v1 import query_pb2

log = logging.getLogger(__name__)

# httpx logs what carries PHI at INFO; ``dicomcache serve`` quiets it (``logs.QUIETED``):
# a library does not set another library's log level.

ACCEPT = "application/dicom+json"
MAX_CONNECTIONS = 64  # per upstream; the serving threads (--workers) share them


class QidoRsUpstream:
    """One QIDO-RS service root. Thread-safe (one ``httpx.Client``, pooled connections).

    Uses the monotonic clock for the deadline of each fetch.

    Args:
        name: the upstream's name (its namespace).
        url: the service's root, the URL that ``/studies`` follows.
        timeout: seconds one fetch may take at most; a shorter ``fetch`` timeout wins.
        credentials: sent as the ``Authorization`` header, when given.
        ca_file: https: the CA bundle to verify the archive's certificate with
            (default: the system's).
    """

    protocol: int = query_pb2.PROTOCOL_QIDO_RS

    def __init__(
        self,
        name: str,
        url: str,
        *,
        timeout: float = 10.0,
        credentials: Credentials | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.name = name
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Accept": ACCEPT}
        if credentials is not None:
            self._headers["Authorization"] = credentials.header()
        # The transport, not an httpx.Client: the Client logs every request's full URL
        # at INFO, and a QIDO-RS URL carries the query's values (PHI at INFO), while a
        # library may not set another library's log level. A transport neither logs,
        # follows redirects nor reads proxies or .netrc from the environment.
        self._transport = httpx.HTTPTransport(
            verify=ssl.create_default_context(cafile=ca_file) if ca_file is not None else True,
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"QidoRsUpstream(name={self.name!r}, url={self.url!r})"

    def fetch(self, request: query_pb2.ArchiveRequest, timeout: float) -> list[dict[str, Any]]:
        """GET the request's path and parameters; the archive's JSON array as it came.

        An empty answer (204, or 200 with no body) is ``[]``.

        Raises:
            UpstreamFailed: unreachable (no connection), timeout (no full answer in
                time; also HTTP 408), refused (another HTTP 4xx), failed (5xx, 429,
                3xx, or an answer that is not a JSON array).
        """
        if not request.path.startswith("/"):
            raise ValueError("a QIDO-RS request's path starts with '/'")
        budget = min(timeout, self.timeout)
        deadline = time.monotonic() + budget
        params: list[tuple[str, str | int | float | bool | None]] = [
            (p.name, v) for p in request.parameters for v in p.values
        ]
        try:
            try:
                status, body = self._get(request.path, params, deadline)
            except httpx.RemoteProtocolError:
                # A kept-alive connection that the archive closed as the request went
                # out (Orthanc keeps one for 1 s): asking again on a new one is safe.
                log.debug(
                    "upstream %s: connection closed under the request; asking anew", self.name
                )
                status, body = self._get(request.path, params, deadline)
        except httpx.TimeoutException as exc:
            raise UpstreamFailed(self.name, UpstreamFailed.TIMEOUT) from exc
        except httpx.TransportError as exc:  # connect, read, protocol errors
            raise UpstreamFailed(self.name, UpstreamFailed.UNREACHABLE) from exc
        return self._answer(status, body)

    def _get(
        self, path: str, params: list[tuple[str, str | int | float | bool | None]], deadline: float
    ) -> tuple[int, bytes]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise UpstreamFailed(self.name, UpstreamFailed.TIMEOUT)
        request = httpx.Request(
            "GET",
            self.url + path,
            params=params,
            headers={**self._headers, **trace_headers()},  # the caller's trace goes on
            extensions={"timeout": httpx.Timeout(left).as_dict()},
        )
        response = self._transport.handle_request(request)
        try:
            return response.status_code, self._read(response, deadline)
        finally:
            response.close()

    def _read(self, response: httpx.Response, deadline: float) -> bytes:
        """The whole body, or UpstreamFailed(timeout) once the deadline passes mid-answer."""
        if response.status_code == 204:
            return b""
        chunks = []
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            if time.monotonic() > deadline:
                raise UpstreamFailed(self.name, UpstreamFailed.TIMEOUT, response.status_code)
        return b"".join(chunks)

    def _answer(self, status: int, body: bytes) -> list[dict[str, Any]]:
        if status == 408:
            raise UpstreamFailed(self.name, UpstreamFailed.TIMEOUT, status)
        if 400 <= status < 500 and status != 429:
            raise UpstreamFailed(self.name, UpstreamFailed.REFUSED, status)
        if not 200 <= status < 300:
            raise UpstreamFailed(self.name, UpstreamFailed.FAILED, status)
        if not body.strip():
            return []
        try:
            answer = json.loads(body)
        except ValueError:
            log.warning("upstream %s: the answer is not JSON", self.name)
            raise UpstreamFailed(self.name, UpstreamFailed.FAILED, status) from None
        if not isinstance(answer, list) or not all(isinstance(o, dict) for o in answer):
            log.warning("upstream %s: the answer is not an array of objects", self.name)
            raise UpstreamFailed(self.name, UpstreamFailed.FAILED, status)
        return answer

    def close(self) -> None:
        """Close the pooled connections."""
        self._transport.close()
