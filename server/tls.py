"""The server's TLS credentials, re-read from their files when they change.

cert-manager (and any Kubernetes Secret mount) replaces certificate files in
place; a server that read them once would serve an expired certificate until it
restarted. gRPC asks ``fetch`` for the configuration at every new handshake, so a
change reaches the next connection, with no restart and no dropped calls. A
change is noticed by the files' (inode, size, mtime), at most once per
``CHECK_INTERVAL``; a half-written or mismatched pair (certificate renewed, key
not yet) keeps the configuration in use and is retried at the next check.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from dicomcache.server.watch import FileWatch

log = logging.getLogger(__name__)

CHECK_INTERVAL = 1.0  # seconds between looks at the files, whatever the handshake rate


@dataclass(frozen=True)
class TLSFiles:
    """Where the server's key, certificate chain and (for mutual TLS) client CA are."""

    cert_file: str
    key_file: str
    client_ca_file: str | None = None

    @property
    def paths(self) -> tuple[str, ...]:
        """Every file the configuration is built from."""
        extra = (self.client_ca_file,) if self.client_ca_file else ()
        return (self.cert_file, self.key_file, *extra)


class ReloadingCredentials:
    """gRPC server credentials whose certificates follow their files.

    Thread-safe: gRPC calls ``fetch`` from its own threads; ``FileWatch`` lets one
    of them look at a time. Reads the injected monotonic clock to pace its checks.

    Raises (on construction):
        OSError: a file cannot be read.
        ValueError: a file holds no PEM block of the expected kind.
    """

    def __init__(self, files: TLSFiles, clock: Callable[[], float] = time.monotonic) -> None:
        self.files = files
        self._watch = FileWatch(files.paths, CHECK_INTERVAL, clock)  # before reading them
        initial = _configuration(files)
        self.reloads = 0  # how many times a changed configuration was taken up
        self.credentials = grpc.dynamic_ssl_server_credentials(
            initial,
            self.fetch,
            require_client_authentication=files.client_ca_file is not None,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """A new configuration when the files changed since the last look, else None."""
        if not self._watch.changed():  # one thread at a time gets True
            return None
        try:
            configuration = _configuration(self.files)
        except (OSError, ValueError) as exc:
            self._watch.watch(self.files.paths)  # not taken: look again at the next check
            log.warning("TLS files changed but cannot be used yet, keeping the old: %s", exc)
            return None
        self.reloads += 1
        log.info("TLS certificates re-read from %s", ", ".join(self.files.paths))
        return configuration


def _configuration(files: TLSFiles) -> grpc.ServerCertificateConfiguration:
    chain = _read(files.cert_file, b"CERTIFICATE")
    key = _read(files.key_file, b"PRIVATE KEY")
    _check_pair(files, chain, key)
    roots = _read(files.client_ca_file, b"CERTIFICATE") if files.client_ca_file else None
    return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)


def _read(path: str, kind: bytes) -> bytes:
    with open(path, "rb") as file:
        data = file.read()
    if b"-----BEGIN " not in data or kind not in data:
        raise ValueError(f"{path}: no PEM {kind.decode()} in it")
    return data


def _check_pair(files: TLSFiles, chain: bytes, key: bytes) -> None:
    """Refuse a key that does not match the certificate, which gRPC would take silently.

    gRPC reports a mismatched pair only as failed handshakes, with nothing in the
    log; checked here, a rotation caught half-way keeps the old pair.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certificate = x509.load_pem_x509_certificate(chain)
        private = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{files.cert_file} / {files.key_file}: {exc}") from None
    public = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    if certificate.public_key().public_bytes(*public) != private.public_key().public_bytes(*public):
        raise ValueError(f"{files.key_file} is not the key of {files.cert_file}")
