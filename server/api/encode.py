"""Every response of the service: hits hand-encoded from stored bytes, stats as messages.

A hit never re-parses a dataset: the backends keep each object's attributes as
the serialized bytes of a ``dicomcache.v1.Dataset``, and a protobuf message field
is written on the wire as a tag, a length and the message's bytes, so a Study can
be encoded by concatenating stored bytes. Building protobuf objects instead would
parse and re-serialize every dataset on every hit. The field numbers below are
those of the .proto files (``tests/grpc/test_encode.py`` checks the output
against the protobuf library).
"""

from __future__ import annotations

import mmap
import sys
import threading
import weakref
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TypeAlias

from dicomcache.server.model import (
    CachedObject,
    InstanceData,
    NamespaceStats,
    SeriesData,
    Stats,
    StudyData,
)
from dicomcache.server.pacing import step
from dicomcache.v1 import cache_service_pb2

# A hit is ready-made bytes, or (a large streamed one) an anonymous mapping of them.
Hit: TypeAlias = bytes | mmap.mmap

# Hits at least this large are built in an anonymous mapping when the caller can
# close it (a streamed lookup): freeing a 250 MB bytes object holds the interpreter
# lock while the kernel unmaps it (23-29 ms here, every other call of the process
# stopped: issue 11, stall row S2), while ``mmap.close`` lets go of it meanwhile.
MAPPED_BYTES = 16 * 1024 * 1024

# Tags: field number << 3 | wire type (0 varint, 2 length-delimited).
_UID = b"\x0a"  # Study/Series/Instance.uid = 1
_ATTRIBUTES = b"\x12"  # .attributes = 2
_CHILDREN = b"\x1a"  # Study.series = 3, Series.instances = 3
_HIT = b"\x08\x01"  # Lookup*Response.hit = 1, GetObjectsResult.found = 1
_HIT_PAYLOAD = b"\x12"  # LookupQueryResponse.studies = 2, LookupStudyResponse.study = 2
_RESULT_FIELDS = {StudyData: b"\x12", SeriesData: b"\x1a", InstanceData: b"\x22"}
_RESULTS = b"\x0a"  # GetObjectsResponse.results = 1

_LEASE = b"\x18"  # Lookup*Response.lease = 3 (varint)


def miss(lease: int) -> bytes:
    """An encoded ``Lookup*Response`` miss (hit = false) carrying a lease."""
    return _LEASE + _varint(lease) if lease else b""


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Length prefixes up to 16 KiB, encoded once: nearly every field on a hit fits.
_SHORT = [_varint(n) for n in range(1 << 14)]


def _length(n: int) -> bytes:
    return _SHORT[n] if n < 16384 else _varint(n)


def _head(uid: str, attributes: bytes | None) -> bytes:
    raw = uid.encode()
    if attributes is None:
        return b"".join((_UID, _length(len(raw)), raw))
    return b"".join(
        (_UID, _length(len(raw)), raw, _ATTRIBUTES, _length(len(attributes)), attributes)
    )


def _field(tag: bytes, payload: bytes) -> bytes:
    return b"".join((tag, _length(len(payload)), payload))


def instance(obj: InstanceData) -> bytes:
    """An encoded ``Instance``."""
    return _head(obj.uid, obj.attributes)


def series(obj: SeriesData) -> bytes:
    """An encoded ``Series`` with its instances, in one join.

    The loop runs once per instance of a hit: each instance's fields go straight
    into the series' pieces, its length summed from theirs, without a bytes object
    of its own.
    """
    parts = [_head(obj.uid, obj.attributes)]
    add = parts.extend
    short = _SHORT
    for child in obj.instances:
        raw = child.uid.encode()
        attributes = child.attributes
        uid_length = short[len(raw)] if len(raw) < 16384 else _varint(len(raw))
        if attributes is None:
            size = 1 + len(uid_length) + len(raw)
            size_length = short[size] if size < 16384 else _varint(size)
            add((_CHILDREN, size_length, _UID, uid_length, raw))
            continue
        n = len(attributes)
        attributes_length = short[n] if n < 16384 else _varint(n)
        size = 2 + len(uid_length) + len(raw) + len(attributes_length) + n
        size_length = short[size] if size < 16384 else _varint(size)
        add((_CHILDREN, size_length, _UID, uid_length, raw, _ATTRIBUTES, attributes_length))
        parts.append(attributes)
    return b"".join(parts)


def study(obj: StudyData) -> bytes:
    """An encoded ``Study`` with its series."""
    return b"".join(_study_parts(obj))


