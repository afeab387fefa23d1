"""One upstream archive's part of the cache: its tree, its recorded answers, its counters.

Namespaces never share a node or an answer, so a namespace can neither see nor
drop another's entries. The namespace keeps its own byte count; the backend adds
the namespaces up to enforce its bound. Instances come to it packed (see
``packing``), and it keeps them that way.
"""

from __future__ import annotations

from dicomcache.server.backends.memory import compression
from dicomcache.server.backends.memory.answer import Answer, Item, SeriesShape, StudyShape
from dicomcache.server.backends.memory.chunks import Budget, Steps, run
from dicomcache.server.backends.memory.expiry import unqueue
from dicomcache.server.backends.memory.tree import Branch, Node, lineage, subtree
from dicomcache.server.model import Level, NamespaceStats, StudyData

# Bytes charged for a namespace itself on top of its name, an estimate of what
# CPython spends on it (64-bit, 3.11): the object (~190), its three empty dicts
# (~200), its counts (~90), the name's str header (~50) and its entry in the
# backend's dict (~100, with the dict's spare room). Measured: 60,000 namespaces
# cost 688 bytes each (issue 11).
NAMESPACE_OVERHEAD = 700


class Namespace(Branch):
    """The root of one namespace's tree, with its query answers, listings and counters.

    ``queries`` maps a query key to its answer; ``listings`` maps a study uid to its
    complete listings by depth. ``version`` counts the changes to the tree that an
    answer's read could see (an object created, given data, renewed or dropped; not
    the same data written again): each sets it on its study (``Branch.changed``),
    so a read done in chunks tells whether a study changed since it began. Not
    thread-safe: the backend's lock guards it. Reads no clock: ``now`` is passed in.
    """

    __slots__ = (
        "bytes",
        "counts",
        "evictions",
        "expirations",
        "hits",
        "listings",
        "misses",
        "queries",
        "version",
    )

    def __init__(self, name: str) -> None:
        super().__init__(name, None)
        self.children: dict[str, Node] = {}
        self.queries: dict[bytes, Answer] = {}
        self.listings: dict[str, dict[Level, Answer]] = {}
        self.counts = [0, 0, 0, 0]  # objects holding data, by Level
        self.bytes = NAMESPACE_OVERHEAD + len(name)  # itself, and all it holds
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.expirations = 0
        self.version = 0

    def emptied(self) -> Namespace:
        """A new, empty namespace of this name that carries on this one's counters."""
        fresh = Namespace(self.uid)
        fresh.hits = self.hits
        fresh.misses = self.misses
        fresh.evictions = self.evictions
        fresh.expirations = self.expirations
        fresh.version = self.version
        return fresh

    def _changed(self, study_uid: str) -> None:
        """Record a change below the study that a concurrent read must notice."""
        self.version += 1
        study = self.children.get(study_uid)
        if isinstance(study, Branch):
            study.changed = self.version

    # -- writing objects ---------------------------------------------------------------

    def write(
        self, study: StudyData, expires_at: float, written: list[Node], dictionary: bytes | None
    ) -> StudyShape:
        """Write a study and what comes with it in one go: ``write_steps`` without chunks."""
        return run(self.write_steps(study, expires_at, written, dictionary, Budget(0)))

    def write_steps(
        self,
        study: StudyData,
        expires_at: float,
        written: list[Node],
        dictionary: bytes | None,
        budget: Budget,
    ) -> Steps[StudyShape]:
        """Write a study and what comes with it, yielding between chunks of ``budget``.

        Objects with attributes are written and appended to ``written``; levels
        without are paths, created as data-less nodes only when something is written
        below them. Creating a node drops the study's listings that are deep enough
        to have had to contain it. The instances come packed against ``dictionary``,
        which becomes the study's if it has none yet when the first is written.

        At a yield the tree holds no path that leads nowhere, and the caller may let
        others change it: the study's and series' nodes are looked up again after.
        Returns the shape of what was given.
        """
        uid = study.uid
        node = self._branch(self, uid, Level.STUDY, uid)
        series_shapes: list[SeriesShape] = []
        for series in study.series:
            parent = self._branch(node, series.uid, Level.SERIES, uid)
            instances: list[Item] = []
            for instance in series.instances:
                if budget.spend():
                    self._prune(parent, uid, cascade=True)
                    yield
                    node = self._branch(self, uid, Level.STUDY, uid)
                    parent = self._branch(node, series.uid, Level.SERIES, uid)
                child = self._child(parent, instance.uid, Level.INSTANCE, uid)
                data = instance.attributes
                if data is not None and node.dictionary is not dictionary:
                    data = self._repack(node, data, dictionary)
                instances.append(self._set(child, data, expires_at, written, Level.INSTANCE, uid))
                self._prune(child, uid)
            item = self._set(parent, series.attributes, expires_at, written, Level.SERIES, uid)
            self._prune(parent, uid)
            series_shapes.append((item, tuple(instances)))
            if budget.spend():
                self._prune(node, uid)
                yield
                node = self._branch(self, uid, Level.STUDY, uid)
        study_item = self._set(node, study.attributes, expires_at, written, Level.STUDY, uid)
        self._prune(node, uid)  # a path that led nowhere; a node that was renewed holds data
        return study_item, tuple(series_shapes)

    def _branch(self, parent: Branch, uid: str, level: Level, study_uid: str) -> Branch:
        node = self._child(parent, uid, level, study_uid)
        assert isinstance(node, Branch)  # studies and series are always created as branches
        return node

    def _child(self, parent: Branch, uid: str, level: Level, study_uid: str) -> Node:
        node = parent.child(uid)
        if node is None:
            node = Node(uid, parent) if level == Level.INSTANCE else Branch(uid, parent)
            if parent.children is None:
                parent.children = {}
            parent.children[uid] = node
            self.bytes += node.size()
            self.drop_listings(study_uid, level)
            self._changed(study_uid)
        return node

    def _repack(self, study: Branch, blob: bytes, dictionary: bytes | None) -> bytes:
        """The blob for ``study``, packed against ``dictionary`` (before the lock).

        A study without a dictionary takes this one. A study that has another (a
        concurrent write gave it one first) keeps the data as given: rare enough
        for the one call into zlib it makes here.
        """
        if study.dictionary is None and dictionary is not None:
            before = study.size()
            study.dictionary = dictionary
            self.bytes += study.size() - before
            return blob
        if not compression.packed(blob):
            return blob
        return compression.pack(compression.unpack(blob, dictionary), None)

    def dictionary_of(self, study_uid: str) -> bytes | None:
        """The study's compression dictionary, if it is cached and has one."""
        study = self.children.get(study_uid)
        return study.dictionary if study is not None else None

    def _set(
        self,
        node: Node,
        data: bytes | None,
        expires_at: float,
        written: list[Node],
        level: Level,
        study_uid: str,
    ) -> Item:
        if data is None:
            return node.uid
        if node.data is None:
            self.counts[level] += 1
        elif node.data == data:
            # The same attributes again: answers that saw them stay good. An expiry
            # brought nearer is a change a reading must see (it takes its nodes'
            # earliest expiry once: see ``readings``).
            if expires_at < node.expires_at:
                self._changed(study_uid)
            node.expires_at = expires_at
            written.append(node)
            return node
        else:
            self.bytes -= len(node.data)
            node = _renew(node)
        self.bytes += len(data)
        node.data = data
        node.expires_at = expires_at
        written.append(node)
        self._changed(study_uid)
        return node

    def _prune(self, node: Node, study_uid: str | None = None, cascade: bool = False) -> None:
        """Remove a data-less node that leads nowhere (and, with ``cascade``, its
        ancestors that then do too; a write prunes each level itself, after writing it).

        ``study_uid`` is the node's study, if known; else it is looked up when needed.
        """
        while node.data is None and not node.children and node.parent is not None:
            if study_uid is None:
                study_uid = lineage(node)[-1].uid
            self._changed(study_uid)
            parent = node.parent
            assert parent.children is not None  # it holds node
            del parent.children[node.uid]
            self.bytes -= node.size()
            node.parent = None
            unqueue(node)
            if not cascade:
                return
            node = parent

    # -- dropping objects ----------------------------------------------------------------

    def remove(self, node: Node, level: Level, now: float) -> tuple[int, int]:
        """Drop a node and its subtree (and listings that held them).

        Returns:
            (objects that were alive, objects whose data had expired).
        """
        alive = expired = 0
        for each, depth in subtree(node):
            if each.data is not None:
                if each.alive(now):
                    alive += 1
                else:
                    expired += 1
                self.counts[level + depth] -= 1
            self.bytes -= each.size()
            each.data = None
            unqueue(each)
            if isinstance(each, Branch):
                each.children = None
                each.dictionary = None  # answers may still hold the node: not its dictionary
            if each is not node:
                each.parent = None
        study = lineage(node)[-1].uid
        self.drop_listings(study, level)
        self._changed(study)
        parent = node.parent
        assert parent is not None and parent.children is not None  # node is in the tree
        del parent.children[node.uid]
        node.parent = None
        self._prune(parent, study, cascade=True)
        self.expirations += expired
        return alive, expired

    def expire(self, node: Node, now: float) -> None:
        """Reap an expired node: drop its data, and the node too unless it leads to others."""
        chain = lineage(node)
        level = Level(len(chain))
        self.drop_listings(chain[-1].uid, level)
        self._changed(chain[-1].uid)
        if node.children:
            self.counts[level] -= 1
            self.bytes -= len(node.data or b"")
            node.data = None
            self.expirations += 1
        else:
            self.remove(node, level, now)

    def clear(self, now: float) -> int:
        """Drop every node and answer, keeping the counters; returns how many objects were alive."""
        alive = 0
        for study in list(self.children.values()):
            alive += self.remove(study, Level.STUDY, now)[0]
        for answer in self.answers():
            unqueue(answer)
        self.queries.clear()
        self.listings.clear()
        self.bytes = NAMESPACE_OVERHEAD + len(self.uid)
        return alive

    def answers(self) -> list[Answer]:
        """Every query answer and listing it holds."""
        return [*self.queries.values(), *(a for ls in self.listings.values() for a in ls.values())]

    def empty(self) -> bool:
        """Whether it holds nothing: no object, no answer, no listing."""
        return not self.children and not self.queries and not self.listings

    # -- recorded answers ----------------------------------------------------------------

    def set_query(self, answer: Answer) -> None:
        """Record a query answer, replacing the key's previous one."""
        assert isinstance(answer.key, bytes)
        self.drop_query(answer.key)
        self.queries[answer.key] = answer
        self.bytes += answer.size

    def drop_query(self, key: bytes, answer: Answer | None = None) -> None:
        """Forget a query answer (only ``answer`` if given, not a newer one)."""
        current = self.queries.get(key)
        if current is not None and (answer is None or current is answer):
            del self.queries[key]
            self.bytes -= current.size
            unqueue(current)

    def set_listing(self, answer: Answer) -> None:
        """Record a study's complete listing; drop the study's listings it contradicts.

        A listing of another depth that saw other children at the depth both cover
        is older news; keeping it would answer one level from one state and another
        level from another.
        """
        assert isinstance(answer.key, str)
        listings = self.listings.setdefault(answer.key, {})
        for level, other in list(listings.items()):
            depth = min(level, answer.level)
            if level == answer.level or other.uids(depth) != answer.uids(depth):
                del listings[level]
                self.bytes -= other.size
                unqueue(other)
        listings[answer.level] = answer
        self.bytes += answer.size

    def drop_listings(self, study_uid: str, level: Level, answer: Answer | None = None) -> None:
        """Forget the study's listings of depth ``level`` or deeper (or only ``answer``)."""
        listings = self.listings.get(study_uid)
        if not listings:
            return
        for depth, listing in list(listings.items()):
            if depth >= level and (answer is None or listing is answer):
                del listings[depth]
                self.bytes -= listing.size
                unqueue(listing)
        if not listings:
            del self.listings[study_uid]

    def listing(self, study_uid: str, level: Level, now: float) -> StudyData | None:
        """The study complete to ``level`` from its shallowest good listing that deep, or None.

        Listings found dead on the way are dropped; a deeper listing that only lacks
        data at ``level`` (see ``Answer.resolve``) is kept for its own level.
        """
        listings = self.listings.get(study_uid)
        for depth in sorted(listings or ()):
            if depth < level:
                continue
            assert listings is not None
            listing = listings[depth]
            studies = listing.resolve(now, level)
            if studies is not None:
                return studies[0]
            if depth == level or listing.resolve(now, depth) is None:
                # Dead, not merely lacking data at the shallower level.
                self.drop_listings(study_uid, depth, listing)
        return None

    def stats(self) -> NamespaceStats:
        """The namespace's counters; objects count until reaped, even if already expired."""
        return NamespaceStats(
            namespace=self.uid,
            studies=self.counts[Level.STUDY],
            series=self.counts[Level.SERIES],
            instances=self.counts[Level.INSTANCE],
            queries=len(self.queries),
            bytes=self.bytes,
            hits=self.hits,
            misses=self.misses,
            evictions=self.evictions,
            expirations=self.expirations,
        )


