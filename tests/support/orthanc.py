"""A real Orthanc (with its DICOMweb plugin) for end-to-end tests and benchmarks.

``running_orthanc(directory)`` starts ``/usr/sbin/Orthanc`` (Debian packages
``orthanc`` and ``orthanc-dicomweb``) with a configuration of its own in
``directory``: HTTP and DICOM on free ports, reachable from loopback only, no
authentication, DICOMweb at ``/dicom-web/``, C-FIND allowed for any calling AE
title, UTF-8 as the default encoding, storage and index in ``directory``. It
waits until the REST API answers and stops Orthanc on exit.

Not thread-safe: one manager owns one process. No clock: readiness is polled
against a deadline on the monotonic clock.

Run locally: ``apt-get install orthanc orthanc-dicomweb``, then
``pytest tests/e2e``. The paths can be overridden with ORTHANC_BINARY and
ORTHANC_DICOMWEB_PLUGIN. ``python -m tests.support.orthanc`` starts one by hand, with
the synthetic studies loaded, until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

from tests.support.ports import free_port

ORTHANC_BINARY = os.environ.get("ORTHANC_BINARY", "/usr/sbin/Orthanc")
_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
)
AET = "ORTHANC"
_START_DEADLINE = 60.0
_STOP_DEADLINE = 20.0


class OrthancUnavailableError(RuntimeError):
    """Orthanc or its DICOMweb plugin is not installed, or it did not start."""


@dataclass(frozen=True)
class Orthanc:
    """A running Orthanc's addresses."""

    url: str
    dicom_port: int
    aet: str
    directory: Path

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root, e.g. for dicomtrolley's QidoRS."""
        return f"{self.url}/dicom-web"

    @property
    def host(self) -> str:
        """The host for DICOM associations."""
        return "127.0.0.1"

    def log(self) -> str:
        """Orthanc's output so far, for failure messages."""
        path = self.directory / "orthanc.log"
        return path.read_text(errors="replace") if path.exists() else ""


def dicomweb_plugin() -> str:
    """The DICOMweb plugin's path.

    Raises:
        OrthancUnavailableError: if it is not installed.
    """
    configured = os.environ.get("ORTHANC_DICOMWEB_PLUGIN")
    for candidate in (configured, *_PLUGIN_CANDIDATES):
        if candidate and Path(candidate).is_file():
            return candidate
    raise OrthancUnavailableError(
        "Orthanc's DICOMweb plugin is missing: install the Debian package "
        "'orthanc-dicomweb' (or set ORTHANC_DICOMWEB_PLUGIN to libOrthancDicomWeb.so)"
    )


def configuration(directory: Path, http_port: int, dicom_port: int) -> dict[str, object]:
    """Orthanc's configuration for a test instance (Orthanc 1.10 keys)."""
    return {
        "Name": "dicomcache-test",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "index"),
        "StorageCompression": False,
        "HttpServerEnabled": True,
        "HttpPort": http_port,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpDescribeErrors": True,
        "DicomServerEnabled": True,
        "DicomAet": AET,
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowEcho": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True,
        "DicomModalities": {},
        "UnknownSopClassAccepted": True,
        "DefaultEncoding": "Utf8",
        "DeidentifyLogs": True,
        "SaveJobs": False,
        "Plugins": [dicomweb_plugin()],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "EnableWado": True,
            "Ssl": False,
            "StudiesMetadata": "Full",
            "SeriesMetadata": "Full",
        },
    }


@contextlib.contextmanager
def running_orthanc(
    directory: Path | str, overrides: dict[str, object] | None = None
) -> Iterator[Orthanc]:
    """Start a fresh Orthanc keeping its files in directory; stop it on exit.

    Args:
        directory: an empty or scratch directory owned by the caller.
        overrides: configuration keys that replace the test configuration's, e.g.
            ``{"AuthenticationEnabled": True, "RegisteredUsers": {"user": "password"}}``
            (readiness is then checked as the first registered user).

    Yields:
        The running Orthanc.

    Raises:
        OrthancUnavailableError: if Orthanc or its DICOMweb plugin is missing, or if
            it does not answer within the deadline (its log is in the message).
    """
    if not os.access(ORTHANC_BINARY, os.X_OK):
        raise OrthancUnavailableError(
            f"Orthanc is missing at {ORTHANC_BINARY}: install the Debian packages "
            "'orthanc' and 'orthanc-dicomweb' (or set ORTHANC_BINARY)"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    config_path = directory / "orthanc.json"
    config = {**configuration(directory, http_port, dicom_port), **(overrides or {})}
    config_path.write_text(json.dumps(config, indent=2))
    orthanc = Orthanc(f"http://127.0.0.1:{http_port}", dicom_port, AET, directory)
    users = config.get("RegisteredUsers") if config.get("AuthenticationEnabled") else None
    auth = next(iter(users.items())) if isinstance(users, dict) and users else None
    with (directory / "orthanc.log").open("wb") as log:
        process = subprocess.Popen(
            [ORTHANC_BINARY, str(config_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=directory,
        )
        try:
            _wait_until_ready(orthanc, process, auth)
            yield orthanc
        finally:
            _stop(process)


def _wait_until_ready(
    orthanc: Orthanc, process: subprocess.Popen[bytes], auth: tuple[str, str] | None = None
) -> None:
    deadline = time.monotonic() + _START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise OrthancUnavailableError(
                f"Orthanc exited with code {process.returncode}:\n{orthanc.log()}"
            )
        try:
            system = requests.get(f"{orthanc.url}/system", timeout=2, auth=auth)
            plugins = requests.get(f"{orthanc.url}/plugins", timeout=2, auth=auth)
            if system.ok and plugins.ok and "dicom-web" in plugins.json():
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise OrthancUnavailableError(
        f"Orthanc did not answer within {_START_DEADLINE} s:\n{orthanc.log()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=_STOP_DEADLINE)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main() -> None:
    """Run an Orthanc with the synthetic studies until interrupted."""
    import argparse
    import tempfile

    from tests.support.synthetic import standard_studies, upload

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--dir", type=Path, help="working directory (default: a temporary one)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        directory = args.dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        orthanc = stack.enter_context(running_orthanc(directory))
        for study in standard_studies():
            upload(orthanc.url, study.datasets)
        print(f"Orthanc at {orthanc.url} (DICOMweb {orthanc.dicomweb_url}), ", end="")
        print(f"DICOM {orthanc.aet}@{orthanc.host}:{orthanc.dicom_port}; Ctrl-C stops it")
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