class _Recent:
    """The encoded bytes of the single studies encoded last, by the StudyData object itself.

    A StudyData is immutable (frozen, of tuples, str and bytes), so its encoding is
    a function of the object; each entry holds the object, so it can never answer
    for another one that took its id. The memory backend serves one object for the
    repeated hits of a study that did not change (its readings), so such hits are
    encoded once; a backend that makes new objects for every hit pays a dict entry
    per hit. Only hits of one study (not query answers of many), of at most
    ``MAX_STUDY`` bytes each and ``MAX_BYTES`` in all, least recently used out.

    An entry holds its object by a weak reference: a study the backend let go of
    (evicted, expired, replaced, its reading dropped) is freed, and its entry goes
    at the next insertion. Holding the objects kept about 2.2x their encoded bytes
    of evicted studies alive outside ``--max-memory`` (8 MiB of entries: 17.6 MiB).
    Thread-safe: one lock (a weak reference's callback only appends to a list).
    """

    MAX_STUDY = 1024**2
    MAX_BYTES = 8 * 1024**2

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._kept: OrderedDict[int, tuple[weakref.ref[StudyData], bytes]] = OrderedDict()
        self._dead: list[int] = []  # ids whose object was freed: their entries go
        self.bytes = 0

    def get(self, obj: StudyData) -> bytes | None:
        """The encoded study, if it is one of those kept."""
        with self._lock:
            entry = self._kept.get(id(obj))
            if entry is None or entry[0]() is not obj:
                return None
            self._kept.move_to_end(id(obj))
            return entry[1]

    def encoded(self, obj: StudyData) -> bytes:
        """``study(obj)``, kept for the next hits when small enough."""
        found = self.get(obj)
        if found is not None:
            return found
        data = study(obj)
        if len(data) <= self.MAX_STUDY:
            key = id(obj)
            ref = weakref.ref(obj, lambda _: self._dead.append(key))
            with self._lock:
                self._forget_dead()
                old = self._kept.pop(key, None)
                if old is not None:
                    self.bytes -= len(old[1])
                self._kept[key] = (ref, data)
                self.bytes += len(data)
                while self.bytes > self.max_bytes:
                    _, (_, gone) = self._kept.popitem(last=False)
                    self.bytes -= len(gone)
        return data

    def _forget_dead(self) -> None:
        """Drop the entries whose object was freed (the lock held)."""
        while self._dead:
            key = self._dead.pop()
            entry = self._kept.get(key)
            if entry is not None and entry[0]() is None:  # not a new object of that id
                del self._kept[key]
                self.bytes -= len(entry[1])


_RECENT = _Recent()


def _study_parts(obj: StudyData) -> list[bytes]:
    """An encoded ``Study`` in pieces: its head, then each series' tag, length and body."""
    parts = [_head(obj.uid, obj.attributes)]
    for child in obj.series:
        step()  # a series is a step of the call's work (``server.pacing``)
        body = series(child)
        parts += (_CHILDREN, _length(len(body)), body)
    return parts


def query_hit(studies: Sequence[StudyData]) -> bytes:
    """An encoded ``LookupQueryResponse`` with hit = true, of any size."""
    hit = hit_within(studies, sys.maxsize)[1]
    assert isinstance(hit, bytes)  # nothing is larger than sys.maxsize; not mapped
    return hit


def study_hit(obj: StudyData) -> bytes:
    """An encoded ``LookupStudyResponse`` with hit = true (the same bytes, field 2)."""
    return query_hit([obj])


def hit_within(
    studies: Sequence[StudyData], most: int, tail: bytes = b"", mapped: bool = False
) -> tuple[int, Hit | None]:
    """The length of a hit of ``studies``, and its bytes with ``tail`` (its later
    fields) after them if that length is at most ``most`` (else None: nothing is built).

    In one copy, reading a single study's kept encoding once: a hit's size, its bytes
    and its fresh_for_ms each read or copied it again, which took about 30 us of an
    80-instance hit on a busy host (issue 15, row 17c). Joined, never added: ``a + b``
    of large bytes copies them holding the interpreter lock, where a large join lets
    go of it while it copies. A hit of one study small enough to keep goes through
    ``_RECENT``. ``mapped``: a hit of at least ``MAPPED_BYTES`` comes in an anonymous
    mapping (``_mapped``), which the caller closes (``close``) once it is sent.
    """
    if len(studies) == 1:
        body = _RECENT.get(studies[0])
        if body is None:
            bare = study_size(studies[0])
            if len(_HIT) + _field_size(bare) > most:
                return len(_HIT) + _field_size(bare), None
            if bare <= _Recent.MAX_STUDY:
                body = _RECENT.encoded(studies[0])
        if body is not None:
            head = b"".join((_HIT, _HIT_PAYLOAD, _length(len(body))))
            size = len(head) + len(body)
            if size > most:
                return size, None
            if mapped and size >= MAPPED_BYTES:
                return size, _mapped([head, body, tail], size + len(tail))
            return size, b"".join((head, body, tail))
    size = query_hit_size(studies)
    if size > most:
        return size, None
    parts = [_HIT]
    for one in studies:
        pieces = _study_parts(one)
        parts += (_HIT_PAYLOAD, _length(sum(map(len, pieces))))
        parts += pieces
        del pieces  # ``parts`` holds the only references: ``_mapped`` lets go as it copies
    parts.append(tail)
    if mapped and size >= MAPPED_BYTES:
        return size, _mapped(parts, size + len(tail))
    return size, _joined(parts)


