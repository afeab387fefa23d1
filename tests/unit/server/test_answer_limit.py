"""An answer whose hit could not be sent is never stored, and a grown one is not sent."""

from __future__ import annotations

import pytest

from dicomcache.server.api import encode
from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.api.service import FRESH_FOR_BYTES, CacheService
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.errors import AnswerTooLarge
from dicomcache.v1 import cache_service_pb2 as pb
from dicomcache.v1 import query_pb2
from tests.support.messages import make_study


def service(limit: int) -> CacheService:
    """A service whose largest message and answer are both ``limit`` (the hit's size and
    its fresh_for_ms field)."""
    return CacheService(
        MemoryBackend(), max_ttl=600, max_message_bytes=limit, max_answer_bytes=limit
    )


def test_a_store_whose_hit_would_be_too_large_is_refused_and_stays_a_miss():
    study = make_study(1, 2, 20)
    hit_size = encode.study_hit_size(study_from_proto(study))
    cache = service(hit_size + FRESH_FOR_BYTES - 1)
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    assert not cache.store_study(
        pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    ).stored
    assert not pb.LookupStudyResponse.FromString(cache.lookup_study(lookup)).hit
    query = query_pb2.Query(study_instance_uid=study.uid, query_level=3)
    assert not cache.store_query(
        pb.StoreQueryRequest(namespace="ns", query=query, studies=[study])
    ).stored


def test_a_store_whose_hit_just_fits_is_kept():
    study = make_study(1, 2, 20)
    cache = service(encode.study_hit_size(study_from_proto(study)) + FRESH_FOR_BYTES)
    assert cache.store_study(
        pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    ).stored
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    assert pb.LookupStudyResponse.FromString(cache.lookup_study(lookup)).hit


def test_a_hit_that_grew_past_the_limit_is_not_sent():
    study = make_study(1, 2, 20)
    cache = service(encode.study_hit_size(study_from_proto(study)) + FRESH_FOR_BYTES)
    assert cache.store_study(
        pb.StoreStudyRequest(namespace="ns", study=study, query_level=3)
    ).stored
    cache.max_message_bytes -= 1  # as if its objects had been written again, larger
    lookup = pb.LookupStudyRequest(namespace="ns", study_uid=study.uid, query_level=3)
    with pytest.raises(AnswerTooLarge):
        cache.lookup_study(lookup)
