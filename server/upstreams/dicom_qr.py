"""A DICOM-QR archive: one Study Root C-FIND per fetch, over pynetdicom.

The ArchiveRequest is the identifier: ``path`` is the Query/Retrieve level
(STUDY, SERIES or IMAGE), each parameter an attribute by keyword, its values the
match (several: a multi-valued match), none a return key. Each pending answer
becomes DICOM JSON through pydicom's ``Dataset.to_json_dict``, in the order the
archive sent them.

Associations are kept in a small pool: against Orthanc here, a C-FIND on an open
association took 52 ms against 114 ms with an association of its own (setup, a
slower first find, release; ``benchmarks/upstreams.py``). An idle association is
released after ``idle_seconds`` (below Orthanc's 30 s DicomScpTimeout), and one that
the archive dropped meanwhile is replaced once, on a fresh association, before
any answer was read (a C-FIND changes nothing, so asking again is safe).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]  # made at import time

from dicomcache.server.errors import UpstreamFailed
from dicomcache.v1 import query_pb2

log = logging.getLogger(__name__)

# pynetdicom logs what carries PHI at INFO; ``dicomcache serve`` quiets it (``logs.QUIETED``):
# a library does not set another library's log level.

LEVELS = frozenset({"STUDY", "SERIES", "IMAGE"})
PENDING = frozenset({0xFF00, 0xFF01})
SUCCESS = 0x0000
# "Identifier does not match SOP Class": the request was wrong for this archive.
# Every other failure (A700 out of resources, Cxxx unable to process, FE00
# cancelled) is the archive's: a retry may succeed.
REFUSED_STATUSES = frozenset({0xA900})
_INTEGER_VRS = frozenset({"US", "UL", "SS", "SL", "UV", "SV"})
_FLOAT_VRS = frozenset({"FL", "FD"})


def identifier(request: query_pb2.ArchiveRequest) -> Dataset:
    """The C-FIND identifier of ``request``.

    Raises:
        ValueError: the level is not STUDY, SERIES or IMAGE, a name is not a DICOM
            keyword, or a sequence has a value (the read-through never builds these).
    """
    if request.path not in LEVELS:
        raise ValueError(f"a DICOM-QR request's path is one of {sorted(LEVELS)}")
    found = Dataset()
    found.QueryRetrieveLevel = request.path
    texts: list[str] = []
    for parameter in request.parameters:
        tag = tag_for_keyword(parameter.name)
        if tag is None:
            raise ValueError(f"{parameter.name[:64]!r} is not a DICOM keyword")
        vr = dictionary_VR(tag)
        values = [_typed(vr, v) for v in parameter.values]
        if vr == "SQ":
            if values:
                raise ValueError(f"{parameter.name} is a sequence: only a return key")
            found.add_new(tag, vr, [])
        else:
            found.add_new(tag, vr, values[0] if len(values) == 1 else (values or None))
        texts.extend(parameter.values)
    if "SpecificCharacterSet" not in found and not all(t.isascii() for t in texts):
        found.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the values are Unicode text
    return found


def _typed(vr: str, value: str) -> Any:
    if vr in _INTEGER_VRS:
        return int(value)
    if vr in _FLOAT_VRS:
        return float(value)
    return value


class _Dropped(Exception):
    """A pooled association ended before the archive sent any answer."""


class DicomQrUpstream:
    """A DICOM-QR SCP asked with C-FIND. Thread-safe: a fetch has an association to
    itself, taken from the pool or opened for it.

    Uses ``clock`` (monotonic) for deadlines and for the pool's idle limit.

    Args:
        name: the upstream's name (its namespace).
        host, port: where the archive listens.
        called_ae: the archive's AE title.
        calling_ae: ours.
        timeout: seconds one fetch may take at most; a shorter ``fetch`` timeout wins.
        pool_size: idle associations kept open at most (0: one association per fetch).
        idle_seconds: an idle association older than this is released, not reused.
    """

    protocol: int = query_pb2.PROTOCOL_DICOM_QR

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        called_ae: str,
        calling_ae: str,
        timeout: float = 10.0,
        pool_size: int = 4,
        idle_seconds: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.called_ae = called_ae
        self.calling_ae = calling_ae
        self.timeout = timeout
        self.pool_size = pool_size
        self.idle_seconds = idle_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[tuple[float, Any]] = []  # (since, association), the newest last
        self._closed = False

    def __repr__(self) -> str:
        return (
            f"DicomQrUpstream(name={self.name!r}, "
            f"{self.called_ae}@{self.host}:{self.port}, calling={self.calling_ae!r})"
        )

    def fetch(self, request: query_pb2.ArchiveRequest, timeout: float) -> list[dict[str, Any]]:
        """C-FIND the request's identifier; each pending identifier as DICOM JSON.

        Raises:
            UpstreamFailed: unreachable (no connection, or it was dropped), timeout
                (no association or no next answer in time), refused (association
                rejected, status A900), failed (any other failure status, with it).
        """
        query = identifier(request)
        deadline = self._clock() + min(timeout, self.timeout)
        assoc = self._take()
        if assoc is not None:
            try:
                return self._find_and_keep(assoc, query, deadline, pooled=True)
            except _Dropped:
                log.debug("upstream %s: a pooled association was dropped; asking anew", self.name)
        return self._find_and_keep(self._open(deadline), query, deadline, pooled=False)

    def _find_and_keep(
        self, assoc: Any, query: Dataset, deadline: float, pooled: bool
    ) -> list[dict[str, Any]]:
        assoc.dimse_timeout = max(deadline - self._clock(), 0.001)
        try:
            answers = self._find(assoc, query, deadline, pooled)
        except BaseException:
            _end(assoc)
            raise
        self._give_back(assoc)
        return answers

    def _take(self) -> Any:
        """The newest idle association still open and young enough, or None."""
        stale = []
        found = None
        with self._lock:
            now = self._clock()
            while self._idle:
                since, assoc = self._idle.pop()
                if assoc.is_established and now - since < self.idle_seconds:
                    found = assoc
                    break
                stale.append(assoc)
            stale.extend(a for since, a in self._idle if now - since >= self.idle_seconds)
            self._idle = [(t, a) for t, a in self._idle if now - t < self.idle_seconds]
        for assoc in stale:
            _end(assoc)
        return found

    def _give_back(self, assoc: Any) -> None:
        with self._lock:
            if not self._closed and assoc.is_established and len(self._idle) < self.pool_size:
                self._idle.append((self._clock(), assoc))
                return
        _end(assoc)

    def _open(self, deadline: float) -> Any:
        budget = max(deadline - self._clock(), 0.001)
        ae = AE(ae_title=self.calling_ae)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        ae.connection_timeout = budget
        ae.acse_timeout = budget
        ae.dimse_timeout = budget
        # None: pynetdicom would abort an idle pooled association and log an ERROR for it.
        # Idle ones end at the next fetch after idle_seconds, or when the archive ends them.
        ae.network_timeout = None
        connected: list[bool] = []
        assoc = ae.associate(
            self.host,
            self.port,
            ae_title=self.called_ae,
            evt_handlers=[(evt.EVT_CONN_OPEN, lambda _event: connected.append(True))],
        )
        if assoc.is_established:
            return assoc
        if assoc.is_rejected:
            raise UpstreamFailed(self.name, UpstreamFailed.REFUSED)
        if connected and self._clock() >= deadline:
            raise UpstreamFailed(self.name, UpstreamFailed.TIMEOUT)
        raise UpstreamFailed(self.name, UpstreamFailed.UNREACHABLE)

    def _find(
        self, assoc: Any, query: Dataset, deadline: float, pooled: bool
    ) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        for status, found in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = getattr(status, "Status", None)
            if code is None:  # no answer in time, or the association was aborted
                late = self._clock() >= deadline
                if pooled and not answers and not late:
                    raise _Dropped()
                reason = UpstreamFailed.TIMEOUT if late else UpstreamFailed.UNREACHABLE
                raise UpstreamFailed(self.name, reason)
            if code in PENDING:
                if found is not None:
                    answers.append(found.to_json_dict())
                if self._clock() > deadline:
                    raise UpstreamFailed(self.name, UpstreamFailed.TIMEOUT)
                continue
            if code == SUCCESS:
                return answers
            reason = UpstreamFailed.REFUSED if code in REFUSED_STATUSES else UpstreamFailed.FAILED
            log.debug("upstream %s: C-FIND status 0x%04X", self.name, code)
            raise UpstreamFailed(self.name, reason, code)
        return answers

    def close(self) -> None:
        """Release the idle associations; those in use are released when their fetch ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for _since, assoc in idle:
            _end(assoc)


def _end(assoc: Any) -> None:
    """Release an association that is still open, else make sure its threads stop."""
    try:
        if assoc.is_established:
            assoc.release()
        else:
            assoc.abort()
    except Exception as exc:  # ending is best effort: the archive may be gone already
        log.debug("ending an association failed: %s", type(exc).__name__)