def _mapped(parts: list[bytes], size: int) -> mmap.mmap:
    """``parts`` copied into a new anonymous mapping of ``size`` bytes, about
    ``_MAPPED_COPY`` at a time, each copy a step of the call's work (``server.pacing``):
    a write into the mapping holds the interpreter lock while it copies and faults the
    pages in (one 75 MB write: about 40 ms). ``parts`` is emptied, each let go of once
    copied: the list of a 250 MB hit's series freed them in one deallocation, about
    100 unmappings of 2.5 MB holding the lock (issue 11, stall row S2)."""
    buffer = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    run: list[bytes] = []
    held = 0
    parts.reverse()
    while parts:
        part = parts.pop()
        if len(part) > _MAPPED_COPY:
            _write(buffer, run)
            run, held = [], 0
            with memoryview(part) as view:
                for start in range(0, len(part), _MAPPED_COPY):
                    step()
                    buffer.write(view[start : start + _MAPPED_COPY])
            continue
        run.append(part)
        held += len(part)
        if held >= _MAPPED_COPY:
            _write(buffer, run)
            run, held = [], 0
    _write(buffer, run)
    written = buffer.tell()
    if written != size:  # the size worked out beforehand is what the first piece says
        buffer.close()
        raise AssertionError(f"a hit of {size} bytes was encoded in {written}")
    return buffer


_MAPPED_COPY = 256 * 1024  # bytes copied into a mapping at a time


def _write(buffer: mmap.mmap, run: list[bytes]) -> None:
    if run:
        step()
        buffer.write(b"".join(run))


def close(hit: Hit) -> None:
    """Let go of a hit once it is sent: a mapping is unmapped, the lock let go meanwhile."""
    if isinstance(hit, mmap.mmap):
        hit.close()


# Pieces joined at a time: a join first walks its pieces holding the interpreter
# lock, about 30 us per thousand, so a hit of 100,000 studies joins in groups.
_JOIN_GROUP = 4096


def _joined(parts: list[bytes]) -> bytes:
    if len(parts) <= _JOIN_GROUP:
        return b"".join(parts)
    return b"".join(
        [b"".join(parts[i : i + _JOIN_GROUP]) for i in range(0, len(parts), _JOIN_GROUP)]
    )


def _field_size(n: int) -> int:
    """Bytes of a length-delimited field with a one-byte tag and an n-byte payload."""
    return 1 + len(_length(n)) + n


def _head_size(uid: str, attributes: bytes | None) -> int:
    size = _field_size(len(uid.encode()))
    return size if attributes is None else size + _field_size(len(attributes))


def study_size(obj: StudyData) -> int:
    """The length of ``study(obj)``, without building it (the instances' loop inline)."""
    size = _head_size(obj.uid, obj.attributes)
    short = _SHORT
    for child in obj.series:
        step()
        body = _head_size(child.uid, child.attributes)
        for grandchild in child.instances:
            n = len(grandchild.uid.encode())
            one = 1 + (1 if n < 128 else len(_length(n))) + n
            attributes = grandchild.attributes
            if attributes is not None:
                n = len(attributes)
                one += 1 + (1 if n < 128 else len(_length(n))) + n
            body += 1 + (len(short[one]) if one < 16384 else len(_varint(one))) + one
        size += _field_size(body)
    return size


def query_hit_size(studies: Sequence[StudyData]) -> int:
    """The length of ``query_hit(studies)``: what a store of this answer will cost to serve."""
    if len(studies) == 1:
        return study_hit_size(studies[0])
    return len(_HIT) + sum(_field_size(study_size(s)) for s in studies)


