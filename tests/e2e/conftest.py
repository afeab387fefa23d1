"""A real Orthanc for the end-to-end tests, loaded with the synthetic studies.

One Orthanc per test session (see tests/orthanc.py for how it is configured and
how to run these tests locally). A missing Orthanc fails the tests: they are
part of the suite, not optional.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.orthanc import Orthanc, OrthancUnavailableError, running_orthanc
from tests.support.synthetic import SyntheticStudy, standard_studies, upload


@dataclass(frozen=True)
class LoadedOrthanc:
    """A running Orthanc and the synthetic studies it holds."""

    orthanc: Orthanc
    studies: list[SyntheticStudy]

    @property
    def url(self) -> str:
        """Orthanc's HTTP base."""
        return self.orthanc.url

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root."""
        return self.orthanc.dicomweb_url

    @property
    def dicom_port(self) -> int:
        """The DICOM port (C-FIND)."""
        return self.orthanc.dicom_port

    @property
    def host(self) -> str:
        """The host for DICOM associations."""
        return self.orthanc.host

    @property
    def aet(self) -> str:
        """Orthanc's AE title."""
        return self.orthanc.aet

    def study(self, number: int) -> SyntheticStudy:
        """The synthetic study generated with this number."""
        return next(s for s in self.studies if s.uid.endswith(f".{number}"))


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoadedOrthanc]:
    """A real Orthanc holding standard_studies(), for the whole session."""
    studies = standard_studies()
    try:
        with running_orthanc(tmp_path_factory.mktemp("orthanc")) as running:
            for study in studies:
                upload(running.url, study.datasets)
            yield LoadedOrthanc(running, studies)
    except OrthancUnavailableError as exc:
        pytest.fail(f"end-to-end tests need a real Orthanc: {exc}", pytrace=False)
