"""Many violations still come back as INVALID_ARGUMENT: the listed ones are capped to fit a trailer.

gRPC refuses trailers over 16 KiB; an uncapped list of a few hundred violations
turned INVALID_ARGUMENT into RESOURCE_EXHAUSTED at the client.
"""

from __future__ import annotations

import re

import pytest

from dicomcache.server.api.status import MAX_LISTED, MAX_TEXT_BYTES
from dicomcache.server.api.validation import MAX_EXTRA_FIELDS, MAX_VIOLATIONS, UID_RULE
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2, query_pb2
from tests.grpc.test_validation import rejected

_MORE = re.compile(r"and (\d+) more violations? not listed")


def _bad_studies(count: int) -> list[objects_pb2.Study]:
    """Studies that each break two rules: a bad uid, and no attributes nor children."""
    return [objects_pb2.Study(uid=f"bad-{i}") for i in range(count)]


@pytest.mark.parametrize("count", [100, 400, 5000])
def test_many_violations_are_invalid_argument_with_a_count_of_the_rest(stub, count):
    found = rejected(
        stub.AddObjects, pb.AddObjectsRequest(namespace="ns", studies=_bad_studies(count))
    )
    total = 2 * count
    assert len(found) <= MAX_LISTED
    *listed, (field, last) = found
    assert field == "request"
    match = _MORE.fullmatch(last)
    assert match is not None, last
    assert len(listed) + int(match.group(1)) == total
    # The first ones, in request order.
    assert listed[:2] == [
        ("studies[0].uid", UID_RULE),
        ("studies[0].attributes", "must be set on an object without children"),
    ]


def test_a_few_violations_are_all_listed(stub):
    found = rejected(stub.AddObjects, pb.AddObjectsRequest(namespace="ns", studies=_bad_studies(3)))
    assert len(found) == 6
    assert not any(_MORE.fullmatch(description) for _, description in found)


def test_long_fields_are_cut_and_still_fit(stub):
    # extra_fields keys are request data in the field path: long, non-ASCII, many.
    query = query_pb2.Query(
        extra_fields={("é" * 150 + str(i)): "x" * 2000 for i in range(MAX_EXTRA_FIELDS)},
    )
    found = rejected(stub.LookupQuery, pb.LookupQueryRequest(namespace="ns", query=query))
    assert any(field.endswith("...") for field, _ in found)
    assert all(len(field.encode()) <= MAX_TEXT_BYTES for field, _ in found)
    assert len(found) <= MAX_LISTED
    assert _MORE.fullmatch(found[-1][1])


def test_violations_past_the_kept_bound_are_counted_not_kept(stub):
    count = MAX_VIOLATIONS  # two violations each: twice what a checker keeps
    found = rejected(
        stub.AddObjects, pb.AddObjectsRequest(namespace="ns", studies=_bad_studies(count))
    )
    match = _MORE.fullmatch(found[-1][1])
    assert match is not None
    assert len(found) - 1 + int(match.group(1)) == 2 * count
