"""A QIDO-RS URL as the SearchRequest it asks for, or the HTTP error it earns.

The path names the upstream and the resource (PS3.18 10.6):

    /dicom-web/{upstream}/studies
    /dicom-web/{upstream}/series
    /dicom-web/{upstream}/instances
    /dicom-web/{upstream}/studies/{study}/series
    /dicom-web/{upstream}/studies/{study}/instances
    /dicom-web/{upstream}/studies/{study}/series/{series}/instances

Anything else is ``NotFound``. The query string carries ``includefield`` (repeated,
or a comma-separated list), ``fuzzymatching`` (true or false), ``limit`` and
``offset`` (each once, a whole number), and match parameters: every other key, a
keyword or a tag, repeated keys adding values in order. Whether a key names an
attribute, and whether a uid is one, is the engine's rule (``search.request``),
so that a Search and a URL are held to the same rules; what is checked here is
what only a URL can get wrong. Pure functions: thread-safe, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from dicomcache.server.errors import InvalidArgument, Violation
from dicomcache.v1 import search_pb2

PREFIX = "/dicom-web/"
MAX_FIELDS = 1024  # key=value pairs in one query string; the engine caps what it keeps
MAX_UINT32 = 2**32 - 1
_LEVELS = {
    "studies": search_pb2.SEARCH_LEVEL_STUDIES,
    "series": search_pb2.SEARCH_LEVEL_SERIES,
    "instances": search_pb2.SEARCH_LEVEL_INSTANCES,
}
PATHS = (
    "/dicom-web/{upstream}/studies, /series, /instances, /studies/{study}/series, "
    "/studies/{study}/instances or /studies/{study}/series/{series}/instances"
)
# What the engine calls a field, as a URL says it (match and include fields are by index).
PARAMETERS = {
    "fuzzy_matching": "fuzzymatching",
    "limit": "limit",
    "offset": "offset",
    "study_uid": "path: the study uid",
    "series_uid": "path: the series uid",
    "include_fields": "includefield",
    "match": "match parameters",
    "level": "path: the resource",
}


class NotFound(Exception):
    """A path that is no QIDO-RS search of this endpoint (HTTP 404)."""


@dataclass(frozen=True, slots=True)
class Search:
    """A parsed URL: the request, and each match key as the URL spelled it (by index)."""

    request: search_pb2.SearchRequest
    keys: tuple[str, ...]

    def parameter(self, field: str) -> str:
        """The URL's name for an engine ``field`` ("limit", "match[2].name", ...)."""
        head, _, rest = field.partition("[")
        if head == "match" and rest:
            index = int(rest.split("]", 1)[0])
            return self.keys[index] if index < len(self.keys) else "match parameters"
        if head == "include_fields" and rest:
            index = int(rest.split("]", 1)[0])
            fields = self.request.include_fields
            return f"includefield={fields[index]}" if index < len(fields) else "includefield"
        return PARAMETERS.get(head, head)


def parse(path: str, query: str) -> Search:
    """The search that a URL's ``path`` (percent-decoded) and ``query`` (not) ask for.

    Raises:
        NotFound: the path is not one of ``PATHS``.
        InvalidArgument: the query string breaks a rule; each violation names the
            parameter as the URL spelled it.
    """
    request = search_pb2.SearchRequest()
    _path(path, request)
    keys = _query(query, request)
    return Search(request, keys)


def _path(path: str, request: search_pb2.SearchRequest) -> None:
    if not path.startswith(PREFIX):
        raise NotFound(f"no such path: searches are at {PATHS}")
    parts = path[len(PREFIX) :].split("/")
    upstream, rest = parts[0], parts[1:]
    if not upstream or not rest or "" in rest:
        raise NotFound(f"no such path: searches are at {PATHS}")
    request.upstream = upstream
    if len(rest) == 1 and rest[0] in _LEVELS:
        request.level = _LEVELS[rest[0]]
    elif len(rest) == 3 and rest[0] == "studies" and rest[2] in ("series", "instances"):
        request.level = _LEVELS[rest[2]]
        request.study_uid = rest[1]
    elif len(rest) == 5 and rest[0] == "studies" and rest[2] == "series" and rest[4] == "instances":
        request.level = search_pb2.SEARCH_LEVEL_INSTANCES
        request.study_uid, request.series_uid = rest[1], rest[3]
    else:
        raise NotFound(
            f"no such path: this endpoint answers QIDO-RS searches only; searches are at {PATHS}"
        )


def _query(query: str, request: search_pb2.SearchRequest) -> tuple[str, ...]:
    try:
        pairs = parse_qsl(
            query,
            keep_blank_values=True,
            strict_parsing=False,
            errors="strict",
            max_num_fields=MAX_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidArgument.single("query string", "must be UTF-8 once percent-decoded") from None
    except ValueError:
        raise InvalidArgument.single(
            "query string", f"must have at most {MAX_FIELDS} parameters"
        ) from None
    violations: list[Violation] = []
    once: dict[str, str] = {}
    match: dict[str, list[str]] = {}
    for key, value in pairs:
        if key == "includefield":
            request.include_fields.extend(f.strip() for f in value.split(",") if f.strip())
        elif key in ("fuzzymatching", "limit", "offset"):
            if key in once:
                violations.append(Violation(key, "must be given once"))
            once[key] = value
        elif not key:
            violations.append(Violation("query string", "a parameter must have a name"))
        else:
            match.setdefault(key, []).append(value)
    if "fuzzymatching" in once:
        fuzzy = once["fuzzymatching"]
        if fuzzy not in ("true", "false"):
            violations.append(Violation("fuzzymatching", "must be true or false"))
        request.fuzzy_matching = fuzzy == "true"
    for key in ("limit", "offset"):
        if key in once:
            number = _whole(once[key])
            if number is None:
                violations.append(Violation(key, f"must be a whole number from 0 to {MAX_UINT32}"))
            else:
                setattr(request, key, number)
    if violations:
        raise InvalidArgument(violations)
    for key, values in match.items():
        request.match.add(name=key, values=values)
    return tuple(match)


def _whole(text: str) -> int | None:
    if not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    number = int(text)
    return number if number <= MAX_UINT32 else None
