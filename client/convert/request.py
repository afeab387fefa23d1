"""The request a query becomes at the archive, as an ``ArchiveRequest``: the cache key.

Two queries that the upstream sends as the same request must share one cache
entry, and only those: ``include_fields=[]`` and ``None``, two times on one date
when the protocol sends only the date, a ``Query`` that the QIDO-RS searcher turns
into a ``HierarchicalQuery``. So the request is built exactly as dicomtrolley's
searcher builds it (its own query classes and their methods) and the server keys
the entry by it. A query the searcher would refuse has no request: it is keyed by
its content, and the upstream says what is wrong with it.

The functions are pure (thread-safe, no clock). Building a request costs tens to
hundreds of microseconds of dicomtrolley's pydantic work (about 75 us for QIDO-RS,
190 us for DICOM-QR here), on every hit, so ``Requests`` keeps the recent ones by
the query's content.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from dicomtrolley.core import Query, Searcher
from dicomtrolley.dicom_qr import DICOMQR, DICOMQuery
from dicomtrolley.mint import Mint
from dicomtrolley.qido_rs import QidoRS

from dicomcache.v1 import query_pb2

# The protocol names CachedSearcher accepts, and the contract's values for them.
PROTOCOLS = {
    "qido-rs": query_pb2.PROTOCOL_QIDO_RS,
    "dicom-qr": query_pb2.PROTOCOL_DICOM_QR,
    "mint": query_pb2.PROTOCOL_MINT,
}


def protocol_value(name: str | None) -> query_pb2.Protocol:
    """The contract's Protocol for a protocol name (None: unspecified).

    Raises:
        ValueError: not one of ``PROTOCOLS``.
    """
    if name is None:
        return query_pb2.PROTOCOL_UNSPECIFIED
    if name not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)} or None, not {name!r}")
    return PROTOCOLS[name]


def protocol_of(upstream: Searcher) -> str | None:
    """The protocol name of a dicomtrolley searcher, or None for any other searcher."""
    if isinstance(upstream, QidoRS):
        return "qido-rs"
    if isinstance(upstream, DICOMQR):
        return "dicom-qr"
    if isinstance(upstream, Mint):
        return "mint"
    return None


def archive_request(protocol: str | None, query: Query) -> query_pb2.ArchiveRequest | None:
    """What the upstream of ``protocol`` sends for ``query``, or None if not known.

    None for protocols whose requests are not built here (MINT, unknown) and for
    queries the upstream's own conversion refuses.
    """
    try:
        if protocol == "qido-rs":
            return _qido_rs(query)
        if protocol == "dicom-qr":
            return _dicom_qr(query)
    except Exception:  # the upstream's own conversion refused it: it will say why when asked
        return None
    return None


class Requests:
    """The archive requests of recent queries of one protocol, by the query's content.

    The request is a function of the query's class and fields, all of which its
    contract message carries (``query_to_proto`` is lossless), so the message's
    bytes are the key. Thread-safe. No clock: the least recently used goes first.

    Args:
        protocol: as for ``archive_request``.
        size: how many requests to keep.
    """

    def __init__(self, protocol: str | None, size: int = 1024) -> None:
        self.protocol = protocol
        self._size = size
        self._lock = threading.Lock()
        self._known: OrderedDict[bytes, query_pb2.ArchiveRequest | None] = OrderedDict()

    def get(self, query: Query, message: query_pb2.Query) -> query_pb2.ArchiveRequest | None:
        """``archive_request(protocol, query)``, where ``message`` is the query's contract form.

        The request returned is shared: read it, do not change it.
        """
        if self.protocol not in ("qido-rs", "dicom-qr"):
            return None
        key = message.SerializeToString(deterministic=True)
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
                return self._known[key]
        request = archive_request(self.protocol, query)
        with self._lock:
            self._known[key] = request
            if len(self._known) > self._size:
                self._known.popitem(last=False)
        return request


def _qido_rs(query: Query) -> query_pb2.ArchiveRequest:
    qido = QidoRS.ensure_query_type(query)
    request = query_pb2.ArchiveRequest(path=qido.uri_base())
    for name, value in qido.uri_search_params().items():
        request.parameters.add(name=name, values=_texts(value))
    return request


def _dicom_qr(query: Query) -> query_pb2.ArchiveRequest:
    identifier = DICOMQuery.init_from_query(query).as_dataset()
    request = query_pb2.ArchiveRequest(path=str(identifier.get("QueryRetrieveLevel", "")))
    for element in identifier:
        if element.keyword and element.keyword != "QueryRetrieveLevel":
            request.parameters.add(name=element.keyword, values=_texts(element.value))
    return request


def _texts(value: Any) -> list[str]:
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return [str(v) for v in value]
    return [str(value)] if value is not None else []
