"""Which values each VR may hold (PS3.5 6.2): the rules that ``dataset.proto`` states.

A dataset is served to every client as it was stored, and pydicom builds what
it is given (a PN holding an integer, a US holding text, an item under a CS), so
a value whose kind contradicts its VR is refused on write, not met on a hit.

Exact where PS3.5 is exact, and no stricter than what archives serve and pydicom
reads: trailing spaces are padding; a text holding backslashes is several
values; DA may take the pre-3.0 form YYYY.MM.DD and TM HH:MM:SS, which PS3.5 asks
readers to accept. Query ranges (20240101-20241231) are matching keys of a
request, never attributes of an object, so datasets do not hold them. String VRs
are checked for their kind only: archives serve lower-case CS and odd AS, and
the cache compares none of them.

Each rule is one constant, so a violation names it word for word; rules never
quote the value (it may be PHI).
"""

from __future__ import annotations

import datetime
import functools
import math
import re
from collections.abc import Callable

from dicomcache.v1 import dataset_pb2

TEXT_RULE = (
    "must be text or empty: values of string VRs (AE AS CS LO LT SH ST UC UI UR UT) are text"
)
PN_RULE = "must be a person_name or empty: values of PN are person names"
ITEM_RULE = "must be an item or empty: values of SQ are data sets"
NOT_ITEM_RULE = "must not be an item: only SQ elements hold data sets"
SQ_CONTENT_RULE = "must hold values (items) or nothing: SQ holds data sets, not bytes"
BINARY_RULE = (
    "must hold inline_binary or bulk_data_uri, not values: OB OD OF OL OV OW UN hold bytes"
)
DA_RULE = "must be DA text: YYYYMMDD (or YYYY.MM.DD) of a calendar day, years 0001-9999"
TM_RULE = (
    "must be TM text: HH[MM[SS[.F{1-6}]]] (or HH:MM:SS[.F]), hour 00-23, minute 00-59, second 00-60"
)
DT_RULE = (
    "must be DT text: YYYY[MM[DD[HH[MM[SS[.F{1-6}]]]]]][&ZZXX], a real date, hour 00-23, "
    "minute 00-59, second 00-60, offset -1200 to +1400"
)
AT_RULE = "must be AT text: a tag as eight hex digits"
IS_RULE = (
    "must be an IS integer from -2147483648 to 2147483647: an integer, or text of at most "
    "12 characters ([+-]digits)"
)
DS_RULE = (
    "must be a DS number: a finite decimal or integer, or text of at most 16 characters "
    "([+-]digits[.digits][E[+-]digits])"
)
FL_RULE = "must be a number a 32-bit float holds (FL): a decimal or an integer"
FD_RULE = "must be a number (FD): a decimal or an integer"
UV_RULE = "must be an integer from 0 to 18446744073709551615 (UV): unsigned, or integer >= 0"
INTEGER_RANGES = {
    "US": (0, 2**16 - 1),
    "SS": (-(2**15), 2**15 - 1),
    "UL": (0, 2**32 - 1),
    "SL": (-(2**31), 2**31 - 1),
    "SV": (-(2**63), 2**63 - 1),
}
INTEGER_RULES = {
    vr: f"must be an integer from {low} to {high} ({vr})"
    for vr, (low, high) in INTEGER_RANGES.items()
}

_TEXT_VRS = frozenset(["AE", "AS", "CS", "LO", "LT", "SH", "ST", "UC", "UI", "UR", "UT"])
_BINARY_VRS = frozenset(["OB", "OD", "OF", "OL", "OV", "OW", "UN"])
_FLOAT32_MAX = 3.4028234663852886e38

