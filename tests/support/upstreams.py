"""Real upstreams for the Search tests, counted: how many requests reached the archive."""

from __future__ import annotations

import threading
from typing import Any

from dicomcache.server.upstreams import Upstream
from dicomcache.v1 import query_pb2


class CountingUpstream:
    """A real upstream that counts the fetches passed to it (thread-safe).

    Args:
        inner: the real upstream (QIDO-RS or DICOM-QR against a real archive).
        gate: when given, each fetch waits for it before asking the archive, so a test
            can hold a fetch in flight while others arrive.
    """

    def __init__(self, inner: Upstream, gate: threading.Event | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.protocol = inner.protocol
        self.gate = gate
        self.requests: list[query_pb2.ArchiveRequest] = []
        self._lock = threading.Lock()

    @property
    def fetches(self) -> int:
        with self._lock:
            return len(self.requests)

    def fetch(self, request: query_pb2.ArchiveRequest, timeout: float) -> list[dict[str, Any]]:
        with self._lock:
            self.requests.append(request)
        if self.gate is not None:
            self.gate.wait(30)
        return self.inner.fetch(request, timeout)

    def close(self) -> None:
        self.inner.close()
