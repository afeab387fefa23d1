"""Hypothesis strategies shared by the tests: DICOM JSON datasets and dicomtrolley queries.

Two flavours of dataset. ``dicom_json_datasets()`` draws anything the DICOM JSON
model allows, nulls and text numbers included: the proto must carry it exactly.
``dicom_json_datasets(pydicom_safe=True)`` keeps to what pydicom can read and
write back (``Dataset.from_json`` then ``to_json_dict``) without crashing or
warning, which is what datasets coming out of dicomtrolley look like.
"""

from __future__ import annotations

import base64
import functools
import string
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from dicomtrolley.core import ExtendedQuery, Query, QueryLevels
from dicomtrolley.dicom_qr import DICOMQuery
from dicomtrolley.mint import MintQuery, get_valid_fields
from dicomtrolley.qido_rs import HierarchicalQuery, QidoRSQueryBase, RelationalQuery
from hypothesis import assume
from hypothesis import strategies as st
from pydantic import ValidationError

# -- datasets ----------------------------------------------------------------

TEXT_VRS = ("AE", "AS", "CS", "DA", "DT", "LO", "LT", "SH", "ST", "TM", "UC", "UI", "UR", "UT")
INT_RANGES = {
    "SS": (-(2**15), 2**15 - 1),
    "US": (0, 2**16 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "UL": (0, 2**32 - 1),
    "SV": (-(2**63), 2**63 - 1),
    "UV": (0, 2**64 - 1),
    "IS": (-(2**31) + 1, 2**31 - 1),
}
BINARY_VRS = ("OB", "OD", "OF", "OL", "OV", "OW")
ALL_VRS = (*TEXT_VRS, *INT_RANGES, "DS", "FL", "FD", "PN", "AT", "SQ", *BINARY_VRS, "UN")

# Text with non-ASCII letters (Latin, Greek, CJK, kana) but no control
# characters: DICOM text values do not hold them and pydicom strips some.
_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
    max_size=12,
)
# A person name group: no "=" (the group separator) nor "\\" (the value separator).
_NAME_GROUP = st.text(
    st.one_of(
        st.sampled_from(string.ascii_letters + "^ "),
        st.sampled_from("山田太郎やまだたろうÄÖüßéΩЖ"),
    ),
    max_size=10,
)
_UID = st.from_regex(r"\A[12](\.[1-9][0-9]{0,5}){1,6}\Z")


def _time_text(moment: datetime, parts: int, fraction: int) -> str:
    """HH, HHMM, HHMMSS or HHMMSS.F{1-6} of a time."""
    text = moment.strftime("%H%M%S")[: 2 * parts]
    return text + (f".{moment.microsecond:06d}"[: fraction + 1] if parts == 3 and fraction else "")


_MOMENTS = st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999))
_OFFSETS = st.sampled_from(["", "+0000", "-0500", "+0530", "+1400", "-1200"])
# DA, DT and TM values in PS3.5's formats, every precision DT and TM allow.
VALID_TEXT: dict[str, st.SearchStrategy[str]] = {
    "DA": _MOMENTS.map(lambda m: f"{m.year:04d}{m.month:02d}{m.day:02d}"),
    "TM": st.builds(_time_text, _MOMENTS, st.integers(1, 3), st.integers(0, 6)),
    "DT": st.builds(
        lambda m, date_parts, time_parts, fraction, offset: (
            f"{m.year:04d}{m.month:02d}{m.day:02d}"[: 2 + 2 * date_parts]
            + (_time_text(m, time_parts, fraction) if date_parts == 3 and time_parts else "")
            + offset
        ),
        _MOMENTS,
        st.integers(1, 3),
        st.integers(0, 3),
        st.integers(0, 6),
        _OFFSETS,
    ),
}


@functools.cache
def _tags(vr: str) -> st.SearchStrategy[int]:
    """Public tags of a data set's usual range, or private ones (odd groups)."""
    if vr == "UN":  # pydicom turns UN of a known public tag into the dictionary's VR
        return st.integers(0x0009, 0x7FDF).map(lambda g: (g | 1) << 16 | 0x1010)
    public = st.tuples(st.integers(0x0008, 0x7FDF), st.integers(0x0001, 0xFFFF)).map(
        lambda ge: (ge[0] & ~1) << 16 | ge[1]
    )
    private = st.tuples(st.integers(0x0009, 0x7FDF), st.integers(0x1000, 0xFFFF)).map(
        lambda ge: (ge[0] | 1) << 16 | ge[1]
    )
    return st.one_of(public, private)


def _one_value(vr: str, pydicom_safe: bool, depth: int, valid: bool) -> st.SearchStrategy[Any]:
    if vr == "UI":
        return _UID
    if valid and vr in VALID_TEXT:
        return VALID_TEXT[vr]
    if vr in TEXT_VRS:
        return _TEXT
    if vr in INT_RANGES:
        low, high = INT_RANGES[vr]
        ints = st.integers(low, high)
        if vr == "IS":
            return st.one_of(ints, ints.map(str))  # IS may be written as text
        return ints
    if vr == "DS":
        floats = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
        as_text = st.sampled_from(["1.5", "-0.25", "1e3", "42"])
        extra = [st.integers(-1000, 1000)] if not pydicom_safe else []
        return st.one_of(floats, as_text, *extra)
    if vr == "FL":
        return st.floats(width=32, allow_nan=False, allow_infinity=False)
    if vr == "FD":
        return st.floats(allow_nan=False)
    if vr == "PN":
        return _person_names(pydicom_safe)
    if vr == "AT":
        return st.integers(0, 2**32 - 1).map(lambda t: f"{t:08X}")
    if vr == "SQ":
        return st.deferred(
            lambda: dicom_json_datasets(pydicom_safe, depth + 1, max_size=3, valid=valid)
        )
    raise AssertionError(vr)


