"""The identity of a request in the cache: its namespace's partition and its key.

Partition: each Protocol has entries of its own inside a namespace, kept under
``<namespace>@<protocol>`` (``@`` is outside the namespace rule, so no client name
can reach one); PROTOCOL_UNSPECIFIED is the plain namespace.

Key: the server, not the client, computes it. From an ArchiveRequest when given:
what the archive receives, so queries that become the same request share one
entry (parameters sorted by name, "includefield" values as a sorted set, trailing
spaces dropped). Else from the query's content: two queries that mean the same
thing get the same key whatever language built them and in whatever order their
fields were set (the default kind spelled out, an unspecified level read as
STUDY, include_fields as a sorted set, maps sorted). Then an unkeyed BLAKE2b
digest, so the key can name storage entries without carrying patient data.
"""

from __future__ import annotations

import hashlib

from dicomcache.contract import DEFAULT_KIND
from dicomcache.v1 import query_pb2

_PERSONALIZATION = b"dcache.query.v1"  # bump when the canonical form changes
_REQUEST_PERSONALIZATION = b"dcache.req.v1"  # the same for archive requests
PARTITIONS: dict[int, str] = {
    query_pb2.PROTOCOL_QIDO_RS: "qido-rs",
    query_pb2.PROTOCOL_DICOM_QR: "dicom-qr",
    query_pb2.PROTOCOL_MINT: "mint",
}


def partition(namespace: str, protocol: int) -> str:
    """The backend namespace of a protocol's entries in ``namespace``."""
    name = PARTITIONS.get(protocol)
    return namespace if name is None else f"{namespace}@{name}"


def base_namespace(name: str) -> str:
    """The caller's namespace that a backend namespace (perhaps a partition) belongs to."""
    return name.partition("@")[0]


def partitions(namespace: str) -> list[str]:
    """Every backend namespace of ``namespace``: the plain one and one per protocol."""
    return [namespace, *(f"{namespace}@{name}" for name in PARTITIONS.values())]


def canonical_request(request: query_pb2.ArchiveRequest) -> query_pb2.ArchiveRequest:
    """The request in canonical form: what the archive cannot tell apart is made equal."""
    canonical = query_pb2.ArchiveRequest(path=request.path.rstrip(" "))
    merged: dict[str, list[str]] = {}
    for parameter in request.parameters:
        merged.setdefault(parameter.name, []).extend(v.rstrip(" ") for v in parameter.values)
    for name in sorted(merged):
        values = merged[name]
        if name.lower() == "includefield":
            values = sorted(set(values))
        canonical.parameters.add(name=name, values=values)
    return canonical


def request_key(request: query_pb2.ArchiveRequest) -> bytes:
    """A 16-byte digest that identifies what the archive receives."""
    payload = canonical_request(request).SerializeToString(deterministic=True)
    return hashlib.blake2b(payload, digest_size=16, person=_REQUEST_PERSONALIZATION).digest()


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


def by_id(query: query_pb2.Query) -> str | None:
    """The StudyInstanceUID when the query asks for that study and nothing else, or None.

    It is the query that dicomtrolley's ``find_study_by_id`` runs, so its answer is
    the study's complete listing to the query's level, and a listing answers it.
    """
    if not query.study_instance_uid or query.kind not in ("", DEFAULT_KIND):
        return None
    plain = query_pb2.Query(
        query_level=query.query_level,
        study_instance_uid=query.study_instance_uid,
    )
    return query.study_instance_uid if canonical_query(query) == canonical_query(plain) else None


def query_key(query: query_pb2.Query) -> bytes:
    """A 16-byte digest that identifies the query's meaning."""
    payload = canonical_query(query).SerializeToString(deterministic=True)
    return hashlib.blake2b(payload, digest_size=16, person=_PERSONALIZATION).digest()
