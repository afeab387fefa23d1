"""A SearchRequest as the request its archive receives: the ArchiveRequest the cache keys by.

The rules are those documented on ``SearchRequest`` in ``search.proto``. The
result is built as the Python client builds its requests (``client/convert/request.py``,
from dicomtrolley's own query classes), so that a Search and a ``CachedSearcher``
query that reach the archive as one request have one key:

* QIDO-RS: the resource path (``/studies``, ``/studies/{uid}/series``, ...) and one
  parameter per attribute keyword, "includefield" as one parameter whose values
  are keywords or "all", then "fuzzymatching", "limit" and "offset" when not the
  archive's defaults.
* DICOM-QR: the Query/Retrieve level ("STUDY", "SERIES", "IMAGE") as the path and
  the C-FIND identifier's attributes as parameters: the uids of the levels down
  to the one searched (empty, to be returned, unless the path or a match gives
  them), each include field as an empty attribute, each match with its values.

Parameters come out in canonical order (``keys.canonical_request``), so the request
itself is the canonical form. Pure functions: thread-safe, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

from dicomcache.server.api.keys import canonical_request
from dicomcache.server.api.validation import MAX_PARAMETERS, MAX_TEXT, UID_RULE, Checker
from dicomcache.server.errors import InvalidArgument
from dicomcache.server.model import Level
from dicomcache.v1 import query_pb2, search_pb2

QIDO_RS = query_pb2.PROTOCOL_QIDO_RS
DICOM_QR = query_pb2.PROTOCOL_DICOM_QR

MAX_VALUES = 256  # of one match parameter
MAX_INCLUDE_FIELDS = 256
MAX_PATH_PARTS = 8  # of a dotted attribute path (sequence nesting)

_UID = re.compile(r"[0-9.]{1,64}")
# A tag as "00100020", "0010,0020" or "(0010,0020)".
_TAG = re.compile(r"\(?([0-9A-Fa-f]{4}),?([0-9A-Fa-f]{4})\)?")
_RESERVED = {
    "includefield": "include_fields",
    "fuzzymatching": "fuzzy_matching",
    "limit": "limit",
    "offset": "offset",
}
NAME_RULE = (
    "must be a DICOM keyword (case-sensitive) or a tag as 00100020, 0010,0020 or (0010,0020), "
    "or a dotted path of them"
)
_QR_LEVELS = {Level.STUDY: "STUDY", Level.SERIES: "SERIES", Level.INSTANCE: "IMAGE"}
_LEVEL_UIDS = {
    Level.STUDY: ("StudyInstanceUID",),
    Level.SERIES: ("StudyInstanceUID", "SeriesInstanceUID"),
    Level.INSTANCE: ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
_LEVELS = {
    search_pb2.SEARCH_LEVEL_STUDIES: Level.STUDY,
    search_pb2.SEARCH_LEVEL_SERIES: Level.SERIES,
    search_pb2.SEARCH_LEVEL_INSTANCES: Level.INSTANCE,
}


@dataclass(frozen=True)
class Normalized:
    """A search in the archive's terms.

    ``request`` is what the archive receives, in canonical form; ``level`` the
    level of the objects it answers with; ``study_uid`` and ``series_uid`` those of
    the path ("" when not given); ``ordered`` whether the answer may list its
    objects in an order that the study tree cannot keep (series of several
    studies interleaved, instances of several series): then the answer's order is
    kept beside it (``answer``).
    """

    request: query_pb2.ArchiveRequest
    level: Level
    study_uid: str
    series_uid: str

    @property
    def ordered(self) -> bool:
        if self.level == Level.SERIES:
            return not self.study_uid
        return self.level == Level.INSTANCE and not self.series_uid


def normalize(request: search_pb2.SearchRequest, protocol: int) -> Normalized:
    """The request the archive of ``protocol`` receives for ``request``.

    Args:
        request: the search (its ``upstream`` is not looked at here).
        protocol: the upstream's, ``PROTOCOL_QIDO_RS`` or ``PROTOCOL_DICOM_QR``.
    Raises:
        InvalidArgument: every broken rule, each naming its field.
    """
    check = Checker()
    level = _level(check, request)
    _path(check, request, level)
    match = _match(check, request.match, protocol)
    fields = _include_fields(check, request.include_fields, protocol)
    if protocol == DICOM_QR:
        for name, value in (
            ("fuzzy_matching", request.fuzzy_matching),
            ("limit", request.limit),
            ("offset", request.offset),
        ):
            if value:
                check.fail(name, "has no C-FIND form: must be unset for a DICOM-QR upstream")
        for name, field in (("StudyInstanceUID", "study_uid"), ("SeriesInstanceUID", "series_uid")):
            if getattr(request, field) and name in match:
                check.fail("match", f"must not name {name}: {field} gives it (DICOM-QR)")
    check.done()
    if protocol == DICOM_QR:
        archive = _c_find(request, level, match, fields)
    else:
        archive = _qido_rs(request, level, match, fields)
    return Normalized(canonical_request(archive), level, request.study_uid, request.series_uid)


def listing(normalized: Normalized, protocol: int) -> tuple[str, Level] | None:
    """The study and depth when the request is the one ``find_study_by_id`` sends.

    dicomtrolley's ``find_study_by_id(uid, level)`` asks for the study's complete
    content down to ``level``, so such an answer is also the study's listing (what
    the typed ``LookupStudy`` serves), as the service does for a ``StoreQuery``.
    """
    uid = normalized.study_uid or _single(normalized.request, "StudyInstanceUID")
    if not uid or not _UID.fullmatch(uid):
        return None
    for level, candidate in _by_id_requests(uid, normalized.level):
        try:
            if normalize(candidate, protocol).request == normalized.request:
                return uid, level
        except InvalidArgument:  # a form this protocol refuses
            continue
    return None


def _by_id_requests(uid: str, level: Level) -> list[tuple[Level, search_pb2.SearchRequest]]:
    """The searches that ``find_study_by_id(uid, level)`` becomes, in either protocol."""
    by_uid = [search_pb2.SearchParameter(name="StudyInstanceUID", values=[uid])]
    if level == Level.STUDY:
        return [
            (level, search_pb2.SearchRequest(level=search_pb2.SEARCH_LEVEL_STUDIES, match=by_uid))
        ]
    if level == Level.SERIES:
        return [
            (level, search_pb2.SearchRequest(level=search_pb2.SEARCH_LEVEL_SERIES, study_uid=uid))
        ]
    instances = search_pb2.SEARCH_LEVEL_INSTANCES
    return [
        # QIDO-RS: dicomtrolley's relational query puts the uid in the path and a parameter.
        (level, search_pb2.SearchRequest(level=instances, study_uid=uid, match=by_uid)),
        (level, search_pb2.SearchRequest(level=instances, study_uid=uid)),  # DICOM-QR
    ]


def _single(request: query_pb2.ArchiveRequest, name: str) -> str:
    for parameter in request.parameters:
        if parameter.name == name and len(parameter.values) == 1:
            return parameter.values[0]
    return ""


def _level(check: Checker, request: search_pb2.SearchRequest) -> Level:
    level = _LEVELS.get(request.level)
    if level is None:
        check.fail(
            "level",
            "must be SEARCH_LEVEL_STUDIES (1), SEARCH_LEVEL_SERIES (2) "
            "or SEARCH_LEVEL_INSTANCES (3)",
        )
        return Level.STUDY
    return level


def _path(check: Checker, request: search_pb2.SearchRequest, level: Level) -> None:
    if request.study_uid:
        if not _UID.fullmatch(request.study_uid):
            check.fail("study_uid", UID_RULE)
        if level == Level.STUDY:
            check.fail(
                "study_uid",
                "must be empty at level SEARCH_LEVEL_STUDIES (match StudyInstanceUID instead)",
            )
    if request.series_uid:
        if not _UID.fullmatch(request.series_uid):
            check.fail("series_uid", UID_RULE)
        if level != Level.INSTANCE or not request.study_uid:
            check.fail("series_uid", "needs study_uid and level SEARCH_LEVEL_INSTANCES")


def _match(
    check: Checker, parameters: Sequence[search_pb2.SearchParameter], protocol: int
) -> dict[str, list[str]]:
    """Match parameters by keyword, values in order without trailing spaces."""
    if len(parameters) > MAX_PARAMETERS:
        check.fail("match", f"must have at most {MAX_PARAMETERS} entries")
        return {}
    merged: dict[str, list[str]] = {}
    for i, parameter in enumerate(parameters):
        where = f"match[{i}]"
        name = _attribute(check, parameter.name, f"{where}.name", protocol)
        if not parameter.values:
            check.fail(f"{where}.values", "must have at least one value")
        elif len(parameter.values) > MAX_VALUES:
            check.fail(f"{where}.values", f"must have at most {MAX_VALUES} entries")
        elif any(len(value) > MAX_TEXT for value in parameter.values):
            check.fail(f"{where}.values", f"must each be at most {MAX_TEXT} characters")
        elif name is not None:
            merged.setdefault(name, []).extend(v.rstrip(" ") for v in parameter.values)
    return merged


def _include_fields(check: Checker, fields: Sequence[str], protocol: int) -> list[str]:
    """The include fields as a sorted set of keywords, or ["all"]."""
    if len(fields) > MAX_INCLUDE_FIELDS:
        check.fail("include_fields", f"must have at most {MAX_INCLUDE_FIELDS} entries")
        return []
    names: set[str] = set()
    every = False
    for i, field in enumerate(fields):
        if field == "all":
            if protocol == DICOM_QR:
                check.fail(f"include_fields[{i}]", '"all" has no C-FIND form (DICOM-QR)')
            every = True
            continue
        name = _attribute(check, field, f"include_fields[{i}]", protocol)
        if name is not None:
            names.add(name)
    return ["all"] if every else sorted(names)


def _attribute(check: Checker, text: str, field: str, protocol: int) -> str | None:
    """An attribute (or a dotted path of them) by keyword; None when it breaks a rule."""
    if text in _RESERVED:
        check.fail(field, f"is a QIDO-RS query key: use the field {_RESERVED[text]}")
        return None
    parts = text.split(".")
    if not text or len(parts) > MAX_PATH_PARTS or len(text) > 256:
        check.fail(field, NAME_RULE)
        return None
    if len(parts) > 1 and protocol == DICOM_QR:
        check.fail(field, "must be one keyword or tag: a DICOM-QR upstream takes no paths")
        return None
    names = []
    for part in parts:
        name = _keyword(part)
        if name is None:
            check.fail(field, NAME_RULE)
            return None
        names.append(name)
    return ".".join(names)


def load_dictionary() -> None:
    """Load pydicom's data dictionary, which ``normalize`` reads, now and not at the first search.

    Not at import: pydicom brings numpy (some 26 MiB resident), and every server
    imports this module, while only one with upstreams normalizes a search. The
    engine calls it when it is built, so no search waits for it.
    """
    _dictionary()


@cache
def _dictionary() -> tuple[Callable[[int], str], Callable[[str], int | None]]:
    """pydicom's ``keyword_for_tag`` and ``tag_for_keyword``, imported once, on first use."""
    from pydicom.datadict import keyword_for_tag, tag_for_keyword

    return keyword_for_tag, tag_for_keyword


