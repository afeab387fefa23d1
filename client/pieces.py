"""A large store cut into the pieces of its streamed form (StreamStoreQuery, StreamStoreStudy).

A message is taken in by the server in one step that holds up its other calls
(about 1 ms per MB), and the server refuses one larger than its largest message
(4 MiB by default), so ``CacheClient`` sends a store larger than ``PIECE_BYTES`` as
pieces of about that size (see ``cache_service.proto``): the first carries the
unary request with as many objects as fit, each next one adds instances to the
last series so far, series to the last study so far, studies to the answer; the
last piece says so. The cut may fall between any two objects: a series of 100,000
instances goes in many pieces.

The pieces are wire bytes, each object's serialized as the unary request's would
be: a message copied into another may serialize its attributes' map in another
order, and the server keeps attributes as their bytes (the same attributes written
again keep the answers that hold them only when their bytes are the same).

Pure functions of the request: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2

# About 1 ms of the server's time per piece taken in; a 10 MB answer is ten pieces.
PIECE_BYTES = 1024**2
# A field's tag and length beside the bytes it frames, counted once per object.
_FRAMING = 6


def _number(message: Any, name: str) -> int:
    return int(message.DESCRIPTOR.fields_by_name[name].number)


# Where each object goes: in its parent, or in a piece of its own (after a cut).
_STORE = _number(pb.StreamStoreQueryRequest, "store")
_PIECE_INSTANCES = _number(pb.StreamStoreQueryRequest, "instances")
_PIECE_SERIES = _number(pb.StreamStoreQueryRequest, "series")
_PIECE_STUDIES = _number(pb.StreamStoreQueryRequest, "studies")
_QUERY_LAST = _number(pb.StreamStoreQueryRequest, "last")
_STUDY_LAST = _number(pb.StreamStoreStudyRequest, "last")
_STORE_STUDY = _number(pb.StoreStudyRequest, "study")
_STORE_STUDIES = _number(pb.StoreQueryRequest, "studies")
_SERIES = _number(objects_pb2.Study, "series")
_INSTANCES = _number(objects_pb2.Series, "instances")
_UID = _number(objects_pb2.Study, "uid")
_ATTRIBUTES = _number(objects_pb2.Study, "attributes")
# The two pieces number their instances and series alike.
_STUDY_PIECE = (
    _number(pb.StreamStoreStudyRequest, "instances"),
    _number(pb.StreamStoreStudyRequest, "series"),
)
assert _STUDY_PIECE == (_PIECE_INSTANCES, _PIECE_SERIES), "pieces.py assumes it"


def study_pieces(request: pb.StoreStudyRequest, piece_bytes: int = PIECE_BYTES) -> Iterator[bytes]:
    """The pieces of a StoreStudy, serialized StreamStoreStudyRequests."""
    cut = _Cut(piece_bytes, _STUDY_LAST)
    head, study = _without(request, "study"), _head(request.study)
    cut.open(_STORE, head)
    cut.open(_STORE_STUDY, study)
    cut.size = len(head) + len(study) + 2 * _FRAMING
    cut.study_open = True
    for series in request.study.series:
        yield from cut.series(series)
    yield cut.last()


def query_pieces(request: pb.StoreQueryRequest, piece_bytes: int = PIECE_BYTES) -> Iterator[bytes]:
    """The pieces of a StoreQuery, serialized StreamStoreQueryRequests."""
    cut = _Cut(piece_bytes, _QUERY_LAST)
    head = _without(request, "studies")
    cut.open(_STORE, head)
    cut.size = len(head) + _FRAMING
    cut.store_open = True
    for study in request.studies:
        yield from cut.study(study)
    yield cut.last()


class _Cut:
    """The piece being filled: a stack of open messages (the piece itself at the
    bottom), each a field number in its parent and the parts so far.

    Which are open says where the next object goes: into the open study (or
    store, or series) of this piece, else, once the piece was cut, into the piece's
    own ``studies``, ``series`` or ``instances`` field, which add to the last ones
    so far. Not thread-safe: one per store.
    """

    def __init__(self, piece_bytes: int, last_field: int) -> None:
        self.limit = piece_bytes
        self.last_field = last_field
        self.stack: list[tuple[int, list[bytes]]] = [(0, [])]
        self.size = 0
        self.store_open = self.study_open = self.series_open = False

    def open(self, field: int, head: bytes) -> None:
        """Open a message whose children follow (its size counted by ``_room``)."""
        self.stack.append((field, [head]))

    def _close(self) -> None:
        field, parts = self.stack.pop()
        self.stack[-1][1].append(_field(field, b"".join(parts)))

    def _add(self, field: int, data: bytes) -> None:
        self.stack[-1][1].append(_field(field, data))

    def _room(self, size: int) -> Iterator[bytes]:
        """Cut the piece first when ``size`` more bytes would not fit it."""
        if self.size and self.size + size + _FRAMING > self.limit:
            yield self._piece()
        self.size += size + _FRAMING

    def _piece(self) -> bytes:
        while len(self.stack) > 1:
            self._close()
        piece = b"".join(self.stack[0][1])
        self.stack = [(0, [])]
        self.size = 0
        self.store_open = self.study_open = self.series_open = False
        return piece

    def _fits(self, size: int) -> bool:
        return self.size + size + _FRAMING <= self.limit

    def study(self, study: objects_pb2.Study) -> Iterator[bytes]:
        """Add a study: whole when it fits the piece, else its own fields, then its series."""
        self._close_to(self.store_open)
        whole = study.ByteSize()
        if self._fits(whole) or not study.series:
            yield from self._room(whole)
            self._add(self._studies_field(), study.SerializeToString())
            return
        head = _head(study)
        yield from self._room(len(head))
        self.open(self._studies_field(), head)
        self.study_open = True
        for series in study.series:
            yield from self.series(series)

    def series(self, series: objects_pb2.Series) -> Iterator[bytes]:
        """Add a series to the last study: whole when it fits, else in runs of instances."""
        if self.series_open:
            self._close()
            self.series_open = False
        whole = series.ByteSize()
        if self._fits(whole) or not series.instances:
            yield from self._room(whole)
            self._add(_SERIES if self.study_open else _PIECE_SERIES, series.SerializeToString())
            return
        head = _head(series)
        yield from self._room(len(head))
        self.open(_SERIES if self.study_open else _PIECE_SERIES, head)
        self.series_open = True
        for instance in series.instances:
            data = instance.SerializeToString()
            yield from self._room(len(data))
            self._add(_INSTANCES if self.series_open else _PIECE_INSTANCES, data)

    def _studies_field(self) -> int:
        """Where a study goes now: the first piece's store, else the piece (after a cut)."""
        return _STORE_STUDIES if self.store_open else _PIECE_STUDIES

    def _close_to(self, store_open: bool) -> None:
        """Close the open series and study of this piece, down to the store if open."""
        if self.series_open:
            self._close()
            self.series_open = False
        if self.study_open:
            self._close()
            self.study_open = False
        assert len(self.stack) == (2 if store_open else 1)

    def last(self) -> bytes:
        """The last piece, marked so."""
        piece = self._piece()
        return piece + bytes([self.last_field << 3, 1])


def _without(request: Any, objects: str) -> bytes:
    """The request's own fields, without its objects."""
    head = type(request)()
    head.CopyFrom(request)
    head.ClearField(objects)
    return bytes(head.SerializeToString())


def _head(obj: objects_pb2.Study | objects_pb2.Series) -> bytes:
    """An object's own fields (uid, attributes), serialized as within the whole request."""
    head = _field(_UID, obj.uid.encode())
    if obj.HasField("attributes"):
        head += _field(_ATTRIBUTES, obj.attributes.SerializeToString())
    return head


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)
