"""A large streamed hit is built in an anonymous mapping, unmapped once it is sent.

A 300,000-instance streamed hit was one 250 MB bytes object, and freeing it held
the interpreter lock while the kernel unmapped it: 23-29 ms here in which no other
call of the process ran (issue 11, stall row S2). ``mmap.close`` lets go of the
lock while it unmaps. So a streamed hit of at least ``encode.MAPPED_BYTES`` is
written into a mapping, and the handler closes it when the stream ends, sent or
cancelled. The threshold is lowered here so that small studies take that path.
"""

from __future__ import annotations

import mmap
import time
from collections.abc import Iterator

import pytest

from dicomcache.server.api import encode
from dicomcache.v1 import cache_service_pb2 as pb
from tests.grpc.test_large_answers import big_study, model_of
from tests.support.messages import make_study


@pytest.fixture
def closed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[type, bool]]]:
    """Each hit the handler let go of: its type, and whether it was closed after."""
    seen: list[tuple[type, bool]] = []
    close = encode.close

    def recording(hit: encode.Hit) -> None:
        close(hit)
        seen.append((type(hit), bool(getattr(hit, "closed", True))))

    monkeypatch.setattr(encode, "MAPPED_BYTES", 64 * 1024)
    monkeypatch.setattr(encode, "close", recording)
    yield seen


@pytest.mark.parametrize("count", [1, 3])  # one study (its kept encoding) or an answer
def test_a_large_hit_in_a_mapping_is_the_same_bytes(monkeypatch, count):
    studies = [model_of(big_study(n, 2, 100)) for n in range(1, count + 1)]
    size, plain = encode.hit_within(studies, 1 << 30, b"tail")
    assert isinstance(plain, bytes) and size < encode.MAPPED_BYTES
    assert encode.hit_within(studies, 1 << 30, b"tail", mapped=True) == (size, plain)
    monkeypatch.setattr(encode, "MAPPED_BYTES", size)
    mapped_size, mapped = encode.hit_within(studies, 1 << 30, b"tail", mapped=True)
    assert isinstance(mapped, mmap.mmap)
    assert (mapped_size, mapped[:]) == (size, plain)
    assert encode.hit_within(studies, size - 1, b"tail", mapped=True) == (size, None)
    encode.close(mapped)
    assert mapped.closed


def test_a_streamed_study_hit_comes_from_a_mapping_closed_once_sent(running, closed):
    study = big_study(1, 2, 200)
    assert running.stub.StoreStudy(
        pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    ).stored
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    pieces = running.stub.StreamLookupStudy(pb.StreamLookupStudyRequest(request=lookup))
    whole = b"".join(p.chunk for p in pieces)
    assert pb.LookupStudyResponse.FromString(whole) == running.stub.LookupStudy(lookup)
    assert closed == [(mmap.mmap, True)]


def test_a_streamed_query_hit_comes_from_a_mapping_closed_once_sent(running, closed):
    studies = [big_study(n, 1, 100) for n in (1, 2)]
    query = pb.LookupQueryRequest(namespace="ns")
    query.query.patient_id = "PAT1"
    query.query.query_level = 3
    store = pb.StoreQueryRequest(namespace="ns", query=query.query, studies=studies)
    assert running.stub.StoreQuery(store).stored
    pieces = running.stub.StreamLookupQuery(pb.StreamLookupQueryRequest(request=query))
    whole = b"".join(p.chunk for p in pieces)
    assert pb.LookupQueryResponse.FromString(whole) == running.stub.LookupQuery(query)
    assert closed == [(mmap.mmap, True)]


def test_a_small_streamed_hit_stays_bytes(running, closed):
    study = make_study(1, 1, 2)
    running.stub.StoreStudy(pb.StoreStudyRequest(namespace="ns", study=study, query_level=3))
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    assert list(running.stub.StreamLookupStudy(pb.StreamLookupStudyRequest(request=lookup)))
    assert closed == [(bytes, True)]


def test_a_cancelled_stream_closes_its_mapping(running, closed, monkeypatch):
    monkeypatch.setattr("dicomcache.server.api.handler.STREAM_CHUNK_BYTES", 16 * 1024)
    study = big_study(1, 2, 200)
    running.stub.StoreStudy(pb.StoreStudyRequest(namespace="ns", study=study, query_level=3))
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    pieces = running.stub.StreamLookupStudy(pb.StreamLookupStudyRequest(request=lookup))
    next(pieces)
    pieces.cancel()
    deadline = time.monotonic() + 10
    while not closed:  # the handler sees the cancellation at its next piece
        assert time.monotonic() < deadline, "the stream's mapping was never let go of"
        time.sleep(0.01)
    assert closed == [(mmap.mmap, True)]


def test_a_mappings_pages_are_given_back_as_the_stream_is_cut(monkeypatch):
    """Unmapping 250 MB at once locked the process's memory map about 70 ms: the
    pieces' pages go back to the kernel as they are cut, so little is left to unmap."""
    studies = [model_of(big_study(1, 2, 100))]
    size, plain = encode.hit_within(studies, 1 << 30)
    monkeypatch.setattr(encode, "MAPPED_BYTES", size)
    _, mapped = encode.hit_within(studies, 1 << 30, mapped=True)
    assert isinstance(mapped, mmap.mmap)
    chunk = 2 * mmap.PAGESIZE + 100  # pieces that end inside pages
    pieces = encode.stream(mapped, chunk, 1 << 20)
    first = pb.StreamLookupStudyResponse.FromString(next(pieces))
    kept = first.chunk
    assert mapped[: 2 * mmap.PAGESIZE] == bytes(2 * mmap.PAGESIZE)  # given back: zeros now
    assert mapped[2 * mmap.PAGESIZE : chunk] == plain[2 * mmap.PAGESIZE : chunk]  # not yet
    kept += b"".join(pb.StreamLookupStudyResponse.FromString(p).chunk for p in pieces)
    assert kept == plain
    whole_pages = size // mmap.PAGESIZE * mmap.PAGESIZE
    assert mapped[:whole_pages] == bytes(whole_pages)
    encode.close(mapped)


def test_the_parts_of_a_mapped_hit_are_let_go_of_as_they_are_copied():
    """A 250 MB hit's list of series freed them all in one deallocation (about 100
    unmappings of 2.5 MB holding the interpreter lock): the list is emptied as it goes."""
    parts = [b"a" * (3 * 256 * 1024 + 5), b"b" * 10, b"c" * 300_000]
    whole = b"".join(parts)
    mapped = encode._mapped(parts, len(whole))
    assert parts == []
    assert mapped[:] == whole
    encode.close(mapped)
