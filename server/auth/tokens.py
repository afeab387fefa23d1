"""Bearer tokens as SHA-256 digests, never as themselves.

A policy holds digests (or names files holding tokens, digested on reading), so
neither the file nor this process's logs and errors carry a token. A presented
token is digested once and its digest looked up in a table keyed by digest.

Why not a constant-time comparison against each digest: what is compared is
SHA-256 of a guess, never the guess. Timing could at most tell how much of a
guess's digest matches a known digest, and knowing a digest does not give a
token (it would take a preimage). A constant-time scan over every digest
bought nothing but a cost that grows with the policy (about 0.1 ms per call at
100 tokens in a quick run of benchmark row 11c); the lookup is one step at any size.
"""

from __future__ import annotations

import hashlib
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
        self._entries = dict(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> str | None:
        """The principal whose token this is, or None."""
        return self._entries.get(digest(token))
