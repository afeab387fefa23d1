"""HTTPS for the endpoint: the gRPC port's certificate files, re-read when they change.

The same files as the gRPC port (``--tls-cert-file``, ``--tls-key-file``,
``--tls-client-ca-file``), followed the same way (``server/tls.py``): a change is
noticed by the files' (inode, size, mtime) at most once per ``CHECK_INTERVAL``,
and reaches the next connection; a half-written or mismatched pair keeps the
context in use and is retried at the next check. With a client CA, a client
certificate is required (as on the gRPC port) and its names identify the caller
to the authorization policy, with the gRPC port's kinds ("cn", "dns", "uri").

cheroot does the handshake in its accepting thread, bounded by the server's
socket timeout: a client that stalls its handshake delays the next accept by up
to that long.
"""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Callable
from typing import Any

from cheroot.ssl.builtin import BuiltinSSLAdapter

from dicomcache.server.tls import CHECK_INTERVAL, TLSFiles
from dicomcache.server.watch import FileWatch

log = logging.getLogger(__name__)

CERTIFICATE_NAMES = "dicomcache.certificate_names"  # the WSGI environ key of the peer's names
_SAN_KINDS = {"DNS": "dns", "URI": "uri"}


def server_context(files: TLSFiles) -> ssl.SSLContext:
    """A server-side context from ``files``: TLS 1.2 at least, client certificates if a CA.

    Raises:
        OSError: a file cannot be read.
        ssl.SSLError: a file holds no usable PEM, or the key is not the certificate's.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.cert_file, files.key_file)
    if files.client_ca_file is not None:
        context.load_verify_locations(cafile=files.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class ReloadingContext:
    """The current server context, built again when the files changed.

    Thread-safe. Reads the injected monotonic clock to pace its checks.
    """

    def __init__(self, files: TLSFiles, clock: Callable[[], float] = time.monotonic) -> None:
        self.files = files
        self._watch = FileWatch(files.paths, CHECK_INTERVAL, clock)  # before reading them
        self._context = server_context(files)
        self.reloads = 0  # how many times a changed context was taken up

    def current(self) -> ssl.SSLContext:
        """The context for the next connection."""
        if self._watch.changed():  # one thread at a time gets True
            try:
                self._context = server_context(self.files)
            except (OSError, ssl.SSLError) as exc:
                self._watch.watch(self.files.paths)  # not taken: look again at the next check
                log.warning("TLS files changed but cannot be used yet, keeping the old: %s", exc)
            else:
                self.reloads += 1
                log.info("HTTPS certificates re-read from %s", ", ".join(self.files.paths))
        return self._context


class ReloadingAdapter(BuiltinSSLAdapter):
    """cheroot's adapter, wrapping each connection with the current context.

    Thread-safe as cheroot uses it (``wrap`` from the accepting thread).
    """

    def __init__(self, reloading: ReloadingContext) -> None:
        super().__init__(reloading.files.cert_file, reloading.files.key_file)
        self.reloading = reloading
        self.context = reloading.current()

    def wrap(self, sock: Any) -> Any:
        """Wrap ``sock`` with the current context (cheroot's own wrap, otherwise)."""
        self.context = self.reloading.current()
        return super().wrap(sock)  # type: ignore[no-untyped-call]  # unannotated in cheroot

    # cheroot's stub omits the socket that its adapters' get_environ takes and is given.
    def get_environ(self, sock: Any) -> dict[str, Any]:  # type: ignore[override]
        """cheroot's TLS environ, plus the verified client certificate's names."""
        environ: dict[str, Any] = super().get_environ(sock)  # type: ignore[no-untyped-call]
        verified = sock.context.verify_mode == ssl.CERT_REQUIRED
        environ[CERTIFICATE_NAMES] = names(sock.getpeercert()) if verified else frozenset()
        return environ


def names(certificate: dict[str, Any] | None) -> frozenset[tuple[str, str]]:
    """The (kind, name) pairs of a peer certificate as ``getpeercert()`` gives it."""
    if not certificate:
        return frozenset()
    found = set()
    for rdn in certificate.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                found.add(("cn", value))
    for kind, value in certificate.get("subjectAltName", ()):
        if kind in _SAN_KINDS:
            found.add((_SAN_KINDS[kind], value))
    return frozenset(found)
