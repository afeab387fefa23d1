"""Rules for what requests may carry; every breach becomes an InvalidArgument.

Each check appends a Violation naming the request field (a dotted path such as
``studies[0].series[1].uid``) and the rule it broke, so a client in any language
can tell exactly what to fix. Checks never raise anything but InvalidArgument.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable, Sequence

from dicomcache.contract import NAMESPACE as _NAMESPACE
from dicomcache.contract import NAMESPACE_RULE
from dicomcache.server.api.vr import element_violations
from dicomcache.server.errors import InvalidArgument, Violation
from dicomcache.server.model import Level
from dicomcache.server.pacing import step
from dicomcache.v1 import dataset_pb2, objects_pb2, query_pb2

UID_RULE = "must be a UID: 1 to 64 characters, each a digit (0-9) or a dot"
TAG_RULE = "must be a data element tag: group must be 0008 or above"
OWN_UID_RULE = "must hold one value, equal to the object's uid"
MAX_TEXT = 1024  # characters in one query field
MAX_INCLUDE_FIELDS = 256
MAX_PARAMETERS = 256  # of an ArchiveRequest
MAX_EXTRA_FIELDS = 64
MAX_REFERENCES = 1000
MAX_VIOLATIONS = 1000  # kept per request; the rest only counted (a reply lists fewer)
MAX_SEQUENCE_DEPTH = 8  # protobuf parsing itself stops at 100 nested messages, about 19 levels
VALID_VRS = frozenset(
    [
        "AE",
        "AS",
        "AT",
        "CS",
        "DA",
        "DS",
        "DT",
        "FD",
        "FL",
        "IS",
        "LO",
        "LT",
        "OB",
        "OD",
        "OF",
        "OL",
        "OV",
        "OW",
        "PN",
        "SH",
        "SL",
        "SQ",
        "SS",
        "ST",
        "SV",
        "TM",
        "UC",
        "UI",
        "UL",
        "UN",
        "UR",
        "US",
        "UT",
        "UV",
    ]
)

# Characters and length only, not PS3.5 9.1's structure: archives serve UIDs with
# leading zeros ("1.02") and, rarely, empty components ("1..2", a trailing dot), and
# the cache only compares UIDs whole, so neither can confuse it. These characters
# keep storage keys plain; a stricter rule would only make real studies uncacheable.
_UID = re.compile(r"[0-9.]{1,64}")
# Groups 0000-0007 are the command set, the file meta information and groups that
# PS3.5 7.1 forbids: never attributes of a query answer. Tag 0, or 0x000186A4 from
# "100020" read as decimal, is how a client's wrong tag encoding shows.
_FIRST_TAG = 0x00080000
# The attribute that names each kind of object itself.
_OWN_UID_TAG = {
    objects_pb2.Study: 0x0020000D,  # StudyInstanceUID
    objects_pb2.Series: 0x0020000E,  # SeriesInstanceUID
    objects_pb2.Instance: 0x00080018,  # SOPInstanceUID
}
_PROTOCOLS = frozenset(query_pb2.Protocol.values())
_KIND = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_KEYWORD = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")


# QueryLevel numbers and the levels they read as (unspecified: STUDY); looked up, as
# ``Level(value)`` costs an enum call per request.
_LEVELS = {level.value: level for level in Level}
_LEVELS[query_pb2.QUERY_LEVEL_UNSPECIFIED] = Level.STUDY


def study_lookup(namespace: str, study_uid: str, query_level: int, protocol: int) -> Level:
    """Check a study lookup's fields (as ``Checker`` would, field by field) and return
    its level; raise InvalidArgument naming each broken rule.

    One call where the good request is concerned: every hit asks it, and on a busy
    host each Python call is a cache miss (row 17c); a bad one goes through a
    ``Checker`` for its violations.
    """
    level = _LEVELS.get(query_level)
    if (
        level is not None
        and protocol in _PROTOCOLS
        and _NAMESPACE.fullmatch(namespace)
        and _UID.fullmatch(study_uid)
    ):
        return level
    check = Checker()
    check.namespace(namespace)
    check.uid(study_uid, "study_uid")
    check.level(query_level, "query_level")
    check.protocol(protocol)
    check.done()
    raise AssertionError("a check above must have failed")  # pragma: no cover


class Checker:
    """Collects violations over one request; ``done()`` raises if any were found.

    Not thread-safe: one Checker per request.
    """

    def __init__(self, prefix: str = "") -> None:
        """``prefix`` goes before every field named (a streamed store's ``pieces[3].``)."""
        self.violations: list[Violation] = []
        self.omitted = 0
        self.prefix = prefix

    def fail(self, field: str, rule: str, *, whole: bool = False) -> None:
        """Record one broken rule; past MAX_VIOLATIONS, only count it.

        ``whole``: ``field`` is the whole path already, without the prefix.
        """
        if len(self.violations) < MAX_VIOLATIONS:
            self.violations.append(Violation(field if whole else self.prefix + field, rule))
        else:
            self.omitted += 1

    def done(self) -> None:
        """Raise InvalidArgument with the violations found, if any."""
        if self.violations:
            raise InvalidArgument(self.violations, self.omitted)

    def namespace(self, value: str, field: str = "namespace") -> None:
        """Namespaces name an archive and end up in storage keys: keep them plain."""
        if not _NAMESPACE.fullmatch(value):
            self.fail(field, NAMESPACE_RULE)

    def uid(self, value: str, field: str) -> None:
        """A UID by its characters and length, as archives serve them (see ``_UID``)."""
        if not _UID.fullmatch(value):
            self.fail(field, UID_RULE)

    def level(self, value: int, field: str) -> Level:
        """A QueryLevel; unspecified reads as STUDY, unknown numbers are rejected."""
        level = _LEVELS.get(value)
        if level is None:
            self.fail(field, "must be a known QueryLevel (1 STUDY, 2 SERIES, 3 INSTANCE)")
            return Level.STUDY
        return level

    def protocol(self, value: int, field: str = "protocol") -> None:
        """A known Protocol (unspecified included)."""
        if value not in _PROTOCOLS:
            self.fail(
                field, "must be a known Protocol (0 unspecified, 1 QIDO-RS, 2 DICOM-QR, 3 MINT)"
            )

    def archive_request(
        self, request: query_pb2.ArchiveRequest, field: str = "archive_request"
    ) -> None:
        """A request within the bounds of a query: short texts, a bounded number of values."""
        if len(request.path) > MAX_TEXT:
            self.fail(f"{field}.path", f"must be at most {MAX_TEXT} characters")
        if len(request.parameters) > MAX_PARAMETERS:
            self.fail(f"{field}.parameters", f"must have at most {MAX_PARAMETERS} entries")
            return
        for i, parameter in enumerate(request.parameters):
            where = f"{field}.parameters[{i}]"
            if not 1 <= len(parameter.name) <= 64:
                self.fail(f"{where}.name", "must be 1 to 64 characters")
            if len(parameter.values) > MAX_INCLUDE_FIELDS:
                self.fail(f"{where}.values", f"must have at most {MAX_INCLUDE_FIELDS} entries")
            elif any(len(value) > MAX_TEXT for value in parameter.values):
                self.fail(f"{where}.values", f"must each be at most {MAX_TEXT} characters")

    def query(self, query: query_pb2.Query, field: str = "query") -> None:
        """Every field of a Query within its bounds, dates real dates."""
        if query.kind and (len(query.kind) > 256 or not _KIND.fullmatch(query.kind)):
            self.fail(
                f"{field}.kind", "must be a dotted Python class name of at most 256 characters"
            )
        self.level(query.query_level, f"{field}.query_level")
        for name in _QUERY_TEXT_FIELDS:
            if len(getattr(query, name)) > MAX_TEXT:
                self.fail(f"{field}.{name}", f"must be at most {MAX_TEXT} characters")
        if len(query.include_fields) > MAX_INCLUDE_FIELDS:
            self.fail(f"{field}.include_fields", f"must have at most {MAX_INCLUDE_FIELDS} entries")
        for i, keyword in enumerate(query.include_fields):
            if not _KEYWORD.fullmatch(keyword):
                self.fail(f"{field}.include_fields[{i}]", "must be a DICOM keyword")
        if query.include_fields_null and query.include_fields:
            self.fail(f"{field}.include_fields_null", "must be false when include_fields is set")
        if len(query.extra_fields) > MAX_EXTRA_FIELDS:
            self.fail(f"{field}.extra_fields", f"must have at most {MAX_EXTRA_FIELDS} entries")
        for name, value in query.extra_fields.items():
            if not name.isidentifier() or len(name) > 64:
                self.fail(
                    f"{field}.extra_fields",
                    "keys must be Python identifiers of at most 64 characters",
                )
            if len(value) > MAX_TEXT:
                self.fail(
                    f"{field}.extra_fields[{name!r}]", f"must be at most {MAX_TEXT} characters"
                )
        for name in ("limit", "offset"):
            if getattr(query, name) < 0:
                self.fail(f"{field}.{name}", "must not be negative")
        for name in ("min_study_date", "max_study_date"):
            if query.HasField(name):
                self.datetime(getattr(query, name), f"{field}.{name}")
        if query.HasField("patient_birth_date"):
            self.date(query.patient_birth_date, f"{field}.patient_birth_date")

    def date(self, value: query_pb2.Date, field: str) -> None:
        """A calendar date that exists."""
        try:
            datetime.date(value.year, value.month, value.day)
        except ValueError:
            self.fail(field, "must be a valid calendar date (year 1-9999)")

    def datetime(self, value: query_pb2.DateTime, field: str) -> None:
        """A date and wall-clock time that exist; an offset within +-24 hours."""
        self.date(value.date, f"{field}.date")
        try:
            datetime.time(value.hour, value.minute, value.second, value.microsecond)
        except ValueError:
            self.fail(field, "must have hour 0-23, minute 0-59, second 0-59, microsecond 0-999999")
        if value.HasField("utc_offset_seconds") and abs(value.utc_offset_seconds) >= 86400:
            self.fail(f"{field}.utc_offset_seconds", "must be within +-86399 seconds")

    def studies(self, studies: Iterable[objects_pb2.Study], field: str) -> None:
        """Object trees: valid, unique UIDs; an object without attributes is a path to children.

        dicomtrolley gives the studies and series of a deeper answer empty datasets
        (only the deepest level carries data), so such objects travel without
        attributes; an object with neither attributes nor children says nothing.
        """
        seen: set[str] = set()
        for i, study in enumerate(studies):
            path = f"{field}[{i}]"
            self._object(study, path, seen, len(study.series))
            series_seen: set[str] = set()
            for j, series in enumerate(study.series):
                series_path = f"{path}.series[{j}]"
                self._object(series, series_path, series_seen, len(series.instances))
                instance_seen: set[str] = set()
                for k, instance in enumerate(series.instances):
                    self._object(instance, f"{series_path}.instances[{k}]", instance_seen, 0)

    def _object(
        self,
        obj: objects_pb2.Study | objects_pb2.Series | objects_pb2.Instance,
        path: str,
        seen: set[str],
        children: int,
    ) -> None:
        self.node(obj, path, seen)
        if not children and not obj.HasField("attributes"):
            self.childless(path)

    def node(
        self,
        obj: objects_pb2.Study | objects_pb2.Series | objects_pb2.Instance,
        path: str,
        seen: set[str],
    ) -> None:
        """One object of a tree but its children: a valid uid unique in ``seen`` (which
        it joins), valid attributes. Whether it may lack them is ``childless``'s.
        A step of the call's work (``server.pacing``): checking is most of a store's."""
        step()
        self.uid(obj.uid, f"{path}.uid")
        if obj.uid in seen:
            self.fail(f"{path}.uid", "must be unique among its siblings")
        seen.add(obj.uid)
        if obj.HasField("attributes"):
            self.dataset(obj.attributes, f"{path}.attributes", 0)
            self._own_uid(obj, f"{path}.attributes")

    def childless(self, path: str, *, whole: bool = False) -> None:
        """The object at ``path`` has neither attributes nor children: it says nothing."""
        self.fail(f"{path}.attributes", "must be set on an object without children", whole=whole)

    def _own_uid(
        self, obj: objects_pb2.Study | objects_pb2.Series | objects_pb2.Instance, path: str
    ) -> None:
        """An object's own UID attribute, when it holds text, is its uid: one key, one object."""
        tag = _OWN_UID_TAG[type(obj)]
        element = obj.attributes.elements.get(tag)
        if element is None or element.WhichOneof("content") != "values":
            return
        items = element.values.items
        if any(v.WhichOneof("kind") == "text" for v in items) and (
            len(items) != 1 or items[0].text != obj.uid
        ):
            self.fail(f"{path}.elements[{tag:08X}]", OWN_UID_RULE)

    def dataset(self, dataset: dataset_pb2.Dataset, path: str, depth: int) -> None:
        """Attributes that a reader can trust: known tags and VRs, values their VRs hold.

        Value kinds and formats per VR are ``vr.py``'s; sequences nest at most
        MAX_SEQUENCE_DEPTH deep.
        """
        if depth > MAX_SEQUENCE_DEPTH:
            self.fail(path, f"sequences must nest at most {MAX_SEQUENCE_DEPTH} deep")
            return
        for tag, element in dataset.elements.items():
            if tag < _FIRST_TAG:
                self.fail(f"{path}.elements[{tag:08X}]", TAG_RULE)
            vr = element.vr
            if vr not in VALID_VRS:
                self.fail(f"{path}.elements[{tag:08X}].vr", "must be a DICOM VR such as PN or UI")
                continue
            for below, rule in element_violations(vr, element):
                self.fail(f"{path}.elements[{tag:08X}]{below}", rule)
            if vr == "SQ" and element.WhichOneof("content") == "values":
                for n, value in enumerate(element.values.items):
                    if value.HasField("item"):
                        self.dataset(
                            value.item, f"{path}.elements[{tag:08X}].values[{n}]", depth + 1
                        )

    def references(
        self, refs: Sequence[objects_pb2.ObjectReference], field: str
    ) -> list[tuple[str, ...]]:
        """The addresses of a list of references, at most ``MAX_REFERENCES`` of them.

        A list over the bound is refused before any reference is read, so a huge
        request costs nothing but its own parse.
        """
        if len(refs) > MAX_REFERENCES:
            self.fail(field, f"must have at most {MAX_REFERENCES} entries")
            return []
        return [self.reference(ref, f"{field}[{i}]") for i, ref in enumerate(refs)]

    def reference(self, ref: objects_pb2.ObjectReference, field: str) -> tuple[str, ...]:
        """The address a reference names; exactly one kind must be set."""
        kind = ref.WhichOneof("reference")
        if kind == "study":
            self.uid(ref.study.study_uid, f"{field}.study.study_uid")
            return (ref.study.study_uid,)
        if kind == "series":
            self.uid(ref.series.study_uid, f"{field}.series.study_uid")
            self.uid(ref.series.series_uid, f"{field}.series.series_uid")
            return (ref.series.study_uid, ref.series.series_uid)
        if kind == "instance":
            inst = ref.instance
            self.uid(inst.study_uid, f"{field}.instance.study_uid")
            self.uid(inst.series_uid, f"{field}.instance.series_uid")
            self.uid(inst.instance_uid, f"{field}.instance.instance_uid")
            return (inst.study_uid, inst.series_uid, inst.instance_uid)
        self.fail(field, "must set one of study, series or instance")
        return ()


_QUERY_TEXT_FIELDS = tuple(
    f.name
    for f in query_pb2.Query.DESCRIPTOR.fields
    if f.type == f.TYPE_STRING and not f.is_repeated and f.name != "kind"
)