def study_hit_size(obj: StudyData) -> int:
    """The length of ``study_hit(obj)`` (from its kept bytes, if ``_RECENT`` has them)."""
    kept = _RECENT.get(obj)
    return len(_HIT) + _field_size(len(kept) if kept is not None else study_size(obj))


# Stream*Response fields: chunk = 1 (bytes), total_bytes = 2, max_message_bytes = 3,
# max_answer_bytes = 4 (varints).
_CHUNK = b"\x0a"
_TOTAL_BYTES = b"\x10"
_MAX_MESSAGE_BYTES = b"\x18"
_MAX_ANSWER_BYTES = b"\x20"


def stream(
    response: Hit, chunk_bytes: int, max_message_bytes: int, max_answer_bytes: int = 0
) -> Iterator[bytes]:
    """A response as encoded ``Stream*Response`` messages of at most ``chunk_bytes`` of it each.

    The first message says the response's total size, so that a client can set its
    deadline for the rest, and the server's largest message and answer (0: not
    said); a response of any size, a miss's included, gives at least that one message.
    Holds no view of ``response`` once it ended or was closed (a mapping can be closed).
    A mapping's pages are given back as the pieces are cut (``_Discard``).
    """
    discard = _Discard(response) if isinstance(response, mmap.mmap) else None
    with memoryview(response) as view:
        with view[:chunk_bytes] as first:
            head = [_TOTAL_BYTES, _varint(len(view)), _MAX_MESSAGE_BYTES]
            head.append(_varint(max_message_bytes))
            if max_answer_bytes:
                head += (_MAX_ANSWER_BYTES, _varint(max_answer_bytes))
            message = b"".join((*head, _CHUNK, _length(len(first)), first))
        if discard is not None:
            discard.before(chunk_bytes)
        yield message
        for start in range(chunk_bytes, len(view), chunk_bytes):
            with view[start : start + chunk_bytes] as piece:
                message = b"".join((_CHUNK, _length(len(piece)), piece))
            if discard is not None:
                discard.before(start + chunk_bytes)
            yield message


class _Discard:
    """Gives a mapping's pages back to the kernel as a stream has copied them.

    Unmapping a 250 MB mapping at once took about 70 ms, the interpreter lock let go
    of but the process's memory map locked meanwhile, so every thread that touched
    new memory waited (issue 11, stall row S2); ``MADV_DONTNEED`` a piece at a time
    (about 0.1 ms a MiB), and the final ``close`` has nothing left to unmap.
    Not thread-safe: one stream's.
    """

    __slots__ = ("_buffer", "_done")

    def __init__(self, buffer: mmap.mmap) -> None:
        self._buffer = buffer
        self._done = 0  # pages before this offset are given back (a multiple of PAGESIZE)

    def before(self, offset: int) -> None:
        """Give back the whole pages before ``offset``: the stream has copied them."""
        end = min(offset, len(self._buffer)) // mmap.PAGESIZE * mmap.PAGESIZE
        if end > self._done:
            self._buffer.madvise(mmap.MADV_DONTNEED, self._done, end - self._done)
            self._done = end


_ENCODERS = {StudyData: study, SeriesData: series, InstanceData: instance}


def objects_result(results: Sequence[CachedObject | None]) -> bytes:
    """An encoded ``GetObjectsResponse``: one result per reference, found or not."""
    parts = []
    for obj in results:
        if obj is None:
            parts.append(_field(_RESULTS, b""))
        else:
            kind = type(obj)
            body = _HIT + _field(_RESULT_FIELDS[kind], _ENCODERS[kind](obj))  # type: ignore[operator]  # the table pairs each kind with its encoder; mypy cannot see that
            parts.append(_field(_RESULTS, body))
    return b"".join(parts)


def _namespace_stats(stats: NamespaceStats) -> cache_service_pb2.NamespaceStats:
    return cache_service_pb2.NamespaceStats(
        namespace=stats.namespace,
        studies=stats.studies,
        series=stats.series,
        instances=stats.instances,
        queries=stats.queries,
        bytes=stats.bytes,
        hits=stats.hits,
        misses=stats.misses,
        evictions=stats.evictions,
        expirations=stats.expirations,
    )


def stats_to_proto(stats: Stats) -> cache_service_pb2.GetStatsResponse:
    """The GetStats response for the backend's figures."""
    return cache_service_pb2.GetStatsResponse(
        namespaces=[_namespace_stats(s) for s in stats.namespaces],
        total_bytes=stats.total_bytes,
        max_bytes=stats.max_bytes,
    )
