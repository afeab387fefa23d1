"""Instances' attributes packed with raw deflate against a dictionary: their study's.

The instances of one study repeat each other almost entirely: the same study and
series uids, patient, dates, tags, VRs and RetrieveURL prefixes. Deflating an
instance's serialized Dataset with another instance of the study as a preset
dictionary leaves little more than its own uids: an Orthanc QIDO-RS instance of 18
attributes (about 770 bytes) packs to about 50.

A blob can only be unpacked with the very dictionary it was packed against. The
caller owns that rule: a dictionary must not change while a blob packed against it
lives (the tree sets a study's dictionary once, for the life of the study node).

Every call into zlib lets go of the interpreter lock, and getting it back can wait
for whichever thread took it (up to the 5 ms switch interval). So a hit unpacks all
its blobs in one call (``unpack_all``): each blob ends on a sync flush, byte-aligned
and not final, so blobs can follow each other in one deflate stream, each behind a
stored block holding its dictionary. Packing can only go one blob per call: callers
pack outside their own locks.

Blob format, by its first byte:

* ``0xFF``: packed: the data's length (2 bytes, little-endian), then the deflate
  blocks up to a sync flush, without the flush's final ``00 00 FF FF``;
* ``0xFD``: the data as given, after this byte;
* anything else, or an empty blob: the blob is the data as given. Data that does
  not shrink is kept this way at no cost (no copy, no byte added), unless its own
  first byte is ``0xFD`` or above, which gets the ``0xFD`` prefix.

Data shorter than ``MIN_PACKED`` or longer than ``MAX_PACKED`` is kept as given:
the first cannot save anything worth the work; the second bounds the work per
object (query answers rarely come near it: bulk data travels as URIs).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

from dicomcache.server.pacing import step

# Data outside these lengths is kept as given (see above).
MIN_PACKED = 16
MAX_PACKED = 8192
# Data shorter than this makes a poor dictionary; longer data gives only its head.
MIN_DICTIONARY = 64
MAX_DICTIONARY = 4096

# Level 6 with memLevel 4: the sizes of level 9 at nearly the speed of level 1
# (about 5 us per 770-byte instance). Raw deflate (negative wbits): no header, no
# checksum. The 32 KiB window reaches back over any dictionary and data allowed.
_LEVEL = 6
_MEM_LEVEL = 4
_WBITS = -15

_PACKED = 0xFF
_AS_GIVEN = 0xFD
_PACKED_PREFIX = bytes([_PACKED])
_AS_GIVEN_PREFIX = bytes([_AS_GIVEN])
_HEAD = 3  # marker and length
_SYNC = b"\x00\x00\xff\xff"  # the end of a sync flush: an empty stored block's lengths


def dictionary(data: bytes) -> bytes | None:
    """The dictionary to take from ``data`` (its head), or None if it is too short to help."""
    if len(data) < MIN_DICTIONARY:
        return None
    return data[:MAX_DICTIONARY]  # the same object when it is short enough: no copy


def pack(data: bytes, dictionary: bytes | None) -> bytes:
    """``data`` as a blob: deflated against ``dictionary`` when there is one and that shrinks it.

    Args:
        data: the bytes to keep.
        dictionary: the preset dictionary (at most ``MAX_DICTIONARY`` bytes), or None.
    Returns:
        The blob to keep; ``data`` itself when it is kept as given.
    Raises:
        ValueError: the dictionary is longer than ``MAX_DICTIONARY`` (a blob's stored
            block and deflate's window must hold it).
    """
    if dictionary is not None and len(dictionary) > MAX_DICTIONARY:
        raise ValueError("the dictionary is too long")
    if dictionary is not None and MIN_PACKED <= len(data) <= MAX_PACKED:
        deflater = zlib.compressobj(
            _LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL, zlib.Z_DEFAULT_STRATEGY, dictionary
        )
        body = deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)
        if len(body) - len(_SYNC) + _HEAD < len(data):
            return b"".join((_PACKED_PREFIX, len(data).to_bytes(2, "little"), body[: -len(_SYNC)]))
    if data and data[0] >= _AS_GIVEN:
        return _AS_GIVEN_PREFIX + data
    return data


def packed(blob: bytes | None) -> bool:
    """Whether ``blob`` needs its dictionary to be read."""
    return blob is not None and blob[:1] == _PACKED_PREFIX


def unpacked_length(blob: bytes) -> int:
    """The length of the data ``pack`` was given for ``blob``, without unpacking it."""
    if not blob:
        return 0
    if blob[0] == _PACKED:
        return blob[1] | blob[2] << 8
    return len(blob) - 1 if blob[0] == _AS_GIVEN else len(blob)


def unpack(blob: bytes, dictionary: bytes | None) -> bytes:
    """The data ``pack`` was given for ``blob``.

    Args:
        blob: what ``pack`` returned.
        dictionary: the dictionary ``pack`` was given.
    Raises:
        ValueError: the blob is packed and no dictionary is given.
        zlib.error: the blob is damaged. (Another dictionary than the one it was
            packed against gives wrong data or this error: hence the rule above.)
    """
    return unpack_all([(blob, dictionary)])[0]


def unpack_all(blobs: Sequence[tuple[bytes, bytes | None]]) -> list[bytes]:
    """The data of each (blob, dictionary), with one call into zlib for all packed blobs.

    Raises:
        ValueError, zlib.error: as ``unpack``.
    """
    data: list[bytes] = []
    parts: list[bytes] = []
    spans: list[tuple[int, int, int]] = []  # per packed blob: its index, where its data is
    at = 0  # how far the stream's output has got
    last: bytes | None = None
    stored = b""
    for blob, dictionary in blobs:  # a hit's hot loop: kept lean
        if not len(data) & _STEP_MASK:
            step()  # every 64 blobs, a step of the call's work (``server.pacing``)
        if not blob or blob[0] != _PACKED:
            data.append(blob[1:] if blob and blob[0] == _AS_GIVEN else blob)
            continue
        if dictionary is None:
            raise ValueError("a packed blob needs its dictionary")
        if dictionary is not last:
            last = dictionary
            n = len(dictionary)
            stored = b"\x00" + n.to_bytes(2, "little") + (n ^ 0xFFFF).to_bytes(2, "little")
        begin = at + n
        at = begin + (blob[1] | blob[2] << 8)
        spans.append((len(data), begin, at))
        data.append(blob)
        parts += (stored, dictionary, blob[_HEAD:], _SYNC)
    if parts:
        out = zlib.decompressobj(_WBITS).decompress(b"".join(parts))
        if len(out) != at:
            raise zlib.error("packed blobs do not unpack to their lengths")
        for index, begin, end in spans:
            if not index & _STEP_MASK:
                step()
            data[index] = out[begin:end]
    return data


_STEP_MASK = 63  # unpacking steps every 64 blobs: a blob costs about a microsecond