_DA = re.compile(r"(\d{4})(\d{2})(\d{2})|(\d{4})\.(\d{2})\.(\d{2})")
_TM = re.compile(r"(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,6})?)?)?")
_TM_COLONS = re.compile(r"(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,6})?)?")
_DT = re.compile(
    r"(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.\d{1,6})?)?)?)?)?)?"
    r"(?:([+-])(\d{2})(\d{2}))?"
)
_AT = re.compile(r"[0-9A-Fa-f]{8}")
_IS = re.compile(r" *[+-]?\d+ *")
_DS = re.compile(r" *[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)? *")
_IS_MIN, _IS_MAX = -(2**31), 2**31 - 1


def element_violations(vr: str, element: dataset_pb2.Element) -> list[tuple[str, str]]:
    """The (path below the element, rule) of each value the element's VR cannot hold.

    ``vr`` is known (``validation.VALID_VRS``). SQ items are not entered: the
    caller checks each nested data set. Runs for every element of every write, so
    the common case (a string VR, one text) costs three attribute reads: protobuf
    accessors cost hundreds of ns each, iterating a repeated field more.
    """
    items = element.values.items  # empty unless the content is values
    count = len(items)
    if not count:
        if vr == "SQ" and element.WhichOneof("content") not in (None, "values"):
            return [("", SQ_CONTENT_RULE)]
        return _NONE
    if vr in _TEXT_VRS and count == 1 and items[0].text:
        return _NONE  # a oneof field reads as its default unless set: this is text
    if vr in _BINARY_VRS:
        return [(".values", BINARY_RULE)]
    check = _CHECKS[vr]
    found = _NONE
    for n in range(count):
        rule = check(items[n])
        if rule is not None:
            found = found or []
            found.append((f".values[{n}]", rule))
    return found


_NONE: list[tuple[str, str]] = []  # never appended to: ``found or []`` makes a new list


def _kind_rule(kind: str | None, wanted: str, rule: str) -> str | None:
    """None for the wanted kind or none at all (an empty value); the VR's rule for an
    item that is not SQ's; ``rule`` for any other kind."""
    if kind is None or kind == wanted:
        return None
    return NOT_ITEM_RULE if kind == "item" else rule


def _text(value: dataset_pb2.Value) -> str | None:
    return _kind_rule(value.WhichOneof("kind"), "text", TEXT_RULE)


def _person_name(value: dataset_pb2.Value) -> str | None:
    if value.HasField("person_name"):
        return None
    return _kind_rule(value.WhichOneof("kind"), "person_name", PN_RULE)


def _item(value: dataset_pb2.Value) -> str | None:
    kind = value.WhichOneof("kind")
    return None if kind is None or kind == "item" else ITEM_RULE


def _formatted(
    rule: str, valid: Callable[[str], bool]
) -> Callable[[dataset_pb2.Value], str | None]:
    """A check of a VR whose values are text of a format; backslashes part several values."""

    @functools.lru_cache(maxsize=4096)  # archives repeat dates, times and numbers
    def valid_text(text: str) -> bool:
        return all(valid(p.rstrip(" ")) or not p.strip(" ") for p in text.split("\\"))

    def check(value: dataset_pb2.Value) -> str | None:
        text = value.text  # a oneof field reads as "" unless it is the kind set
        if text:
            return None if valid_text(text) else rule
        return _kind_rule(value.WhichOneof("kind"), "text", rule)

    return check


def _date(year: str, month: str, day: str) -> bool:
    try:
        datetime.date(int(year), int(month), int(day))
    except ValueError:
        return False
    return True


def _valid_da(text: str) -> bool:
    match = _DA.fullmatch(text)
    if match is None:
        return False
    parts = [g for g in match.groups() if g is not None]
    return _date(*parts)


def _clock(hour: str | None, minute: str | None, second: str | None) -> bool:
    """Hour 00-23, minute 00-59, second 00-60 (a leap second), each when given."""
    return (
        (hour is None or int(hour) <= 23)
        and (minute is None or int(minute) <= 59)
        and (second is None or int(second) <= 60)
    )


