"""A write's announcement takes no step whose work grows with the write, as one C call.

NotifyingBackend announces each study a write wrote, once. It used to sort their
uids first: for a 100,000-study StoreQuery that was one call to ``sorted`` holding
the interpreter lock 75-200 ms, and every other call of the server waited (issue
11, stall row S3). No timing is asserted: the uids are of a str type that counts
its comparisons, and an announcement may compare none.
"""

from __future__ import annotations

from dicomcache.server.backends.memory.backend import MemoryBackend
from dicomcache.server.feed.hub import Feed
from dicomcache.server.feed.notifying import NotifyingBackend
from dicomcache.server.model import StudyData

STUDIES = 200
NAMESPACE = "feed"


class _Uid(str):
    """A uid that counts how often it was ordered against another."""

    compared = 0

    def __lt__(self, other: object) -> bool:
        _Uid.compared += 1
        return str.__lt__(self, other)  # type: ignore[operator]  # str's own

    __hash__ = str.__hash__


def _studies(uids: list[str]) -> list[StudyData]:
    return [StudyData(_Uid(uid), b"\x0a\x00", ()) for uid in uids]


def _announced(uids: list[str]) -> list[str]:
    feed = Feed()
    watcher = feed.watch(NAMESPACE)
    backend = NotifyingBackend(MemoryBackend(), feed)
    backend.add_objects(NAMESPACE, _studies(uids), None)
    return [change.study_uid for change in watcher.take(timeout=0)]


def test_a_write_of_many_studies_is_announced_without_ordering_them():
    uids = [f"1.2.3.{n}" for n in range(STUDIES, 0, -1)]  # written in no sorted order
    _Uid.compared = 0
    announced = _announced(uids)
    assert _Uid.compared == 0  # sorting 200 took about 1,300 comparisons
    assert set(announced) == set(uids) and len(announced) == STUDIES


def test_each_study_is_announced_once_in_the_order_first_written():
    uids = ["1.2.3.9", "1.2.3.1", "1.2.3.9", "1.2.3.5", "1.2.3.1"]
    assert _announced(uids) == ["1.2.3.9", "1.2.3.1", "1.2.3.5"]
