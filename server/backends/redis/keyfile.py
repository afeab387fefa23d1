"""The Redis backend's encryption keys: a file of AES-256 keys, re-read when it changes.

The file (``--redis-encryption-key-file``) holds one key a line::

    # blank lines and lines starting with '#' are ignored
    2026-12 q3v0...base64 of 32 random bytes...=
    2026-06 Zm9v...the previous key, still read...=

The first key is the current one: every value written is sealed with it. Every key
in the file opens the values sealed with it, so a rotation is: put the new key
first, keep the old one after it until what it sealed has expired (``--ttl``), then
remove it. A key id is 1 to 16 characters of ``[A-Za-z0-9._-]``, unique in the
file; it is stored in the clear in every value, so choose one that says nothing
secret (a date is good). Make a key with ``openssl rand -base64 32``.

A file that breaks a rule fails the server's start with a ``KeyFileError`` that
names the file, the line and the rule, never what the line holds. The file is
checked again (``os.stat``: device, inode, size, mtime) at most every
``RECHECK_SECONDS`` when keys are asked for, so a Kubernetes secret that is mounted
as a volume rotates without a restart; a changed file that breaks a rule keeps the
keys read before and logs a warning once per change.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import threading
from dataclasses import dataclass

from dicomcache.server.clock import Clock, monotonic

log = logging.getLogger(__name__)

KEY_BYTES = 32  # AES-256
RECHECK_SECONDS = 1.0
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,16}")
_KEY_ID_BYTES = re.compile(rb"[A-Za-z0-9._-]{1,16}")


def is_key_id(text: bytes) -> bool:
    """Whether ``text`` (as read from a value) follows the key id rule."""
    return _KEY_ID_BYTES.fullmatch(text) is not None


class KeyFileError(ValueError):
    """The key file cannot be read or breaks a rule; the message never holds key material."""


@dataclass(frozen=True, slots=True)
class Key:
    """One key of the file: its id (stored in each value) and its 32 secret bytes."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:
        return f"Key({self.key_id!r}, <secret>)"


def parse(text: str, path: str) -> tuple[Key, ...]:
    """The keys of a key file's text, the current one first.

    Raises:
        KeyFileError: a line breaks a rule, or the file holds no key.
    """
    keys: list[Key] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue

        def broken(rule: str, at: int = number) -> KeyFileError:
            return KeyFileError(f"{path}: line {at}: {rule}")

        if len(fields) != 2:
            raise broken(
                f"expected '<key id> <base64 of {KEY_BYTES} bytes>', found {len(fields)} fields"
            )
        key_id, encoded = fields
        if not _KEY_ID.fullmatch(key_id):
            raise broken("a key id is 1 to 16 characters of A-Z a-z 0-9 . _ -")
        if key_id in seen:
            raise broken(f"key id {key_id!r} is already on line {seen[key_id]}")
        try:
            secret = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise broken("the key is not valid base64") from None
        if len(secret) != KEY_BYTES:
            raise broken(f"the key must be {KEY_BYTES} bytes (AES-256), it is {len(secret)}")
        seen[key_id] = number
        keys.append(Key(key_id, secret))
    if not keys:
        raise KeyFileError(f"{path}: holds no key (one line '<key id> <base64 of 32 bytes>')")
    return tuple(keys)


def load(path: str) -> tuple[Key, ...]:
    """The keys of the file at ``path``, the current one first.

    Raises:
        KeyFileError: the file cannot be read, or breaks a rule.
    """
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot be read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise KeyFileError(f"{path}: is not UTF-8 text") from None
    return parse(text, path)


def _stamp(path: str) -> tuple[int, int, int, int] | None:
    """What changes when the file is replaced or rewritten (None: cannot stat it)."""
    try:
        found = os.stat(path)  # follows links: a Kubernetes mount swaps a link
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


class KeyFile:
    """The keys of a key file, re-read when the file changes.

    Thread-safe: ``keys`` reads one attribute; one thread at a time re-reads the
    file, and the others keep using the keys read before meanwhile. Clock:
    injected, monotonic (when to stat the file again).
    """

    def __init__(
        self, path: str, *, clock: Clock = monotonic, recheck: float = RECHECK_SECONDS
    ) -> None:
        """Read the file.

        Raises:
            KeyFileError: the file cannot be read, or breaks a rule.
        """
        self.path = path
        self._clock = clock
        self._recheck = recheck
        self._stamp = _stamp(path)  # before reading: a change while read is seen next time
        self._keys = load(path)
        self._next = clock() + recheck
        self._reading = threading.Lock()

    def keys(self) -> tuple[Key, ...]:
        """The keys, the current one first, as the file held them when last checked."""
        if self._clock() >= self._next:
            self._check()
        return self._keys

    def _check(self) -> None:
        if not self._reading.acquire(blocking=False):
            return  # another thread is at it
        try:
            self._next = self._clock() + self._recheck
            stamp = _stamp(self.path)
            if stamp is None or stamp == self._stamp:
                return  # gone for a moment (a mount being swapped) or unchanged
            self._stamp = stamp
            try:
                keys = load(self.path)
            except KeyFileError as exc:
                log.warning("key file not taken, the keys read before stay: %s", exc)
                return
            if keys != self._keys:
                self._keys = keys
                log.info(
                    "key file %s read again: %d keys, current %r",
                    self.path,
                    len(keys),
                    keys[0].key_id,
                )
        finally:
            self._reading.release()
