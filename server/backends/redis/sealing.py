"""Object values at rest: sealed with AES-256-GCM, bound to the key they live in.

The only values of the Redis backend that carry DICOM attributes are the objects'
(``dc:1:<ns>:{<study>}:o...``, ``<token>|<attributes>``): entries, listings, the
ledger and the counters hold addresses (UIDs), tokens, sizes and counts. With a
key file (``keyfile.py``), the attributes part of every object value is sealed
here, in Python, before a script writes it, and opened here after a read: no Lua
script looks inside attributes but ``study_write``, which compares the value it
is given with the one stored to keep an object's token when its attributes did
not change. For that comparison to hold, sealing is deterministic: the nonce is
an HMAC-SHA256 of the key name and the attributes (under a key derived from the
AES key, HKDF), so the same attributes at the same key under the same AES key seal
to the same bytes, and different ones to different nonces (a repeat is a
2^-96 chance per pair). What that shows an onlooker is whether an object was
written again with the same attributes, which its unchanged token shows anyway.
After a rotation an object's first write under the new key seals to other bytes,
so it gets a new token and the answers that held it miss once.

A sealed value::

    0x00 0x01 <len of key id: 1 byte> <key id> <nonce: 12 bytes> <ciphertext + tag: 16 bytes>

No serialized ``Dataset`` starts with a zero byte (0 is not a protobuf tag), so a
sealed value is told from a plain one. The associated data is the header (up to
the nonce) and the Redis key the value lives in, so a value copied to another key
(another object, study or namespace) does not open: a poisoning defence. What it
does not catch: an older value of the same key put back (the key's own history).

``open`` never raises on what Redis holds: a value sealed under a key no longer in
the file, with another key of the same id, altered, moved, cut short, or plain
while sealing is on, opens as None and the backend answers a miss. Those are
counted and logged as a warning at most once a minute, with counts and reasons,
never a key or a value. With sealing off (``PLAIN``), a sealed value opens as None
too, so turning encryption off never serves ciphertext as attributes.
"""

from __future__ import annotations

import hmac
import logging
import threading
from typing import NamedTuple, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dicomcache.server.backends.redis.keyfile import Key, KeyFile, is_key_id
from dicomcache.server.clock import Clock, monotonic

log = logging.getLogger(__name__)

MAGIC = b"\x00\x01"  # a zero byte (never a protobuf tag), then the format's version
NONCE_BYTES = 12
TAG_BYTES = 16
WARN_SECONDS = 60.0
_NONCE_INFO = b"dicomcache redis value nonce v1"
_ID_AT = len(MAGIC) + 1  # where the key id starts, after its length byte


class Values(Protocol):
    """How object attributes are kept in Redis values. Implementations are thread-safe."""

    binds: bool  # whether ``where`` matters (False: any bytes will do, none need building)

    def seal(self, where: bytes, data: bytes) -> bytes:
        """The value to store at Redis key ``where`` for attributes ``data``."""
        ...

    def open(self, where: bytes, value: bytes) -> bytes | None:
        """The attributes a value read from Redis key ``where`` holds; None: unreadable."""
        ...


class PlainValues:
    """Attributes stored as they are; a sealed value (a key file is needed) opens as None."""

    binds = False

    def seal(self, where: bytes, data: bytes) -> bytes:
        return data

    def open(self, where: bytes, value: bytes) -> bytes | None:
        return None if value.startswith(MAGIC) else value


PLAIN = PlainValues()


class _Sealer:
    """One key, ready to seal and open (AESGCM objects are thread-safe)."""

    __slots__ = ("aead", "header", "nonce_key")

    def __init__(self, key: Key) -> None:
        key_id = key.key_id.encode()
        self.header = MAGIC + bytes([len(key_id)]) + key_id
        self.aead = AESGCM(key.secret)
        kdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_NONCE_INFO)
        self.nonce_key = kdf.derive(key.secret)

    def seal(self, where: bytes, data: bytes) -> bytes:
        message = len(where).to_bytes(4, "big") + where + data  # one-shot HMAC: C speed
        nonce = hmac.digest(self.nonce_key, message, "sha256")[:NONCE_BYTES]
        return self.header + nonce + self.aead.encrypt(nonce, data, self.header + where)

    def open(self, where: bytes, value: bytes) -> bytes | None:
        start = len(self.header)
        nonce = value[start : start + NONCE_BYTES]
        try:
            return self.aead.decrypt(nonce, value[start + NONCE_BYTES :], self.header + where)
        except InvalidTag:
            return None


class _Ring(NamedTuple):
    """The keys of the file as last read, each ready to seal and open."""

    keys: tuple[Key, ...]
    current: _Sealer
    by_id: dict[bytes, _Sealer]


class _Failures:
    """Values that did not open, counted by reason; a warning at most every WARN_SECONDS.

    Thread-safe (a lock around the counts). Clock: injected, monotonic.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._next = float("-inf")
        self.total = 0

    def note(self, reason: str) -> None:
        with self._lock:
            self.total += 1
            self._counts[reason] = self._counts.get(reason, 0) + 1
            now = self._clock()
            if now < self._next:
                return
            self._next = now + WARN_SECONDS
            counts, self._counts = self._counts, {}
        said = ", ".join(f"{n} {why}" for why, n in sorted(counts.items()))
        log.warning("Redis values that did not open were served as misses: %s", said)


class SealedValues:
    """Attributes sealed with the current key of a key file, opened with any of its keys.

    Thread-safe: the keys in use are swapped as one attribute when the file changes.
    Clock: injected, monotonic (how often a warning about unreadable values is logged).
    """

    binds = True

    def __init__(self, keys: KeyFile, *, clock: Clock = monotonic) -> None:
        self._file = keys
        self._ring = self._build(keys.keys())
        self._failures = _Failures(clock)

    @classmethod
    def from_file(cls, path: str) -> SealedValues:
        """Values sealed with the keys of the file at ``path``.

        Raises:
            KeyFileError: the file cannot be read, or breaks a rule.
        """
        return cls(KeyFile(path))

    @property
    def failures(self) -> int:
        """How many values did not open, since the start."""
        return self._failures.total

    @staticmethod
    def _build(keys: tuple[Key, ...]) -> _Ring:
        sealers = [_Sealer(key) for key in keys]
        return _Ring(
            keys, sealers[0], {key.key_id.encode(): s for key, s in zip(keys, sealers, strict=True)}
        )

    def _sealers(self) -> _Ring:
        """The sealers of the file's keys as they are now (built again when they change)."""
        ring, keys = self._ring, self._file.keys()
        if keys is not ring.keys:
            ring = self._ring = self._build(keys)
        return ring

    def seal(self, where: bytes, data: bytes) -> bytes:
        return self._sealers().current.seal(where, data)

    def open(self, where: bytes, value: bytes) -> bytes | None:
        if value[: _ID_AT - 1] != MAGIC:
            self._failures.note("not sealed")
            return None
        length = value[_ID_AT - 1] if len(value) >= _ID_AT else 0
        key_id = value[_ID_AT : _ID_AT + length]
        if length == 0 or len(value) < _ID_AT + length + NONCE_BYTES + TAG_BYTES:
            self._failures.note("cut short")
            return None
        sealer = self._sealers().by_id.get(key_id)
        if sealer is None:
            named = key_id.decode() if is_key_id(key_id) else "?"
            self._failures.note(f"sealed with key id {named!r}, not in the file")
            return None
        data = sealer.open(where, value)
        if data is None:
            self._failures.note("did not authenticate (another key, altered, or moved)")
        return data
