"""The endpoint's HTTP(S) listener: a cheroot server in threads of its own.

cheroot (the HTTP server of CherryPy, maintained on its own) was chosen over
waitress because it serves TLS itself (waitress needs a proxy in front for
HTTPS), and over an asyncio server (uvicorn) because it runs beside the gRPC
server as plain threads, with no event loop to own; measured side by side on one
body of 80 instances (one client: cheroot and waitress 2.0-2.5 ms a request,
uvicorn with h11 44 ms here, a delayed-ACK stall not pursued). It
installs no signal handlers and configures no logging: its messages are sent to
this module's logger (DEBUG, or WARNING for its own errors) instead of stderr.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

from cheroot import wsgi

from dicomcache.server.auth.authorizer import Authorizer
from dicomcache.server.config import Settings
from dicomcache.server.http.endpoint import Endpoint
from dicomcache.server.http.tls import ReloadingAdapter, ReloadingContext
from dicomcache.server.search.engine import SearchEngine
from dicomcache.server.telemetry.metrics import Metrics
from dicomcache.server.tls import TLSFiles

log = logging.getLogger(__name__)

SERVER_NAME = "dicomcache"
SOCKET_TIMEOUT = 10  # seconds a connection may stay silent, its TLS handshake included
BACKLOG = 128  # connections the kernel queues before cheroot accepts them
MAX_HEADER_BYTES = 64 * 1024  # request line and headers: a long query string fits
MAX_BODY_BYTES = 64 * 1024  # searches are GETs; a body is read only to be discarded


class _Server(wsgi.Server):
    """cheroot's WSGI server, its messages sent to logging rather than stderr."""

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        # Connection noise (resets, bad request lines) at DEBUG; cheroot's own faults above.
        log.log(logging.WARNING if level >= logging.ERROR else logging.DEBUG, "http: %s", msg)


class HttpListener:
    """An HTTP (HTTPS with ``tls``) server of one WSGI application, on ``listen``.

    Bound when built (so a taken port fails at start, and port 0 is resolved in
    ``port``); serves from ``start`` until ``stop``. Thread-safe. No clock.

    Args:
        listen: host:port ("[::1]:8080" for IPv6; port 0 picks a free port).
        app: the WSGI application.
        tls: the certificates to serve HTTPS with; None for plain HTTP.
        threads: requests served at once; more wait for a thread.
        grace: seconds ``stop`` lets requests in flight finish.

    Raises:
        OSError: the address cannot be bound.
    """

    def __init__(
        self,
        listen: str,
        app: Any,
        *,
        tls: ReloadingContext | None = None,
        threads: int = 16,
        grace: float = 5.0,
    ) -> None:
        host, _, port = listen.rpartition(":")
        self.server = _Server(
            (host.strip("[]"), int(port)),
            app,
            numthreads=threads,
            server_name=SERVER_NAME,
            request_queue_size=BACKLOG,
            timeout=SOCKET_TIMEOUT,
            shutdown_timeout=math.ceil(grace),  # whole seconds in cheroot's stubs
        )
        self.server.max_request_header_size = MAX_HEADER_BYTES
        self.server.max_request_body_size = MAX_BODY_BYTES
        self.tls = tls
        if tls is not None:
            self.server.ssl_adapter = ReloadingAdapter(tls)
        self.server.prepare()
        self.port: int = self.server.bind_addr[1]
        self.scheme = "https" if tls is not None else "http"
        self._thread = threading.Thread(target=self.server.serve, name="http", daemon=True)

    def start(self) -> None:
        """Serve in a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, let requests in flight finish within the grace, then return."""
        self.server.stop()
        if self._thread.is_alive():
            self._thread.join()
        # cheroot files each server's counters in a module-wide dict, never removed.
        statistics = getattr(logging, "statistics", {})
        statistics.pop(f"Cheroot HTTPServer {id(self.server)}", None)


def http_listener(
    settings: Settings,
    engine: SearchEngine | None,
    authorizer: Authorizer,
    metrics: Metrics | None = None,
) -> HttpListener | None:
    """The endpoint's listener that ``settings`` ask for (``http_listen``), None when off.

    HTTPS whenever the gRPC port has TLS, with its files; as many threads as it has.

    Raises:
        OSError: the address cannot be bound, or a TLS file cannot be read.
        ssl.SSLError: the TLS files hold no usable certificate and key.
    """
    if settings.http_listen is None:
        return None
    tls = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        files = TLSFiles(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
        tls = ReloadingContext(files)
    return HttpListener(
        settings.http_listen,
        Endpoint(engine, authorizer, metrics=metrics),
        tls=tls,
        threads=settings.workers,
        grace=settings.grace,
    )
