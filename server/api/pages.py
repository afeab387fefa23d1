"""Pages of GetStats: their sizes and the tokens that say where the next one starts.

A token is the last namespace of the page it follows, versioned and base64url
encoded: opaque to callers (they only pass it back), and needing no server state,
so it survives restarts and works against any server of a Redis-backed fleet.
"""

from __future__ import annotations

import base64
import binascii

from dicomcache.contract import NAMESPACE
from dicomcache.server.api.validation import Checker

DEFAULT_PAGE_SIZE = 1000
MAX_PAGE_SIZE = 1000
# The most one NamespaceStats entry takes on the wire: a 128-byte namespace and
# nine 10-byte varints with their tags, the entry's own tag and length; and room
# for the response's other fields (totals, a token of the longest namespace).
ENTRY_BYTES = 256
RESPONSE_BYTES = 512
TOKEN_RULE = "must be a next_page_token of an earlier GetStats response"
_VERSION = "1:"


def max_page_size(max_message_bytes: int) -> int:
    """The largest page that always fits in a message of ``max_message_bytes``."""
    return max(1, min(MAX_PAGE_SIZE, (max_message_bytes - RESPONSE_BYTES) // ENTRY_BYTES))


def page_size(check: Checker, requested: int, max_message_bytes: int) -> int:
    """The size of the page to serve: 0 is the default; above the maximum is cut to it."""
    if requested < 0:
        check.fail("page_size", "must not be negative")
    limit = max_page_size(max_message_bytes)
    return min(requested or DEFAULT_PAGE_SIZE, limit)


def token(last: str) -> str:
    """The token of the page after the one that ended with namespace ``last``."""
    return base64.urlsafe_b64encode((_VERSION + last).encode()).decode("ascii")


def after(check: Checker, page_token: str) -> str | None:
    """The namespace that a page token says the page comes after; None for no token."""
    if not page_token:
        return None
    try:
        text = base64.urlsafe_b64decode(page_token.encode("ascii")).decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    last = text.removeprefix(_VERSION)
    if not text.startswith(_VERSION) or not NAMESPACE.fullmatch(last):
        check.fail("page_token", TOKEN_RULE)
        return None
    return last
