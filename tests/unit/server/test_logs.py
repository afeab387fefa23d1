"""serve's log set-up quiets the libraries that log request content (PHI) at INFO."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator

import pytest

from dicomcache.server import logs


@pytest.fixture
def restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in logs.QUIETED}
    yield
    root.handlers[:], root.level = handlers, level
    for name, before in levels.items():
        logging.getLogger(name).setLevel(before)


def test_httpx_and_pynetdicom_are_quieted_at_info(restored: None) -> None:
    for name in logs.QUIETED:
        logging.getLogger(name).setLevel(logging.NOTSET)
    logs.configure("text", "INFO")
    for name in ("httpx", "pynetdicom"):
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
        assert logging.getLogger(name).isEnabledFor(logging.WARNING)


def test_importing_the_upstreams_sets_no_log_level() -> None:
    """A library does not set another library's level: only serve's set-up does."""
    code = (
        "import logging, dicomcache.server.upstreams.qido_rs, dicomcache.server.upstreams.dicom_qr;"
        "print([logging.getLogger(n).level for n in ('httpx', 'pynetdicom')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.stdout.strip() == "[0, 0]", result.stderr
