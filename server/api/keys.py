"""The canonical cache key of a query.

The server, not the client, computes the key, from the query's content: two
queries that mean the same thing get the same key whatever language built them
and in whatever order their fields were set. Canonical form: the default kind
spelled out, an unspecified level read as STUDY, include_fields as a sorted set,
maps sorted (deterministic serialization), then an unkeyed BLAKE2b digest. The
key is a hash, so it can name storage entries without carrying patient data.
"""

from __future__ import annotations

import hashlib

from dicomcache.contract import DEFAULT_KIND
from dicomcache.v1 import query_pb2

_PERSONALIZATION = b"dcache.query.v1"  # bump when the canonical form changes


def canonical_query(query: query_pb2.Query) -> query_pb2.Query:
    """The query in canonical form (a copy when anything had to change)."""
    fields = list(query.include_fields)
    canonical_fields = sorted(set(fields))
    if query.kind and query.query_level and fields == canonical_fields:
        return query
    canonical = query_pb2.Query()
    canonical.CopyFrom(query)
    canonical.kind = query.kind or DEFAULT_KIND
    canonical.query_level = query.query_level or query_pb2.QUERY_LEVEL_STUDY
    del canonical.include_fields[:]
    canonical.include_fields.extend(canonical_fields)
    return canonical


def query_key(query: query_pb2.Query) -> bytes:
    """A 16-byte digest that identifies the query's meaning."""
    payload = canonical_query(query).SerializeToString(deterministic=True)
    return hashlib.blake2b(payload, digest_size=16, person=_PERSONALIZATION).digest()
