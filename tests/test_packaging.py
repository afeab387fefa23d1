"""The distribution is complete and reproducible.

* The wheel, installed with its declared dependencies into a fresh venv, imports
  and runs its console script; it installs nothing but the ``dicomcache`` package.
* The committed generated code is exactly what ``scripts/generate_protos.py`` writes.
* ``buf lint`` (from npm's @bufbuild/buf; ``npm ci`` installs it) is clean.

The wheel test needs PyPI (or a pip cache) for the dependencies and takes a
minute or so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.support.redis_servers import redis_server

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "protos" / "dicomcache" / "v1"
_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    "node_modules",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".hypothesis",
    ".mypy_cache",
    ".ruff_cache",
    ".pytest_cache",
    ".venv",
)


def _run(
    args: list[str | Path], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"},
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the source tree (the tree itself stays untouched)."""
    source = tmp_path_factory.mktemp("source") / "dicomcache"
    shutil.copytree(ROOT, source, ignore=_COPY_IGNORE)
    out = tmp_path_factory.mktemp("wheel")
    # With build isolation, as pip does: this also checks [build-system].requires.
    _run([sys.executable, "-m", "build", "--wheel", "--outdir", out], source, timeout=900)
    (built,) = out.glob("dicomcache-*.whl")
    return built


def test_wheel_holds_only_the_dicomcache_package(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/", 1)[0] for name in names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == {"dicomcache"}
    for expected in (
        "dicomcache/client/__init__.py",
        "dicomcache/client/convert/dataset.py",
        "dicomcache/server/__init__.py",
        "dicomcache/server/cli.py",
        "dicomcache/server/api/service.py",
        "dicomcache/server/backends/__init__.py",
        "dicomcache/server/backends/memory/backend.py",
        "dicomcache/server/backends/redis/backend.py",
        "dicomcache/v1/cache_service_pb2_grpc.py",
        "dicomcache/v1/dataset_pb2.pyi",
        "dicomcache/v1/query.proto",
        "dicomcache/v1/py.typed",
    ):
        assert expected in names, f"{expected} is missing from {wheel.name}"
    for folder, root in (("server", "server"), ("client", "client"), ("protos/dicomcache", "")):
        for init in (ROOT / folder).rglob("__init__.py"):
            package = init.relative_to(ROOT / folder).as_posix()
            installed = "/".join(part for part in ("dicomcache", root, package) if part)
            assert installed in names, f"{installed} is missing from {wheel.name}: list its package"
    assert any(
        name.startswith("dicomcache/server/backends/redis/scripts/") and name.endswith(".lua")
        for name in names
    ), f"the Redis backend's Lua scripts are missing from {wheel.name}"


def test_wheel_installs_imports_and_runs(wheel: Path, tmp_path: Path) -> None:
    environment = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(environment)
    python = environment / "bin" / "python"
    _run([python, "-m", "pip", "install", "--quiet", wheel], tmp_path, timeout=900)

    # From a directory outside the source tree, so only the installed copy can be found.
    script = (
        "import importlib.util, dicomcache.client, dicomcache.server\n"
        "import dicomcache.v1.cache_service_pb2_grpc\n"
        "assert 'site-packages' in dicomcache.client.__file__, dicomcache.client.__file__\n"
        "for bare in ('server', 'client', 'v1', 'protos'):\n"
        "    assert importlib.util.find_spec(bare) is None, bare\n"
    )
    _run([python, "-c", script], tmp_path)
    result = _run([environment / "bin" / "dicomcache", "--help"], tmp_path)
    assert "usage" in result.stdout.lower()

    # The Redis backend from the installed copy: its Lua scripts load as package data.
    with redis_server() as server:
        _run([python, "-c", _REDIS_ROUND_TRIP, server.url], tmp_path)


_REDIS_ROUND_TRIP = """
import sys
from dicomcache.server.backends.redis import RedisBackend
from dicomcache.server.model import InstanceData, Level, SeriesData, StudyData

backend = RedisBackend.from_url(sys.argv[1], ttl=60, negative_ttl=10)
study = StudyData("1.2", b"s", (SeriesData("1.2.3", b"se", (InstanceData("1.2.3.4", b"i"),)),))
backend.store_query("ns", b"k" * 16, [study], None)
assert backend.lookup_query("ns", b"k" * 16) == [study], "no hit from the stored answer"
backend.store_study("ns", study, Level.INSTANCE, None)
assert backend.lookup_study("ns", "1.2", Level.INSTANCE) == study, "no study hit"
backend.close()
"""


def test_committed_generated_code_is_reproducible(tmp_path: Path) -> None:
    _run([sys.executable, ROOT / "scripts" / "generate_protos.py", "--out", tmp_path], ROOT)
    fresh = {p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*")}
    committed = {p.relative_to(ROOT / "protos") for p in GENERATED.glob("*_pb2*.py*")}
    assert fresh == committed
    for relative in sorted(fresh):
        assert (tmp_path / relative).read_bytes() == (ROOT / "protos" / relative).read_bytes(), (
            f"{relative} differs from the generator's output: run scripts/generate_protos.py"
        )


def test_buf_lint_is_clean() -> None:
    npx = shutil.which("npx")
    assert npx, "npx is missing: install Node.js and run `npm ci`"
    assert (ROOT / "node_modules" / ".bin" / "buf").exists(), "run `npm ci` to install buf"
    _run([npx, "--no-install", "buf", "lint"], ROOT)
