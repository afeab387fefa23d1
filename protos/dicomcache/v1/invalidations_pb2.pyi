from dicomcache.v1 import query_pb2 as _query_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WatchInvalidationsRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class Invalidation(_message.Message):
    __slots__ = ("protocol", "study_uid")
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    STUDY_UID_FIELD_NUMBER: _ClassVar[int]
    protocol: _query_pb2.Protocol
    study_uid: str
    def __init__(self, protocol: _Optional[_Union[_query_pb2.Protocol, str]] = ..., study_uid: _Optional[str] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("heartbeat_deadline_ms", "heartbeat_interval_ms")
    HEARTBEAT_DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    heartbeat_deadline_ms: int
    heartbeat_interval_ms: int
    def __init__(self, heartbeat_deadline_ms: _Optional[int] = ..., heartbeat_interval_ms: _Optional[int] = ...) -> None: ...

class WatchInvalidationsResponse(_message.Message):
    __slots__ = ("sequence", "heartbeat", "invalidation")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    INVALIDATION_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    heartbeat: Heartbeat
    invalidation: Invalidation
    def __init__(self, sequence: _Optional[int] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., invalidation: _Optional[_Union[Invalidation, _Mapping]] = ...) -> None: ...
