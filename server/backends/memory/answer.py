"""A recorded answer: which objects a query or a study-by-id lookup returned.

An answer keeps the objects' nodes by identity, not their data, so a hit serves
each object's current data, and an answer whose object was dropped (expired,
evicted, invalidated) stays dead even after the same address is written again: the
new node is another node. Levels that came only as a path (attributes None) are
kept as their uid and served as paths. Instances' data comes out as the tree keeps
it, packed: the backend unpacks it after its lock (``packing``).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeAlias

from dicomcache.server.backends.memory.chunks import Budget, Steps, run
from dicomcache.server.backends.memory.compression import unpacked_length
from dicomcache.server.backends.memory.expiry import Bucket
from dicomcache.server.backends.memory.tree import Node
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData
from dicomcache.server.pacing import step

# An object the answer returned (its node), or the uid of a level that was only a path.
Item: TypeAlias = Node | str
SeriesShape: TypeAlias = tuple[Item, tuple[Item, ...]]
StudyShape: TypeAlias = tuple[Item, tuple[SeriesShape, ...]]
Shape: TypeAlias = tuple[StudyShape, ...]
# The uids of an answer's objects, for comparing two listings of one study.
Uids: TypeAlias = dict[str, dict[str, frozenset[str]]]

# What a read of an answer gives: each study with its dictionary, or why not.
Studies: TypeAlias = list[tuple[StudyData, bytes | None]]


class Failure(Enum):
    """Why a read of an answer gave nothing."""

    DEAD = "an object of the answer is gone, or the answer expired: it is dead at any level"
    LACKING = "an object at the level asked for has no live data of its own"
    CHANGED = "a study of the answer changed while it was read in chunks: read it again"


_NEVER_CHANGED = float("inf")  # ``begin`` of a read in one go: no study can change during it

# Bytes charged per answer on top of its key, and per object it holds, what the
# process spends on it (64-bit, 3.11): the Answer, the tuples of its shape, its
# least_bytes, its study's dict of listings or its slot in the queries, its entry
# in the expiry queue and, for a query, in the LRU, and what the allocator loses
# around them. Measured as RSS growth over 9000 listings of 12 objects (859 B
# each) and 3000 query answers of 36 (1590 B), of objects already cached, with
# the soak's studies (issue 11): at 200 and 16 they cost 2.0x their charge while
# the objects cost 0.96x theirs, so a cache whose share of answers grew, at a flat
# total, grew in RSS (the soak's last half).
ANSWER_OVERHEAD = 460
ITEM_OVERHEAD = 30


class Answer:
    """The objects an answer returned, down to its level, and when it expires.

    ``key`` is the query key (bytes) for a query answer, the study uid (str) for a
    study's listing. Not thread-safe: the backend's lock guards it. Stores times,
    reads no clock.
    """

    __slots__ = ("expires_at", "key", "least_bytes", "level", "queued", "root", "shape", "size")

    def __init__(
        self,
        root: Node,
        key: bytes | str,
        level: Level,
        shape: Shape,
        expires_at: float,
        least_bytes: int = 0,
    ) -> None:
        self.root = root
        self.key = key
        self.level = level
        self.shape = shape
        self.expires_at = expires_at
        # At most what any read of it at ``level`` gives: its uids and, unpacked, the
        # data of its objects (``least_bytes``); 0 when not worked out.
        self.least_bytes = least_bytes
        self.queued: Bucket | None = None  # the expiry queue's bucket holding it
        items = 0
        for _, series_shapes in shape:
            step()  # a study's count is a step of the call's work (``server.pacing``)
            items += 1 + len(series_shapes) + sum(len(i) for _, i in series_shapes)
        self.size = ANSWER_OVERHEAD + len(key) + ITEM_OVERHEAD * items

    def resolve(self, now: float, level: Level) -> list[StudyData] | None:
        """The answer with current data, trimmed to ``level``; None if it fails (``read``)."""
        studies = run(self.read(now, level, Budget(0), _NEVER_CHANGED))
        return None if isinstance(studies, Failure) else [study for study, _ in studies]

    def read(
        self, now: float, level: Level, budget: Budget, begin: float
    ) -> Steps[Studies | Failure]:
        """The answer with current data, trimmed to ``level``, yielding between chunks.

        Every object of the answer must be alive, trimmed away or not: the answer
        stands or falls as a whole. The objects at ``level`` itself must hold live
        data even where the answer recorded only a path: dicomtrolley answers carry
        data at their deepest level only, so a listing of instances has its series as
        paths, and serving it at series level would hand out series without their
        attributes, a partial answer. Such an answer serves the series only when they
        are cached with data (from any write).

        A read in chunks equals a read in one go at its start: ``begin`` is the
        namespace's ``version`` then, and each study must not have changed since
        (``Branch.changed``) whenever the read looks at it, after every yield too.
        An object's data never changes in place (new data renews the node), so a
        study that did not change still holds what it held at ``begin``. Returns
        each study with its compression dictionary.
        """
        if now >= self.expires_at:
            return Failure.DEAD
        root = self.root
        studies: Studies = []
        for study_item, series_shapes in self.shape:
            if budget.spend():
                yield
            study = _pick(study_item, root, now, level == Level.STUDY)
            if study is None:
                return _failure(study_item)
            node = study[0]
            if node is not None and node.changed > begin:
                return Failure.CHANGED
            series: list[SeriesData] = []
            for series_item, instance_items in series_shapes:
                picked = _pick(series_item, node, now, level == Level.SERIES)
                if picked is None:
                    return _failure(series_item)
                instances: list[InstanceData] = []
                for instance_item in instance_items:
                    if budget.spend():
                        yield
                        if root.child(_uid(study_item)) is not node or (
                            node is not None and node.changed > begin
                        ):
                            return Failure.CHANGED
                    instance = _pick(instance_item, picked[0], now, level == Level.INSTANCE)
                    if instance is None:
                        return _failure(instance_item)
                    instances.append(InstanceData(_uid(instance_item), instance[1]))
                series.append(SeriesData(_uid(series_item), picked[1], tuple(instances)))
            dictionary = node.dictionary if node is not None else None
            one = StudyData(_uid(study_item), study[1], _trim(series, level))
            studies.append((one, dictionary))
        return studies

    def uids(self, level: Level) -> Uids:
        """The uids of the answer's objects down to ``level``."""
        return {
            _uid(study): {
                _uid(series): frozenset(_uid(i) for i in instances)
                if level >= Level.INSTANCE
                else frozenset()
                for series, instances in series_shapes
            }
            if level >= Level.SERIES
            else {}
            for study, series_shapes in self.shape
        }


