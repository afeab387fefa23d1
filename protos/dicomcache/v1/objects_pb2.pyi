from dicomcache.v1 import dataset_pb2 as _dataset_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Study(_message.Message):
    __slots__ = ("uid", "attributes", "series")
    UID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    uid: str
    attributes: _dataset_pb2.Dataset
    series: _containers.RepeatedCompositeFieldContainer[Series]
    def __init__(self, uid: _Optional[str] = ..., attributes: _Optional[_Union[_dataset_pb2.Dataset, _Mapping]] = ..., series: _Optional[_Iterable[_Union[Series, _Mapping]]] = ...) -> None: ...

class Series(_message.Message):
    __slots__ = ("uid", "attributes", "instances")
    UID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    uid: str
    attributes: _dataset_pb2.Dataset
    instances: _containers.RepeatedCompositeFieldContainer[Instance]
    def __init__(self, uid: _Optional[str] = ..., attributes: _Optional[_Union[_dataset_pb2.Dataset, _Mapping]] = ..., instances: _Optional[_Iterable[_Union[Instance, _Mapping]]] = ...) -> None: ...

class Instance(_message.Message):
    __slots__ = ("uid", "attributes")
    UID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    uid: str
    attributes: _dataset_pb2.Dataset
    def __init__(self, uid: _Optional[str] = ..., attributes: _Optional[_Union[_dataset_pb2.Dataset, _Mapping]] = ...) -> None: ...

class StudyReference(_message.Message):
    __slots__ = ("study_uid",)
    STUDY_UID_FIELD_NUMBER: _ClassVar[int]
    study_uid: str
    def __init__(self, study_uid: _Optional[str] = ...) -> None: ...

class SeriesReference(_message.Message):
    __slots__ = ("study_uid", "series_uid")
    STUDY_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_UID_FIELD_NUMBER: _ClassVar[int]
    study_uid: str
    series_uid: str
    def __init__(self, study_uid: _Optional[str] = ..., series_uid: _Optional[str] = ...) -> None: ...

class InstanceReference(_message.Message):
    __slots__ = ("study_uid", "series_uid", "instance_uid")
    STUDY_UID_FIELD_NUMBER: _ClassVar[int]
    SERIES_UID_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    study_uid: str
    series_uid: str
    instance_uid: str
    def __init__(self, study_uid: _Optional[str] = ..., series_uid: _Optional[str] = ..., instance_uid: _Optional[str] = ...) -> None: ...

class ObjectReference(_message.Message):
    __slots__ = ("study", "series", "instance")
    STUDY_FIELD_NUMBER: _ClassVar[int]
    SERIES_FIELD_NUMBER: _ClassVar[int]
    INSTANCE_FIELD_NUMBER: _ClassVar[int]
    study: StudyReference
    series: SeriesReference
    instance: InstanceReference
    def __init__(self, study: _Optional[_Union[StudyReference, _Mapping]] = ..., series: _Optional[_Union[SeriesReference, _Mapping]] = ..., instance: _Optional[_Union[InstanceReference, _Mapping]] = ...) -> None: ...
