"""A streamed store's pieces, checked and turned into the model one piece at a time.

StreamStoreQuery and StreamStoreStudy send the unary store's request in pieces
(see ``cache_service.proto``): the first carries that request (``store``) with as
many objects as its sender likes; each piece then adds instances to the last series
so far, series to the last study so far and (StreamStoreQuery) studies to the
answer; the last one says so. ``Tree`` keeps the objects as they come, already as
the model (``StudyData`` ...), and makes the checks that StoreQuery makes of a whole
tree: valid uids unique among their siblings, valid attributes, no object with
neither attributes nor children (which can be told only once the object is closed:
a sibling of it or of a parent follows, or the stream ends).

So a 300,000-instance store never exists as one message nor as one protobuf tree:
each piece is parsed, checked, converted and let go of on the call's worker thread,
with the interpreter lock taken for a piece at a time (grpcio takes a message in
one step, about 1 ms per MB, stopping every other thread of the process).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from dicomcache.server.api.decode import attributes_of
from dicomcache.server.api.validation import Checker
from dicomcache.server.errors import InvalidArgument
from dicomcache.server.model import InstanceData, SeriesData, StudyData
from dicomcache.v1 import objects_pb2

S = TypeVar("S")


class _Open:
    """A study or series whose children may still come."""

    __slots__ = ("attributes", "children", "path", "uid")

    def __init__(self, uid: str, attributes: bytes | None, path: str) -> None:
        self.uid = uid
        self.attributes = attributes
        self.path = path  # where it came (the whole path), for a violation found when it closes
        self.children: list[Any] = []


class Tree:
    """The studies that the pieces so far make up, checked as StoreQuery checks a tree.

    Not thread-safe: one per call. No clock.
    """

    def __init__(self) -> None:
        self._studies: list[StudyData] = []  # closed
        self._study: _Open | None = None
        self._series: _Open | None = None
        self._study_uids: set[str] = set()
        self._series_uids: set[str] = set()  # of the open study
        self._instance_uids: set[str] = set()  # of the open series

    def studies(self, check: Checker, studies: Sequence[objects_pb2.Study], field: str) -> None:
        """Add studies (each with its series and instances) to the answer."""
        for i, study in enumerate(studies):
            path = f"{field}[{i}]"
            self.study(check, study, path)

    def study(self, check: Checker, study: objects_pb2.Study, path: str) -> None:
        """Add one study with its series and instances; the one before it closes."""
        self._close_study(check)
        check.node(study, path, self._study_uids)
        self._study = _Open(study.uid, attributes_of(study), check.prefix + path)
        self._series_uids = set()
        self.series(check, study.series, f"{path}.series")

    def series(self, check: Checker, series: Sequence[objects_pb2.Series], field: str) -> None:
        """Add series (each with its instances) to the last study so far."""
        if not series:
            return
        if self._study is None:
            check.fail(field, "must follow a study: there is none yet")
            return
        for j, one in enumerate(series):
            path = f"{field}[{j}]"
            self._close_series(check)
            check.node(one, path, self._series_uids)
            self._series = _Open(one.uid, attributes_of(one), check.prefix + path)
            self._instance_uids = set()
            self.instances(check, one.instances, f"{path}.instances")

    def instances(
        self, check: Checker, instances: Sequence[objects_pb2.Instance], field: str
    ) -> None:
        """Add instances to the last series so far."""
        if not instances:
            return
        if self._series is None:
            check.fail(field, "must follow a series: there is none yet")
            return
        children = self._series.children
        seen = self._instance_uids
        for k, instance in enumerate(instances):
            path = f"{field}[{k}]"
            check.node(instance, path, seen)
            attributes = attributes_of(instance)
            if attributes is None:
                check.childless(path)
            children.append(InstanceData(instance.uid, attributes))

    def finish(self, check: Checker) -> list[StudyData]:
        """The studies, every object closed: the model of the whole request's studies."""
        self._close_study(check)
        studies, self._studies = self._studies, []
        return studies

    def _close_series(self, check: Checker) -> None:
        series, self._series = self._series, None
        if series is None or self._study is None:
            return
        if series.attributes is None and not series.children:
            check.childless(series.path, whole=True)
        self._study.children.append(
            SeriesData(series.uid, series.attributes, tuple(series.children))
        )

    def _close_study(self, check: Checker) -> None:
        self._close_series(check)
        study, self._study = self._study, None
        if study is None:
            return
        if study.attributes is None and not study.children:
            check.childless(study.path, whole=True)
        self._studies.append(StudyData(study.uid, study.attributes, tuple(study.children)))


def assemble(
    pieces: Iterable[Any],
    header: Callable[[Checker, Any], None],
    objects: Callable[[Tree, Checker, Any], None],
) -> tuple[Any, list[StudyData]]:
    """The store that the pieces make up: its request (objects cleared) and its studies.

    Args:
        pieces: the parsed pieces, in order (``StreamStoreQueryRequest`` or
            ``StreamStoreStudyRequest``).
        header: checks the first piece's ``store`` but its objects, naming fields
            as the unary store does (the checker adds ``pieces[0].store.``).
        objects: adds the first piece's ``store`` objects to the tree.
    Raises:
        InvalidArgument: a piece breaks a rule (the fields named ``pieces[i]...``), or
            the pieces end without one that says it is the last.
    """
    tree = Tree()
    store = None
    last = False
    index = -1
    for index, piece in enumerate(pieces):
        here = f"pieces[{index}]"
        if last:
            raise InvalidArgument.single(here, "must not follow the last piece (last = true)")
        if index == 0:
            if not piece.HasField("store"):
                raise InvalidArgument.single(f"{here}.store", "must be set in the first piece")
            store = piece.store
            check = Checker(f"{here}.store.")
            header(check, store)
            objects(tree, check, store)
            check.done()
            _clear_objects(store)
        elif piece.HasField("store"):
            raise InvalidArgument.single(f"{here}.store", "must be set in the first piece only")
        check = Checker(f"{here}.")
        tree.instances(check, piece.instances, "instances")
        tree.series(check, piece.series, "series")
        if "studies" in piece.DESCRIPTOR.fields_by_name:
            tree.studies(check, piece.studies, "studies")
        last = piece.last
        check.done()
    if store is None:
        raise InvalidArgument.single("pieces", "must hold at least the first piece, with store")
    if not last:
        raise InvalidArgument.single(f"pieces[{index}].last", "must be true in the last piece")
    check = Checker()
    studies = tree.finish(check)
    check.done()
    return store, studies


def _clear_objects(store: Any) -> None:
    """Let go of the first piece's objects: the tree holds them now."""
    for name in ("studies", "study"):
        if name in store.DESCRIPTOR.fields_by_name:
            store.ClearField(name)
