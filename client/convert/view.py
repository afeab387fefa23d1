"""Wire-compatible views of the lookup responses: each object's attributes as bytes.

A hit's objects come back with their datasets deferred (``deferred``): each holds
the serialized bytes of its ``dicomcache.v1.Dataset`` until first read. Parsed
with the contract's own messages, every Dataset of a hit was parsed element by
element only to be serialized again, one instance at a time (about 0.3 ms and
0.4 ms of an 80-instance hit). Yet a message field and a bytes field travel
alike on the wire (a tag, a length, the bytes), so these views are the contract's
``LookupStudyResponse`` and ``LookupQueryResponse`` (and the ``Study``,
``Series`` and ``Instance`` inside them) with every ``Dataset`` field read as
``optional bytes``: protobuf hands over each object's attributes as the exact
bytes the server sent, and ``HasField("attributes")`` still tells an empty
Dataset from none. The contract itself is unchanged and any language reads it
as before; these messages are this client's way of reading it, built at import
from the contract's descriptors (so fields the contract gains, such as
``fresh_for_ms``, are here too) in a descriptor pool of their own.

Thread-safe: the classes are immutable after import. No clock.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from dicomcache.v1 import cache_service_pb2, objects_pb2

_PACKAGE = "dicomcache.client.view"
_DATASET = ".dicomcache.v1.Dataset"
# The contract's messages that a view stands for, in dependency order.
_SOURCES = (
    objects_pb2.Instance,
    objects_pb2.Series,
    objects_pb2.Study,
    cache_service_pb2.LookupStudyResponse,
    cache_service_pb2.LookupQueryResponse,
)
_Field = descriptor_pb2.FieldDescriptorProto


def _view_file() -> descriptor_pb2.FileDescriptorProto:
    """The views as one file: the sources' fields, a Dataset read as optional bytes."""
    file = descriptor_pb2.FileDescriptorProto(
        name="dicomcache/client/convert/view.proto", package=_PACKAGE, syntax="proto3"
    )
    renamed = {f".{source.DESCRIPTOR.full_name}": source.DESCRIPTOR.name for source in _SOURCES}
    for source in _SOURCES:
        message = file.message_type.add()
        source.DESCRIPTOR.CopyToProto(message)
        for field in message.field:
            if field.type_name == _DATASET:
                field.type = _Field.TYPE_BYTES
                field.ClearField("type_name")
                field.proto3_optional = True  # presence: an empty Dataset is not no Dataset
                field.oneof_index = len(message.oneof_decl)
                message.oneof_decl.add(name=f"_{field.name}")
            elif field.type_name in renamed:
                field.type_name = f".{_PACKAGE}.{renamed[field.type_name]}"
            elif field.type_name:  # a type the view does not know: refuse it at import
                raise TypeError(f"{source.DESCRIPTOR.full_name}.{field.name}: {field.type_name}")
    return file


def _classes() -> dict[str, Any]:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(_view_file())
    return {
        source.DESCRIPTOR.name: message_factory.GetMessageClass(
            pool.FindMessageTypeByName(f"{_PACKAGE}.{source.DESCRIPTOR.name}")
        )
        for source in _SOURCES
    }


_CLASSES = _classes()

Instance: Any = _CLASSES["Instance"]
"""``dicomcache.v1.Instance`` with ``optional bytes attributes``."""
Series: Any = _CLASSES["Series"]
"""``dicomcache.v1.Series`` with ``optional bytes attributes``, of view Instances."""
Study: Any = _CLASSES["Study"]
"""``dicomcache.v1.Study`` with ``optional bytes attributes``, of view Series."""
LookupStudyResponse: Any = _CLASSES["LookupStudyResponse"]
"""``dicomcache.v1.LookupStudyResponse`` whose study is a view Study."""
LookupQueryResponse: Any = _CLASSES["LookupQueryResponse"]
"""``dicomcache.v1.LookupQueryResponse`` whose studies are view Studies."""
