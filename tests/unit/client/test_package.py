"""The package's names: each one importable from ``dicomcache.client``, to Python and to mypy.

``CacheClient`` and ``CachedSearcher`` are imported on first use (``client/__init__.py``),
so that the pure conversions the server imports do not bring dicomtrolley with them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

PYTHON = """
import json, sys
import dicomcache.client as package
heavy = ("dicomtrolley", "pydicom", "dicomcache.client.searcher")
before = sorted(name for name in heavy if name in sys.modules)
from dicomcache.client import *  # every name of __all__
from dicomcache.client import CacheClient, CachedSearcher
from dicomcache.client.cache_client import CacheClient as client_class
from dicomcache.client.searcher import CachedSearcher as searcher_class
try:
    package.CachedSearch
    missing = "no error"
except AttributeError as exc:
    missing = str(exc)
print(json.dumps({
    "before": before,
    "same": CacheClient is client_class and CachedSearcher is searcher_class,
    "all": all(getattr(package, name) is globals()[name] for name in package.__all__),
    "dir": sorted(set(package.__all__) - set(dir(package))),
    "missing": missing,
}))
"""

CONSUMER = """
from dicomcache.client import CacheClient, CachedSearcher, CacheError, ClientTLS, Token

reveal_type(CachedSearcher)
reveal_type(CacheClient)
from dicomcache.client import CachedSearch
"""


def test_importing_the_package_waits_for_the_searcher_and_client_to_be_asked_for() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PYTHON], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {
        "before": [],
        "same": True,
        "all": True,
        "dir": [],
        "missing": "module 'dicomcache.client' has no attribute 'CachedSearch'",
    }


def test_mypy_sees_the_classes_and_refuses_a_misspelt_name(tmp_path: Path) -> None:
    """The lazy names are real imports to a type checker, and no ``__getattr__`` makes
    an unknown name Any. The packages are laid out as the wheel does (see test_lint)."""
    root = tmp_path / "dicomcache"
    root.mkdir()
    shared = ROOT / "protos" / "dicomcache"
    for name in ("py.typed", *(module.name for module in shared.glob("*.py"))):
        (root / name).symlink_to(shared / name)
    (root / "v1").symlink_to(shared / "v1")
    (root / "server").symlink_to(ROOT / "server")
    (root / "client").symlink_to(ROOT / "client")
    consumer = tmp_path / "consumer.py"
    consumer.write_text(CONSUMER)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--strict", str(consumer)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "MYPYPATH": str(tmp_path)},
        check=False,
    )
    lines = result.stdout.splitlines()
    revealed = [line for line in lines if "Revealed type" in line]
    assert len(revealed) == 2, result.stdout + result.stderr
    assert revealed[0].endswith('-> dicomcache.client.searcher.CachedSearcher"'), revealed[0]
    assert revealed[1].endswith('-> dicomcache.client.cache_client.CacheClient"'), revealed[1]
    errors = [line for line in lines if ": error:" in line]
    assert len(errors) == 1, result.stdout
    assert 'has no attribute "CachedSearch"' in errors[0]
