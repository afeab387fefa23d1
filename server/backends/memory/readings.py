"""Readings: the last read of a study's listing, unpacked, kept for the hits that follow.

A hit of a study by id walks every object of its listing (each must be alive),
then unpacks every instance outside the lock (``packing``): about 0.2 ms of an
80-instance hit, the same work again for every hit of an unchanged study. So the
backend keeps what the read gave, unpacked, with what it depended on, and serves a
later hit from it when none of that moved:

* the namespace is the same object (not dropped), and the study node is the same
  node with the same ``changed`` stamp: every change to the tree below a study
  that a read could see (an object created, given other data, renewed, dropped,
  expired by the reaper) sets that stamp (``Namespace._changed``);
* the study's listings are the same objects, set in the same order (a new
  listing may answer instead, an old one may be gone). All of them, not only
  those a read tries: a hit compares one tuple made in C, where picking the deep
  ones out sorted took a few Python calls, each a cache miss on a busy host (row
  17c); a change to a shallower listing only ends the reading early;
* the listing read has not expired, and no node the read used has passed its
  expiry. A rewrite of the same attributes moves a node's expiry without a stamp
  when it moves it later, and sets the stamp when it brings it nearer; so the
  earliest expiry of the read's nodes is taken once, when the reading is kept, and
  a hit looks at none of them (each was a cache miss on a busy host: about 45 us
  of an 80-instance hit, row 17c). A later expiry only ends the reading early.

Anything else means the reading is dropped and the study read again. A reading
is an answer exactly as the read would give it then, never an approximation: it
holds the very bytes the nodes hold, unpacked.

Bounded: readings are kept least recently used first out, within ``max_bytes``;
a study larger than a quarter of that is not kept. A reading is charged for its
unpacked attributes plus ``OVERHEAD`` per object, and for the encoded copy of its
study that the service keeps (``api.encode._Recent`` holds the study weakly, so
its encoding lives exactly as long as the reading does): its uids, attributes
and ``ENCODED_OVERHEAD`` per object. The backend counts the readings' bytes in
its own bound (by default they may take a thirty-second of it), so that what a
hit keeps stays within ``--max-memory`` (issue 11: outside it, readings and
encodings took about 4 MiB over a 64 MiB limit, in the soak's first two minutes).

Not thread-safe: the backend's lock guards it. Reads no clock: ``now`` is passed in.
"""

from __future__ import annotations

from collections import OrderedDict

from dicomcache.server.backends.memory.answer import Answer
from dicomcache.server.backends.memory.namespace import Namespace
from dicomcache.server.backends.memory.tree import Branch, Node
from dicomcache.server.model import Level, StudyData

# Bytes charged per object of a reading besides its attributes (its InstanceData,
# its uid's share, the node reference); and per reading.
OVERHEAD = 120
READING_OVERHEAD = 400
# Bytes of the kept encoding per object besides its uid and attributes (tags and
# lengths), and per reading (the bytes object, its weak reference and callback,
# its entry in the least recently used order).
ENCODED_OVERHEAD = 8
ENCODED_READING_OVERHEAD = 400

Key = tuple[str, str, Level]  # namespace, study uid, level


class Reading:
    """One read of a study's listing at a level, and what it depended on. Immutable."""

    __slots__ = (
        "changed",
        "fresh_until",
        "listed_until",
        "listings",
        "namespace",
        "read",
        "size",
        "study",
        "study_node",
    )

    def __init__(
        self,
        namespace: Namespace,
        study_node: Branch,
        level: Level,
        read: Answer,
        depended: Depended,
        study: StudyData,
    ) -> None:
        """``depended``: what ``depended`` gave, under the backend's lock with the
        read itself (a change after it must void the reading, not be taken into it)."""
        self.namespace = namespace
        self.study_node = study_node
        self.changed, self.fresh_until, self.listings = depended
        # The earliest expiry of the listings a read tries: a listing's never moves
        # (a rewrite makes a new one), so a hit's seconds left need not look at them.
        self.listed_until = min(
            (listing.expires_at for depth, listing in self.listings if depth >= level),
            default=0.0,
        )
        self.read = read
        self.study = study
        self.size = charge(study)

    def holds(self, namespace: Namespace | None, study_uid: str, level: Level, now: float) -> bool:
        """Whether a read now would give exactly this reading's study (see the module)."""
        if namespace is not self.namespace:
            return False
        node = namespace.children.get(study_uid)
        if node is not self.study_node or node.changed != self.changed:
            return False
        if now >= self.fresh_until:
            return False
        # A node loses its data only with a stamp (dropped, reaped, renewed).
        return tuple((namespace.listings.get(study_uid) or _NONE).items()) == self.listings