def _person_names(pydicom_safe: bool) -> st.SearchStrategy[dict[str, str]]:
    groups = st.fixed_dictionaries(
        {},
        optional={"Alphabetic": _NAME_GROUP, "Ideographic": _NAME_GROUP, "Phonetic": _NAME_GROUP},
    )
    if pydicom_safe:
        # pydicom cannot write back a name with no group at all.
        groups = groups.filter(lambda name: any(name.values()))
    return groups


@functools.cache
def _elements(
    vr: str, pydicom_safe: bool, depth: int, valid: bool
) -> st.SearchStrategy[dict[str, Any]]:
    empty = st.just({"vr": vr})
    if vr in BINARY_VRS or vr == "UN":
        inline = st.binary(min_size=1, max_size=16).map(
            lambda b: {"vr": vr, "InlineBinary": base64.b64encode(b).decode()}
        )
        bulk = st.just({"vr": vr, "BulkDataURI": "http://archive.test/bulk/1"})
        return st.one_of(empty, inline) if pydicom_safe else st.one_of(empty, inline, bulk)
    if vr == "SQ" and depth >= 2:
        return st.just({"vr": vr, "Value": []})
    value = _one_value(vr, pydicom_safe, depth, valid)
    if pydicom_safe:
        # pydicom reads a lone null as an empty element and cannot write back
        # a null PN, AT or sequence item; any multiplicity otherwise.
        nullable = vr not in ("PN", "AT", "SQ")
        multi = st.lists(st.one_of(value, st.none()) if nullable else value, min_size=2, max_size=4)
        values = st.one_of(value.map(lambda v: [v]), multi)
    else:
        values = st.lists(st.one_of(value, st.none()), max_size=4)
    return st.one_of(empty, values.map(lambda vs: {"vr": vr, "Value": vs}))


@functools.cache
def dicom_json_datasets(
    pydicom_safe: bool = False, depth: int = 0, max_size: int = 8, valid: bool = False
) -> st.SearchStrategy[dict[str, Any]]:
    """A DICOM JSON object of every VR: multi-valued, empty, nested, binary and bulk.

    With ``valid``, DA, DT and TM values are real dates and times in PS3.5's
    formats (otherwise any text), as an archive serves them.
    """
    entries = st.sampled_from(ALL_VRS).flatmap(
        lambda vr: st.tuples(_tags(vr), _elements(vr, pydicom_safe, depth, valid))
    )
    return st.lists(entries, max_size=max_size).map(
        lambda pairs: {f"{tag:08X}": element for tag, element in sorted(dict(pairs).items())}
    )


# -- queries -----------------------------------------------------------------

_INCLUDE_FIELDS = ["PatientID", "StudyDate", "Modality", "SeriesDescription", "NumberOfFrames"]
_QUERY_TEXT = st.one_of(st.just(""), _TEXT)


def _datetimes() -> st.SearchStrategy[datetime]:
    offsets = st.integers(-(24 * 3600) + 1, 24 * 3600 - 1).map(
        lambda s: timezone(timedelta(seconds=s))
    )
    return st.datetimes(timezones=st.one_of(st.none(), st.just(UTC), offsets))


@st.composite
def queries_of(draw: st.DrawFn, cls: type[Query]) -> Query:
    """A valid query of class cls with any of its fields set."""
    fields = cls.model_fields
    values: dict[str, Any] = {}
    for name in fields:
        if name in ("query_level", "include_fields", "min_study_date", "max_study_date"):
            continue
        annotation = fields[name].annotation
        if annotation is str:
            values[name] = draw(_QUERY_TEXT)
        elif annotation is int:
            values[name] = draw(st.integers(0, 2**31))
        elif name == "PatientBirthDate":
            values[name] = draw(st.one_of(st.none(), st.dates()))
    level = draw(st.sampled_from(list(QueryLevels)))
    values["query_level"] = level
    if draw(st.booleans()):
        first, second = sorted([draw(_datetimes()), draw(_datetimes())], key=_naive)
        values["min_study_date"], values["max_study_date"] = first, second
    valid_fields = sorted(get_valid_fields(level.value)) if cls is MintQuery else _INCLUDE_FIELDS
    include = draw(st.one_of(st.none(), st.lists(st.sampled_from(valid_fields), max_size=3)))
    if include is not None:
        values["include_fields"] = include
    try:
        query = cls(**values)
    except ValidationError:
        assume(False)
        raise
    if include is None:
        query.include_fields = None  # legal, but Query's validator cannot take it
    return query


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


QUERY_CLASSES: tuple[type[Query], ...] = (
    Query,
    ExtendedQuery,
    QidoRSQueryBase,
    HierarchicalQuery,
    RelationalQuery,
    DICOMQuery,
    MintQuery,
)


def queries() -> st.SearchStrategy[Query]:
    """A valid query of any of dicomtrolley's Query classes."""
    return st.sampled_from(QUERY_CLASSES).flatmap(queries_of)
