from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Dataset(_message.Message):
    __slots__ = ("elements",)
    class ElementsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: Element
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[Element, _Mapping]] = ...) -> None: ...
    ELEMENTS_FIELD_NUMBER: _ClassVar[int]
    elements: _containers.MessageMap[int, Element]
    def __init__(self, elements: _Optional[_Mapping[int, Element]] = ...) -> None: ...

class Element(_message.Message):
    __slots__ = ("vr", "values", "bulk_data_uri", "inline_binary")
    VR_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    BULK_DATA_URI_FIELD_NUMBER: _ClassVar[int]
    INLINE_BINARY_FIELD_NUMBER: _ClassVar[int]
    vr: str
    values: Values
    bulk_data_uri: str
    inline_binary: bytes
    def __init__(self, vr: _Optional[str] = ..., values: _Optional[_Union[Values, _Mapping]] = ..., bulk_data_uri: _Optional[str] = ..., inline_binary: _Optional[bytes] = ...) -> None: ...

class Values(_message.Message):
    __slots__ = ("items",)
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, items: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Value(_message.Message):
    __slots__ = ("text", "integer", "unsigned", "decimal", "person_name", "item")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    UNSIGNED_FIELD_NUMBER: _ClassVar[int]
    DECIMAL_FIELD_NUMBER: _ClassVar[int]
    PERSON_NAME_FIELD_NUMBER: _ClassVar[int]
    ITEM_FIELD_NUMBER: _ClassVar[int]
    text: str
    integer: int
    unsigned: int
    decimal: float
    person_name: PersonName
    item: Dataset
    def __init__(self, text: _Optional[str] = ..., integer: _Optional[int] = ..., unsigned: _Optional[int] = ..., decimal: _Optional[float] = ..., person_name: _Optional[_Union[PersonName, _Mapping]] = ..., item: _Optional[_Union[Dataset, _Mapping]] = ...) -> None: ...

class PersonName(_message.Message):
    __slots__ = ("alphabetic", "ideographic", "phonetic")
    ALPHABETIC_FIELD_NUMBER: _ClassVar[int]
    IDEOGRAPHIC_FIELD_NUMBER: _ClassVar[int]
    PHONETIC_FIELD_NUMBER: _ClassVar[int]
    alphabetic: str
    ideographic: str
    phonetic: str
    def __init__(self, alphabetic: _Optional[str] = ..., ideographic: _Optional[str] = ..., phonetic: _Optional[str] = ...) -> None: ...
