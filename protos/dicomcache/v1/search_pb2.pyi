from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_LEVEL_UNSPECIFIED: _ClassVar[SearchLevel]
    SEARCH_LEVEL_STUDIES: _ClassVar[SearchLevel]
    SEARCH_LEVEL_SERIES: _ClassVar[SearchLevel]
    SEARCH_LEVEL_INSTANCES: _ClassVar[SearchLevel]
SEARCH_LEVEL_UNSPECIFIED: SearchLevel
SEARCH_LEVEL_STUDIES: SearchLevel
SEARCH_LEVEL_SERIES: SearchLevel
SEARCH_LEVEL_INSTANCES: SearchLevel

class SearchRequest(_message.Message):
    __slots__ = ("upstream", "level", "study_uid", "series_uid", "match", "include_fields", "fuzzy_matching", "limit", "offset")
    UPSTREAM_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    STUDY_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_UID_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    FUZZY_MATCHING_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    upstream: str
    level: SearchLevel
    study_uid: str
    series_uid: str
    match: _containers.RepeatedCompositeFieldContainer[SearchParameter]
    include_fields: _containers.RepeatedScalarFieldContainer[str]
    fuzzy_matching: bool
    limit: int
    offset: int
    def __init__(self, upstream: _Optional[str] = ..., level: _Optional[_Union[SearchLevel, str]] = ..., study_uid: _Optional[str] = ..., series_uid: _Optional[str] = ..., match: _Optional[_Iterable[_Union[SearchParameter, _Mapping]]] = ..., include_fields: _Optional[_Iterable[str]] = ..., fuzzy_matching: _Optional[bool] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class SearchParameter(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("dicom_json", "hit", "age_seconds", "stale", "count")
    DICOM_JSON_FIELD_NUMBER: _ClassVar[int]
    HIT_FIELD_NUMBER: _ClassVar[int]
    AGE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STALE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    dicom_json: str
    hit: bool
    age_seconds: float
    stale: bool
    count: int
    def __init__(self, dicom_json: _Optional[str] = ..., hit: _Optional[bool] = ..., age_seconds: _Optional[float] = ..., stale: _Optional[bool] = ..., count: _Optional[int] = ...) -> None: ...
