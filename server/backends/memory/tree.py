"""The tree of cached objects: studies, series and instances under a namespace root.

A node is one object with its own data and its own expiry, so refreshing a study
leaves its series alone, and a study whose data expired can still lead to its live
series (it stays as a data-less path). A cache holds hundreds of thousands of
nodes, so a node is a ``__slots__`` object that shares its uid string with its
parent's dict and its expiry float with the rest of its write batch.

An instance's data is kept packed (``compression``) against its study's
dictionary, and leaves the tree packed: the backend unpacks what it serves after
it lets go of its lock (``packing``). A study node takes its dictionary once, from
the first instance written under it with data, and keeps it unchanged for as long
as the node lives, so every blob packed against it stays readable.
"""

from __future__ import annotations

from collections.abc import Iterator

from dicomcache.server.backends.memory.expiry import Bucket
from dicomcache.server.model import Address, CachedObject, InstanceData, SeriesData, StudyData

# Bytes charged per node on top of its uid and data, what CPython spends on it
# (64-bit, 3.11): the node (80), its slot in the parent's dict (~50), the uid's str
# header (~56), the data's bytes header and allocator rounding (~48), its place in
# the expiry queue (a set entry, ~40), and what the allocator loses around them
# under churn. Measured by benchmarks/memory_backend_rss.py, 10 instances a series:
# real growth 547 B per instance against 467 B accounted at 240 with 120-byte
# blobs, 926 against 889 with 650-byte ones (issue 11); at 300 the small blobs are
# counted as they cost, the large ones a little over.
NODE_OVERHEAD = 300
DICTIONARY_OVERHEAD = 48

_NEVER = 0.0


class Node:
    """One object of the tree, or a data-less path to cached descendants.

    ``parent`` is None once the node is no longer in the tree (or for a namespace
    root): recorded answers hold nodes by identity and use it to tell a node still
    cached from one that was dropped, even if the same address was written again.
    A plain Node is a leaf (an instance); studies and series are Branches, so the
    most numerous nodes do without a ``children`` slot.
    Not thread-safe: the backend's lock guards every node. Stores times, reads no clock.
    """

    __slots__ = ("data", "expires_at", "parent", "queued", "uid")

    children: dict[str, Node] | None = None  # a leaf's, for code that walks any node
    dictionary: bytes | None = None  # a leaf's, for code that reads any node
    changed = 0  # a leaf's, for code that reads any node

    def __init__(self, uid: str, parent: Branch | None) -> None:
        self.uid = uid
        self.parent = parent
        self.data: bytes | None = None
        self.expires_at = _NEVER
        self.queued: Bucket | None = None  # the expiry queue's bucket holding it

    def alive(self, now: float) -> bool:
        """Whether the node holds data that has not expired at ``now``."""
        return self.data is not None and now < self.expires_at

    def child(self, uid: str) -> Node | None:
        """The child with this uid, if any."""
        children = self.children
        return children.get(uid) if children else None

    def size(self) -> int:
        """The bytes charged for this node (see NODE_OVERHEAD)."""
        return NODE_OVERHEAD + len(self.uid) + (len(self.data) if self.data is not None else 0)


class Branch(Node):
    """A node that can have children (a study, a series, a namespace root).

    ``dictionary`` is a study's compression dictionary (see the module docstring):
    None until an instance gives it one, then fixed for the node's life; always
    None for series and roots. ``changed`` is, for a study, its namespace's
    ``version`` at the last change below it that an answer's read could see (see
    ``Namespace.version``); 0 for series. Not thread-safe: the backend's lock
    guards every node. Reads no clock.
    """

    __slots__ = ("changed", "children", "dictionary")

    def __init__(self, uid: str, parent: Branch | None) -> None:
        super().__init__(uid, parent)
        self.children: dict[str, Node] | None = None
        self.dictionary: bytes | None = None
        self.changed = 0

    def size(self) -> int:
        """The bytes charged for this node, its dictionary included."""
        own = super().size()
        return own if self.dictionary is None else own + DICTIONARY_OVERHEAD + len(self.dictionary)


def find(root: Node, address: Address) -> Node | None:
    """The node at ``address`` under ``root``, or None."""
    node: Node | None = root
    for uid in address:
        if node is None:
            return None
        node = node.child(uid)
    return node


def lineage(node: Node) -> list[Node]:
    """The node and its ancestors up to (without) the root: [node, ..., study]."""
    chain = [node]
    while (parent := chain[-1].parent) is not None and parent.parent is not None:
        chain.append(parent)
    return chain


def subtree(node: Node) -> Iterator[tuple[Node, int]]:
    """Every node of the subtree with its depth below ``node`` (0 for ``node``)."""
    stack = [(node, 0)]
    while stack:
        current, depth = stack.pop()
        if current.children:  # before the yield: the caller may cut the node loose
            stack.extend((c, depth + 1) for c in current.children.values())
        yield current, depth


def snapshot(node: Node, level: int, now: float) -> CachedObject | None:
    """The object at ``node`` (at tree depth ``level``) with its live descendants.

    A descendant whose own data is gone but that leads to live objects comes as a
    path (attributes None). None when nothing under ``node`` is alive. Instances'
    data comes as kept: packed.
    """
    if level == 1:
        return _study(node, now)
    if level == 2:
        return _series(node, now)
    return InstanceData(node.uid, node.data) if node.alive(now) else None


def _study(node: Node, now: float) -> StudyData | None:
    series = tuple(s for c in (node.children or {}).values() if (s := _series(c, now)))
    data = node.data if node.alive(now) else None
    return StudyData(node.uid, data, series) if data is not None or series else None


def _series(node: Node, now: float) -> SeriesData | None:
    instances = tuple(
        InstanceData(c.uid, c.data) for c in (node.children or {}).values() if c.alive(now)
    )
    data = node.data if node.alive(now) else None
    return SeriesData(node.uid, data, instances) if data is not None or instances else None
