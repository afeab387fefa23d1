"""A hit that grew past the largest message is refused before its bytes are built.

Shown by accounting: the encoder of hits is wrapped to count what it builds.
"""

from __future__ import annotations

from collections.abc import Callable
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


def _counted(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    built: list[int] = []
    real: Callable[..., bytes] = getattr(encode, name)

    def build(*args: Any) -> bytes:
        hit = real(*args)
        built.append(len(hit))
        return hit

    monkeypatch.setattr(encode, name, build)
    return built


def test_a_grown_study_hit_is_refused_unbuilt(monkeypatch):
    study = make_study(1, 2, 20)
    size = encode.study_hit_size(study_from_proto(study))
    cache = CacheService(MemoryBackend(), max_ttl=600, max_message_bytes=size + FRESH_FOR_BYTES)
    assert cache.store_study(
        pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    ).stored
    built = _counted(monkeypatch, "study_hit")
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
    built = _counted(monkeypatch, "query_hit")
    cache.max_message_bytes = size - 1
    with pytest.raises(AnswerTooLarge, match="StreamLookupQuery"):
        cache.lookup_query(pb.LookupQueryRequest(namespace="ns", query=query))
    assert built == []
