"""A DICOM-QR archive: one Study Root C-FIND per fetch, over pynetdicom.

The ArchiveRequest is the identifier: ``path`` is the Query/Retrieve level
(STUDY, SERIES or IMAGE), each parameter an attribute by keyword, its values the
match (several: a multi-valued match), none a return key. Each pending answer
becomes DICOM JSON through pydicom's ``Dataset.to_json_dict``, in the order the
archive sent them.

One association per fetch: a pooled one saved little against Orthanc (see
``benchmarks/upstreams.py``) and an archive closes idle associations on its own
schedule, so a pool needs a retry path that a fresh association never does.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset
from pynetdicom import AE, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind  # type: ignore[attr-defined]  # made at import time

from dicomcache.server.errors import UpstreamFailed
from dicomcache.v1 import query_pb2

log = logging.getLogger(__name__)

# pynetdicom logs every identifier it sends and receives at INFO (patient names,
# ids, dates: PHI at INFO), and the PDUs at DEBUG. Its warnings still show.
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

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


class DicomQrUpstream:
    """A DICOM-QR SCP asked with C-FIND. Thread-safe: each fetch has its own association.

    Uses the monotonic clock for the deadline of each fetch.

    Args:
        name: the upstream's name (its namespace).
        host, port: where the archive listens.
        called_ae: the archive's AE title.
        calling_ae: ours.
        timeout: seconds one fetch may take at most; a shorter ``fetch`` timeout wins.
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
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.called_ae = called_ae
        self.calling_ae = calling_ae
        self.timeout = timeout

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
        budget = min(timeout, self.timeout)
        deadline = time.monotonic() + budget
        connected: list[bool] = []
        ae = self._ae(budget)
        assoc = ae.associate(
            self.host,
            self.port,
            ae_title=self.called_ae,
            evt_handlers=[(evt.EVT_CONN_OPEN, lambda _event: connected.append(True))],
        )
        if not assoc.is_established:
            raise self._not_associated(assoc, bool(connected), deadline)
        try:
            return self._find(assoc, query, deadline)
        finally:
            if assoc.is_established:
                assoc.release()

    def _ae(self, budget: float) -> AE:
        ae = AE(ae_title=self.calling_ae)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        ae.connection_timeout = budget
        ae.acse_timeout = budget
        ae.dimse_timeout = budget
        ae.network_timeout = budget
        return ae

    def _not_associated(self, assoc: Any, connected: bool, deadline: float) -> UpstreamFailed:
        if assoc.is_rejected:
            return UpstreamFailed(self.name, UpstreamFailed.REFUSED)
        if connected and time.monotonic() >= deadline:
            return UpstreamFailed(self.name, UpstreamFailed.TIMEOUT)
        return UpstreamFailed(self.name, UpstreamFailed.UNREACHABLE)

    def _find(self, assoc: Any, query: Dataset, deadline: float) -> list[dict[str, Any]]:
        answers: list[dict[str, Any]] = []
        for status, found in assoc.send_c_find(query, StudyRootQueryRetrieveInformationModelFind):
            code = getattr(status, "Status", None)
            if code is None:  # no answer in time, or the association was aborted
                late = time.monotonic() >= deadline
                reason = UpstreamFailed.TIMEOUT if late else UpstreamFailed.UNREACHABLE
                raise UpstreamFailed(self.name, reason)
            if code in PENDING:
                if found is not None:
                    answers.append(found.to_json_dict())
                if time.monotonic() > deadline:
                    assoc.abort()
                    raise UpstreamFailed(self.name, UpstreamFailed.TIMEOUT)
                continue
            if code == SUCCESS:
                return answers
            reason = UpstreamFailed.REFUSED if code in REFUSED_STATUSES else UpstreamFailed.FAILED
            log.debug("upstream %s: C-FIND status 0x%04X", self.name, code)
            raise UpstreamFailed(self.name, reason, code)
        return answers

    def close(self) -> None:
        """Nothing held between fetches."""
