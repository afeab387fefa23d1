"""Conversion between dicomtrolley ``Query`` objects (any subclass) and proto ``Query``.

The proto names every field of dicomtrolley's Query classes; a query comes back
as an object of the class it was built from, with equal fields
(``model_dump()``). The class travels as ``kind``, its dotted name
("dicomtrolley.qido_rs.HierarchicalQuery"), and is looked up in a registry on
the way back: wire data never names a module to import. The registry knows
dicomtrolley's own Query classes; an application with its own subclass
registers it. A subclass's string fields that the proto does not name travel
in ``extra_fields``; any other field that differs from its default cannot be
carried and raises QueryConversionError.
"""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta, timezone
from typing import Any

from dicomtrolley.core import ExtendedQuery, Query, QueryLevels
from dicomtrolley.dicom_qr import DICOMQuery
from dicomtrolley.mint import MintQuery
from dicomtrolley.qido_rs import HierarchicalQuery, QidoRSQueryBase, RelationalQuery
from pydantic import ValidationError

from dicomcache.client.errors import QueryConversionError
from dicomcache.contract import DEFAULT_KIND
from dicomcache.v1 import query_pb2

# Python field name -> proto field name, for the plain fields (str and int).
_SCALAR_FIELDS = {
    "StudyInstanceUID": "study_instance_uid",
    "AccessionNumber": "accession_number",
    "PatientName": "patient_name",
    "PatientID": "patient_id",
    "ModalitiesInStudy": "modalities_in_study",
    "SeriesInstanceUID": "series_instance_uid",
    "InstitutionName": "institution_name",
    "PatientSex": "patient_sex",
    "StudyDescription": "study_description",
    "SeriesDescription": "series_description",
    "InstitutionalDepartmentName": "institutional_department_name",
    "limit": "limit",
    "offset": "offset",
    "Modality": "modality",
    "ProtocolName": "protocol_name",
    "StudyID": "study_id",
}
_DATETIME_FIELDS = {"min_study_date": "min_study_date", "max_study_date": "max_study_date"}
_DATE_FIELDS = {"PatientBirthDate": "patient_birth_date"}
_SPECIAL_FIELDS = frozenset({"query_level", "include_fields"})

LEVELS = {  # dicomtrolley's query levels and the contract's
    QueryLevels.STUDY: query_pb2.QUERY_LEVEL_STUDY,
    QueryLevels.SERIES: query_pb2.QUERY_LEVEL_SERIES,
    QueryLevels.INSTANCE: query_pb2.QUERY_LEVEL_INSTANCE,
}
_LEVELS_BACK = {number: level for level, number in LEVELS.items()}


def kind_of(cls: type[Query]) -> str:
    """The kind of a Query class: its dotted module and class name."""
    return f"{cls.__module__}.{cls.__qualname__}"


class QueryRegistry:
    """The Query classes that proto queries may be turned back into, by kind.

    Thread-safe: registration takes a lock, lookups read a dict. No clock.
    """

    def __init__(self, classes: tuple[type[Query], ...] = ()) -> None:
        self._lock = threading.Lock()
        self._classes: dict[str, type[Query]] = {}
        for cls in classes:
            self.register(cls)

    def register(self, cls: type[Query]) -> type[Query]:
        """Allow proto queries of cls's kind to become cls objects; usable as a decorator.

        Raises:
            TypeError: if cls is not a dicomtrolley Query subclass.
            QueryConversionError: if another class is registered under the same kind.
        """
        if not (isinstance(cls, type) and issubclass(cls, Query)):
            raise TypeError(f"{cls!r} is not a dicomtrolley Query class")
        kind = kind_of(cls)
        with self._lock:
            known = self._classes.setdefault(kind, cls)
        if known is not cls:
            raise QueryConversionError(f"another class is registered as {kind!r}")
        return cls

    def lookup(self, kind: str) -> type[Query]:
        """The class registered for kind (an empty kind is the contract's DEFAULT_KIND).

        Raises:
            QueryConversionError: if no class is registered for kind.
        """
        try:
            return self._classes[kind or DEFAULT_KIND]
        except KeyError:
            raise QueryConversionError(f"unknown query kind {kind!r}; register its class") from None


DEFAULT_REGISTRY = QueryRegistry(
    (
        Query,
        ExtendedQuery,
        QidoRSQueryBase,
        HierarchicalQuery,
        RelationalQuery,
        DICOMQuery,
        MintQuery,
    )
)


def query_to_proto(query: Query) -> query_pb2.Query:
    """Convert a dicomtrolley Query of any subclass to a proto Query.

    Args:
        query: the query.

    Returns:
        The proto Query, kind set to the query's class.

    Raises:
        QueryConversionError: if a field the contract does not name holds
            something other than its default or a string.
    """
    message = query_pb2.Query(kind=kind_of(type(query)))
    fields = type(query).model_fields
    for name in fields:
        value = getattr(query, name)
        if name in _SCALAR_FIELDS:
            _set_scalar(message, type(query), name, value)
        elif name in _DATETIME_FIELDS:
            if value is not None:
                _fill_datetime(getattr(message, _DATETIME_FIELDS[name]), name, value)
        elif name in _DATE_FIELDS:
            if value is not None:
                _fill_date(getattr(message, _DATE_FIELDS[name]), name, value)
        elif name == "query_level":
            message.query_level = LEVELS[QueryLevels(value)]
        elif name == "include_fields":
            if value is None:
                message.include_fields_null = True
            else:
                message.include_fields.extend(value)
        elif isinstance(value, str):
            if value != fields[name].get_default(call_default_factory=True):
                message.extra_fields[name] = value
        elif value != fields[name].get_default(call_default_factory=True):
            raise QueryConversionError(
                f"{type(query).__name__}.{name} is a {type(value).__name__}: "
                "only string fields travel in extra_fields"
            )
    return message