def _renew(node: Node) -> Node:
    """Put a new node in ``node``'s place, with its children; the old one is cut loose.

    Answers hold nodes by identity, so every answer that saw the old attributes is
    dead from now on: a hit gives each object the attributes the archive returned
    for that answer's own query, never those another query wrote since (which may
    hold fewer attributes or other ones). The old node drops its data at once, so
    answers that still point at it keep no bytes alive.
    """
    parent = node.parent
    assert parent is not None and parent.children is not None  # it is being written: in the tree
    fresh: Node
    if isinstance(node, Branch):
        branch = Branch(node.uid, parent)
        branch.children = node.children
        branch.dictionary = node.dictionary
        for child in (node.children or {}).values():
            child.parent = branch
        node.children = None
        node.dictionary = None
        fresh = branch
    else:
        fresh = Node(node.uid, parent)
    parent.children[node.uid] = fresh
    node.parent = None
    node.data = None
    unqueue(node)
    return fresh


def tear_down(ns: Namespace, now: float) -> tuple[int, int, list[Node | Answer]]:
    """Take a dropped namespace apart; returns (objects alive at ``now``, objects expired,
    nodes and answers still in the expiry queue, for the backend to take out under its lock).

    Runs outside the backend's lock: ``ns`` must be out of every request's reach
    (the backend has put ``ns.emptied()`` in its place). It goes node by node and
    answer by answer, in Python, so the memory comes free a little at a time,
    never in one long deallocation that holds the interpreter lock, and no cycle
    (parent and child) is left for the garbage collector.
    """
    alive = expired = 0
    queued: list[Node | Answer] = [a for a in ns.answers() if a.queued is not None]
    queries, listings, ns.queries, ns.listings = ns.queries, ns.listings, {}, {}
    while queries:
        queries.popitem()
    while listings:
        listings.popitem()
    stack = list(ns.children.values())
    ns.children = {}
    while stack:
        node = stack.pop()
        if isinstance(node, Branch) and node.children:
            stack.extend(node.children.values())
            node.children = None
        if node.data is not None:
            if node.alive(now):
                alive += 1
            else:
                expired += 1
            node.data = None
        if node.queued is not None:
            queued.append(node)
        node.parent = None
        if isinstance(node, Branch):
            node.dictionary = None
    ns.bytes = 0
    ns.counts = [0, 0, 0, 0]
    return alive, expired, queued
