"""Contract for Search's answers: stored as ``server/search/answer`` builds them (grouped
trees and an order record), every backend gives back the archive's objects in its order."""

from __future__ import annotations

from typing import Any

from dicomcache.server.model import Level
from dicomcache.server.search import answer
from tests.contract.backends import CacheUnderTest


def series(study: str, uid: str) -> dict[str, Any]:
    return {
        "0020000D": {"vr": "UI", "Value": [study]},
        "0020000E": {"vr": "UI", "Value": [uid]},
        "0008103E": {"vr": "LO", "Value": [f"series {uid}"]},
    }


def test_interleaved_series_of_several_studies_come_back_in_order(cache: CacheUnderTest) -> None:
    objects = [
        series("1.1", "1.1.1"),
        series("1.2", "1.2.1"),
        series("1.1", "1.1.2"),
        series("1.2", "1.2.0"),
    ]
    tree = answer.to_tree(objects, Level.SERIES)
    assert tree is not None
    backend = cache.backend
    assert backend.add_objects("ns", [answer.record(b"key", tree.order)], None) == 1
    assert backend.store_query("ns", b"key", tree.studies, None, backend.lease("ns"))

    studies = backend.lookup_query("ns", b"key")
    assert studies == tree.studies  # grouped trees come back as stored
    order = answer.order_of(backend.get_object("ns", (answer.record_uid(b"key"),)))
    assert answer.dicom_json(studies, Level.SERIES, order) == objects


def test_invalidating_a_study_of_the_answer_makes_it_a_miss(cache: CacheUnderTest) -> None:
    objects = [series("1.1", "1.1.1"), series("1.2", "1.2.1")]
    tree = answer.to_tree(objects, Level.SERIES)
    assert tree is not None
    cache.backend.add_objects("ns", [answer.record(b"key", tree.order)], None)
    cache.backend.store_query("ns", b"key", tree.studies, None)
    cache.backend.invalidate("ns", ("1.2",))
    assert cache.backend.lookup_query("ns", b"key") is None
