"""The archives the server reads through: named upstreams, configured at start.

    Upstream     what the read-through needs of an archive: ``fetch`` one request
    config       ``--upstream NAME=URL`` and the upstreams file, checked at start
    qido_rs      a QIDO-RS archive over HTTP(S)
    dicom_qr     a DICOM-QR archive (C-FIND)

Each upstream is its own namespace in the cache, so a client names the archive and
nothing else. Credentials come from files or environment variables, never from
the command line, and are never logged.
"""

from __future__ import annotations

from typing import Any, Protocol

from dicomcache.v1 import query_pb2


class Upstream(Protocol):
    """An archive that answers the requests the cache keys by.

    Thread-safe: the read-through calls ``fetch`` from many serving threads.
    """

    name: str  # as configured; also the upstream's namespace in the cache
    protocol: int  # query_pb2.PROTOCOL_QIDO_RS or query_pb2.PROTOCOL_DICOM_QR

    def fetch(self, request: query_pb2.ArchiveRequest, timeout: float) -> list[dict[str, Any]]:
        """Ask the archive; its answer as PS3.18 DICOM JSON objects, in its order.

        Args:
            request: what the archive receives (``server/search`` normalizes it):
                QIDO-RS, the resource path and the query parameters; DICOM-QR, the
                Query/Retrieve level as path and the identifier's attributes.
            timeout: seconds the whole exchange may take.
        Raises:
            UpstreamFailed: the archive could not be reached, timed out or refused.
        """
        ...

    def close(self) -> None:
        """Release connections."""
        ...