def charge(study: StudyData) -> int:
    """The bytes a reading of ``study`` is charged: itself and its kept encoding."""
    objects = 1 + sum(1 + len(s.instances) for s in study.series)
    data = len(study.attributes or b"") + sum(
        len(s.attributes or b"") + sum(len(i.attributes or b"") for i in s.instances)
        for s in study.series
    )
    uids = len(study.uid) + sum(
        len(s.uid) + sum(len(i.uid) for i in s.instances) for s in study.series
    )
    reading = READING_OVERHEAD + OVERHEAD * objects + data
    encoded = ENCODED_READING_OVERHEAD + ENCODED_OVERHEAD * objects + uids + data
    return reading + encoded


# What a reading depends on: its study node's stamp, when the first node it read
# expires, and every listing of the study with its depth, in the order they were set.
Depended = tuple[int, float, tuple[tuple[Level, Answer], ...]]
_NONE: dict[Level, Answer] = {}


def depended(namespace: Namespace, study: Branch, read: Answer) -> Depended:
    """What a reading of ``study`` from ``read`` depends on, taken with the read."""
    listings = tuple((namespace.listings.get(study.uid) or _NONE).items())
    return study.changed, fresh_until(read, namespace), listings


def fresh_until(answer: Answer, root: Node) -> float:
    """When the first of ``answer`` and the nodes a read of it resolves expires."""
    return min((answer.expires_at, *(node.expires_at for node in nodes_read(answer, root))))


def nodes_read(answer: Answer, root: Node) -> tuple[Node, ...]:
    """Every node with data that a read of ``answer`` resolves.

    The answer's objects by identity, and what its paths lead to now; a read also
    needs the structure to stay as it is, which the study's stamp covers.
    """
    nodes: list[Node] = []
    for study_item, series_shapes in answer.shape:
        study = _resolved(study_item, root, nodes)
        for series_item, instance_items in series_shapes:
            series = _resolved(series_item, study, nodes)
            for instance_item in instance_items:
                _resolved(instance_item, series, nodes)
    return tuple(nodes)


def _resolved(item: Node | str, parent: Node | None, nodes: list[Node]) -> Node | None:
    node = item if isinstance(item, Node) else (parent.child(item) if parent else None)
    if node is not None and node.data is not None:
        nodes.append(node)
    return node


class Readings:
    """The readings kept, least recently used first out, within ``max_bytes``.

    Not thread-safe: the backend's lock guards it. No clock.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._kept: OrderedDict[Key, Reading] = OrderedDict()

    def get(
        self, namespace: Namespace | None, study_uid: str, level: Level, now: float, name: str
    ) -> Reading | None:
        """The reading of the study, if it still holds (its study is what a read now
        would give); else None."""
        key = (name, study_uid, level)
        reading = self._kept.get(key)
        if reading is None:
            return None
        if not reading.holds(namespace, study_uid, level, now):
            self._drop(key)
            return None
        self._kept.move_to_end(key)
        return reading

    def worth(self, listing: Answer) -> bool:
        """Whether a read of ``listing`` should be kept (asked before anything is taken).

        Not when the listing at its own level is larger than a reading may be: what a
        reading depends on is taken under the backend's lock in one go, a walk over
        every object of the listing at any level (the read itself walks them in
        chunks), and for a 300,000-instance study that held the lock 100 ms (issue 11,
        stall row S2). Such a study's shallower hits are read each time, as they were
        before readings.
        """
        return self.max_bytes > 0 and self._fits(listing.least_bytes)

    def _fits(self, size: int) -> bool:
        """Whether a reading of ``size`` bytes may be kept: a quarter of the bound at most."""
        return size * 4 <= self.max_bytes

    def keep(self, name: str, level: Level, reading: Reading) -> None:
        """Keep a reading of ``name``'s study at ``level``, in place of any other of it."""
        if not self._fits(reading.size):
            return
        key = (name, reading.study.uid, level)
        self._drop(key)
        self._kept[key] = reading
        self.bytes += reading.size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._kept)))

    def forget(self, name: str, study_uid: str | None = None) -> None:
        """Drop the readings of a study of namespace ``name``, or of the whole namespace.

        Called when the backend lets go of them (a namespace dropped or emptied, a
        study evicted): a reading holds the nodes it read, so it would keep them alive,
        outside the backend's bound, until it is looked up or pushed out.
        """
        if study_uid is not None:
            for level in Level:
                self._drop((name, study_uid, level))
            return
        for key in [key for key in self._kept if key[0] == name]:
            self._drop(key)

    def __len__(self) -> int:
        return len(self._kept)

    def _drop(self, key: Key) -> None:
        reading = self._kept.pop(key, None)
        if reading is not None:
            self.bytes -= reading.size
