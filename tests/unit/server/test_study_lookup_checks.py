"""A study lookup's fields checked in one call give what the field-by-field Checker gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dicomcache.server.api.validation import Checker, study_lookup
from dicomcache.server.errors import InvalidArgument
from dicomcache.server.model import Level

NAMESPACES = st.sampled_from(["ns", "a-b_c.d", "", "bad name", "x" * 200, "ns/1"])
UIDS = st.sampled_from(["1.2.3", "1" * 64, "", "1.2.a", "1" * 65, "1.2.3 "])
LEVELS = st.sampled_from([0, 1, 2, 3, 4, -1, 99])
PROTOCOLS = st.sampled_from([0, 1, 2, 3, 4, -5])
Outcome = Level | list[tuple[str, str]]  # the level, or the violations (field, rule)


def _checked(namespace: str, uid: str, level: int, protocol: int) -> Outcome:
    """The level, or the violations, that study_lookup gives."""
    try:
        return study_lookup(namespace, uid, level, protocol)
    except InvalidArgument as exc:
        return [(v.field, v.rule) for v in exc.violations]


def _by_fields(namespace: str, uid: str, level: int, protocol: int) -> Outcome:
    """The same through a Checker, one field at a time (as LookupStudy checked before)."""
    check = Checker()
    check.namespace(namespace)
    check.uid(uid, "study_uid")
    found = check.level(level, "query_level")
    check.protocol(protocol)
    try:
        check.done()
    except InvalidArgument as exc:
        return [(v.field, v.rule) for v in exc.violations]
    return found


@given(NAMESPACES, UIDS, LEVELS, PROTOCOLS)
def test_one_call_checks_as_the_fields_do(namespace, uid, level, protocol):
    assert _checked(namespace, uid, level, protocol) == _by_fields(namespace, uid, level, protocol)


def test_a_good_lookup_gives_its_level_and_unspecified_reads_as_study():
    assert study_lookup("ns", "1.2.3", 3, 1) is Level.INSTANCE
    assert study_lookup("ns", "1.2.3", 0, 0) is Level.STUDY


def test_every_broken_rule_is_named():
    assert [field for field, _ in _checked("bad name", "x", 9, 77)] == [
        "namespace",
        "study_uid",
        "query_level",
        "protocol",
    ]
