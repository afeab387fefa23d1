"""A tiny HTTP proxy in front of a real archive: it counts the requests that reach it.

Counting at the wire, not in the server, proves what several server processes
asked together. It can answer every request with a status (``status = 503``),
hold requests (``hold``: they wait until ``release``), and ``close`` stops
listening, so that its port refuses connections as a stopped archive's does.
Thread-safe. For tests only: ``http.server`` is enough here.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class CountingProxy:
    """Forwards GETs to ``target`` (a base URL), counting them by path."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        parts = urllib.parse.urlsplit(self.target)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self._path = parts.path
        self.paths: list[str] = []
        self.traceparents: list[str | None] = []  # each request's W3C trace context, if any
        self._lock = threading.Lock()
        self._open = threading.Event()
        self.status: int | None = None  # set: every request is answered with it
        self._open.set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # http.server's name
                proxy._count(self.path)
                proxy.traceparents.append(self.headers.get("traceparent"))
                proxy._open.wait(60)
                if proxy.status is not None:  # the archive failing, as told
                    status, body, kind = proxy.status, b"archive says no", "text/plain"
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                try:
                    url = proxy.origin + self.path
                    with urllib.request.urlopen(url, timeout=30) as answer:
                        status, body = answer.status, answer.read()
                        kind = answer.headers.get("Content-Type", "application/dicom+json")
                except urllib.error.HTTPError as error:
                    status, body, kind = error.code, error.read(), "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # the client may be gone (killed)
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """The proxy's base URL, with the target's path (e.g. ``/dicom-web``)."""
        return f"http://127.0.0.1:{self.port}{self._path}"

    @property
    def requests(self) -> int:
        """Requests received so far."""
        with self._lock:
            return len(self.paths)

    def _count(self, path: str) -> None:
        with self._lock:
            self.paths.append(path)

    def hold(self) -> None:
        """Requests from now wait (up to 60 s) until ``release``."""
        self._open.clear()

    def release(self) -> None:
        """Let held requests, and the next ones, through."""
        self._open.set()

    def close(self) -> None:
        """Stop listening: the port refuses connections from now on."""
        self._open.set()
        self._server.shutdown()
        self._server.server_close()


@contextlib.contextmanager
def counting_proxy(target: str) -> Iterator[CountingProxy]:
    """A CountingProxy to ``target``, closed on exit."""
    proxy = CountingProxy(target)
    try:
        yield proxy
    finally:
        with contextlib.suppress(OSError):
            proxy.close()