def _valid_tm(text: str) -> bool:
    match = _TM.fullmatch(text) or _TM_COLONS.fullmatch(text)
    return match is not None and _clock(*match.groups())


def _valid_dt(text: str) -> bool:
    match = _DT.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second, sign, zz, xx = match.groups()
    if not _date(year, month or "01", day or "01") or not _clock(hour, minute, second):
        return False
    if sign is None:
        return True
    offset = int(zz) * 100 + int(xx)
    return int(xx) <= 59 and (offset <= 1200 if sign == "-" else offset <= 1400)


def _valid_at(text: str) -> bool:
    return _AT.fullmatch(text) is not None


def _valid_is_text(text: str) -> bool:
    return len(text) <= 12 and _IS.fullmatch(text) is not None and _IS_MIN <= int(text) <= _IS_MAX


def _valid_ds_text(text: str) -> bool:
    return len(text) <= 16 and _DS.fullmatch(text) is not None


_da = _formatted(DA_RULE, _valid_da)
_tm = _formatted(TM_RULE, _valid_tm)
_dt = _formatted(DT_RULE, _valid_dt)
_at = _formatted(AT_RULE, _valid_at)
_is_text = _formatted(IS_RULE, _valid_is_text)
_ds_text = _formatted(DS_RULE, _valid_ds_text)


def _is(value: dataset_pb2.Value) -> str | None:
    number = value.integer  # 0 unless set: then look closer
    if number:
        return None if _IS_MIN <= number <= _IS_MAX else IS_RULE
    kind = value.WhichOneof("kind")
    if kind == "integer":
        return None  # 0
    if kind == "decimal":  # a JSON number such as 3.0
        decimal = value.decimal
        return None if decimal.is_integer() and _IS_MIN <= decimal <= _IS_MAX else IS_RULE
    return _is_text(value)


def _ds(value: dataset_pb2.Value) -> str | None:
    number = value.decimal  # 0.0 unless set: then look closer
    if number:
        return None if math.isfinite(number) else DS_RULE
    kind = value.WhichOneof("kind")
    if kind == "decimal":
        return None if math.isfinite(value.decimal) else DS_RULE
    if kind == "integer":
        return None
    return _ds_text(value)


def _float(rule: str, largest: float) -> Callable[[dataset_pb2.Value], str | None]:
    def check(value: dataset_pb2.Value) -> str | None:
        kind = value.WhichOneof("kind")
        if kind == "decimal":
            number = value.decimal
            return None if not math.isfinite(number) or abs(number) <= largest else rule
        if kind == "integer":
            return None
        return _kind_rule(kind, "decimal", rule)

    return check


def _integer(vr: str) -> Callable[[dataset_pb2.Value], str | None]:
    low, high = INTEGER_RANGES[vr]
    rule = INTEGER_RULES[vr]

    def check(value: dataset_pb2.Value) -> str | None:
        number = value.integer  # 0 unless set: then look closer
        if number:
            return None if low <= number <= high else rule
        return _kind_rule(value.WhichOneof("kind"), "integer", rule)

    return check


def _uv(value: dataset_pb2.Value) -> str | None:
    kind = value.WhichOneof("kind")
    if kind == "unsigned":
        return None
    if kind == "integer":
        return None if value.integer >= 0 else UV_RULE
    return _kind_rule(kind, "unsigned", UV_RULE)


_CHECKS: dict[str, Callable[[dataset_pb2.Value], str | None]] = {
    **dict.fromkeys(_TEXT_VRS, _text),
    "PN": _person_name,
    "SQ": _item,
    "DA": _da,
    "TM": _tm,
    "DT": _dt,
    "AT": _at,
    "IS": _is,
    "DS": _ds,
    "FL": _float(FL_RULE, _FLOAT32_MAX),
    "FD": _float(FD_RULE, math.inf),
    "UV": _uv,
    **{vr: _integer(vr) for vr in INTEGER_RANGES},
}
