"""The Lua scripts of the Redis backend (``scripts/*.lua``): each runs atomically inside one Redis.

A script touches only keys that share the hash tag of its ``KEYS[1]`` (a study's
or a namespace's; the registry is a key of its own), so it runs unchanged on a
Redis Cluster; the exceptions, ``query_read`` (a whole answer in one call) and
``study_read`` given the namespace's base too, are used only on a single Redis.
Time is Redis's own (``TIME``), so every server sharing the Redis agrees.
The key layout is drawn in ``names.py``; each file says what its KEYS, ARGV and
reply are, and ``replies.py`` parses the replies.

What runs is ``common.lua`` (shared local functions) followed by the script's own
file; the files are package data, read once at import.
"""

from __future__ import annotations

import hashlib
from importlib.resources import files

_FOLDER = files("dicomcache.server.backends.redis") / "scripts"

NAMES = (
    "study_write",
    "study_read",
    "query_read",
    "namespace_miss",
    "namespace_count",
    "namespace_write",
    "namespace_forget",
    "namespace_stats",
    "registry_list",
    "study_invalidate",
    "object_read",
    "lease_issue",
    "lease_revoke",
    "lease_check",
    "stale_write",
    "stale_read",
    "flight_take",
    "flight_land",
)


def _read(name: str) -> str:
    return (_FOLDER / f"{name}.lua").read_text(encoding="utf-8")


_COMMON = _read("common")

# The text Redis runs, by script name, and its SHA1 (as EVALSHA names it).
SCRIPTS: dict[str, str] = {name: _COMMON + _read(name) for name in NAMES}
SHA1: dict[str, str] = {
    name: hashlib.sha1(body.encode()).hexdigest() for name, body in SCRIPTS.items()
}
