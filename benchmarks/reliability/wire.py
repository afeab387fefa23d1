"""Protocol Buffers wire bytes by hand, and mutations of valid ones.

Hostile input must be able to say what a well-behaved encoder never writes (a
string that is not UTF-8, nesting past any parser's limit, a length that lies),
so these build and break messages below the protobuf library. Pure functions; the
random ones take the caller's ``random.Random``.
"""

from __future__ import annotations

import random

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5


def varint(value: int) -> bytes:
    """``value`` as a base-128 varint (negative values as 10-byte two's complement)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(field: int, wire_type: int) -> bytes:
    """A field's key."""
    return varint(field << 3 | wire_type)


def length_delimited(field: int, payload: bytes) -> bytes:
    """A string, bytes or message field."""
    return key(field, LENGTH) + varint(len(payload)) + payload


def number(field: int, value: int) -> bytes:
    """A varint field (int32, int64, uint32, uint64, bool, enum)."""
    return key(field, VARINT) + varint(value)


def nested_dataset(depth: int) -> bytes:
    """A ``dicomcache.v1.Dataset`` of SQ elements nested ``depth`` items deep, built inside out.

    Dataset.elements (1) is a map entry {key 1: tag, value 2: Element}; Element has
    vr (1) and values (2); Values.items (1); Value.item (6) is the next Dataset.
    """
    dataset = b""
    for _ in range(depth):
        element = length_delimited(1, b"SQ") + length_delimited(
            2, length_delimited(1, length_delimited(6, dataset))
        )
        entry = number(1, 0x00400275) + length_delimited(2, element)
        dataset = length_delimited(1, entry)
    return dataset


def mutate(data: bytes, rng: random.Random) -> bytes:
    """``data`` with one to four random edits: bit flips, bytes set, inserted, deleted,
    repeated, truncated, or a varint that claims a huge length."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        edit = rng.randrange(7)
        at = rng.randrange(len(out) + 1)
        if edit == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif edit == 1 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif edit == 2:
            out[at:at] = rng.randbytes(rng.randint(1, 16))
        elif edit == 3:
            del out[at : at + rng.randint(1, 16)]
        elif edit == 4 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 64)] * rng.randint(1, 8)
        elif edit == 5:
            del out[at:]
        else:
            out[at:at] = key(rng.randint(1, 30), LENGTH) + varint(rng.choice([2**31, 2**32, 2**63]))
    return bytes(out)
