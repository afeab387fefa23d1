"""Every key name of the Redis backend, built here and nowhere else in Python.

Key layout (schema 1; ``<ns>`` and UIDs escaped, see ``escape``)::

    dc:1:registry                                  zset: namespaces by when their data expires
    dc:1:<ns>:{<study>}:o[:<series>[:<instance>]]  '<token>|<attributes>' (PX ttl; the
                                                   attributes sealed with a key file:
                                                   ``sealing.py``)
    dc:1:<ns>:{<study>}:t                          zset: the study's objects, by expiry
    dc:1:<ns>:{<study>}:g                          serial for new tokens
    dc:1:<ns>:{<study>}:l<depth>                   a complete listing to depth (PX ttl)
    dc:1:<ns>:{<study>}:v                          its last invalidation's number (PX lease)
    dc:1:{<ns>}:q:<hex of the query key>           a query answer: its addresses (PX ttl)
    dc:1:{<ns>}:s:<hex of the request key>         a stale copy: '<mark>|<ms>|<document>' (PX
                                                   ttl + max stale; sealed with a key file)
    dc:1:{<ns>}:f:<hex of the request key>         a flight: its holder's id (PX upstream
                                                   timeout + margin)
    dc:1:{<ns>}:n                                  hash: lookups, misses, bytes, ... (PX ledger)
    dc:1:{<ns>}:lease                              hash: since, sequence, dropped, touched
                                                   (PX lease, or the longest stale copy)
    dc:1:{<ns>}:z<level> / :b / :qz                the stats ledger (zsets by expiry, sizes;
                                                   PX its longest-lived entry)

Every key has a TTL, so a namespace leaves nothing behind once its data and its
leases have expired; a namespace that never held data (only lookups, leases or
invalidations) leaves only keys that expire within ``LEASE_SECONDS``.

Python names the bases (``Names``); the Lua scripts (``scripts/*.lua``) append the
suffixes after ``{<study>}:`` and ``{<ns>}:`` themselves, as drawn above.

Answers and listings hold one line per object, ``<address>|<token>`` (an empty
token for a level that was only a path); addresses are
``<study>[:<series>[:<instance>]]``, members (inside a study)
``[:<series>[:<instance>]]``. Every sorted set is scored by absolute expiry in
Redis milliseconds (the tests' time machine relies on it).
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote

from dicomcache.server.model import Address

SCHEMA = "1"
PREFIX = f"dc:{SCHEMA}:"
# The namespaces that hold data, each scored by when its ledger expires. Written by
# stores only, and best effort, off their path (see ``tally.py``): a lookup never
# touches it, so its slot's master failing fails no lookup.
REGISTRY = f"{PREFIX}registry"
_SAFE = frozenset(string.ascii_letters + string.digits + "._/-")


def escape(text: str) -> str:
    """``text`` made safe for a key segment: no ':', braces, glob or blank characters.

    Anything outside ``[A-Za-z0-9._/-]`` becomes %XX of its UTF-8 bytes, so the
    mapping is one-to-one and a namespace or UID can never forge a hash tag or
    reach into another namespace's keys.
    """
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in text)


@dataclass(frozen=True, slots=True)
class Names:
    """The key names of one namespace. Immutable, so thread-safe."""

    namespace: str

    @property
    def objects(self) -> str:
        """What precedes a study's hash tag: ``dc:1:<ns>:``."""
        return f"{PREFIX}{escape(self.namespace)}:"

    @property
    def ledger(self) -> str:
        """The base of the namespace's own keys: ``dc:1:{<ns>}:``."""
        return f"{PREFIX}{{{escape(self.namespace)}}}:"

    @property
    def counters(self) -> str:
        """The namespace's counters (lookups, misses, ...): ``dc:1:{<ns>}:n``."""
        return f"{self.ledger}n"

    def query(self, query_hex: str) -> str:
        """A query's entry: ``dc:1:{<ns>}:q:<hex>``."""
        return f"{self.ledger}q:{query_hex}"

    def stale(self, key_hex: str) -> str:
        """A request's stale copy: ``dc:1:{<ns>}:s:<hex>``."""
        return f"{self.ledger}s:{key_hex}"

    @property
    def leases(self) -> str:
        """The namespace's lease sequence and last drop: ``dc:1:{<ns>}:lease``.

        Dropping the namespace keeps it, so that stores begun before the drop stay
        refused; it expires ``LEASE_SECONDS`` after its last lease or invalidation.
        """
        return f"{self.ledger}lease"

    @property
    def patterns(self) -> tuple[str, str]:
        """SCAN patterns that together match every key of the namespace."""
        return f"{self.objects}*", f"{self.ledger}*"

    def study(self, study_uid: str) -> str:
        """The base of a study's keys: ``dc:1:<ns>:{<study>}:``."""
        return f"{self.objects}{{{escape(study_uid)}}}:"

    def object_key(self, line: str) -> str:
        """The key of the object a line (an escaped address) names:
        ``dc:1:<ns>:{<study>}:o<member>``."""
        study, colon, rest = line.partition(":")
        return f"{self.objects}{{{study}}}:o{colon}{rest}"

    def object_keys(self) -> Callable[[str], bytes]:
        """``object_key`` as bytes, with the namespace escaped once for many lines
        (what values are sealed against, on every object of a hit)."""
        objects = self.objects

        def key(line: str) -> bytes:
            study, colon, rest = line.partition(":")
            return f"{objects}{{{study}}}:o{colon}{rest}".encode()

        return key


def is_object_key(key: bytes) -> bool:
    """Whether a key (as SCAN returns it) holds an object; escaped names hold no '}'."""
    return b"}:o" in key


def member_of(address: Address) -> str:
    """An object's name inside its study: '' for the study, ':<series>[:<instance>]'."""
    return "".join(":" + escape(uid) for uid in address[1:])


def line_of(address: Address) -> str:
    """An address as stored in entries and the ledger: escaped UIDs joined by ':'."""
    return ":".join(escape(uid) for uid in address)


def address_of(line: str) -> Address:
    """The address a stored line names (the inverse of ``line_of``)."""
    return tuple(unquote(part) for part in line.split(":"))


def in_study(study_uid: str, member: str) -> Address:
    """The address of a member ('', ':<series>', ...) of a study."""
    return (study_uid, *(unquote(part) for part in member.split(":")[1:]))
