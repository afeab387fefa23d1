"""The house rules hold: ruff (lint and format) and mypy strict, as configured in
pyproject.toml, and luacheck on the Redis backend's Lua, as configured in .luacheckrc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ["server", "client", "tests", "benchmarks", "scripts"]
LUA = ROOT / "server" / "backends" / "redis" / "scripts"


def run(*command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_ruff_lint_is_clean():
    result = run(sys.executable, "-m", "ruff", "check", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = run(sys.executable, "-m", "ruff", "format", "--check", *CHECKED)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_is_clean(tmp_path):
    """mypy reads the import packages through a tree of links, as they install.

    The folders map to packages under one root (server/ is dicomcache.server), and
    mypy cannot follow an editable install's import hook, so the test lays the
    packages out as the wheel does.
    """
    root = tmp_path / "dicomcache"
    root.mkdir()
    shared = ROOT / "protos" / "dicomcache"  # the modules both sides import
    for name in ("py.typed", *(module.name for module in shared.glob("*.py"))):
        (root / name).symlink_to(shared / name)
    (root / "v1").symlink_to(ROOT / "protos" / "dicomcache" / "v1")
    (root / "server").symlink_to(ROOT / "server")
    (root / "client").symlink_to(ROOT / "client")
    env = {**os.environ, "MYPYPATH": str(tmp_path)}
    result = run(
        sys.executable,
        "-m",
        "mypy",
        "--no-incremental",
        "-p",
        "dicomcache.server",
        "-p",
        "dicomcache.client",
        env=env,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_luacheck_is_clean():
    """Every script, and common.lua that is prepended to each (see .luacheckrc)."""
    luacheck = shutil.which("luacheck")
    if luacheck is None:
        pytest.skip("the luacheck binary is missing (apt-get install lua-check)")
    files = sorted(LUA.glob("*.lua"))
    assert files, f"no .lua files in {LUA}"
    result = run(luacheck, "--no-color", "--formatter", "plain", *map(str, files))
    assert result.returncode == 0, result.stdout + result.stderr
