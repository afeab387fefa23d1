"""How a client proves who it is and checks whom it talks to: TLS settings and a bearer token.

The token travels as gRPC metadata, ``authorization: Bearer <token>``, on every
call. gRPC's own call credentials would refuse a plaintext channel, but a sidecar
on loopback is a legitimate place for a token (the server's policy decides), so
the metadata is attached by the client itself. Off loopback, the server refuses
to run without TLS, so a token never crosses a network in clear text.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import grpc

AUTHORIZATION = "authorization"  # gRPC metadata keys are lower case


@dataclass(frozen=True)
class ClientTLS:
    """TLS towards the cache server.

    Args:
        ca_file: CA bundle (PEM) that the server's certificate must chain to;
            None uses gRPC's default roots.
        cert_file: the client's certificate chain (PEM), for mutual TLS.
        key_file: the client's private key (PEM), for mutual TLS.
        server_name: the name to check the server's certificate against, when it
            is not the host of the target (e.g. a Service name behind a port-forward).
    """

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("ClientTLS: cert_file and key_file must be given together")

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """gRPC channel credentials read from the files now.

        Raises:
            OSError: a file cannot be read.
        """
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )

    def channel_options(self) -> tuple[tuple[str, str], ...]:
        """Options that the channel needs for ``server_name``."""
        if self.server_name is None:
            return ()
        return (("grpc.ssl_target_name_override", self.server_name),)


class Token:
    """A bearer token, given or read from a file that is re-read when it changes.

    A token file is how Kubernetes mounts a secret, and a secret can be rotated
    under a running pod. Thread-safe. The token is never part of ``repr``.

    Raises (on construction):
        ValueError: both or neither of token and file are given, or the token is empty.
        OSError: the file cannot be read.
    """

    def __init__(self, token: str | None = None, file: str | None = None) -> None:
        if (token is None) == (file is None):
            raise ValueError("Token: give exactly one of token and file")
        self.file = file
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._value = _checked(token) if token is not None else ""
        if file is not None:
            self.metadata()

    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata that carries the token (the file re-read if it changed)."""
        if self.file is not None:
            status = os.stat(self.file)
            stamp = (status.st_ino, status.st_size, status.st_mtime_ns)
            with self._lock:
                if stamp != self._stamp:
                    with open(self.file, encoding="utf-8") as handle:
                        self._value = _checked(handle.read().strip())
                    self._stamp = stamp
        return ((AUTHORIZATION, f"Bearer {self._value}"),)

    def __repr__(self) -> str:
        source = f"file={self.file!r}" if self.file is not None else "token=***"
        return f"Token({source})"


def _checked(token: str) -> str:
    if not token or any(c.isspace() for c in token):
        raise ValueError("Token: a token is one non-empty word")
    return token


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as file:
        return file.read()
