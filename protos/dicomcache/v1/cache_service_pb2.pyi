from dicomcache.v1 import invalidations_pb2 as _invalidations_pb2
from dicomcache.v1 import objects_pb2 as _objects_pb2
from dicomcache.v1 import query_pb2 as _query_pb2
from dicomcache.v1 import search_pb2 as _search_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class LookupQueryRequest(_message.Message):
    __slots__ = ("namespace", "query", "protocol", "archive_request", "traceparent", "tracestate")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    query: _query_pb2.Query
    protocol: _query_pb2.Protocol
    archive_request: _query_pb2.ArchiveRequest
    traceparent: str
    tracestate: str
    def __init__(self, namespace: _Optional[str] = ..., query: _Optional[_Union[_query_pb2.Query, _Mapping]] = ..., protocol: _Optional[_Union[_query_pb2.Protocol, str]] = ..., archive_request: _Optional[_Union[_query_pb2.ArchiveRequest, _Mapping]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class LookupQueryResponse(_message.Message):
    __slots__ = ("hit", "studies", "lease", "fresh_for_ms")
    HIT_FIELD_NUMBER: _ClassVar[int]
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    FRESH_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    hit: bool
    studies: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Study]
    lease: int
    fresh_for_ms: int
    def __init__(self, hit: _Optional[bool] = ..., studies: _Optional[_Iterable[_Union[_objects_pb2.Study, _Mapping]]] = ..., lease: _Optional[int] = ..., fresh_for_ms: _Optional[int] = ...) -> None: ...

class StoreQueryRequest(_message.Message):
    __slots__ = ("namespace", "query", "studies", "ttl_seconds", "lease", "protocol", "archive_request", "traceparent", "tracestate")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_REQUEST_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    query: _query_pb2.Query
    studies: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Study]
    ttl_seconds: int
    lease: int
    protocol: _query_pb2.Protocol
    archive_request: _query_pb2.ArchiveRequest
    traceparent: str
    tracestate: str
    def __init__(self, namespace: _Optional[str] = ..., query: _Optional[_Union[_query_pb2.Query, _Mapping]] = ..., studies: _Optional[_Iterable[_Union[_objects_pb2.Study, _Mapping]]] = ..., ttl_seconds: _Optional[int] = ..., lease: _Optional[int] = ..., protocol: _Optional[_Union[_query_pb2.Protocol, str]] = ..., archive_request: _Optional[_Union[_query_pb2.ArchiveRequest, _Mapping]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class StoreQueryResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...

class LookupStudyRequest(_message.Message):
    __slots__ = ("namespace", "study_uid", "query_level", "protocol", "traceparent", "tracestate")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STUDY_UID_FIELD_NUMBER: _ClassVar[int]
    QUERY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    study_uid: str
    query_level: _query_pb2.QueryLevel
    protocol: _query_pb2.Protocol
    traceparent: str
    tracestate: str
    def __init__(self, namespace: _Optional[str] = ..., study_uid: _Optional[str] = ..., query_level: _Optional[_Union[_query_pb2.QueryLevel, str]] = ..., protocol: _Optional[_Union[_query_pb2.Protocol, str]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class LookupStudyResponse(_message.Message):
    __slots__ = ("hit", "study", "lease", "fresh_for_ms")
    HIT_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    FRESH_FOR_MS_FIELD_NUMBER: _ClassVar[int]
    hit: bool
    study: _objects_pb2.Study
    lease: int
    fresh_for_ms: int
    def __init__(self, hit: _Optional[bool] = ..., study: _Optional[_Union[_objects_pb2.Study, _Mapping]] = ..., lease: _Optional[int] = ..., fresh_for_ms: _Optional[int] = ...) -> None: ...

class StoreStudyRequest(_message.Message):
    __slots__ = ("namespace", "study", "query_level", "ttl_seconds", "lease", "protocol", "traceparent", "tracestate")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    QUERY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    study: _objects_pb2.Study
    query_level: _query_pb2.QueryLevel
    ttl_seconds: int
    lease: int
    protocol: _query_pb2.Protocol
    traceparent: str
    tracestate: str
    def __init__(self, namespace: _Optional[str] = ..., study: _Optional[_Union[_objects_pb2.Study, _Mapping]] = ..., query_level: _Optional[_Union[_query_pb2.QueryLevel, str]] = ..., ttl_seconds: _Optional[int] = ..., lease: _Optional[int] = ..., protocol: _Optional[_Union[_query_pb2.Protocol, str]] = ..., traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class StoreStudyResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...

class AddObjectsRequest(_message.Message):
    __slots__ = ("namespace", "studies", "ttl_seconds", "protocol")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    studies: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Study]
    ttl_seconds: int
    protocol: _query_pb2.Protocol
    def __init__(self, namespace: _Optional[str] = ..., studies: _Optional[_Iterable[_Union[_objects_pb2.Study, _Mapping]]] = ..., ttl_seconds: _Optional[int] = ..., protocol: _Optional[_Union[_query_pb2.Protocol, str]] = ...) -> None: ...

class AddObjectsResponse(_message.Message):
    __slots__ = ("objects_written",)
    OBJECTS_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    objects_written: int
    def __init__(self, objects_written: _Optional[int] = ...) -> None: ...

class GetObjectsRequest(_message.Message):
    __slots__ = ("namespace", "references", "protocol")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REFERENCES_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    references: _containers.RepeatedCompositeFieldContainer[_objects_pb2.ObjectReference]
    protocol: _query_pb2.Protocol
    def __init__(self, namespace: _Optional[str] = ..., references: _Optional[_Iterable[_Union[_objects_pb2.ObjectReference, _Mapping]]] = ..., protocol: _Optional[_Union[_query_pb2.Protocol, str]] = ...) -> None: ...

class GetObjectsResult(_message.Message):
    __slots__ = ("found", "study", "series", "instance")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    found: bool
    study: _objects_pb2.Study
    series: _objects_pb2.Series
    instance: _objects_pb2.Instance
    def __init__(self, found: _Optional[bool] = ..., study: _Optional[_Union[_objects_pb2.Study, _Mapping]] = ..., series: _Optional[_Union[_objects_pb2.Series, _Mapping]] = ..., instance: _Optional[_Union[_objects_pb2.Instance, _Mapping]] = ...) -> None: ...

class GetObjectsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[GetObjectsResult]
    def __init__(self, results: _Optional[_Iterable[_Union[GetObjectsResult, _Mapping]]] = ...) -> None: ...

class InvalidateRequest(_message.Message):
    __slots__ = ("namespace", "reference")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    reference: _objects_pb2.ObjectReference
    def __init__(self, namespace: _Optional[str] = ..., reference: _Optional[_Union[_objects_pb2.ObjectReference, _Mapping]] = ...) -> None: ...

class InvalidateResponse(_message.Message):
    __slots__ = ("objects_removed",)
    OBJECTS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    objects_removed: int
    def __init__(self, objects_removed: _Optional[int] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ("namespace", "page_size", "page_token")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    page_size: int
    page_token: str
    def __init__(self, namespace: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class NamespaceStats(_message.Message):
    __slots__ = ("namespace", "studies", "series", "instances", "queries", "bytes", "hits", "misses", "evictions", "expirations")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    HITS_FIELD_NUMBER: _ClassVar[int]
    MISSES_FIELD_NUMBER: _ClassVar[int]
    EVICTIONS_FIELD_NUMBER: _ClassVar[int]
    EXPIRATIONS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    studies: int
    series: int
    instances: int
    queries: int
    bytes: int
    hits: int
    misses: int
    evictions: int
    expirations: int
    def __init__(self, namespace: _Optional[str] = ..., studies: _Optional[int] = ..., series: _Optional[int] = ..., instances: _Optional[int] = ..., queries: _Optional[int] = ..., bytes: _Optional[int] = ..., hits: _Optional[int] = ..., misses: _Optional[int] = ..., evictions: _Optional[int] = ..., expirations: _Optional[int] = ...) -> None: ...

class GetStatsResponse(_message.Message):
    __slots__ = ("namespaces", "total_bytes", "max_bytes", "next_page_token")
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedCompositeFieldContainer[NamespaceStats]
    total_bytes: int
    max_bytes: int
    next_page_token: str
    def __init__(self, namespaces: _Optional[_Iterable[_Union[NamespaceStats, _Mapping]]] = ..., total_bytes: _Optional[int] = ..., max_bytes: _Optional[int] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class StreamLookupQueryRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LookupQueryRequest
    def __init__(self, request: _Optional[_Union[LookupQueryRequest, _Mapping]] = ...) -> None: ...

class StreamLookupQueryResponse(_message.Message):
    __slots__ = ("chunk", "total_bytes", "max_message_bytes", "max_answer_bytes")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ANSWER_BYTES_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    total_bytes: int
    max_message_bytes: int
    max_answer_bytes: int
    def __init__(self, chunk: _Optional[bytes] = ..., total_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_answer_bytes: _Optional[int] = ...) -> None: ...

class StreamLookupStudyRequest(_message.Message):
    __slots__ = ("request",)
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    request: LookupStudyRequest
    def __init__(self, request: _Optional[_Union[LookupStudyRequest, _Mapping]] = ...) -> None: ...

class StreamLookupStudyResponse(_message.Message):
    __slots__ = ("chunk", "total_bytes", "max_message_bytes", "max_answer_bytes")
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_MESSAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_ANSWER_BYTES_FIELD_NUMBER: _ClassVar[int]
    chunk: bytes
    total_bytes: int
    max_message_bytes: int
    max_answer_bytes: int
    def __init__(self, chunk: _Optional[bytes] = ..., total_bytes: _Optional[int] = ..., max_message_bytes: _Optional[int] = ..., max_answer_bytes: _Optional[int] = ...) -> None: ...

class StreamStoreQueryRequest(_message.Message):
    __slots__ = ("store", "instances", "series", "studies", "last")
    STORE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    STUDIES_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    store: StoreQueryRequest
    instances: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Instance]
    series: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Series]
    studies: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Study]
    last: bool
    def __init__(self, store: _Optional[_Union[StoreQueryRequest, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[_objects_pb2.Instance, _Mapping]]] = ..., series: _Optional[_Iterable[_Union[_objects_pb2.Series, _Mapping]]] = ..., studies: _Optional[_Iterable[_Union[_objects_pb2.Study, _Mapping]]] = ..., last: _Optional[bool] = ...) -> None: ...

class StreamStoreQueryResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...

class StreamStoreStudyRequest(_message.Message):
    __slots__ = ("store", "instances", "series", "last")
    STORE_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    store: StoreStudyRequest
    instances: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Instance]
    series: _containers.RepeatedCompositeFieldContainer[_objects_pb2.Series]
    last: bool
    def __init__(self, store: _Optional[_Union[StoreStudyRequest, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[_objects_pb2.Instance, _Mapping]]] = ..., series: _Optional[_Iterable[_Union[_objects_pb2.Series, _Mapping]]] = ..., last: _Optional[bool] = ...) -> None: ...

class StreamStoreStudyResponse(_message.Message):
    __slots__ = ("stored",)
    STORED_FIELD_NUMBER: _ClassVar[int]
    stored: bool
    def __init__(self, stored: _Optional[bool] = ...) -> None: ...
