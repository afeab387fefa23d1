from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QueryLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    QUERY_LEVEL_UNSPECIFIED: _ClassVar[QueryLevel]
    QUERY_LEVEL_STUDY: _ClassVar[QueryLevel]
    QUERY_LEVEL_SERIES: _ClassVar[QueryLevel]
    QUERY_LEVEL_INSTANCE: _ClassVar[QueryLevel]

class Protocol(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_UNSPECIFIED: _ClassVar[Protocol]
    PROTOCOL_QIDO_RS: _ClassVar[Protocol]
    PROTOCOL_DICOM_QR: _ClassVar[Protocol]
    PROTOCOL_MINT: _ClassVar[Protocol]
QUERY_LEVEL_UNSPECIFIED: QueryLevel
QUERY_LEVEL_STUDY: QueryLevel
QUERY_LEVEL_SERIES: QueryLevel
QUERY_LEVEL_INSTANCE: QueryLevel
PROTOCOL_UNSPECIFIED: Protocol
PROTOCOL_QIDO_RS: Protocol
PROTOCOL_DICOM_QR: Protocol
PROTOCOL_MINT: Protocol

class ArchiveRequest(_message.Message):
    __slots__ = ("path", "parameters")
    PATH_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    path: str
    parameters: _containers.RepeatedCompositeFieldContainer[Parameter]
    def __init__(self, path: _Optional[str] = ..., parameters: _Optional[_Iterable[_Union[Parameter, _Mapping]]] = ...) -> None: ...

class Parameter(_message.Message):
    __slots__ = ("name", "values")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    name: str
    values: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., values: _Optional[_Iterable[str]] = ...) -> None: ...

class Date(_message.Message):
    __slots__ = ("year", "month", "day")
    YEAR_FIELD_NUMBER: _ClassVar[int]
    MONTH_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    year: int
    month: int
    day: int
    def __init__(self, year: _Optional[int] = ..., month: _Optional[int] = ..., day: _Optional[int] = ...) -> None: ...

class DateTime(_message.Message):
    __slots__ = ("date", "hour", "minute", "second", "microsecond", "utc_offset_seconds")
    DATE_FIELD_NUMBER: _ClassVar[int]
    HOUR_FIELD_NUMBER: _ClassVar[int]
    MINUTE_FIELD_NUMBER: _ClassVar[int]
    SECOND_FIELD_NUMBER: _ClassVar[int]
    MICROSECOND_FIELD_NUMBER: _ClassVar[int]
    UTC_OFFSET_SECONDS_FIELD_NUMBER: _ClassVar[int]
    date: Date
    hour: int
    minute: int
    second: int
    microsecond: int
    utc_offset_seconds: int
    def __init__(self, date: _Optional[_Union[Date, _Mapping]] = ..., hour: _Optional[int] = ..., minute: _Optional[int] = ..., second: _Optional[int] = ..., microsecond: _Optional[int] = ..., utc_offset_seconds: _Optional[int] = ...) -> None: ...

class Query(_message.Message):
    __slots__ = ("kind", "query_level", "study_instance_uid", "accession_number", "patient_name", "patient_id", "modalities_in_study", "series_instance_uid", "min_study_date", "max_study_date", "include_fields", "include_fields_null", "institution_name", "patient_sex", "study_description", "series_description", "institutional_department_name", "patient_birth_date", "limit", "offset", "modality", "protocol_name", "study_id", "extra_fields")
    class ExtraFieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    KIND_FIELD_NUMBER: _ClassVar[int]
    QUERY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    STUDY_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    ACCESSION_NUMBER_FIELD_NUMBER: _ClassVar[int]
    PATIENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PATIENT_ID_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_IN_STUDY_FIELD_NUMBER: _ClassVar[int]
    SERIES_INSTANCE_UID_FIELD_NUMBER: _ClassVar[int]
    MIN_STUDY_DATE_FIELD_NUMBER: _ClassVar[int]
    MAX_STUDY_DATE_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FIELDS_NULL_FIELD_NUMBER: _ClassVar[int]
    INSTITUTION_NAME_FIELD_NUMBER: _ClassVar[int]
    PATIENT_SEX_FIELD_NUMBER: _ClassVar[int]
    STUDY_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SERIES_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INSTITUTIONAL_DEPARTMENT_NAME_FIELD_NUMBER: _ClassVar[int]
    PATIENT_BIRTH_DATE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    MODALITY_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_NAME_FIELD_NUMBER: _ClassVar[int]
    STUDY_ID_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELDS_FIELD_NUMBER: _ClassVar[int]
    kind: str
    query_level: QueryLevel
    study_instance_uid: str
    accession_number: str
    patient_name: str
    patient_id: str
    modalities_in_study: str
    series_instance_uid: str
    min_study_date: DateTime
    max_study_date: DateTime
    include_fields: _containers.RepeatedScalarFieldContainer[str]
    include_fields_null: bool
    institution_name: str
    patient_sex: str
    study_description: str
    series_description: str
    institutional_department_name: str
    patient_birth_date: Date
    limit: int
    offset: int
    modality: str
    protocol_name: str
    study_id: str
    extra_fields: _containers.ScalarMap[str, str]
    def __init__(self, kind: _Optional[str] = ..., query_level: _Optional[_Union[QueryLevel, str]] = ..., study_instance_uid: _Optional[str] = ..., accession_number: _Optional[str] = ..., patient_name: _Optional[str] = ..., patient_id: _Optional[str] = ..., modalities_in_study: _Optional[str] = ..., series_instance_uid: _Optional[str] = ..., min_study_date: _Optional[_Union[DateTime, _Mapping]] = ..., max_study_date: _Optional[_Union[DateTime, _Mapping]] = ..., include_fields: _Optional[_Iterable[str]] = ..., include_fields_null: _Optional[bool] = ..., institution_name: _Optional[str] = ..., patient_sex: _Optional[str] = ..., study_description: _Optional[str] = ..., series_description: _Optional[str] = ..., institutional_department_name: _Optional[str] = ..., patient_birth_date: _Optional[_Union[Date, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., modality: _Optional[str] = ..., protocol_name: _Optional[str] = ..., study_id: _Optional[str] = ..., extra_fields: _Optional[_Mapping[str, str]] = ...) -> None: ...