def query_from_proto(message: query_pb2.Query, registry: QueryRegistry | None = None) -> Query:
    """Convert a proto Query back to a validated object of its kind's class.

    Args:
        message: the proto Query.
        registry: where to look the kind up; DEFAULT_REGISTRY when None.

    Returns:
        A Query of the registered class.

    Raises:
        QueryConversionError: for an unknown kind, a set field the class does
            not have, or values the class's validators reject.
    """
    cls = (registry or DEFAULT_REGISTRY).lookup(message.kind)
    fields = cls.model_fields
    values: dict[str, Any] = {}
    for name, proto_name in _SCALAR_FIELDS.items():
        _put(values, fields, cls, name, getattr(message, proto_name))
    for name, proto_name in _DATETIME_FIELDS.items():
        if message.HasField(proto_name):
            values[name] = _datetime(getattr(message, proto_name))
    for name, proto_name in _DATE_FIELDS.items():
        if message.HasField(proto_name):
            values[name] = _date(getattr(message, proto_name))
    try:
        values["query_level"] = _LEVELS_BACK[message.query_level or query_pb2.QUERY_LEVEL_STUDY]
    except KeyError:
        raise QueryConversionError(f"unknown query level {message.query_level}") from None
    if message.include_fields_null and message.include_fields:
        raise QueryConversionError("include_fields is both null and a list")
    if message.include_fields:
        values["include_fields"] = list(message.include_fields)
    for name, value in message.extra_fields.items():
        if name in _SCALAR_FIELDS or name in _DATETIME_FIELDS or name in _DATE_FIELDS:
            raise QueryConversionError(f"extra_fields names a contract field: {name!r}")
        values[name] = value
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise QueryConversionError(f"{cls.__name__} has no field(s) {unknown}")
    try:
        query = cls(**values)
    except ValidationError as exc:
        raise QueryConversionError(f"invalid {cls.__name__}: {exc}") from exc
    if message.include_fields_null:
        # Query's include_fields validator cannot take None (it iterates the
        # value), yet None is a legal value, so it is set after validation.
        query.include_fields = None
    return query


def _set_scalar(message: query_pb2.Query, cls: type, name: str, value: Any) -> None:
    try:
        setattr(message, _SCALAR_FIELDS[name], value)
    except (TypeError, ValueError) as exc:
        raise QueryConversionError(
            f"{cls.__name__}.{name} cannot travel as {_SCALAR_FIELDS[name]}: {exc}"
        ) from exc


def _put(values: dict[str, Any], fields: dict[str, Any], cls: type, name: str, value: Any) -> None:
    """Carry a scalar field over when it is set; a set field the class lacks is an error."""
    if name in fields:
        values[name] = value
    elif value:
        raise QueryConversionError(f"{cls.__name__} has no field {name}")


def _fill_datetime(out: query_pb2.DateTime, name: str, value: Any) -> None:
    if not isinstance(value, datetime):
        raise QueryConversionError(f"{name} is not a datetime: {type(value).__name__}")
    _fill_date(out.date, name, value.date())
    out.hour = value.hour
    out.minute = value.minute
    out.second = value.second
    out.microsecond = value.microsecond
    offset = value.utcoffset()
    if offset is not None:
        if offset % timedelta(seconds=1):
            raise QueryConversionError(f"{name} has a UTC offset finer than a second")
        out.utc_offset_seconds = offset // timedelta(seconds=1)


def _fill_date(out: query_pb2.Date, name: str, value: Any) -> None:
    if not isinstance(value, date) or (isinstance(value, datetime) and name in _DATE_FIELDS):
        raise QueryConversionError(f"{name} is not a date: {type(value).__name__}")
    out.year = value.year
    out.month = value.month
    out.day = value.day


def _date(message: query_pb2.Date) -> date:
    try:
        return date(message.year, message.month, message.day)
    except ValueError as exc:
        raise QueryConversionError(f"invalid date: {exc}") from exc


def _datetime(message: query_pb2.DateTime) -> datetime:
    tzinfo = None
    if message.HasField("utc_offset_seconds"):
        try:
            tzinfo = timezone(timedelta(seconds=message.utc_offset_seconds))
        except ValueError as exc:
            raise QueryConversionError(f"invalid UTC offset: {exc}") from exc
    day = _date(message.date)
    try:
        return datetime(
            day.year,
            day.month,
            day.day,
            message.hour,
            message.minute,
            message.second,
            message.microsecond,
            tzinfo=tzinfo,
        )
    except ValueError as exc:
        raise QueryConversionError(f"invalid time: {exc}") from exc