def least_bytes(shape: Shape) -> int:
    """A lower bound of the bytes any successful read of an answer of ``shape`` holds.

    The uids and, unpacked, the data of its objects as written: a node's data never
    changes while an answer can read it (new data renews the node, which kills the
    answer), and a path's uid is all a path surely gives. O(objects), no lock needed
    when the nodes' data is not being dropped meanwhile (a dropped node makes the
    answer dead, so an overestimate of it is never read).
    """
    size = 0
    for study_item, series_shapes in shape:
        size += _item_bytes(study_item)
        for series_item, instance_items in series_shapes:
            step()  # a series is a step of the call's work (``server.pacing``)
            size += _item_bytes(series_item)
            for item in instance_items:
                if isinstance(item, str):
                    size += len(item)
                else:
                    data = item.data
                    size += len(item.uid) + (unpacked_length(data) if data is not None else 0)
    return size


def _item_bytes(item: Item) -> int:
    if isinstance(item, str):
        return len(item)
    return len(item.uid) + (len(item.data) if item.data is not None else 0)


def trim(shape: Shape, level: Level) -> Shape:
    """The shape without the levels below ``level``."""
    if level >= Level.INSTANCE:
        return shape
    if level == Level.SERIES:
        return tuple((study, tuple((s, ()) for s, _ in series)) for study, series in shape)
    return tuple((study, ()) for study, _ in shape)


def _trim(series: list[SeriesData], level: Level) -> tuple[SeriesData, ...]:
    if level >= Level.INSTANCE:
        return tuple(series)
    if level == Level.SERIES:
        return tuple(SeriesData(s.uid, s.attributes) for s in series)
    return ()


def _pick(
    item: Item, parent: Node | None, now: float, leaf: bool
) -> tuple[Node | None, bytes | None] | None:
    """The item's current node and data; None if it was an object that is gone.

    A path item resolves to whatever node is at its address now (perhaps none),
    served as a path; at the answer's leaf level it must be a live node, served with
    its data.
    """
    if isinstance(item, str):
        node = parent.child(item) if parent is not None else None
        if leaf:
            return (node, node.data) if node is not None and node.alive(now) else None
        return node, None
    if parent is None or item.parent is not parent or not item.alive(now):
        return None
    return item, item.data


def _failure(item: Item) -> Failure:
    """Why ``item`` failed: an object that is gone, or a path without data at the level."""
    return Failure.LACKING if isinstance(item, str) else Failure.DEAD


def _uid(item: Item) -> str:
    return item if isinstance(item, str) else item.uid
