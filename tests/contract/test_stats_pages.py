"""Contract: stats of all namespaces a page at a time, groups (NAME@PROTOCOL) whole (issue 11)."""

from __future__ import annotations

from dicomcache.server.backends import group
from tests.contract.backends import CacheUnderTest
from tests.support.builders import make_study

NAMES = ["b", "a", "a@qido", "a.x", "c@mint", "a@dicomqr", "a.x@qido", "b0"]


def _fill(cache: CacheUnderTest) -> None:
    for n, name in enumerate(NAMES):
        cache.backend.add_objects(name, [make_study(f"1.{n}", 1, 1)], None)


def test_pages_follow_group_order_and_keep_groups_whole(cache: CacheUnderTest) -> None:
    _fill(cache)
    seen: list[list[str]] = []
    after = None
    while True:
        page = [s.namespace for s in cache.backend.stats(None, after, 2).namespaces]
        if not page:
            break
        seen.append(page)
        after = group(page[-1])
    assert seen == [
        ["a", "a@dicomqr", "a@qido", "a.x", "a.x@qido"],
        ["b", "b0"],
        ["c@mint"],
    ]


def test_totals_are_the_whole_cache_on_every_page(cache: CacheUnderTest) -> None:
    _fill(cache)
    everything = cache.backend.stats(None)
    assert [s.namespace for s in everything.namespaces] == [
        "a", "a@dicomqr", "a@qido", "a.x", "a.x@qido", "b", "b0", "c@mint"
    ]  # fmt: skip
    page = cache.backend.stats(None, "a.x", 1)
    assert [s.namespace for s in page.namespaces] == ["b"]
    assert page.total_bytes == everything.total_bytes > 0


def test_a_page_after_the_last_group_is_empty(cache: CacheUnderTest) -> None:
    _fill(cache)
    assert cache.backend.stats(None, "c", 10).namespaces == []
