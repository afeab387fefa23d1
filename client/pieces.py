"""A large store cut into the pieces of its streamed form (StreamStoreQuery, StreamStoreStudy).

A message is taken in by the server in one step that holds up its other calls
(about 1 ms per MB), and the server refuses one larger than its largest message
(4 MiB by default), so ``CacheClient`` sends a store larger than ``PIECE_BYTES`` as
pieces of about that size (see ``cache_service.proto``): the first carries the
unary request with as many objects as fit, each next one adds instances to the
last series so far, series to the last study so far, studies to the answer; the
last piece says so. The cut may fall between any two objects: a series of 100,000
instances goes in many pieces.

Pure functions of the request: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2

# About 1 ms of the server's time per piece taken in; a 10 MB answer is ten pieces.
PIECE_BYTES = 1024**2
# A field's tag and length beside the object it frames, counted once per object.
_FRAMING = 6


def study_pieces(
    request: pb.StoreStudyRequest, piece_bytes: int = PIECE_BYTES
) -> Iterator[pb.StreamStoreStudyRequest]:
    """The pieces of a StoreStudy: the request with its study's own fields first."""
    first = pb.StreamStoreStudyRequest()
    first.store.CopyFrom(request)
    first.store.study.ClearField("series")
    cut = _Cut(first, piece_bytes)
    cut.study = first.store.study
    for series in request.study.series:
        yield from cut.series(series)
    yield cut.last()


def query_pieces(
    request: pb.StoreQueryRequest, piece_bytes: int = PIECE_BYTES
) -> Iterator[pb.StreamStoreQueryRequest]:
    """The pieces of a StoreQuery: the request without its studies first."""
    first = pb.StreamStoreQueryRequest()
    first.store.CopyFrom(request)
    first.store.ClearField("studies")
    cut = _Cut(first, piece_bytes)
    for study in request.studies:
        yield from cut.add_study(study)
    yield cut.last()


class _Cut:
    """The piece being filled, and where in it the next series and instances go.

    ``study`` and ``series`` are the messages in this piece whose children may still
    be added (None once the piece was cut: then they go to the piece's own
    ``series`` and ``instances`` fields, which add to the last ones so far).
    Not thread-safe: one per store.
    """

    def __init__(self, first: Any, piece_bytes: int) -> None:
        self.piece = first
        self.size = first.ByteSize()
        self.limit = piece_bytes
        self.study: objects_pb2.Study | None = None
        self.series_message: objects_pb2.Series | None = None

    def _room(self, size: int) -> Iterator[Any]:
        """Cut the piece first when ``size`` more bytes would not fit it."""
        if self.size and self.size + size + _FRAMING > self.limit:
            yield self.piece
            self.piece = type(self.piece)()
            self.size = 0
            self.study = self.series_message = None
        self.size += size + _FRAMING

    def add_study(self, study: objects_pb2.Study) -> Iterator[Any]:
        """Add a study: whole when it fits the piece, else its own fields and then its series."""
        whole = study.ByteSize()
        if self.size + whole + _FRAMING <= self.limit or not study.series:
            yield from self._room(whole)
            self.piece.studies.add().CopyFrom(study)
            self.study = self.series_message = None
            return
        head = _head(objects_pb2.Study, study)
        yield from self._room(head.ByteSize())
        self.piece.studies.append(head)
        self.study = self.piece.studies[-1]
        self.series_message = None
        for series in study.series:
            yield from self.series(series)

    def series(self, series: objects_pb2.Series) -> Iterator[Any]:
        """Add a series to the last study: whole when it fits, else in runs of instances."""
        whole = series.ByteSize()
        if self.size + whole + _FRAMING <= self.limit or not series.instances:
            yield from self._room(whole)
            self._series_field().add().CopyFrom(series)
            self.series_message = None
            return
        head = _head(objects_pb2.Series, series)
        yield from self._room(head.ByteSize())
        field = self._series_field()
        field.append(head)
        self.series_message = field[-1]
        yield from self._instances(series.instances)

    def _instances(self, instances: Iterable[objects_pb2.Instance]) -> Iterator[Any]:
        for instance in instances:
            yield from self._room(instance.ByteSize())
            target = self.series_message
            (target.instances if target is not None else self.piece.instances).add().CopyFrom(
                instance
            )

    def _series_field(self) -> Any:
        return self.study.series if self.study is not None else self.piece.series

    def last(self) -> Any:
        """The last piece, marked so."""
        self.piece.last = True
        return self.piece


def _head(kind: Any, obj: Any) -> Any:
    """An object's own fields (uid, attributes) without its children."""
    head = kind(uid=obj.uid)
    if obj.HasField("attributes"):
        head.attributes.CopyFrom(obj.attributes)
    return head
