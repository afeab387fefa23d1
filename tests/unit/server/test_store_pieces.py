"""A streamed store's pieces: cut by the client, put together and checked by the server.

The pieces of any cut make up exactly the model the unary store builds from the
whole request; a piece that breaks a rule is named by its index, and nothing is
stored when any does, or when the pieces end without the last.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from dicomcache.client.pieces import query_pieces, study_pieces
from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.api.pieces import Tree, assemble
from dicomcache.server.api.service import CacheService
from dicomcache.server.api.validation import Checker
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.errors import InvalidArgument
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import objects_pb2, query_pb2
from tests.support.messages import make_study

QUERY = query_pb2.Query(patient_id="PAT*", query_level=query_pb2.QUERY_LEVEL_INSTANCE)
CUTS = [1, 200, 700, 3000, 1024**2]  # bytes per piece: every object its own piece, up to one piece


def answer() -> list[objects_pb2.Study]:
    """Studies of every shape: deep, study-level only, and a path without attributes."""
    path = make_study(3, 2, 3)
    path.ClearField("attributes")  # only a path to its series (a deeper answer's studies)
    for series in path.series:
        series.ClearField("attributes")
    return [make_study(1, 3, 5), make_study(2), path, make_study(4, 1, 40)]


def wire(request: Any) -> Any:
    """The request as the server gets it: parsed from its wire form."""
    return type(request).FromString(request.SerializeToString())


def parsed(pieces: Iterable[bytes], query: bool = False) -> list[Any]:
    kind = pb.StreamStoreQueryRequest if query else pb.StreamStoreStudyRequest
    return [kind.FromString(p) for p in pieces]


def _study_objects(tree: Tree, check: Checker, store: pb.StoreStudyRequest) -> None:
    tree.study(check, store.study, "study")


def _query_objects(tree: Tree, check: Checker, store: pb.StoreQueryRequest) -> None:
    tree.studies(check, store.studies, "studies")


def _nothing(check: Checker, store: Any) -> None:
    """No header checks: these tests are about the objects."""


@pytest.mark.parametrize("piece_bytes", CUTS)
def test_the_pieces_of_a_store_study_make_up_its_study(piece_bytes: int):
    study = answer()[0]
    request = pb.StoreStudyRequest(namespace="ns", study=study, query_level=3, ttl_seconds=30)
    pieces = [pb.StreamStoreStudyRequest.FromString(p) for p in study_pieces(request, piece_bytes)]
    store, studies = assemble(pieces, _nothing, _study_objects)
    assert studies == [study_from_proto(wire(request).study)]
    assert (store.namespace, store.query_level, store.ttl_seconds) == ("ns", 3, 30)
    assert [p.last for p in pieces] == [False] * (len(pieces) - 1) + [True]
    if piece_bytes == 1:
        assert len(pieces) == 1 + 3 + 15  # the study, then each series and instance alone


@pytest.mark.parametrize("piece_bytes", CUTS)
def test_the_pieces_of_a_store_query_make_up_its_answer(piece_bytes: int):
    request = pb.StoreQueryRequest(namespace="ns", query=QUERY, studies=answer(), lease=7)
    cut = list(query_pieces(request, piece_bytes))
    pieces = [pb.StreamStoreQueryRequest.FromString(p) for p in cut]
    store, studies = assemble(pieces, _nothing, _query_objects)
    assert studies == [study_from_proto(s) for s in wire(request).studies]
    assert (store.query, store.lease) == (QUERY, 7)
    assert all(len(p) <= max(piece_bytes, 600) for p in cut[1:])


def test_an_empty_answer_is_one_piece():
    request = pb.StoreQueryRequest(namespace="ns", query=QUERY)
    (cut,) = query_pieces(request)
    piece = pb.StreamStoreQueryRequest.FromString(cut)
    assert piece.last and piece.store == request
    assert assemble([piece], _nothing, _query_objects)[1] == []


def service() -> CacheService:
    return CacheService(MemoryBackend(), max_ttl=600)


def violations(pieces: Iterable[Any], study: bool = True) -> list[tuple[str, str]]:
    """The violations a streamed store of ``pieces`` is refused with; nothing stored."""
    cache = service()
    store = cache.stream_store_study if study else cache.stream_store_query
    with pytest.raises(InvalidArgument) as caught:
        store(pieces)
    assert cache.backend.stats(None).total_bytes == 0
    return [(v.field, v.rule) for v in caught.value.violations]


def first(study: objects_pb2.Study | None = None, **store: Any) -> pb.StreamStoreStudyRequest:
    request = pb.StoreStudyRequest(namespace="ns", query_level=3, **store)
    if study is not None:
        request.study.CopyFrom(study)
    return pb.StreamStoreStudyRequest(store=request)


def test_a_piece_that_breaks_a_rule_is_named_by_its_index():
    study = make_study(1, 2, 2)
    head = objects_pb2.Study(uid=study.uid, attributes=study.attributes)
    again = pb.StreamStoreStudyRequest(series=[study.series[0]], last=True)
    found = violations([first(head), pb.StreamStoreStudyRequest(series=study.series), again])
    assert found == [("pieces[2].series[0].uid", "must be unique among its siblings")]


def test_instances_need_a_series_before_them():
    study = make_study(1, 1, 2)
    head = objects_pb2.Study(uid=study.uid, attributes=study.attributes)
    orphans = pb.StreamStoreStudyRequest(instances=study.series[0].instances, last=True)
    assert violations([first(head), orphans]) == [
        ("pieces[1].instances", "must follow a series: there is none yet")
    ]


def test_an_object_with_nothing_is_named_where_it_came_when_a_later_piece_closes_it():
    study = make_study(1, 2, 1)
    head = objects_pb2.Study(uid=study.uid, attributes=study.attributes)
    empty = pb.StreamStoreStudyRequest(series=[objects_pb2.Series(uid=f"{study.uid}.9")])
    rest = pb.StreamStoreStudyRequest(series=study.series, last=True)
    assert violations([first(head), empty, rest]) == [
        ("pieces[1].series[0].attributes", "must be set on an object without children")
    ]


def test_the_first_piece_is_checked_as_the_unary_store_is():
    bad = first(make_study(1, 1, 1), ttl_seconds=0)
    bad.store.namespace = "no spaces"
    bad.store.study.series[0].uid = "x"
    bad.last = True
    with pytest.raises(InvalidArgument) as unary:
        service().store_study(bad.store)
    expected = [  # the unary store names the study study[0]
        (f"pieces[0].store.{v.field.replace('study[0]', 'study')}", v.rule)
        for v in unary.value.violations
    ]
    assert violations([bad]) == expected
    assert [field for field, _ in expected][:2] == [
        "pieces[0].store.namespace",
        "pieces[0].store.study.series[0].uid",
    ]
    assert violations([pb.StreamStoreStudyRequest(store=pb.StoreStudyRequest(namespace="ns"))])[
        0
    ] == ("pieces[0].store.study", "must be set")


@pytest.mark.parametrize(
    ("pieces", "field"),
    [
        ([], "pieces"),
        ([pb.StreamStoreStudyRequest(last=True)], "pieces[0].store"),
        ([first(make_study(1)), first(make_study(2))], "pieces[1].store"),
        ([first(make_study(1))], "pieces[0].last"),
        ([first(make_study(1), ttl_seconds=1), pb.StreamStoreStudyRequest()], "pieces[1].last"),
    ],
    ids=["none", "no-store", "store-twice", "no-last", "no-last-later"],
)
def test_the_stream_must_be_one_store_ending_with_its_last_piece(pieces, field):
    assert [f for f, _ in violations(pieces)] == [field]


def test_nothing_may_follow_the_last_piece():
    done = first(make_study(1))
    done.last = True
    assert violations([done, pb.StreamStoreStudyRequest()]) == [
        ("pieces[1]", "must not follow the last piece (last = true)")
    ]


def test_a_streamed_store_stores_what_the_unary_store_stores():
    unary, streamed = service(), service()
    request = pb.StoreQueryRequest(namespace="ns", query=QUERY, studies=answer())
    assert unary.store_query(wire(request)).stored
    assert streamed.stream_store_query(parsed(query_pieces(request, 700), query=True)).stored
    lookup = pb.LookupQueryRequest(namespace="ns", query=QUERY)
    hits = [pb.LookupQueryResponse.FromString(c.lookup_query(lookup)) for c in (streamed, unary)]
    for hit in hits:
        hit.ClearField("fresh_for_ms")  # time left, from the real clock
    assert hits[0].hit and hits[0].SerializeToString() == hits[1].SerializeToString()
    assert streamed.backend.stats(None) == unary.backend.stats(None)


def test_a_streamed_store_whose_hit_is_larger_than_the_largest_answer_is_refused():
    cache = CacheService(MemoryBackend(), max_ttl=600, max_message_bytes=1000, max_answer_bytes=1)
    assert cache.max_answer_bytes == 1000  # never below the largest message
    request = pb.StoreStudyRequest(namespace="ns", study=make_study(1, 2, 20), query_level=3)
    assert not cache.stream_store_study(parsed(study_pieces(request, 500))).stored
    assert not cache.store_study(request).stored  # as the unary store is
    assert cache.backend.stats(None).total_bytes == 0
