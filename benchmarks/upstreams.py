"""What an upstream fetch costs, by client, against a real Orthanc: the choices of server/upstreams.

QIDO-RS, call by call in rotated order, on the same answer (study level, 4 studies;
instance level, the 80 instances of one study):

    dicomtrolley   QidoRS.find_studies / find_study_by_id (its requests Session; parses
                   the JSON into its Study tree, which Search cannot return)
    requests       a requests.Session GET, the JSON parsed
    httpx          QidoRsUpstream.fetch (an httpx.Client, streamed, deadline checked)

DICOM-QR, the same study-level C-FIND:

    dicomtrolley   DICOMQR.find_studies (an association per query)
    per fetch      DicomQrUpstream.fetch with pool_size=0 (an association per fetch)
    pooled         DicomQrUpstream.fetch as configured (associations kept open)
    raw reused     one pynetdicom association, C-FIND after C-FIND (the floor)

Run from the repository root: ``python -m benchmarks.upstreams [--rounds 300]``.
Prints medians and p90s; the machine is shared, so compare within one run only.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any

import requests
from dicomtrolley.core import Query, QueryLevels
from dicomtrolley.dicom_qr import DICOMQR
from dicomtrolley.qido_rs import QidoRS
from pynetdicom import AE
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from dicomcache.server.upstreams.dicom_qr import DicomQrUpstream, identifier
from dicomcache.server.upstreams.qido_rs import QidoRsUpstream
from dicomcache.v1 import query_pb2
from tests.support.orthanc import running_orthanc
from tests.support.synthetic import standard_studies, upload


def measure(calls: dict[str, Callable[[], Any]], rounds: int) -> dict[str, list[float]]:
    """Each call once per round, the order rotated each round; seconds per call."""
    for call in calls.values():
        call()  # warm: connections, imports
    names = list(calls)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for index in range(rounds):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            calls[name]()
            samples[name].append(time.perf_counter() - start)
    return samples


def report(title: str, samples: dict[str, list[float]], baseline: str) -> None:
    base = statistics.median(samples[baseline])
    print(f"\n{title}")
    for name, values in samples.items():
        median = statistics.median(values)
        p90 = sorted(values)[int(0.9 * len(values))]
        print(
            f"  {name:14s} median {median * 1e3:6.2f} ms  p90 {p90 * 1e3:6.2f} ms  "
            f"{median / base:5.2f}x {baseline}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
    studies = standard_studies()
    big = studies[0]  # 80 instances
    with tempfile.TemporaryDirectory() as directory, running_orthanc(directory) as orthanc:
        for study in studies:
            upload(orthanc.url, study.datasets)
        root = orthanc.dicomweb_url
        trolley = QidoRS(session=requests.Session(), url=root)
        session = requests.Session()
        upstream = QidoRsUpstream("pacs", root)
        accept = {"Accept": "application/dicom+json"}

        def get(path: str, params: list[tuple[str, str]]) -> Any:
            response = session.get(root + path, params=params, headers=accept, timeout=10)
            response.raise_for_status()
            return response.json()

        includes = [("includefield", "StudyDescription")]
        studies_request = query_pb2.ArchiveRequest(path="/studies")
        studies_request.parameters.add(name="includefield", values=["StudyDescription"])
        report(
            "QIDO-RS, study level (4 studies)",
            measure(
                {
                    "dicomtrolley": lambda: trolley.find_studies(
                        Query(include_fields=["StudyDescription"])
                    ),
                    "requests": lambda: get("/studies", includes),
                    "httpx": lambda: upstream.fetch(studies_request, 10),
                },
                rounds,
            ),
            "dicomtrolley",
        )
        path = f"/studies/{big.uid}/instances"
        instances_request = query_pb2.ArchiveRequest(path=path)
        report(
            "QIDO-RS, 80 instances of one study",
            measure(
                {
                    "dicomtrolley": lambda: trolley.find_study_by_id(
                        big.uid, query_level=QueryLevels.INSTANCE
                    ),
                    "requests": lambda: get(path, []),
                    "httpx": lambda: upstream.fetch(instances_request, 10),
                },
                rounds,
            ),
            "dicomtrolley",
        )
        upstream.close()

        qr = DicomQrUpstream(
            "qr", orthanc.host, orthanc.dicom_port, called_ae=orthanc.aet, calling_ae="DICOMCACHE"
        )
        fresh = DicomQrUpstream(
            "qr",
            orthanc.host,
            orthanc.dicom_port,
            called_ae=orthanc.aet,
            calling_ae="DICOMCACHE",
            pool_size=0,
        )
        trolley_qr = DICOMQR(
            host=orthanc.host, port=orthanc.dicom_port, aet="DICOMCACHE", aec=orthanc.aet
        )
        find = query_pb2.ArchiveRequest(path="STUDY")
        for name in ("StudyInstanceUID", "PatientID", "StudyDescription"):
            find.parameters.add(name=name, values=[])
        ae = AE(ae_title="DICOMCACHE")
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = ae.associate(orthanc.host, orthanc.dicom_port, ae_title=orthanc.aet)

        def reused() -> list[dict[str, Any]]:
            found = identifier(find)
            return [
                d.to_json_dict()
                for s, d in assoc.send_c_find(found, StudyRootQueryRetrieveInformationModelFind)
                if s.Status in (0xFF00, 0xFF01) and d is not None
            ]

        report(
            "DICOM-QR, study-level C-FIND (4 studies)",
            measure(
                {
                    "dicomtrolley": lambda: trolley_qr.find_studies(
                        Query(include_fields=["StudyDescription"])
                    ),
                    "per fetch": lambda: fresh.fetch(find, 10),
                    "pooled": lambda: qr.fetch(find, 10),
                    "raw reused": reused,
                },
                max(rounds // 3, 10),
            ),
            "per fetch",
        )
        qr.close()
        assoc.release()


if __name__ == "__main__":
    main()
