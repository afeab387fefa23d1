"""CachedSearcher without a server: conversion failures fall back, pause_gc reaches the build.

The cache is a fake channel (the transport seam: the generated stub asks it for
each method), so the real CacheClient and conversions run; the grpc tests run
the searcher against a real server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest
from dicomtrolley.core import Query, QueryLevels, Searcher, Study

from dicomcache.client import CacheClient, CachedSearcher
from dicomcache.client.convert import collector
from dicomcache.client.convert.objects import study_from_proto
from dicomcache.client.errors import DicomJsonError
from dicomcache.v1 import cache_service_pb2 as pb
from tests.support.messages import make_study


class FakeChannel:
    """Answers every LookupQuery and LookupStudy with a hit, and records the methods called."""

    def __init__(self, study: Any) -> None:
        self.study = study
        self.called: list[str] = []

    def unary_unary(self, method: str, *_: Any, **__: Any) -> Callable[..., Any]:
        name = method.rsplit("/", 1)[1]

        def call(request: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            self.called.append(name)
            if name == "LookupQuery":
                return pb.LookupQueryResponse(hit=True, studies=[self.study])
            if name == "LookupStudy":
                return pb.LookupStudyResponse(hit=True, study=self.study)
            return getattr(pb, f"{name}Response")()

        return call

    def unary_stream(self, method: str, *_: Any, **__: Any) -> Callable[..., Any]:
        """A streamed lookup: the unary answer of the wrapped request, in one piece."""
        unary = self.unary_unary(method.replace("/Stream", "/"))

        def call(request: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            answer = unary(request.request).SerializeToString()
            return Pieces([pb.StreamLookupQueryResponse(chunk=answer, total_bytes=len(answer))])

        return call

    def stream_unary(self, method: str, *_: Any, **__: Any) -> Callable[..., Any]:
        """A streamed store: its pieces read, then the store's answer."""
        name = method.rsplit("/", 1)[1]

        def call(pieces: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            self.called.append(name)
            for _ in pieces:
                pass
            return getattr(pb, f"{name}Response")(stored=True)

        return call

    def close(self) -> None:
        pass


class Pieces:
    """A stream's pieces, which can be cancelled as a gRPC call can."""

    def __init__(self, pieces: list[Any]) -> None:
        self._pieces = iter(pieces)

    def __iter__(self) -> Pieces:
        return self

    def __next__(self) -> Any:
        return next(self._pieces)

    def cancel(self) -> bool:
        return False


class Archive(Searcher):
    """An upstream that always answers with one study, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.study = study_from_proto(make_study(9, 1, 1))

    def find_studies(self, query: Query) -> Sequence[Study]:
        self.calls += 1
        return [self.study]

    def find_study_by_id(
        self, study_uid: str, query_level: QueryLevels = QueryLevels.STUDY
    ) -> Study:
        self.calls += 1
        return self.study


class BrokenQuery(Query):
    """A query with a field the contract cannot carry."""

    retries: int = 0


def _searcher(channel: FakeChannel, **options: Any) -> CachedSearcher:
    return CachedSearcher(
        Archive(), client=CacheClient(channel=channel), namespace="pacs-a", **options
    )


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    entered: list[int] = []
    real = collector.paused

    @contextmanager
    def counted() -> Iterator[None]:
        with real():
            entered.append(1)
            yield

    monkeypatch.setattr(collector, "paused", counted)
    return entered


def test_a_query_the_contract_cannot_carry_goes_to_the_upstream_without_a_call() -> None:
    channel = FakeChannel(make_study(1, 1, 1))
    searcher = _searcher(channel)
    assert searcher.find_studies(BrokenQuery(retries=3)) == [searcher.upstream.study]
    assert searcher.upstream.calls == 1
    assert channel.called == []


class UnconvertibleHits(CacheClient):
    """A client whose hits cannot be turned into dicomtrolley objects."""

    def lookup_query_leased(self, *_: Any, **__: Any) -> tuple[list[Study] | None, int]:
        raise DicomJsonError("element 00100010: a person name must be an object")


def test_an_answer_that_cannot_be_converted_falls_back_to_the_upstream() -> None:
    client = UnconvertibleHits(channel=FakeChannel(make_study(1, 1, 1)))
    searcher = CachedSearcher(Archive(), client=client, namespace="pacs-a")
    assert searcher.find_studies(Query(PatientID="PAT1")) == [searcher.upstream.study]
    assert searcher.upstream.calls == 1


def test_pause_gc_is_off_by_default(pauses: list[int]) -> None:
    searcher = _searcher(FakeChannel(make_study(1, 2, 2)))
    assert searcher.pause_gc is False
    searcher.find_studies(Query(PatientID="PAT1"))
    searcher.find_study_by_id(make_study(1).uid, QueryLevels.INSTANCE)
    assert searcher.upstream.calls == 0
    assert pauses == []


def test_pause_gc_pauses_once_per_lookup(pauses: list[int]) -> None:
    channel = FakeChannel(make_study(1, 2, 2))
    searcher = _searcher(channel, pause_gc=True)
    (study,) = searcher.find_studies(Query(PatientID="PAT1"))
    assert study.uid == make_study(1).uid
    assert pauses == [1]
    assert searcher.find_study_by_id(study.uid, QueryLevels.INSTANCE).uid == study.uid
    assert pauses == [1, 1]
    assert searcher.upstream.calls == 0
    assert channel.called == ["LookupQuery", "LookupStudy"]


@pytest.mark.parametrize("ttl", [-1, 2**32, 1.5, 600.0, "600", True, None])
def test_a_ttl_the_wire_cannot_carry_is_refused_at_construction(ttl: Any) -> None:
    with pytest.raises(ValueError, match=r"ttl must be an integer from 0 to 4294967295 seconds"):
        _searcher(FakeChannel(make_study(1)), ttl=ttl)


@pytest.mark.parametrize("ttl", [0, 1, 2**32 - 1])
def test_a_ttl_within_the_rule_is_kept(ttl: int) -> None:
    assert _searcher(FakeChannel(make_study(1)), ttl=ttl).ttl == ttl
