"""Bearer tokens as SHA-256 digests, never as themselves.

A policy holds digests (or names files holding tokens, digested on reading), so
neither the file nor this process's logs and errors carry a token. A presented
token is digested once and compared with every known digest in constant time
(``hmac.compare_digest``, no early exit), so the time of a refusal says nothing
about how close a guess came.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

DIGEST_HEX = 64  # hexadecimal digits of a SHA-256 digest
MIN_TOKEN_CHARS = 16  # of a token read from a file: shorter is guessable


def digest(token: str) -> bytes:
    """The SHA-256 digest of a token's UTF-8 bytes."""
    return hashlib.sha256(token.encode()).digest()


class TokenTable:
    """Known token digests, each with the principal it identifies.

    Immutable, so thread-safe. Uses no clock.
    """

    def __init__(self, entries: Iterable[tuple[bytes, str]]) -> None:
        self._entries = tuple(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> str | None:
        """The principal whose token this is, or None; every digest is compared."""
        presented = digest(token)
        found = None
        for known, principal in self._entries:
            if hmac.compare_digest(presented, known):
                found = principal
        return found
