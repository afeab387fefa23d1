"""Parsing a large request a piece at a time, so that no call holds the interpreter lock long.

Protobuf parses a whole message in one C call, holding the interpreter lock all the
while: a 250 MB StoreStudy takes about 2 s, and every other request in the
process waits that long. Yet a message is a run of fields, and merging the wire
form of some of its fields into a message adds them (a repeated field appends, a
message field merges), so ``parse`` walks the fields itself and hands protobuf
runs of at most ``PIECE_BYTES``; a message field longer than that is parsed the
same way into its place (``add()`` for a repeated one), down to the instances. The
result equals the one-call parse, field order included. Small messages take the
one call.

Each run handed to protobuf is a step of the call's work (``server.pacing``), so a
large request pauses between runs while others are about: a 1 MiB piece of a
StreamStoreStudy parsed in one go held the lock 2-9 ms, and its four runs of 256
KiB, back to back, 5-18 ms of the thread's CPU time between two pauses; beside a
300,000-instance store the small calls' worst waits were 30-40 ms (issue 11,
stall row S1).
"""

from __future__ import annotations

from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message

from dicomcache.server.pacing import step

# The most bytes handed to protobuf in one call: 0.5-2 ms of parsing here.
PIECE_BYTES = 64 * 1024

M = TypeVar("M", bound=Message)

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def parse(message_type: type[M], data: bytes, piece: int = PIECE_BYTES) -> M:
    """The message of ``message_type`` that ``data`` encodes.

    Raises:
        DecodeError: ``data`` is not a valid encoding (as ``FromString``).
    """
    if len(data) <= piece:  # nearly every request: one call
        return message_type.FromString(data)
    message = message_type()
    merge(message, memoryview(data), piece)
    return message


def merge(message: Message, data: memoryview, piece: int = PIECE_BYTES) -> None:
    """Merge the wire form ``data`` into ``message``, at most ``piece`` bytes per call.

    Raises:
        DecodeError: ``data`` is not a valid encoding.
    """
    if len(data) <= piece:
        message.MergeFromString(data)  # type: ignore[arg-type]  # upb reads any buffer: no copy
        step()
        return
    fields = message.DESCRIPTOR.fields_by_number
    run = pos = 0  # the run of fields not yet merged starts at ``run``
    while pos < len(data):
        start = pos
        key, pos = _varint(data, pos)
        kind = key & 7
        if kind == _LENGTH:
            length, pos = _varint(data, pos)
            end = pos + length
            if end > len(data):
                raise DecodeError("a field runs past the end of the message")
            field = fields.get(key >> 3)
            if length > piece and _splittable(field):
                assert field is not None  # _splittable
                _flush(message, data[run:start])
                merge(_target(message, field), data[pos:end], piece)
                run = end
            elif end - run > piece and start > run:
                _flush(message, data[run:start])
                run = start
            pos = end
        elif kind == _VARINT:
            _, pos = _varint(data, pos)
        elif kind in (_FIXED64, _FIXED32):
            pos += 8 if kind == _FIXED64 else 4
        else:
            raise DecodeError("groups are not used by this contract")
    if pos > len(data):
        raise DecodeError("a field runs past the end of the message")
    _flush(message, data[run:])


def _splittable(field: Any) -> bool:
    """Whether a long field (a ``FieldDescriptor``, of either protobuf implementation; None
    when unknown) can be parsed in pieces: a message field, not a map entry."""
    if field is None or field.message_type is None:
        return False
    return not field.message_type.GetOptions().map_entry


def _target(message: Message, field: Any) -> Message:
    """Where a message field's next occurrence merges: a new element, or the field itself."""
    value = getattr(message, field.name)
    if field.is_repeated:
        added: Message = value.add()
        return added
    sub: Message = value
    return sub


def _flush(message: Message, data: memoryview) -> None:
    if len(data):
        message.MergeFromString(data)  # type: ignore[arg-type]  # upb reads any buffer: no copy
        step()


def _varint(data: memoryview, pos: int) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it."""
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("a varint is truncated or too long")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
