"""A hit that grew past the largest message is refused before its bytes are built.

Shown by accounting: the encoder of hits is wrapped to count what it builds.
"""

from __future__ import annotations

from typing import Any

import pytest

from dicomcache.server.api import encode
from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.api.service import FRESH_FOR_BYTES, CacheService
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.errors import AnswerTooLarge
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2
from tests.support.messages import make_study


def _counted(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the hits built from now on; a hit refused unbuilt adds none."""
    built: list[int] = []
    real = encode.hit_within

    def build(*args: Any, **kwargs: Any) -> tuple[int, encode.Hit | None]:
        size, hit = real(*args, **kwargs)
        if hit is not None:
            built.append(size)
        return size, hit

    monkeypatch.setattr(encode, "hit_within", build)
    return built


def test_a_hit_past_its_bound_is_not_built(monkeypatch):
    """Refused from its size alone: neither its encoding nor its copy is made."""
    studies = [study_from_proto(make_study(n, 2, 20)) for n in (1, 2)]
    sizes = [encode.query_hit_size(studies), encode.study_hit_size(studies[0])]

    def never(*_: Any) -> Any:
        raise AssertionError("built")

    monkeypatch.setattr(encode, "_study_parts", never)
    monkeypatch.setattr(encode, "_joined", never)
    monkeypatch.setattr(encode._RECENT, "encoded", never)
    assert encode.hit_within(studies, sizes[0] - 1, b"tail") == (sizes[0], None)
    assert encode.hit_within(studies[:1], sizes[1] - 1, b"tail") == (sizes[1], None)


def test_a_grown_study_hit_is_refused_unbuilt(monkeypatch):
    study = make_study(1, 2, 20)
    size = encode.study_hit_size(study_from_proto(study))
    cache = CacheService(MemoryBackend(), max_ttl=600, max_message_bytes=size + FRESH_FOR_BYTES)
    assert cache.store_study(
        pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    ).stored
    built = _counted(monkeypatch)
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    assert pb.LookupStudyResponse.FromString(cache.lookup_study(lookup)).hit
    assert built == [size]
    cache.max_message_bytes = size - 1  # as if its objects had been written again, larger
    with pytest.raises(AnswerTooLarge, match="StreamLookupStudy"):
        cache.lookup_study(lookup)
    cache.max_answer_bytes = size - 1  # too large streamed as well
    with pytest.raises(AnswerTooLarge, match="largest answer"):
        cache.lookup_study(lookup, streamed=True)
    assert built == [size]


def test_a_grown_query_hit_is_refused_unbuilt(monkeypatch):
    study = make_study(1, 2, 20)
    size = encode.query_hit_size([study_from_proto(study)])
    cache = CacheService(MemoryBackend(), max_ttl=600, max_message_bytes=size + FRESH_FOR_BYTES)
    query = query_pb2.Query(patient_id="PAT1", query_level=3)
    store = pb.StoreQueryRequest(namespace="ns", query=query, studies=[study])
    assert cache.store_query(store).stored
    built = _counted(monkeypatch)
    cache.max_message_bytes = size - 1
    with pytest.raises(AnswerTooLarge, match="StreamLookupQuery"):
        cache.lookup_query(pb.LookupQueryRequest(namespace="ns", query=query))
    assert built == []
