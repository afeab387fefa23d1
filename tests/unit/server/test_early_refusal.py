"""A unary hit that cannot fit in a message is refused before the study is read (issue 11, S5).

The memory backend knows a lower bound of each study listing's bytes from its write
(``Answer.least_bytes``); under ``bound.study_bytes`` it refuses a larger study
before reading and unpacking it. Shown by counting: the backend's unpacking of a
read is wrapped to count the studies it unpacks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dicomcache.server.api import encode
from dicomcache.server.api.decode import study_from_proto
from dicomcache.server.api.service import FRESH_FOR_BYTES, CacheService
from dicomcache.server.backends import bound
from dicomcache.server.backends.memory import backend as memory
from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.backends.memory.packing import pack_study
from dicomcache.server.errors import AnswerTooLarge
from dicomcache.server.model import Level
from dicomcache.v1 import cache_service_pb2 as pb
from tests.support.messages import make_study, text_element

NS = "ns"


def _study(n_series: int, n_instances: int) -> Any:
    """A study whose instances carry a dozen attributes each (they pack small)."""
    study = make_study(1, n_series, n_instances)
    for series in study.series:
        for instance in series.instances:
            for k in range(12):
                instance.attributes.elements[0x00091000 + k].CopyFrom(
                    text_element("LO", f"value {k} of {instance.uid}")
                )
    return study


def _unpacked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the studies the memory backend unpacks after a read."""
    counted: list[int] = []
    real: Callable[..., Any] = memory.unpack_studies

    def unpack(studies: Any, dictionaries: Any) -> Any:
        counted.append(len(studies))
        return real(studies, dictionaries)

    monkeypatch.setattr(memory, "unpack_studies", unpack)
    return counted


UID = make_study(1, 1, 1).uid


def _lookup(level: int = 3) -> pb.LookupStudyRequest:
    return pb.LookupStudyRequest(namespace=NS, study_uid=UID, query_level=level)  # type: ignore[arg-type]  # the enum's int


def _stored(max_message_bytes: int) -> tuple[CacheService, int]:
    """A service holding the study at instance level; the study's hit size."""
    study = _study(2, 40)
    size = encode.study_hit_size(study_from_proto(study))
    cache = CacheService(
        MemoryBackend(),
        max_ttl=600,
        max_message_bytes=max_message_bytes,
        max_answer_bytes=4 * size,
    )
    request = pb.StoreStudyRequest(namespace=NS, study=study, query_level=3)
    assert cache.store_study(request).stored
    return cache, size


def test_a_unary_hit_too_large_for_a_message_is_refused_unread(monkeypatch):
    cache, size = _stored(max_message_bytes=1024)
    assert size > 4 * 1024  # far past the message, streamed it fits
    unpacked = _unpacked(monkeypatch)
    with pytest.raises(AnswerTooLarge, match="StreamLookupStudy"):
        cache.lookup_study(_lookup())
    assert unpacked == []  # before the bound: the whole study read and unpacked, then refused
    streamed = cache.lookup_study(_lookup(), streamed=True)  # the streamed lookup's bytes
    assert pb.LookupStudyResponse.FromString(streamed).hit
    assert unpacked == [1]


def test_a_shallower_hit_of_the_same_listing_is_not_refused_by_the_deeper_bound():
    cache, _ = _stored(max_message_bytes=1024)
    hit = pb.LookupStudyResponse.FromString(cache.lookup_study(_lookup(level=1)))
    assert hit.hit and not hit.study.series  # the study alone fits: served, trimmed


def test_a_hit_that_fits_is_served_as_before():
    cache, size = _stored(max_message_bytes=10**6)
    hit = pb.LookupStudyResponse.FromString(cache.lookup_study(_lookup()))
    assert hit.hit and len(hit.study.series) == 2 and hit.ByteSize() <= size + FRESH_FOR_BYTES


def test_a_listings_lower_bound_never_passes_what_a_read_of_it_gives():
    backend = MemoryBackend()
    study = study_from_proto(_study(3, 25))
    assert backend.store_study(NS, study, Level.INSTANCE, None)
    listing = backend._namespaces[NS].listings[study.uid][Level.INSTANCE]
    read = backend.lookup_study(NS, study.uid, Level.INSTANCE)
    assert read is not None
    exact = encode.study_size(read)
    # Within the encoding's own tags and lengths (a few bytes an object) of the exact size,
    # and far above what the instances take packed.
    assert exact - 8 * (1 + 3 + 3 * 25) <= listing.least_bytes <= exact
    packed = pack_study(study, backend._namespaces[NS].children[study.uid].dictionary)
    assert listing.least_bytes > encode.study_size(packed)


def test_without_a_bound_the_backend_reads_as_before(monkeypatch):
    cache, _ = _stored(max_message_bytes=1024)
    unpacked = _unpacked(monkeypatch)
    found = cache.backend.study_answer(NS, UID, Level.INSTANCE)
    assert found is not None and unpacked == [1]
    with bound.study_bytes(10), pytest.raises(AnswerTooLarge):
        cache.backend.study_answer(NS, UID, Level.INSTANCE)
    assert bound.STUDY_BYTES.get() is None  # the bound ends with its block