def _keyword(part: str) -> str | None:
    """A tag or keyword as its keyword (unknown tags as 8 upper-case hex digits)."""
    keyword_for_tag, tag_for_keyword = _dictionary()
    tag = _TAG.fullmatch(part)
    if tag is not None and (len(part) in (8, 9, 11)) and _tag_form(part):
        value = int(tag.group(1) + tag.group(2), 16)
        return keyword_for_tag(value) or f"{value:08X}"
    if tag_for_keyword(part) is not None:
        return part
    return None


def _tag_form(part: str) -> bool:
    """One of the three spellings exactly (not "(00100020" nor "0010,0020)")."""
    if len(part) == 8:
        return "," not in part and "(" not in part
    if len(part) == 9:
        return part[4] == ","
    return part[0] == "(" and part[5] == "," and part[-1] == ")"


def _qido_rs(
    request: search_pb2.SearchRequest,
    level: Level,
    match: dict[str, list[str]],
    fields: list[str],
) -> query_pb2.ArchiveRequest:
    resource = {Level.STUDY: "studies", Level.SERIES: "series", Level.INSTANCE: "instances"}[level]
    path = ""
    if request.study_uid:
        path += f"/studies/{request.study_uid}"
        if request.series_uid:
            path += f"/series/{request.series_uid}"
    path += f"/{resource}"
    archive = query_pb2.ArchiveRequest(path=path)
    for name, values in match.items():
        archive.parameters.add(name=name, values=values)
    if fields:
        archive.parameters.add(name="includefield", values=fields)
    if request.fuzzy_matching:
        archive.parameters.add(name="fuzzymatching", values=["true"])
    if request.limit:
        archive.parameters.add(name="limit", values=[str(request.limit)])
    if request.offset:
        archive.parameters.add(name="offset", values=[str(request.offset)])
    return archive


def _c_find(
    request: search_pb2.SearchRequest,
    level: Level,
    match: dict[str, list[str]],
    fields: list[str],
) -> query_pb2.ArchiveRequest:
    identifier: dict[str, list[str]] = {name: [""] for name in fields}
    identifier.update((name, [""]) for name in _LEVEL_UIDS[level])
    if request.study_uid:
        identifier["StudyInstanceUID"] = [request.study_uid]
    if request.series_uid:
        identifier["SeriesInstanceUID"] = [request.series_uid]
    identifier.update(match)
    archive = query_pb2.ArchiveRequest(path=_QR_LEVELS[level])
    for name, values in identifier.items():
        archive.parameters.add(name=name, values=values)
    return archive
